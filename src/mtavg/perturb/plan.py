"""What a pair dataset will hold, decided before any clip is written: sources, type mix, parameters.

The plan is a pure function of (sources, mix, n, seed, level): the same call gives the same plan, which
is what makes a build resumable and its manifest checkable. Type counts are quotas (largest remainder),
not independent draws: 1,000 negatives by the AVBench mix hold exactly 250 random mismatches, and no
share is off by more than half a negative.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mtavg.perturb.catalogue import CATALOGUE, LEVELS, NotApplicable, SourceFacts, get_spec

#: AVBench's published audio-video negative mix.
AVBENCH_MIX: dict[str, float] = {
    "random_mismatch": 0.25, "semantic_mismatch": 0.18, "time_shift": 0.17, "speed_change": 0.15,
    "pitch_shift": 0.10, "noise": 0.10, "filter": 0.05,
}
MIXES: dict[str, dict[str, float]] = {
    "avbench": AVBENCH_MIX,
    # Picture defects for a visual-quality evaluator (no published mix: equal shares).
    "video": {"freeze": 0.25, "stutter": 0.25, "colour_cast": 0.25, "blur": 0.25},
    # Every perturbation we have, equal shares.
    "all": {name: 1 / len(CATALOGUE) for name in CATALOGUE},
}


class PlanError(ValueError):
    """The requested dataset cannot be planned (unknown type, a type no source clip can take, ...)."""


@dataclass(frozen=True)
class SourceClip:
    clip_id: str
    path: str
    duration_s: float
    height: int
    has_audio: bool
    category: str | None = None
    text: str | None = None
    generator: str | None = None


@dataclass
class PlannedClip:
    clip_id: str
    role: str  # "positive" | "negative"
    source_id: str
    perturbation: str  # "none" for positives
    dimension: str | None
    level: str | None
    params: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_mix(spec: str | Mapping[str, float]) -> dict[str, float]:
    """A preset name (avbench, video, all), ``"time_shift=0.5,noise=0.5"``, a .json file, or a mapping.

    Weights need not sum to one (they are normalised); zero weights are dropped.
    """
    if isinstance(spec, Mapping):
        raw = dict(spec)
    elif spec in MIXES:
        raw = dict(MIXES[spec])
    elif spec.endswith(".json") and Path(spec).is_file():
        raw = json.loads(Path(spec).read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise PlanError(f"{spec}: a mix file holds one JSON object of type -> weight")
    else:
        raw = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, sep, weight = part.partition("=")
            if not sep:
                raise PlanError(f"mix {spec!r}: {part!r} is not name=weight (presets: {', '.join(MIXES)})")
            try:
                raw[name.strip()] = float(weight)
            except ValueError:
                raise PlanError(f"mix {spec!r}: weight {weight!r} of {name.strip()!r} is not a number") from None
    unknown = [k for k in raw if k not in CATALOGUE]
    if unknown:
        raise PlanError(f"unknown perturbation(s) in the mix: {', '.join(unknown)}; known: {', '.join(CATALOGUE)}")
    bad = [k for k, v in raw.items() if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0)]
    if bad:
        raise PlanError(f"mix weights must be finite and >= 0: {', '.join(bad)}")
    total = sum(raw.values())
    if total <= 0:
        raise PlanError("the mix has no positive weight")
    return {k: v / total for k, v in raw.items() if v > 0}


def quotas(mix: Mapping[str, float], n: int) -> dict[str, int]:
    """Counts per type summing to ``n``, each floor(share x n) plus one for the largest remainders."""
    exact = {k: v * n for k, v in mix.items()}
    counts = {k: int(math.floor(x)) for k, x in exact.items()}
    order = sorted(mix, key=lambda k: (-(exact[k] - counts[k]), k))  # ties: by name, deterministic
    for k in order[: n - sum(counts.values())]:
        counts[k] += 1
    return counts


def _facts(src: SourceClip, donors: tuple) -> SourceFacts:
    return SourceFacts(clip_id=src.clip_id, duration_s=src.duration_s, height=src.height, has_audio=src.has_audio,
                       category=src.category, text=src.text, others=donors)


def plan_negatives(sources: Sequence[SourceClip], mix: Mapping[str, float], n: int, *, seed: int = 0,
                   level: str = "both") -> list[PlannedClip]:
    """``n`` negatives: types by quota in a seeded random order, spread evenly over the source clips.

    ``level`` is easy, hard, or both (half of each type easy, half hard). Each negative goes to the
    least-used source that can take it; a type no source can take is a PlanError naming why.
    """
    if n < 0:
        raise PlanError(f"n must be >= 0, got {n}")
    if not sources:
        raise PlanError("no source clips")
    if level not in (*LEVELS, "both"):
        raise PlanError(f"level {level!r}: choose easy, hard or both")
    rng = np.random.default_rng([seed, 0])
    slots: list[tuple[str, str]] = []
    for name, count in quotas(mix, n).items():
        levels = [level] * count if level != "both" else (["easy", "hard"] * (count // 2 + 1))[:count]
        slots.extend((name, lv) for lv in levels)
    order = rng.permutation(len(slots))
    slots = [slots[i] for i in order]
    # One shared tuple of possible donors (each sampler skips its own clip): O(n) memory, not O(n^2).
    donors = tuple((o.clip_id, o.path, o.category, o.text, o.duration_s) for o in sources if o.has_audio)
    facts = {s.clip_id: _facts(s, donors) for s in sources}
    use = Counter({s.clip_id: 0 for s in sources})
    rotation = [sources[i].clip_id for i in rng.permutation(len(sources))]
    rank = {c: i for i, c in enumerate(rotation)}
    planned: list[PlannedClip] = []
    width = max(5, len(str(n)))
    for index, (name, lv) in enumerate(slots):
        spec = get_spec(name)
        item_rng = np.random.default_rng([seed, 1, index])
        reasons: list[str] = []
        for clip_id in sorted(rotation, key=lambda c: (use[c], rank[c])):
            try:
                params = spec.sample(item_rng, lv, facts[clip_id])
            except NotApplicable as exc:
                reasons.append(str(exc))
                continue
            use[clip_id] += 1
            planned.append(PlannedClip(f"neg-{index:0{width}d}", "negative", clip_id, name, spec.dimension, lv,
                                       params))
            break
        else:
            shown = "; ".join(sorted(set(reasons))[:5])
            raise PlanError(f"no source clip can take a {name} negative: {shown}")
    return planned


def plan_dataset(sources: Sequence[SourceClip], mix: Mapping[str, float], n: int, *, seed: int = 0,
                 level: str = "both") -> list[PlannedClip]:
    """Positives (each source used, unperturbed) followed by the negatives."""
    negatives = plan_negatives(sources, mix, n, seed=seed, level=level)
    used = {p.source_id for p in negatives}
    positives = [PlannedClip(positive_id(s.clip_id), "positive", s.clip_id, "none", None, None)
                 for s in sources if s.clip_id in used]
    return positives + negatives


def positive_id(source_id: str) -> str:
    return f"pos-{source_id}"


def realised_mix(planned: Sequence[PlannedClip]) -> dict[str, dict[str, float]]:
    """Per type: count and share among the negatives."""
    negatives = [p for p in planned if p.role == "negative"]
    counts = Counter(p.perturbation for p in negatives)
    return {k: {"n": c, "share": c / len(negatives)} for k, c in sorted(counts.items())} if negatives else {}


def safe_id(rel: str) -> str:
    """A clip id from a path relative to the source root: folders joined by "__", no suffix."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "__".join(Path(rel).with_suffix("").parts))
