"""Raw evaluator text -> structured prediction, or invalid with a reason (never a guess).

1. JSON first: the last parseable object with an answer key (``answer``; temporal ``primary_issue``),
   fenced or embedded in prose.
2. Else declarations in prose, in tiers: explicit ("Answer: B", "Final answer", <answer>, \\boxed{},
   答案/选, "I choose B") > affirmed ("B is correct", "Clip 2 is the one") > weak ("**B**", "(C)",
   "B. <text>" at a line start, "Option B", an option's full text). The last of the top tier wins.
   Capital letters anywhere else are prose ("A man speaks"), never labels.
3. Refusals and "none of the above" are invalid unless an explicit declaration is present.
Temporal time labels: JSON ``time``, or "Time: A, C" / "Segments: B" (labels or "2.0-4.0s" ranges).
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

FORMATS = ("single", "multi", "pairwise", "temporal")
_ONE_LABEL = frozenset({"single", "pairwise", "temporal"})
_ANSWER_KEYS = ("answer", "answers", "final_answer")
_PRIMARY_KEYS = ("primary_issue", "primary", "issue", *_ANSWER_KEYS)
_TIME_KEYS = ("time", "times", "time_options", "time_segments", "segments", "time_answer", "timestamps")
_RATIONALE_KEYS = ("rationale", "reason", "reasoning", "explanation", "justification")


@dataclass(frozen=True)
class ParsedAnswer:
    answer: list[str]  # option labels in label order, deduped; [] when invalid
    time: list[str]  # temporal only: time-option labels; [] otherwise / when absent
    rationale: str | None
    valid: bool
    reason: str | None  # why invalid; None when valid

    def prediction(self) -> dict | None:
        return {"answer": list(self.answer), "time": list(self.time)} if self.valid else None


def _invalid(reason: str, rationale: str | None = None) -> ParsedAnswer:
    return ParsedAnswer([], [], rationale, False, reason)


# --- reading a list of labels at a position ("A, C", "(B) and **D**", "Clip 2", "2.0-4.0s") ---------
_LEAD = re.compile(r"[ \t*_\"'`\[(（【「]*")  # markup and brackets before a label (same line)
_PREFIX = re.compile(r"(?:(?i:options?|choices?)\s+|选项\s*)(?=[\[(（]?[A-Z](?![A-Za-z0-9']))")
_LETTER = re.compile(r"([A-Z])(?![A-Za-z0-9]|'[a-z])")  # not "I'm", but "['B']" is fine
_TRAIL = re.compile(r"[*_\"'`\])）】」]*")
_SEP = re.compile(r"\s*(?:[,;&/+、，；]|和|与|及|(?i:and|or)\b)\s*(?:(?i:and|or)\s+)?")
_WORD_AFTER = re.compile(r"\s+([a-z][a-z'-]*)")
# Words that may follow an answer letter; any other lowercase word makes "A"/"I" English.
_CONNECTORS = frozenset({"and", "or", "because", "since", "as", "is", "was", "seems", "appears", "fits",
                         "matches", "best", "for", "due", "given", "which", "with", "here"})
_NUM = r"(?:\d+:)?\d+(?:\.\d+)?"
_RANGE = re.compile(rf"({_NUM})\s*s?\s*(?:-|–|—|~|to)\s*({_NUM})\s*(?:sec\w*|s\b)?")
_NONE_SPAN = re.compile(r"(?i:none|neither|no\s+(?:failure|issue|problem|error|option|answer)s?|n/a)\b"
                        r"|以上都不是|都不是|没有")


class _Ctx(NamedTuple):
    options: dict[str, str]  # labels that count (time labels when reading time)
    texts: list[tuple[str, re.Pattern]]  # option label -> its full text as a loose pattern
    ranges: dict[str, tuple[float, float]]  # time label -> (start, end); empty for options


def _text_pattern(text: str) -> re.Pattern | None:
    words = re.findall(r"\w+", text)
    return re.compile(r"(?<!\w)" + r"[\W_]+".join(map(re.escape, words)) + r"(?!\w)", re.I) if words else None


def _make_ctx(options: dict[str, str], ranges: dict | None = None) -> _Ctx:
    texts = [(k, p) for k, v in options.items() if (p := _text_pattern(str(v))) is not None]
    return _Ctx(options, texts, {k: (float(a), float(b)) for k, (a, b) in (ranges or {}).items()})


def _seconds(s: str) -> float:
    m, _, sec = s.rpartition(":")
    return float(sec) + 60 * float(m or 0)


def _one_token(text: str, i: int, ctx: _Ctx) -> tuple[str | None, int] | None:
    """One label at i: an option's text (longest), a time range, or a capital letter."""
    hits = [(m.end(), k) for k, p in ctx.texts if (m := p.match(text, i))]
    if hits:
        end, label = max(hits)
        return label, end
    if ctx.ranges and (m := _RANGE.match(text, i)):
        a, b = _seconds(m.group(1)), _seconds(m.group(2))
        near = [k for k, (s, e) in ctx.ranges.items() if abs(s - a) <= 0.05 and abs(e - b) <= 0.05]
        return (near[0] if near else None), m.end()  # None: a range that is no time option
    m = _LETTER.match(text, i)
    if not m:
        return None
    w = _WORD_AFTER.match(text, m.end())
    if m.group(1) in "AI" and w and w.group(1) not in _CONNECTORS:
        return None  # the article "A" / pronoun "I" ("A man speaks"); "**A** man" is still a label
    return m.group(1), m.end()


def _tokens(text: str, pos: int, ctx: _Ctx) -> tuple[list[str | None], int]:
    """Labels listed from pos on, and where the list ends; ([], pos) if none."""
    out: list[str | None] = []
    end = pos
    while True:
        i = _LEAD.match(text, pos).end()
        p = _PREFIX.match(text, i)
        start = p.end() if p else i
        hit = _one_token(text, start, ctx)
        if hit is None:
            return out, end
        out.append(hit[0])
        end = _TRAIL.match(text, hit[1]).end()
        sep = _SEP.match(text, end)
        if not sep:
            return out, end
        pos = sep.end()


# --- declarations ------------------------------------------------------------------------------------
_ADVERB = r"(?:\s+(?:likely|probably|clearly|definitely|therefore|thus|most\s+likely))?"
_HEDGE = r"(?:(?:i\s+(?:think|believe|would\s+say)|probably|likely)\s+(?:(?:that\s+)?it(?:'s|\s+is)\s+)?)?"
_STRONG = [re.compile(p, re.I | re.M) for p in (
    rf"\b(?:final[\s_]+|correct\s+|best\s+|my\s+)?answers?\b(?:\s*\(s\))?[ \t*_\"']*"
    rf"(?:[:：=]|[-–—](?=\s)|(?:is|are|would\s+be|should\s+be|will\s+be)\b{_ADVERB})[ \t*_]*:?[ \t]*{_HEDGE}",
    r"\b(?:correct|right|best|most\s+(?:accurate|appropriate|fitting|likely))\s+"
    r"(?:options?|choices?|clips?|descriptions?|match|fit)\s*(?:is\b|are\b|[:：])",
    r"\b(?:choice|selection|verdict|prediction|conclusion)s?[\s*_\"']*[:：]",
    r"\b(?:choose|chose|pick|select|go\s+with|going\s+with|opt\s+for)\b[\s:]*",
    r"^[ \t]*#{1,6}[ \t]*(?:final\s+)?answers?[ \t]*:?[ \t]*$",
    r"\bprimary[\s_]+(?:issue|failure|problem)[\s*_\"']*(?:[:：=]|is\b)",
    r"\b(?:failures?|issues?|problems?)(?:\s+(?:present|observed|identified|detected))?[ \t*_]*"
    r"(?:[:：]|(?:is|are)\b)",
    r"<answer>\s*",
    r"\\boxed\{(?:\\text(?:bf)?\{)?",
    r"(?:最终|正确)?答案\s*(?:应该?)?(?:是|为)?\s*[:：]?",
    r"(?:我?选择|应选|选)(?!项)\s*[:：]?",
)]
_TIME = [
    re.compile(r"\b(?:time(?:[\s_]+(?:segments?|options?|windows?|ranges?|labels?))?|timestamps?|segments?)"
               r"\b[\s*_\"']*(?:[:：=]|(?:is|are)\b)", re.I),
    re.compile(r"\b(?i:segments?)\s+(?=[(\[]?[A-Z]\b)"),
    re.compile(r"时间(?:段|选项)?\s*[:：]"),
]
_WEAK = [  # (kind, anchor): where a weak list of labels may start
    ("line", re.compile(r"^[ \t>]*(?:[-*+•]\s+|\d+[.)]\s+)?"
                        r"(?=[(\[]\**[A-Z]\**[)\]]|\**[A-Z]\**(?:[.):：]|[ \t]+[-–—][ \t]|[ \t]*$))", re.M)),
    ("bold", re.compile(r"\*\*(?=[(\[]?[A-Z](?![A-Za-z0-9']))")),
    ("paren", re.compile(r"(?<![A-Za-z0-9])(?=[(（][A-Z][)）])")),
    ("option", re.compile(r"(?:\b(?i:options?|choices?)\s+|选项\s*)(?=[(\[]?[A-Z](?![A-Za-z0-9']))")),
    ("affirm", re.compile(r"(?<![\w'])(?=[A-Z](?![A-Za-z0-9]))")),  # only if affirmed: "A and C are correct"
]
# "B is correct", "Clip 2 is the one": promotes a weak mention to a strong declaration.
_AFFIRM = re.compile(r"[\s*_\"')\]]*(?:(?:is|are|seems|appears)\s+(?:to\s+be\s+)?(?:the\s+)?"
                     r"(?:correct|right|best|most\s+(?:accurate|appropriate|likely|fitting|plausible))\b"
                     r"|(?:is|are)\s+the\s+(?:answer|one)\b)", re.I)
_BULLET = re.compile(r"[ \t>]*(?:[-*+•]\s+|\d+[.)]\s+)?")
_REFUSAL = re.compile(
    r"\bi(?:\s+am|'m)?\s+(?:cannot|can't|can\s?not|could\s?not|couldn't|unable\s+to|not\s+able\s+to)\s+"
    r"(?:watch|view|access|play|process|open|analy[sz]e|help|assist|answer|determine|tell|identify|provide)\b"
    r"|\b(?:cannot|can't|unable\s+to|not\s+able\s+to)\s+(?:see|hear|watch|view|access)\s+(?:the\s+|this\s+|"
    r"these\s+|any\s+|your\s+)?(?:video|clip|audio|media|file|content|attachment)"
    r"|\bas\s+an\s+ai\b|\b(?:do\s+not|don't)\s+have\s+(?:the\s+)?(?:ability|access|capability)"
    r"|\b(?:not\s+possible|impossible)\s+(?:for\s+me\s+)?to\s+(?:determine|tell|say|answer)"
    r"|我?无法(?:观看|查看|确定|判断|回答|访问|播放)|抱歉", re.I)
_NONE = re.compile(
    r"\bnone\s+of\s+(?:the\s+)?(?:above|these|those|options|them)\b|\bneither\s+(?:clip|option|of)\b"
    r"|\bthere\s+(?:is|are)\s+no\s+(?:failure|issue|problem)s?\b"
    r"|\bno\s+(?:failure|issue|problem)s?\s+(?:is\s+|are\s+|was\s+|were\s+)?"
    r"(?:present|detected|observed|found|visible|evident|apparent)\b"
    r"|^\W*(?:none|no\s+failures?|no\s+issues?|n/a)\W*$|以上都不是|都不是|没有(?:问题|失败|错误)", re.I)


class _Decl(NamedTuple):
    start: int
    end: int
    strong: bool
    kind: str
    labels: tuple[str | None, ...]
    error: str | None = None


def _read_strong(text: str, pos: int, ctx: _Ctx) -> tuple[list[str | None], int]:
    """Labels after a strong declaration; "Answer:\\n- A\\n- C" reads the following label lines."""
    got, end = _tokens(text, pos, ctx)
    eol = text.find("\n", pos)
    if got or eol < 0 or text[pos:eol].strip(" \t*_#:>\"'-"):
        return got, end
    offset = eol + 1
    for line in text[eol + 1:].split("\n"):
        if line.strip():
            labels, e = _tokens(line, _BULLET.match(line).end(), ctx)
            if not labels:
                break
            got, end = got + labels, offset + e
        elif got:
            break
        offset += len(line) + 1
    return got, end


def _declarations(text: str, ctx: _Ctx, strong: list[re.Pattern], weak: bool = True) -> list[_Decl]:
    anchors = [(m.start(), m.end(), "strong") for p in strong for m in p.finditer(text)]
    if weak:
        anchors += [(m.start(), m.end(), kind) for kind, p in _WEAK for m in p.finditer(text)]
        anchors += [(m.start(), m.start(), "text") for _, p in ctx.texts for m in p.finditer(text)]
    decls: list[_Decl] = []
    strong_end = any_end = 0  # a weak line never hides a later "Answer:" on the same line
    for start, pos, kind in sorted(anchors, key=lambda a: (a[0], a[2] != "strong")):
        if start < (strong_end if kind == "strong" else any_end):
            continue
        if kind == "strong":
            labels, end = _read_strong(text, pos, ctx)
            if _NONE_SPAN.match(text, _LEAD.match(text, pos).end()):  # "Answer: none of the above", "N/A"
                decls.append(_Decl(start, pos, True, kind, (), "none_of_the_above"))
                end = pos
            elif labels:
                decls.append(_Decl(start, end, True, kind, tuple(labels)))
            else:
                continue  # "the answer is not obvious": no declaration after all
            strong_end = any_end = max(any_end, end)
            continue
        labels, end = _tokens(text, pos, ctx)
        affirmed = bool(labels) and _AFFIRM.match(text, end) is not None
        if not labels or (kind == "affirm" and not affirmed) or any(x not in ctx.options for x in labels):
            continue  # a weak mention of a non-option is just prose
        if kind == "line" and not affirmed:  # the line's leading label speaks for the whole line
            eol = text.find("\n", end)
            end = len(text) if eol < 0 else eol
        decls.append(_Decl(start, end, affirmed, kind, tuple(labels)))
        any_end = end
    return decls


def _choose(text: str, decls: list[_Decl], fmt: str, n_options: int) -> _Decl | str:
    """The deciding declaration, or an invalid reason."""
    # Tiers: explicit ("Answer: B") > affirmed ("B is correct") > weak; the last of the top tier wins.
    explicit, affirmed = [d for d in decls if d.kind == "strong"], [d for d in decls if d.strong]
    if explicit:
        return explicit[-1]
    if _REFUSAL.search(text):  # only an explicit declaration outweighs a refusal / "none of the above"
        return "refusal"
    if _NONE.search(text):
        return "none_of_the_above"
    if affirmed:
        return affirmed[-1]
    lines = [d for d in decls if d.kind == "line"]
    if n_options >= 3 and len({x for d in lines for x in d.labels}) >= n_options:
        decls = [d for d in decls if d.kind != "line"]  # "A. ... B. ... C. ..." walks the options
    if not decls:
        return "no_answer_found"
    last = decls[-1]
    if fmt == "multi" and last.kind == "line":  # a bulleted list of chosen labels
        labels, i = list(last.labels), len(decls) - 1
        while i > 0 and decls[i - 1].kind == "line" and not text[decls[i - 1].end:decls[i].start].strip():
            i -= 1
            labels += decls[i].labels
        last = last._replace(labels=tuple(labels))
    return last


# --- JSON --------------------------------------------------------------------------------------------
_LOWER_LABEL = re.compile(r"[\W_]*[a-h][\W_]*")
_RATIONALE_RE = re.compile(r"[\"'](?:rationale|reasoning|reason|explanation)[\"']\s*:\s*\"((?:[^\"\\]|\\.)*)")


def _json_objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object in the text (fenced or embedded), keys lower-cased, in order of start."""
    decoder, out = json.JSONDecoder(), []
    for m in re.finditer(r"\{", text):
        try:
            obj, _ = decoder.raw_decode(text, m.start())
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append({str(k).strip().lower(): v for k, v in obj.items()})
    return out


def _json_labels(value: Any, ctx: _Ctx) -> tuple[list[str | None], str | None]:
    """A JSON answer value (list, "B", "A, C", "(B)", option text) -> labels, or an error."""
    items = value if isinstance(value, list) else [value]
    if not items or all(x is None or (isinstance(x, str) and not x.strip()) for x in items):
        return [], "empty_answer"
    labels: list[str | None] = []
    for item in items:
        if isinstance(item, list) and len(item) == 2 and ctx.ranges:  # [start, end] seconds
            item = f"{item[0]}-{item[1]}"
        if not isinstance(item, str):
            return [], f"not_an_option: {item}"
        if _LOWER_LABEL.fullmatch(item):
            item = item.upper()
        got, _ = _tokens(item, 0, ctx)
        if not got:
            none = _NONE_SPAN.match(item, _LEAD.match(item).end())
            return [], "none_of_the_above" if none else f"not_an_option: {item.strip()[:40]}"
        labels += got
    return labels, None


def _rationale(obj: dict[str, Any] | None, text: str) -> str | None:
    if obj is not None:
        found = [obj[k].strip() for k in _RATIONALE_KEYS if isinstance(obj.get(k), str) and obj[k].strip()]
        return found[0] if found else None
    m = _RATIONALE_RE.search(text)  # a truncated JSON object still carries its rationale
    try:
        return (json.loads(f'"{m.group(1)}"').strip() or None) if m else None
    except ValueError:
        return m.group(1).strip() or None


# --- entry point -------------------------------------------------------------------------------------
def _near_exact(text: str, options: dict[str, str]) -> str | None:
    """The one option whose full text the whole (short) response nearly equals."""
    def norm(s: str) -> str:
        return " ".join(re.findall(r"\w+", s.lower()))
    if not norm(text) or len(text) > 300:
        return None
    ratio = {k: difflib.SequenceMatcher(None, norm(text), norm(str(v))).ratio() for k, v in options.items()}
    close = [k for k, r in ratio.items() if r >= 0.9]
    return close[0] if len(close) == 1 else None


def _finish(labels: list[str | None], error: str | None, options: dict[str, str], fmt: str,
            time: list[str], rationale: str | None) -> ParsedAnswer:
    if error:
        return _invalid(error, rationale)
    bad = [x for x in labels if x is None or x not in options]
    if bad:
        return _invalid(f"not_an_option: {bad[0]}", rationale)
    order = list(options)
    answer = sorted(set(labels), key=order.index)  # type: ignore[arg-type]
    if not answer:
        return _invalid("no_answer_found", rationale)
    if fmt in _ONE_LABEL and len(answer) > 1:
        return _invalid("too_many_answers", rationale)
    return ParsedAnswer(answer, time if fmt == "temporal" else [], rationale, True, None)


def parse_response(raw: str | None, options: dict[str, str], fmt: str,
                   time_options: dict[str, tuple[float, float]] | None = None) -> ParsedAnswer:
    """Parse one evaluator response for an item with these options and format."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if not isinstance(raw, str) or not raw.strip():
        return _invalid("empty")
    text = raw.replace("’", "'").replace("\r\n", "\n")
    answer_part = re.sub(r"<think>.*?</think>", "", text, flags=re.S | re.I)  # reasoning models
    text = answer_part if answer_part.strip() else text
    if _LOWER_LABEL.fullmatch(text.strip()):
        text = text.upper()  # a lone "b"
    ctx = _make_ctx(options)
    keys = _PRIMARY_KEYS if fmt == "temporal" else _ANSWER_KEYS

    # 1. JSON: the last object that carries an answer key
    objs = [o for o in _json_objects(text) if any(k in o for k in keys)] if "{" in text else []
    obj = objs[-1] if objs else None
    time: list[str] = []
    if fmt == "temporal" and time_options:  # JSON "time", else the last "Time: ..." declaration
        tctx = _make_ctx(dict.fromkeys(time_options, ""), time_options)
        tdecls = _declarations(text, tctx, _TIME, weak=False)
        tkey = next((k for k in _TIME_KEYS if obj and k in obj), None)
        if tkey:
            tlabels = _json_labels(obj[tkey], tctx)[0] if obj[tkey] else []
        else:
            tlabels = list(tdecls[-1].labels) if tdecls else []
        time = [k for k in time_options if k in tlabels]
        for d in tdecls:  # time labels share letters with options: hide them from step 2
            text = text[:d.start] + " " * (d.end - d.start) + text[d.end:]
    rationale = _rationale(obj, text)
    if obj is not None:
        labels, error = _json_labels(obj[next(k for k in keys if k in obj)], ctx)
        return _finish(labels, error, options, fmt, time, rationale)

    # 2. the whole response is labels ("B", "A, C", "(B)", "E" -> not an option)
    labels, end = _tokens(text.strip(), 0, ctx)
    if labels and re.fullmatch(r"[\s.。!]*", text.strip()[end:]):
        return _finish(labels, None, options, fmt, time, rationale)

    # 3. prose declarations
    chosen = _choose(text, _declarations(text, ctx, _STRONG), fmt, len(options))
    if chosen == "no_answer_found" and (label := _near_exact(text, options)):
        return _finish([label], None, options, fmt, time, rationale)
    if isinstance(chosen, str):
        return _invalid(chosen, rationale)
    return _finish(list(chosen.labels), chosen.error, options, fmt, time, rationale)
