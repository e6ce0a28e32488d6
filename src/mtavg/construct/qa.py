"""Failure annotations -> QA items in the four MTAVG-Bench formats, deterministic from a seed.

Per annotated video (in file order):

- **single**: one item per annotated failure mode (``single_per_failure`` wordings at most): the mode
  plus distractors taken band by band from :class:`~mtavg.construct.similarity.ModeSimilarity`
  (same sub-dimension first). No distractor is a mode annotated anywhere on the clip, so exactly
  one option is right.
- **multi**: clips with two or more annotated modes ("select all"), plus one item per category
  holding two or more of them; options = those modes + near distractors.
- **temporal**: each localised mode of a clip with a known ``duration_s``: the mode as primary
  issue, and a fixed grid of windows over the clip (``window_s``, widened so there are at most
  ``max_windows``) with every window overlapping one of its segments as the time answer. A mode that
  covers every window has nothing to localise and is skipped.
- **pairwise**: two clips of one script (``videos.jsonl`` ``script.script_id``) from different
  generators, for every mode exactly one of them is annotated with.

Gold positions are *balanced*, not random: each answer goes to the least used position of its
(format, option count) group, ties broken by the seeded RNG, so no label is favoured by more than one
item. Templates rotate the same way (least used first). A question asked twice about the same clips
is dropped (counted in ``QAResult.skipped``).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from mtavg.annotations import AnnotatedFailure, VideoAnnotation
from mtavg.bench.schema import FORMATS, QAItem, Video
from mtavg.construct.similarity import TIER_NAMES, Candidate, ModeSimilarity
from mtavg.construct.templates import Template, load_templates, templates_for
from mtavg.taxonomy import load_taxonomy

LABELS = "ABCDEFGH"
CLIP_OPTIONS = ("Clip 1", "Clip 2")


class QAConstructionError(ValueError):
    """Annotations and video metadata disagree; ``problems`` names each video and field."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(f"{len(self.problems)} problem(s) building QA:\n" + "\n".join(f"  {p}" for p in problems))


@dataclass(frozen=True)
class QAConfig:
    seed: int = 0
    single_per_failure: int = 1  # >1 asks about one failure again with other wordings
    window_s: float = 2.0  # temporal grid step
    max_windows: int = 8  # the grid widens on long clips so options stay <= 8
    formats: tuple[str, ...] = FORMATS
    qid_prefix: str = "qa"


@dataclass
class QAResult:
    items: list[QAItem]
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> count


def time_grid(duration_s: float, window_s: float = 2.0, max_windows: int = 8) -> dict[str, tuple[float, float]]:
    """Consecutive windows covering ``[0, duration_s]``; a remainder under half a window joins the last one."""
    if duration_s <= 0:
        raise ValueError(f"duration_s must be positive, got {duration_s}")
    step = max(window_s, duration_s / max_windows)
    n = max(1, int(duration_s // step + (1 if duration_s % step >= step / 2 else 0)))
    n = min(n, max_windows, len(LABELS))
    edges = [round(i * step, 3) for i in range(n)] + [round(duration_s, 3)]
    return {LABELS[i]: (edges[i], edges[i + 1]) for i in range(n)}


def windows_hit(grid: Mapping[str, tuple[float, float]], segments: Sequence[tuple[float, float]]) -> list[str]:
    """Labels of windows overlapping any segment; a zero-length segment hits the window holding it."""
    hit = []
    last = list(grid)[-1]
    for label, (a, b) in grid.items():
        for s, e in segments:
            point_inside = s == e and (a <= s < b or (label == last and s == b))
            if min(b, e) - max(a, s) > 0 or point_inside:
                hit.append(label)
                break
    return hit


class _Balancer:
    """Least-used choice per group with seeded tie-breaks: positions and templates stay even."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: dict[Any, Counter[Any]] = {}

    def take(self, group: Any, choices: Sequence[Any], k: int = 1) -> list[Any]:
        counts = self.used.setdefault(group, Counter())
        picked: list[Any] = []
        for _ in range(k):
            free = [c for c in choices if c not in picked]
            low = min(counts[c] for c in free)
            choice = self.rng.choice([c for c in free if counts[c] == low])
            counts[choice] += 1
            picked.append(choice)
        return picked


@dataclass
class _Clip:
    ann: VideoAnnotation
    video: Video | None
    modes: dict[str, list[AnnotatedFailure]]  # mode -> its segments, in annotation order

    @property
    def script_id(self) -> str | None:
        script = self.video.script if self.video else None
        sid = script.get("script_id") if script else None
        return str(sid) if sid is not None else None


class _Builder:
    def __init__(self, clips: list[_Clip], config: QAConfig, templates: list[Template], sim: ModeSimilarity):
        self.tax, self.config, self.templates, self.sim = load_taxonomy(), config, templates, sim
        self.rng = random.Random(config.seed)
        self.positions, self.template_use = _Balancer(self.rng), _Balancer(self.rng)
        self.clips = clips
        self.by_id = {c.ann.video_id: c for c in clips}
        self.result = QAResult([])
        self.asked: set[tuple[str, tuple[str, ...], str]] = set()
        self.count: Counter[str] = Counter()

    # ------------------------------------------------------------ shared steps
    def choose_template(self, fmt: str, gold: str, vids: Sequence[str]) -> tuple[Template, str] | None:
        """Least-used applicable template whose question was not asked yet about these clips."""
        mode = self.tax.failure_modes[gold]
        pool = templates_for(self.templates, fmt, mode)
        while pool:
            tpl = self.template_use.take(fmt, pool)[0]
            question = tpl.render(mode, self.tax)
            if (fmt, tuple(sorted(vids)), question) not in self.asked:
                return tpl, question
            self.template_use.used[fmt][tpl] -= 1  # not used after all
            pool = [t for t in pool if t is not tpl]
        self.result.skipped[f"{fmt}: every wording already asked about the clip"] += 1
        return None

    def emit(self, fmt: str, vids: list[str], question: str, tpl: Template, golds: list[str],
             distractors: list[Candidate], **extra: Any) -> None:
        n = len(golds) + len(distractors)
        slots = self.positions.take((fmt, n), list(range(n)), k=len(golds))
        order: list[str | None] = [None] * n
        for slot, g in zip(slots, golds, strict=True):
            order[slot] = g
        rest = iter(distractors)
        slugs = [m if m is not None else next(rest).slug for m in order]
        texts = [self.tax.failure_modes[s].name for s in slugs]
        self.asked.add((fmt, tuple(sorted(vids)), question))
        clip = self.clip(vids[0])
        meta = {"gold_modes": golds, "annotator": clip.ann.annotator, "generator": clip.ann.generator,
                "distractors": {d.slug: TIER_NAMES[d.tier] for d in distractors}}
        self.add(fmt, vids, question, tpl, dict(zip(LABELS, texts, strict=False)),
                 [LABELS[s] for s in sorted(slots)], golds[0], meta, **extra)

    def add(self, fmt: str, vids: list[str], question: str, tpl: Template, options: dict[str, str],
            answer: list[str], gold: str, meta: dict[str, Any], **extra: Any) -> None:
        self.count[fmt] += 1
        video = self.clip(vids[0]).video
        self.result.items.append(QAItem(
            qid=f"{self.config.qid_prefix}-{fmt}-{self.count[fmt]:05d}", format=fmt, video_ids=vids,
            question=question, options=options, answer=answer,
            sub_dimension=self.tax.failure_modes[gold].sub_dimension, failure_mode=gold,
            setting=video.setting if video else None, template_id=tpl.id,
            meta={k: v for k, v in meta.items() if v is not None}, **extra))

    def clip(self, video_id: str) -> _Clip:
        return self.by_id[video_id]

    # ------------------------------------------------------------ formats
    def single(self, clip: _Clip) -> None:
        vid = clip.ann.video_id
        for gold in clip.modes:
            for _ in range(self.config.single_per_failure):
                picked = self.choose_template("single", gold, [vid])
                if picked is None:
                    break
                tpl, question = picked
                distractors = self.sim.pick([gold], tpl.n_options - 1, self.rng, exclude=clip.modes)
                self.emit("single", [vid], question, tpl, [gold], distractors)

    def multi(self, clip: _Clip) -> None:
        vid, modes = clip.ann.video_id, list(clip.modes)
        groups: list[tuple[str, list[str]]] = [("any", modes)]
        for cat in self.tax.categories:
            in_cat = [m for m in modes if self.tax.failure_modes[m].category == cat]
            if len(in_cat) < len(modes):  # a category holding every mode would ask the same thing again
                groups.append((f"category:{cat}", in_cat))
        for scope, golds in groups:
            if len(golds) < 2:
                continue
            pool = [t for t in self.templates if t.format == "multi" and t.scope == scope]
            if not pool:
                continue
            tpl = self.template_use.take(("multi", scope), pool)[0]
            golds = golds[: tpl.n_options - 2]  # keep two distractors at least; extra golds go unasked
            question = tpl.render(self.tax.failure_modes[golds[0]], self.tax)
            if ("multi", (vid,), question) in self.asked:
                self.result.skipped["multi: question already asked about the clip"] += 1
                continue
            distractors = self.sim.pick(golds, tpl.n_options - len(golds), self.rng, exclude=clip.modes)
            self.emit("multi", [vid], question, tpl, golds, distractors)

    def temporal(self, clip: _Clip) -> None:
        vid = clip.ann.video_id
        duration = clip.video.duration_s if clip.video else None
        for gold, failures in clip.modes.items():
            segments = [(f.start_s, f.end_s) for f in failures if f.localised]
            if duration is None or not segments:
                self.result.skipped["temporal: " + ("no duration_s" if duration is None else "not localised")] += 1
                continue
            grid = time_grid(duration, self.config.window_s, self.config.max_windows)
            hit = windows_hit(grid, segments)  # type: ignore[arg-type]
            if len(grid) < 2 or len(hit) == len(grid):
                self.result.skipped["temporal: failure spans the whole clip"] += 1
                continue
            picked = self.choose_template("temporal", gold, [vid])
            if picked is None:
                continue
            tpl, question = picked
            distractors = self.sim.pick([gold], tpl.n_options - 1, self.rng, exclude=clip.modes)
            evidence = "; ".join(f.evidence for f in failures if f.evidence) or None
            self.emit("temporal", [vid], question, tpl, [gold], distractors,
                      time_options=dict(grid), time_answer=hit, evidence=evidence)

    def pairwise(self) -> None:
        by_script: dict[str, list[_Clip]] = {}
        for clip in self.clips:
            if clip.script_id is None:
                self.result.skipped["pairwise: clip without script.script_id"] += 1
                continue
            by_script.setdefault(clip.script_id, []).append(clip)
        for takes in by_script.values():
            for a, b in combinations(takes, 2):
                if a.ann.generator == b.ann.generator:
                    continue  # the format compares generators on one script
                for mode in sorted(set(a.modes) ^ set(b.modes)):
                    bad, good = (a, b) if mode in a.modes else (b, a)
                    self.pair_item(mode, bad, good)

    def pair_item(self, mode: str, bad: _Clip, good: _Clip) -> None:
        ids = [bad.ann.video_id, good.ann.video_id]
        picked = self.choose_template("pairwise", mode, ids)
        if picked is None:
            return
        tpl, question = picked
        slot = self.positions.take(("pairwise", 2), [0, 1])[0]
        vids = ids if slot == 0 else ids[::-1]
        self.asked.add(("pairwise", tuple(sorted(vids)), question))
        meta = {"clip_with_failure": bad.ann.video_id, "clip_without_failure": good.ann.video_id,
                "generators": [self.clip(v).ann.generator for v in vids], "annotator": bad.ann.annotator}
        self.add("pairwise", vids, question, tpl, dict(zip(LABELS[:2], CLIP_OPTIONS, strict=True)),
                 [LABELS[slot]], mode, meta)


def _clips(annotations: Sequence[VideoAnnotation], videos: Mapping[str, Video]) -> list[_Clip]:
    problems = []
    clips = []
    for ann in annotations:
        video = videos.get(ann.video_id)
        if video and video.generator and video.generator != ann.generator:
            problems.append(f"video {ann.video_id}: generator {ann.generator!r} in the annotations but "
                            f"{video.generator!r} in the video metadata")
        modes: dict[str, list[AnnotatedFailure]] = {}
        for i, f in enumerate(ann.failures):
            modes.setdefault(f.failure_mode, []).append(f)
            dur = video.duration_s if video else None
            if dur is not None and f.localised and f.end_s is not None and f.end_s > dur + 1e-6:
                problems.append(f"video {ann.video_id}: failures.{i}.end_s {f.end_s} is after the clip's "
                                f"end ({dur} s)")
        clips.append(_Clip(ann, video, modes))
    if problems:
        raise QAConstructionError(problems)
    return clips


def build_qa(annotations: Sequence[VideoAnnotation], videos: Mapping[str, Video] | None = None, *,
             config: QAConfig | None = None, templates: list[Template] | None = None) -> QAResult:
    """QA items from annotations (see the module doc); ``videos`` supplies duration_s, setting, script_id."""
    config = config or QAConfig()
    unknown = sorted(set(config.formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown format(s) {', '.join(unknown)}; known: {', '.join(FORMATS)}")
    clips = _clips(annotations, videos or {})
    builder = _Builder(clips, config, templates or load_templates(),
                       ModeSimilarity.from_annotations(annotations))
    for clip in clips:
        if "single" in config.formats:
            builder.single(clip)
        if "multi" in config.formats:
            builder.multi(clip)
        if "temporal" in config.formats:
            builder.temporal(clip)
    if "pairwise" in config.formats:
        builder.pairwise()
    return builder.result


def generate_qa(annotations: Sequence[VideoAnnotation], videos_meta: Mapping[str, Video] | None = None, *,
                seed: int = 0, **options: Any) -> list[QAItem]:
    """The items of :func:`build_qa` with ``QAConfig(seed=seed, **options)``."""
    return build_qa(annotations, videos_meta, config=QAConfig(seed=seed, **options)).items
