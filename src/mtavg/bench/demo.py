"""A small, offline, deterministic benchmark: synthetic two-speaker clips with known injected failures.

``build_demo_bench(out_dir, seed)`` writes the DESIGN.md "Benchmark directory" layout (videos.jsonl,
qa.jsonl, media/*.mp4). Eight scripts are each filmed twice ("takes"); a take is clean or carries one
or two injected failures, so pairwise items compare two takes of one script. Every QA item's gold
answer follows from what was injected (``ClipSpec.injections``, also stored in ``script.injected``).

Pseudo generators have different failure propensities so per-generator tables are not flat:
``synthA`` fails at acting/sync, ``synthB`` at atmosphere/sound, ``synthC`` at cinematography.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from mtavg.annotations import ANNOTATIONS_FILE, AnnotatedFailure, VideoAnnotation, write_annotations
from mtavg.bench.demo_media import (
    FPS,
    HEAD,
    PALETTES,
    SPEAKERS,
    Appearance,
    ClipSpec,
    Injection,
    Shot,
    Turn,
    render_clip,
)
from mtavg.bench.load import save_jsonl
from mtavg.bench.schema import QAItem, Video
from mtavg.taxonomy import load_taxonomy

LABELS = "ABCDEFGH"
WINDOW_S = 2.0  # temporal items: fixed 2 s grid over the clip

_CASTS = (  # (skin, hair, shirt) of speaker A, then of speaker B
    (((236, 196, 160), (60, 40, 30), (40, 90, 170)), ((200, 150, 120), (150, 60, 30), (170, 50, 60))),
    (((170, 120, 90), (30, 25, 25), (60, 140, 80)), ((240, 205, 175), (220, 180, 90), (120, 70, 150))),
    (((225, 180, 140), (110, 70, 40), (200, 150, 40)), ((140, 95, 70), (20, 20, 20), (50, 120, 150))),
)
LOOKS = [{sp: Appearance(*look) for sp, look in zip(SPEAKERS, cast, strict=True)} for cast in _CASTS]
LINES = ["Did you bring the keys?", "They were on the table this morning.", "Then who moved them?",
         "Maybe your brother took them.", "He left before sunrise.", "We are going to be late again.",
         "Call the station and ask.", "I already did, nobody answered.", "Let's just walk then.",
         "It's raining outside.", "You always say that.", "Fine, I'll get the umbrella."]
ABBREV = {  # short names for the SCRIPTS table below
    "smc": "speech_mode_confusion", "ttf": "dialogue_turn_taking_failure", "rtf": "reaction_timing_failure",
    "man": "missing_ambient_sound", "obg": "overpowering_background_audio", "scd": "scene_consistency_drift",
    "vmd": "visual_mood_drift", "spi": "shot_progression_issues", "ccb": "character_continuity_break"}


@dataclass(frozen=True)
class _Script:
    sid: str
    duration_s: float
    setting: str
    palette: str
    multi_shot: bool
    looks: int
    takes: tuple[str, ...]  # "video_id generator [abbreviated injected modes...]"


SCRIPTS: tuple[_Script, ...] = (
    _Script("s1", 8, "storyboard", "warm", False, 0, ("demo-01 synthA", "demo-02 synthA smc")),
    _Script("s2", 9, "short_drama", "cool", True, 1, ("demo-03 synthB", "demo-04 synthA ttf")),
    _Script("s3", 7, "storyboard", "green", False, 2, ("demo-05 synthA rtf", "demo-06 synthC")),
    _Script("s4", 8, "short_drama", "warm", False, 1, ("demo-07 synthB man", "demo-08 synthB obg")),
    _Script("s5", 8, "storyboard", "cool", False, 0, ("demo-09 synthB scd", "demo-10 synthB vmd man")),
    _Script("s6", 9, "short_drama", "green", False, 2, ("demo-11 synthC spi", "demo-12 synthC spi ccb")),
    _Script("s7", 9, "short_drama", "warm", False, 2, ("demo-13 synthA smc ttf", "demo-14 synthC ccb")),
    _Script("s8", 8, "storyboard", "dusk", True, 0, ("demo-15 synthB rtf obg", "demo-16 synthC")),
)

# Modes every synthetic cartoon clip arguably shows (babble speech, static bodies, flat painted room):
# never offered as distractors, or a "wrong" option could be true.
ALWAYS_PRESENT = frozenset({
    "dialogue_content_deviation", "artificial_environment", "lack_of_environmental_depth", "robotic_movement",
    "over_smoothed_movement", "co_speech_gesture_inconsistency", "facial_expression_inconsistency",
    "vocal_emotional_delivery_failure", "action_missing"})
# Near-synonyms of an injected mode, excluded from its distractors so exactly one option is right.
CONFUSABLE: dict[str, frozenset[str]] = {
    "shot_progression_issues": frozenset({"30_degree_rule_violation"}),
    "scene_consistency_drift": frozenset({"artificial_environment_transition", "visual_mood_drift",
                                          "color_emotion_conflict", "lighting_emotion_conflict",
                                          "missing_scene_transition"}),
    "visual_mood_drift": frozenset({"scene_consistency_drift", "artificial_environment_transition",
                                    "color_emotion_conflict", "lighting_emotion_conflict",
                                    "missing_scene_transition"}),
    "dialogue_turn_taking_failure": frozenset({"reaction_timing_failure", "character_targeting_error"}),
    # A lagging soundtrack also leaves voice audible after the lips have closed, and the reverse.
    "reaction_timing_failure": frozenset({"dialogue_turn_taking_failure", "speaker_identity_error",
                                          "multimodal_expressive_inconsistency", "speech_mode_confusion"}),
    "speech_mode_confusion": frozenset({"speaker_identity_error", "reaction_timing_failure"}),
    "overpowering_background_audio": frozenset({"scene_music_emotion_conflict", "music_tone_drift"}),
    "character_continuity_break": frozenset({"spatial_continuity_break"}),
}


# ---------------------------------------------------------------- clip specs
def _turns(rng: np.random.Generator, duration: float) -> list[Turn]:
    """Four alternating lines filling the clip, with 0.55-0.85 s pauses between them."""
    lead, tail, n = rng.uniform(0.3, 0.5), 0.35, 4
    gaps = rng.uniform(0.55, 0.85, n - 1)
    w = rng.uniform(0.8, 1.2, n)
    lens = w / w.sum() * (duration - lead - tail - gaps.sum())
    texts = rng.choice(LINES, n, replace=False)
    out, t = [], lead
    for i in range(n):
        out.append(Turn(SPEAKERS[i % 2], round(float(t), 3), round(float(t + lens[i]), 3), str(texts[i])))
        t += lens[i] + (gaps[i] if i < n - 1 else 0)
    return out


def _shots(sc: _Script, turns: list[Turn]) -> list[Shot]:
    """Single wide shot, or (multi_shot) cuts in each pause: wide, then a closer shot on the next speaker."""
    if not sc.multi_shot:
        return [Shot(0.0, float(sc.duration_s), palette=sc.palette)]
    cuts = [_snap((a.end_s + b.start_s) / 2) for a, b in zip(turns, turns[1:], strict=False)]
    shots, bounds = [], [0.0, *cuts, float(sc.duration_s)]
    for i, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        sp = turns[i].speaker
        close = i % 2 == 1 or i == len(turns) - 1
        cx = HEAD[sp][0] + (20 if sp == "A" else -20) if close else 128.0
        shots.append(Shot(a, b, scale=1.35 if close else 1.0, cx=cx, palette=sc.palette))
    return shots


def _snap(t: float) -> float:
    return round(t * FPS) / FPS  # cuts and switches land on frame boundaries


def _split(spec: ClipSpec, t: float, **changes: Any) -> None:
    """Cut the shot containing ``t`` at ``t``; the new shot gets ``changes`` (framing / palette)."""
    i = spec.shot_index(t)
    s = spec.shots[i]
    if abs(s.start_s - t) < 1e-6:
        spec.shots[i] = replace(s, **changes)
    else:
        spec.shots[i: i + 1] = [replace(s, end_s=t), replace(s, start_s=t, **changes)]


def _window_mid(rng: np.random.Generator, duration: float) -> float:
    """A time well inside one 2 s grid window, so a short event overlaps exactly one window."""
    return _snap(rng.choice([3.0, 5.0] if duration > 6.5 else [3.0]) + rng.uniform(-0.35, 0.35))


def _inject(spec: ClipSpec, mode: str, rng: np.random.Generator) -> Injection:
    d, tr = spec.duration_s, spec.turns
    if mode == "speech_mode_confusion":  # the third line is voiced, but no lips move
        t = tr[2]
        spec.mute_mouths.append((t.start_s, t.end_s))
        return Injection(mode, t.start_s, t.end_s, f"Speaker {t.speaker}'s line '{t.text}' is heard from "
                         f"{t.start_s:.1f} s to {t.end_s:.1f} s while both characters' mouths stay closed.")
    if mode == "dialogue_turn_taking_failure":  # speaker of line 1 keeps talking into line 2
        a, b = tr[0], tr[1]
        overlap = round(min(1.1, 0.7 * (b.end_s - b.start_s)), 3)
        a.end_s = round(b.start_s + overlap, 3)
        return Injection(mode, b.start_s, a.end_s, f"From {b.start_s:.1f} s to {a.end_s:.1f} s speakers "
                         f"{a.speaker} and {b.speaker} talk at the same time; both mouths move.")
    if mode == "reaction_timing_failure":
        # The taxonomy has no dedicated lip-sync mode. A constant audio lag makes every voice arrive after
        # the visible articulation -- the reaction-timing failure of IP. (EP multimodal_expressive_
        # inconsistency is about conflicting emotions, not timing, so it is not used.)
        spec.audio_offset_s = float(rng.integers(6, 13)) / FPS  # 0.4-0.8 s, a whole number of frames
        return Injection(mode, 0.0, d, f"The soundtrack lags the picture by about {spec.audio_offset_s:.1f} "
                         "s: each line is heard after the speaker's lips have moved.")
    if mode == "missing_ambient_sound":
        spec.ambient = False
        return Injection(mode, 0.0, d, "There is no room tone at all: the pauses between lines are dead "
                         "digital silence.")
    if mode == "overpowering_background_audio":  # loud music over the second line
        t = tr[1]
        a, b = round(max(0.0, t.start_s - 0.3), 3), round(min(d, t.end_s + 0.3), 3)
        spec.music.append((a, b))
        return Injection(mode, a, b, f"From {a:.1f} s to {b:.1f} s loud background music drowns out "
                         f"speaker {t.speaker}'s line.")
    if mode == "scene_consistency_drift":
        t = _window_mid(rng, d)
        new = next(p for p in PALETTES if p not in (spec.shots[0].palette, "dusk"))
        spec.palette_switch = (t, new)
        return Injection(mode, round(t - 0.25, 3), round(t + 0.25, 3), f"At {t:.1f} s, within one continuous "
                         f"shot, the wall colour jumps from {spec.shots[0].palette} to {new}.")
    if mode == "visual_mood_drift":
        t = _window_mid(rng, d)
        spec.grade_switch = (t, 0.4)
        return Injection(mode, t, round(t + 0.4, 3), f"At {t:.1f} s the whole image turns dark and cold blue "
                         "without any change in the scene.")
    if mode == "shot_progression_issues":  # three jump cuts between near-identical framings
        c = _snap(rng.uniform(1.4, 1.8))
        cuts = [c, _snap(c + rng.uniform(0.8, 1.0)), _snap(c + rng.uniform(1.7, 2.0))]
        for k, ct in enumerate(cuts):
            _split(spec, ct, scale=1.0 + 0.03 * (k % 2 + 1), cx=128.0 + float(rng.uniform(-4, 4)))
        a, b = round(cuts[0] - 0.2, 3), round(cuts[-1] + 0.2, 3)
        return Injection(mode, a, b, f"Jump cuts at {', '.join(f'{x:.1f}' for x in cuts)} s between almost "
                         "identical framings of the same two-shot.")
    if mode == "character_continuity_break":  # at the last pause: cut, and one character changes clothes
        t = _snap((tr[2].end_s + tr[3].start_s) / 2)
        sp = str(rng.choice(SPEAKERS))
        old = spec.looks[sp]
        hair = (255 - old.hair[0], 255 - old.hair[1], 255 - old.hair[2])  # inverted hair, rotated shirt
        new = Appearance(old.skin, hair, (old.shirt[1], old.shirt[2], old.shirt[0]))
        _split(spec, t, scale=1.2, cx=128.0)
        for i in range(spec.shot_index(t), len(spec.shots)):
            spec.shots[i] = replace(spec.shots[i], looks={sp: new})
        return Injection(mode, round(t - 0.3, 3), round(t + 0.3, 3), f"Across the cut at {t:.1f} s "
                         f"speaker {sp}'s hair and shirt change colour.")
    raise ValueError(f"demo: no injector for failure mode {mode!r}")


def make_clip_specs(seed: int = 0) -> list[ClipSpec]:
    """All demo clips (clean and injected), deterministic from ``seed``."""
    specs = []
    for k, sc in enumerate(SCRIPTS):
        turns = _turns(np.random.default_rng([seed, k]), sc.duration_s)
        for j, take in enumerate(sc.takes):
            vid, gen, *abbrev = take.split()
            spec = ClipSpec(vid, sc.sid, gen, sc.setting, float(sc.duration_s), seed * 1000 + k * 10 + j,
                            [replace(t) for t in turns], _shots(sc, turns), dict(LOOKS[sc.looks]))
            rng = np.random.default_rng([seed, k, j, 99])
            spec.injections = [_inject(spec, ABBREV[m], rng) for m in abbrev]
            specs.append(spec)
    return specs


# ---------------------------------------------------------------- QA items
class _Positions:
    """Gold positions drawn from shuffled bags per option count: balanced, yet seed-dependent."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.bags: dict[tuple[str, int], list[int]] = {}

    def draw(self, key: str, n: int) -> int:
        bag = self.bags.setdefault((key, n), [])
        if not bag:
            bag.extend(range(n))
            self.rng.shuffle(bag)
        return bag.pop()


def _grid(duration: float) -> dict[str, tuple[float, float]]:
    starts = np.arange(0.0, duration - 1e-6, WINDOW_S)
    return {LABELS[i]: (float(s), float(min(s + WINDOW_S, duration))) for i, s in enumerate(starts)}


class _ItemMaker:
    def __init__(self, specs: list[ClipSpec], seed: int) -> None:
        self.tax, self.rng, self.specs = load_taxonomy(), random.Random(seed), specs
        self.pos = _Positions(self.rng)
        self.items: list[QAItem] = []
        self.seen: set[tuple[tuple[str, ...], str]] = set()
        self.count: dict[str, int] = {}

    def modes(self, key: str, value: str) -> list[str]:
        return [m for m, fm in self.tax.failure_modes.items() if getattr(fm, key) == value]

    def distractors(self, spec: ClipSpec, taken: list[str], tiers: list[tuple[list[str], int]]) -> list[str]:
        """Fill from ``tiers`` in order ((pool, at most k)), never a mode that is, or may be, present."""
        injected = [i.failure_mode for i in spec.injections]
        bad = set(injected) | ALWAYS_PRESENT | set(taken)
        bad |= {c for m in injected for c in CONFUSABLE.get(m, ())}
        out: list[str] = []
        for pool, k in tiers:
            cand = [m for m in pool if m not in bad and m not in out]
            out += self.rng.sample(cand, min(len(cand), k - len([m for m in out if m in pool])))
        return out

    def add(self, fmt: str, vids: list[str], question: str, gold: str, opts: list[str], answer: list[int],
            **kw: Any) -> None:
        if (tuple(vids), question) in self.seen:  # never ask the same thing twice about one clip
            return
        self.seen.add((tuple(vids), question))
        self.count[fmt] = self.count.get(fmt, 0) + 1
        spec = next(s for s in self.specs if s.video_id == vids[0])
        texts = opts if fmt == "pairwise" else [self.tax.failure_modes[o].name for o in opts]
        self.items.append(QAItem(
            qid=f"demo-{fmt}-{self.count[fmt]:04d}", format=fmt, video_ids=vids, question=question,
            options=dict(zip(LABELS, texts, strict=False)), answer=[LABELS[i] for i in sorted(answer)],
            sub_dimension=self.tax.failure_modes[gold].sub_dimension, failure_mode=gold, setting=spec.setting,
            **kw))

    def choice(self, fmt: str, spec: ClipSpec, question: str, gold: str, tiers: list[tuple[list[str], int]],
               template: str, **kw: Any) -> None:
        opts = self.distractors(spec, [gold], tiers)
        p = self.pos.draw(fmt, len(opts) + 1)
        opts.insert(p, gold)
        meta = {"injected": sorted(i.failure_mode for i in spec.injections)}
        self.add(fmt, [spec.video_id], question, gold, opts, [p], template_id=template, meta=meta, **kw)

    def clip_items(self, spec: ClipSpec) -> None:
        tax, every = self.tax, list(self.tax.failure_modes)
        injected = [i.failure_mode for i in spec.injections]
        if not injected:  # clean takes only appear as the other clip of pairwise items
            return
        for k, inj in enumerate(spec.injections):
            fm = tax.failure_modes[inj.failure_mode]
            sd, cat = tax.sub_dimensions[fm.sub_dimension], tax.categories[fm.category]
            same, in_cat = list(sd.failure_modes), self.modes("category", cat.slug)
            # One distractor from the gold's own sub-dimension first, so options are not trivially apart.
            generic = ("Which failure is present in this clip?",
                       "Which of these problems can be observed in the clip?")
            self.choice("single", spec, generic[k % 2], fm.slug, [(same, 1), (every, 3)], "single.generic")
            self.choice("single", spec, f"Which {sd.name.lower()} problem does this clip show?", fm.slug,
                        [(same, 4), (in_cat, 4), (every, 4)], "single.sub_dimension")
            cat_q = (f"Looking at the {cat.name.lower()} of this clip, which failure occurs?",
                     f"Which {cat.name.lower()} failure can be seen or heard in this clip?")
            self.choice("single", spec, cat_q[k % 2], fm.slug, [(same, 1), (in_cat, 4), (every, 4)],
                        "single.category")
            if inj.end_s - inj.start_s < 0.6 * spec.duration_s:  # whole-clip issues have nothing to localise
                grid = _grid(spec.duration_s)
                hit = [lab for lab, (a, b) in grid.items() if min(b, inj.end_s) - max(a, inj.start_s) > 0]
                q = (f"What is the primary {sd.name.lower()} issue in this clip, and in which time windows "
                     "does it occur?")
                self.choice("temporal", spec, q, fm.slug, [(same, 1), (every, 3)], "temporal.primary",
                            time_options=grid, time_answer=hit, evidence=inj.evidence)
        for q, n, tid in (("Select all failures present in this clip.", 5, "multi.all"),
                          ("Which of the following problems occur in this clip? Select all that apply.", 7,
                           "multi.all_wide")):
            if tid == "multi.all_wide" and len(injected) < 2:
                continue
            near = [(self.modes("sub_dimension", tax.failure_modes[g].sub_dimension), 1) for g in injected]
            opts = injected + self.distractors(spec, injected, [*near, (every, n - len(injected))])
            self.rng.shuffle(opts)
            self.add("multi", [spec.video_id], q, injected[0], opts, [opts.index(g) for g in injected],
                     template_id=tid, meta={"injected": sorted(injected), "gold_modes": injected})

    def pair_items(self, a: ClipSpec, b: ClipSpec) -> None:
        modes = {s.video_id: {i.failure_mode for i in s.injections} for s in (a, b)}
        for mode in sorted(modes[a.video_id] ^ modes[b.video_id]):  # exactly one take has it
            fm = self.tax.failure_modes[mode]
            bad, good = (a, b) if mode in modes[a.video_id] else (b, a)
            p = self.pos.draw("pairwise", 2)  # gold position balanced like every other format
            vids = [bad.video_id, good.video_id] if p == 0 else [good.video_id, bad.video_id]
            self.add("pairwise", vids, f"Which clip shows this problem: {fm.name} — {fm.description}", mode,
                     ["Clip 1", "Clip 2"], [p], template_id="pairwise.which_clip",
                     meta={"clip_with_failure": bad.video_id})


def make_demo_items(specs: list[ClipSpec], seed: int = 0) -> list[QAItem]:
    maker = _ItemMaker(specs, seed)
    for spec in specs:
        maker.clip_items(spec)
    by_script: dict[str, list[ClipSpec]] = {}
    for spec in specs:
        by_script.setdefault(spec.script_id, []).append(spec)
    for takes in by_script.values():
        maker.pair_items(*takes)
    return maker.items


def demo_annotations(specs: list[ClipSpec]) -> list[VideoAnnotation]:
    """The ground-truth failure annotations: each injected failure as one segment; clean takes listed too."""
    tax = load_taxonomy()
    return [VideoAnnotation(
        video_id=spec.video_id, generator=spec.generator, annotator="mtavg-demo injection",
        failures=[AnnotatedFailure(sub_dimension=tax.failure_modes[i.failure_mode].sub_dimension,
                                   failure_mode=i.failure_mode, start_s=i.start_s, end_s=i.end_s,
                                   evidence=i.evidence) for i in spec.injections])
        for spec in specs]


def build_demo_bench(out_dir: Path, seed: int = 0) -> Path:
    """Write the demo benchmark (videos.jsonl, qa.jsonl, media/*.mp4) into ``out_dir``; returns it."""
    out_dir = Path(out_dir)
    (out_dir / "media").mkdir(parents=True, exist_ok=True)
    specs = make_clip_specs(seed)
    videos = []
    for spec in specs:
        rel = f"media/{spec.video_id}.mp4"
        render_clip(spec, out_dir / rel)
        videos.append(Video(video_id=spec.video_id, path=rel, generator=spec.generator, setting=spec.setting,
                            script=spec.to_script(), duration_s=spec.duration_s,
                            source=f"mtavg-demo seed={seed}"))
    save_jsonl(videos, out_dir / "videos.jsonl")
    save_jsonl(make_demo_items(specs, seed), out_dir / "qa.jsonl")
    write_annotations(demo_annotations(specs), out_dir / ANNOTATIONS_FILE)  # ground truth for failure analysis
    return out_dir
