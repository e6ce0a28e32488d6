"""How confusable two failure modes are: the order in which distractors are drawn.

A distractor should be *plausible* (a reader who only half-noticed the failure could pick it) and
*wrong* (the clip does not show it). Plausibility is this documented score, higher = more confusable:

=====================  =====  ==============================================================
signal                 score  why
=====================  =====  ==============================================================
same sub-dimension      +3.0  e.g. two Interaction Performance failures: the finest split
same category           +2.0  e.g. any two Acting failures (a same-sub-dimension pair gets both)
curated confusable      +0.6  :data:`CONFUSABLE_PAIRS`: cross-sub-dimension look-alikes
co-occurrence         +0..0.4 0.4 x Jaccard of the sets of annotated videos showing each mode
=====================  =====  ==============================================================

so every same-sub-dimension mode (>= 5) ranks above every other same-category mode (2..3), which
ranks above cross-category look-alikes or co-occurring modes (0..1], which rank above the rest (0).
:meth:`ModeSimilarity.tier` names these four bands; distractors are taken band by band.
Wrongness is the caller's job: modes annotated on the clip are passed as ``exclude``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations

from mtavg.annotations import VideoAnnotation
from mtavg.taxonomy import Taxonomy, load_taxonomy

SAME_SUB_DIMENSION, SAME_CATEGORY, CONFUSABLE, CO_OCCURRENCE = 3.0, 2.0, 0.6, 0.4
TIER_NAMES = ("other", "confusable_or_co_occurring", "same_category", "same_sub_dimension")

# Pairs from different sub-dimensions that describe the same symptom from two angles.
CONFUSABLE_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("reaction_timing_failure", "multimodal_expressive_inconsistency", "voice and face out of step"),
    ("speaker_identity_error", "character_targeting_error", "who speaks to whom"),
    ("dialogue_turn_taking_failure", "speech_mode_confusion", "overlapping or misplaced speech"),
    ("expression_exaggeration", "action_exaggeration", "overacting of face vs body"),
    ("emotion_driven_motivation_shift", "plot_driven_intention_failure", "unmotivated change of intent"),
    ("co_speech_gesture_inconsistency", "robotic_movement", "gestures that do not fit speech"),
    ("action_not_matching_scripts", "action_continuity_break", "an action that is not the scripted one"),
    ("action_not_matching_scripts", "missing_scripted_sound", "the script is not followed"),
    ("action_missing", "camera_action_misalignment", "the action is not seen"),
    ("proxemics_relationship_failure", "blocking_issues", "where characters stand"),
    ("interaction_eyeline_failure", "180_degree_rule_violation", "eyelines across a cut"),
    ("environmental_awareness_missing", "lack_of_environmental_depth", "characters detached from the set"),
    ("scene_consistency_drift", "spatial_continuity_break", "the set changes"),
    ("scene_consistency_drift", "character_continuity_break", "something changes between shots"),
    ("visual_mood_drift", "scene_consistency_drift", "the look changes mid-scene"),
    ("overpowering_background_audio", "scene_music_emotion_conflict", "the music is wrong"),
    ("music_tone_drift", "overpowering_background_audio", "the music misbehaves"),
    ("missing_scene_transition", "shot_progression_issues", "an abrupt cut"),
    ("artificial_environment_transition", "shot_progression_issues", "an unnatural cut"),
)


@dataclass(frozen=True)
class Candidate:
    """One possible distractor with its score and the strongest reason it is confusable."""

    slug: str
    score: float
    tier: int  # index into TIER_NAMES


def co_occurrence(annotations: Iterable[VideoAnnotation]) -> dict[frozenset[str], float]:
    """Jaccard index |videos with a and b| / |videos with a or b| for every pair seen together."""
    videos_of: dict[str, set[str]] = {}
    together: dict[frozenset[str], int] = {}
    for ann in annotations:
        modes = sorted({f.failure_mode for f in ann.failures})
        for m in modes:
            videos_of.setdefault(m, set()).add(ann.video_id)
        for a, b in combinations(modes, 2):
            together[frozenset((a, b))] = together.get(frozenset((a, b)), 0) + 1
    out = {}
    for pair, n in together.items():
        a, b = sorted(pair)
        out[pair] = n / len(videos_of[a] | videos_of[b])
    return out


class ModeSimilarity:
    """The score above for every pair of taxonomy modes, given the co-occurrence of some annotations."""

    def __init__(self, cooccurrence: dict[frozenset[str], float] | None = None,
                 confusable: Sequence[tuple[str, str, str]] = CONFUSABLE_PAIRS, tax: Taxonomy | None = None):
        self.tax = tax or load_taxonomy()
        unknown = sorted({m for a, b, _ in confusable for m in (a, b) if m not in self.tax.failure_modes})
        if unknown:
            raise ValueError(f"confusable pairs name unknown failure modes: {', '.join(unknown)}")
        self.cooccurrence = dict(cooccurrence or {})
        self.confusable = {frozenset((a, b)) for a, b, _ in confusable}

    @classmethod
    def from_annotations(cls, annotations: Iterable[VideoAnnotation]) -> ModeSimilarity:
        return cls(co_occurrence(annotations))

    def score(self, a: str, b: str) -> float:
        ma, mb = self.tax.failure_modes[a], self.tax.failure_modes[b]
        pair = frozenset((a, b))
        return ((SAME_SUB_DIMENSION if ma.sub_dimension == mb.sub_dimension else 0.0)
                + (SAME_CATEGORY if ma.category == mb.category else 0.0)
                + (CONFUSABLE if pair in self.confusable else 0.0)
                + CO_OCCURRENCE * self.cooccurrence.get(pair, 0.0))

    def tier(self, a: str, b: str) -> int:
        ma, mb = self.tax.failure_modes[a], self.tax.failure_modes[b]
        if ma.sub_dimension == mb.sub_dimension:
            return 3
        if ma.category == mb.category:
            return 2
        pair = frozenset((a, b))
        return 1 if pair in self.confusable or self.cooccurrence.get(pair, 0.0) > 0 else 0

    def ranked(self, golds: Sequence[str], exclude: Iterable[str] = ()) -> list[Candidate]:
        """Every taxonomy mode except ``golds`` and ``exclude``, most confusable first.

        With several golds (multi items) a candidate counts by its closest gold. Ties go by slug so
        the ranking itself never depends on a seed.
        """
        banned = set(golds) | set(exclude)
        out = []
        for slug in self.tax.failure_modes:
            if slug in banned:
                continue
            best = max(golds, key=lambda g, s=slug: (self.score(g, s), self.tier(g, s)))
            out.append(Candidate(slug, round(self.score(best, slug), 6), self.tier(best, slug)))
        return sorted(out, key=lambda c: (-c.score, c.slug))

    def pick(self, golds: Sequence[str], k: int, rng: random.Random, exclude: Iterable[str] = ()) -> list[Candidate]:
        """``k`` distractors: band by band (same sub-dimension first), shuffled within a band by ``rng``.

        Shuffling inside a band keeps items varied while never preferring a far mode to a near one.
        """
        ranked = self.ranked(golds, exclude)
        if len(ranked) < k:
            raise ValueError(f"only {len(ranked)} distractor candidates for {list(golds)}, need {k}")
        out: list[Candidate] = []
        for tier in range(len(TIER_NAMES) - 1, -1, -1):
            band = [c for c in ranked if c.tier == tier]
            rng.shuffle(band)
            out += band[: k - len(out)]
            if len(out) == k:
                break
        return out
