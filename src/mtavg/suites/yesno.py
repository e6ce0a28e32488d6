"""AVBench-style yes/no dimensions: one question each, the modality it needs, and the prompt.

A yes/no question is scored as a probability, P(Yes) / (P(Yes) + P(No)) of the first answer token, which
ranks clips more finely than a parsed "Yes"/"No" (AVBench). The same question text goes into the QA
items of a built pair dataset, so ``mtavg eval`` (discrete answers) and ``mtavg avbench score``
(probabilities) ask the evaluator the same thing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mtavg.prompts import load_template


@dataclass(frozen=True)
class YesNoDimension:
    name: str
    question: str  # may hold {text}: the clip's prompt or caption
    modality: str  # what the evaluator receives: full, no_audio (picture only) or no_vision (sound only)
    code: str  # sub-dimension code in the ``avbench`` taxonomy

    @property
    def needs_text(self) -> bool:
        return "{text}" in self.question

    def render_question(self, text: str | None = None) -> str:
        if self.needs_text:
            if not text:
                raise ValueError(f"dimension {self.name!r} asks about a description: pass the clip's text")
            return self.question.replace("{text}", text.strip())
        return self.question


DIMENSIONS: dict[str, YesNoDimension] = {d.name: d for d in (
    YesNoDimension("av_consistency", "Is this audio and video properly matched?", "full", "AV"),
    YesNoDimension("visual_quality", "Is this video free of visual defects such as frozen or stuttering "
                                     "frames, colour casts or blur?", "no_audio", "VQ"),
    YesNoDimension("audio_text", "Does the audio match this description: {text}", "no_vision", "AT"),
    YesNoDimension("video_text", "Does the video match this description: {text}", "no_audio", "VT"),
    YesNoDimension("speech_realism", "Does the speech in this clip sound like natural human speech?",
                   "no_vision", "SR"),
)}


def get_dimension(name: str) -> YesNoDimension:
    if name not in DIMENSIONS:
        raise KeyError(f"unknown yes/no dimension {name!r}; known: {', '.join(DIMENSIONS)}")
    return DIMENSIONS[name]


def yes_no_prompt(question: str) -> str:
    """The text an evaluator receives for a yes/no question (prompts/yes_no.txt)."""
    return load_template("yes_no").safe_substitute(question=question)


_ANSWER = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)
_JSON_ANSWER = re.compile(r'"answer"\s*:\s*\[?\s*"(yes|no)"', re.IGNORECASE)


def parse_yes_no(raw: str | None) -> float | None:
    """1.0 for an answer that starts with Yes, 0.0 for No (also {"answer": "Yes"}); None otherwise.

    Used when scoring from discrete answers (``--method answer``): anything else is invalid, never a guess.
    """
    if not raw:
        return None
    m = _ANSWER.match(raw) or _JSON_ANSWER.search(raw)
    if not m:
        return None
    return 1.0 if m.group(1).lower() == "yes" else 0.0


def answer_score(raw: str | None, options: dict[str, str] | None = None) -> tuple[float | None, str | None]:
    """(1.0 | 0.0 | None, invalid reason) for a discrete answer: a leading Yes/No, else the project's answer
    parser over the item's options (``{"answer": ["A"]}`` with A = "Yes"), so both styles score alike."""
    value = parse_yes_no(raw)
    if value is not None:
        return value, None
    if options:
        from mtavg.parse import parse_response

        parsed = parse_response(raw, options, "single")
        if parsed.valid and len(parsed.answer) == 1:
            text = options[parsed.answer[0]].strip().lower()
            if text in ("yes", "no"):
                return (1.0 if text == "yes" else 0.0), None
        return None, parsed.reason or "not a yes/no option"
    return None, "no Yes/No answer"
