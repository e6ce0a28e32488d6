"""Pitch accuracy for prompts that name notes: a deterministic stand-in for AVGen-Bench's Gemini-judged
music module, reported separately from it (module ``Pitch``, not ``Music``).

1. **Targets from the prompt** (:func:`parse_targets`): explicit notes with an octave ("a single note
   A4", "plays C4, E4, G4", "middle C"), scales by name ("a C major scale", "A minor pentatonic scale":
   pitch classes, octave free) and chords by name ("an A minor chord", "G7 chord": a pitch-class set).
   Only prompts with a musical word (note, chord, scale, guitar, piano, ...) are parsed, so "F1 car" or
   "A4 paper" in an advert names no note. A prompt with no target is ``not_applicable``.
2. **Measurement**: the YIN track of :mod:`mtavg.metrics.audio_pitch` (power-weighted, so a faint drone
   does not outvote the notes) and note events (runs of frames on one semitone, ≥ 60 ms); for chords an
   iterative harmonic-sum over the clip's average spectrum (each found note's harmonics removed before
   the next is sought) gives the sounding pitch classes.
3. **Score 0–100**:

   - one note: ``100 · match · tuning`` where ``match`` is 1 when the dominant note (octave included) is
     the target and ``tuning = max(0, 1 − |cents| / 50)``: exact → 100, 30 cents sharp → 40, a quarter
     tone or more off, or another note → 0;
   - a sequence or a scale: ``100 · LCS(target, played) / len(target) · tuning`` over the note events
     (consecutive repeats merged; scales compare pitch classes), tuning from the mean |cents| of the
     matched events;
   - a chord: ``100 · Jaccard(target set, sounding set)``.

   Silence or no pitched sound where a note was asked for scores 0 (status ``ok``, ``details.reason``
   says why): the generator did not play it, which is a failure of the clip, not of the module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from mtavg.metrics.audio_pitch import NOTE_NAMES, PitchTrack, hz_to_midi, midi_to_hz, note_name, yin

CENTS_ZERO_SCORE = 50.0  # a quarter tone off is another note for the ear: tuning factor 0
MIN_EVENT_S = 0.06
CHORD_MAX_NOTES = 6

_MUSIC_WORDS = re.compile(
    r"\b(notes?|chords?|scales?|arpeggios?|pitch|tone|tuning|melody|octave|fret\w*|strum\w*|pluck\w*|"
    r"guitar\w*|pian\w*|keyboard\w*|violin\w*|cell(?:o|ist)s?|viol\w*|bass\w*|ukulele|flut\w*|recorder|"
    r"trumpet\w*|sax\w*|clarinet\w*|harp\w*|xylophone|marimba|glockenspiel|synth\w*|sing\w*|sung|"
    r"hum\w*|whistl\w*|instrument\w*|music\w*)\b", re.I)
# A note with its octave: A4, C#5, Bb3, F♯2, "E flat 4" is not used in prompts; "A 4" is not a note.
_NOTE = re.compile(r"(?<![\w#♯♭])([A-G])(#|♯|b|♭)?(-?\d)(?![\w#])")
_MIDDLE_C = re.compile(r"\bmiddle C\b", re.I)
_ACCIDENTAL = {"": 0, "#": 1, "♯": 1, "b": -1, "♭": -1}
_ACC = r"(?:#|♯|b|♭|\s+sharp|\s+flat)?"
SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11, 12), "natural minor": (0, 2, 3, 5, 7, 8, 10, 12),
    "harmonic minor": (0, 2, 3, 5, 7, 8, 11, 12), "melodic minor": (0, 2, 3, 5, 7, 9, 11, 12),
    "minor": (0, 2, 3, 5, 7, 8, 10, 12), "major pentatonic": (0, 2, 4, 7, 9, 12),
    "minor pentatonic": (0, 3, 5, 7, 10, 12), "pentatonic": (0, 2, 4, 7, 9, 12),
    "blues": (0, 3, 5, 6, 7, 10, 12), "chromatic": tuple(range(13)),
}
CHORDS: dict[str, tuple[int, ...]] = {
    "": (0, 4, 7), "major": (0, 4, 7), "minor": (0, 3, 7), "m": (0, 3, 7), "maj7": (0, 4, 7, 11),
    "major 7th": (0, 4, 7, 11), "major seventh": (0, 4, 7, 11), "m7": (0, 3, 7, 10),
    "minor 7th": (0, 3, 7, 10), "minor seventh": (0, 3, 7, 10), "7": (0, 4, 7, 10),
    "dominant 7th": (0, 4, 7, 10), "dominant seventh": (0, 4, 7, 10), "dim": (0, 3, 6),
    "diminished": (0, 3, 6), "aug": (0, 4, 8), "augmented": (0, 4, 8), "sus2": (0, 2, 7), "sus4": (0, 5, 7),
    "power": (0, 7), "5": (0, 7),
}


def _alternatives(names) -> str:
    return "|".join(re.escape(n) for n in sorted((n for n in names if n), key=len, reverse=True))


# Note letters are upper case only: "a major scale" is an article, not A. Quality words are any case.
_SCALE = re.compile(rf"(?<![\w#])([A-G]{_ACC})\s+((?i:{_alternatives(SCALES)}))\s+scale\b")
_CHORD = re.compile(rf"(?<![\w#])([A-G]{_ACC})(?:\s*((?i:{_alternatives(CHORDS)})))?\s+chords?\b")
_SENTENCE_START = re.compile(r"(^|[.!?:;]\s*|\n\s*)$")


def _pitch_class(letter: str, accidental: str | None) -> int:
    acc = (accidental or "").strip().lower()
    acc = {"sharp": "#", "flat": "b"}.get(acc, acc)
    return (NOTE_NAMES.index(letter.upper()) + _ACCIDENTAL[acc]) % 12


@dataclass(frozen=True)
class PitchTarget:
    """What a prompt asks to hear: ``kind`` note | sequence | scale | chord.

    ``notes`` are MIDI numbers (note, sequence); ``pitch_classes`` 0–11 (scale: in order; chord: a set).
    """

    kind: str
    notes: tuple[int, ...] = ()
    pitch_classes: tuple[int, ...] = ()
    text: str = ""

    def describe(self) -> str:
        if self.notes:
            return " ".join(note_name(m) for m in self.notes)
        return " ".join(NOTE_NAMES[p] for p in self.pitch_classes)


def parse_targets(prompt: str) -> PitchTarget | None:
    """The notes a prompt names (see the module docstring); None when it names none."""
    if not _MUSIC_WORDS.search(prompt):
        return None
    for m in _CHORD.finditer(prompt):
        quality = m.group(2) or ""
        if not quality and m.group(1) == "A" and _SENTENCE_START.search(prompt[:m.start()]):
            continue  # "A chord rings out": the article, not an A chord
        root = _pitch_class(m.group(1)[0], m.group(1)[1:])
        steps = CHORDS.get(quality, CHORDS.get(quality.lower(), CHORDS[""]))
        return PitchTarget("chord", pitch_classes=tuple(sorted({(root + i) % 12 for i in steps})), text=m.group(0))
    m = _SCALE.search(prompt)
    if m:
        root = _pitch_class(m.group(1)[0], m.group(1)[1:])
        steps = SCALES[m.group(2).lower()]
        return PitchTarget("scale", pitch_classes=tuple((root + s) % 12 for s in steps), text=m.group(0))
    found: list[tuple[int, int]] = []
    for n in _NOTE.finditer(prompt):
        octave = int(n.group(3))
        if not 0 <= octave <= 8:
            continue
        found.append((n.start(), 12 * (octave + 1) + _pitch_class(n.group(1), n.group(2))))
    found += [(mc.start(), 60) for mc in _MIDDLE_C.finditer(prompt)]
    if not found:
        return None
    notes = tuple(midi for _, midi in sorted(found))
    if len(set(notes)) == 1:
        return PitchTarget("note", notes=notes[:1], text=note_name(notes[0]))
    return PitchTarget("sequence", notes=notes, text=" ".join(note_name(x) for x in notes))


# ---------------------------------------------------------------- measurement
@dataclass(frozen=True)
class NoteEvent:
    start_s: float
    end_s: float
    midi: int
    cents: float  # median deviation of the event's frames from ``midi``
    power: float


def note_events(track: PitchTrack, *, min_s: float = MIN_EVENT_S) -> list[NoteEvent]:
    """Runs of voiced frames on one semitone lasting at least ``min_s``, in time order."""
    voiced = track.voiced
    if not voiced.any():
        return []
    midi_f = np.full(len(track.f0), np.nan)
    midi_f[voiced] = hz_to_midi(track.f0[voiced])
    semis = np.where(voiced, np.rint(np.nan_to_num(midi_f)), -1).astype(int)
    events: list[NoteEvent] = []
    start = 0
    for i in range(1, len(semis) + 1):
        if i < len(semis) and semis[i] == semis[start]:
            continue
        m = semis[start]
        n = i - start
        if m >= 0 and n * track.hop_s >= min_s:
            sl = slice(start, i)
            cents = float(np.median(100 * (midi_f[sl] - m)))
            power = float(np.sum(10 ** (track.level_db[sl] / 10)))
            events.append(NoteEvent(float(track.times[start]), float(track.times[i - 1]), int(m), cents, power))
        start = i
    return events


def _merge_repeats(events: list[NoteEvent], key) -> list[NoteEvent]:
    out: list[NoteEvent] = []
    for e in events:
        if out and key(out[-1]) == key(e):
            continue
        out.append(e)
    return out


def _lcs(a: list[int], b: list[int]) -> list[tuple[int, int]]:
    """Index pairs of a longest common subsequence of ``a`` and ``b``."""
    n, m = len(a), len(b)
    table = np.zeros((n + 1, m + 1), dtype=int)
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            table[i, j] = table[i + 1, j + 1] + 1 if a[i] == b[j] else max(table[i + 1, j], table[i, j + 1])
    pairs, i, j = [], 0, 0
    while i < n and j < m:
        if a[i] == b[j]:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif table[i + 1, j] >= table[i, j + 1]:
            i += 1
        else:
            j += 1
    return pairs


def sounding_pitch_classes(audio: np.ndarray, sample_rate: int, *, max_notes: int = CHORD_MAX_NOTES,
                           rel_threshold: float = 0.25) -> list[tuple[int, float]]:
    """Pitch classes of the notes sounding together, strongest first, with their salience share.

    Iterative harmonic sum over the average magnitude spectrum: the best f0 on a semitone grid
    (E1–C6) takes its salience from 8 harmonics (weights 1/h); its harmonic bins are removed and the
    next is sought, until the salience falls under ``rel_threshold`` of the first.
    """
    x = np.asarray(audio, np.float64)
    if len(x) < sample_rate // 10 or not np.any(x):
        return []
    n_fft = 8192
    hop = n_fft // 2
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(x, (0, max(0, n_fft - len(x)))), n_fft)[::hop]
    spec = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1)).mean(axis=0)
    freqs = np.fft.rfftfreq(n_fft, 1 / sample_rate)
    resolution = freqs[1]
    candidates = np.arange(28, 85)  # E1 .. C6
    residual = spec.copy()
    found: list[tuple[int, float]] = []
    first = None
    for _ in range(max_notes):
        sal = np.zeros(len(candidates))
        for k, midi in enumerate(candidates):
            f0 = midi_to_hz(midi)
            for h in range(1, 9):
                b = int(round(h * f0 / resolution))
                if b >= len(residual):
                    break
                sal[k] += residual[max(0, b - 1): b + 2].max() / h
        best = int(np.argmax(sal))
        if first is None:
            first = sal[best]
        if first <= 0 or sal[best] < rel_threshold * first:
            break
        found.append((int(candidates[best]), float(sal[best])))
        f0 = midi_to_hz(int(candidates[best]))
        for h in range(1, 30):
            b = int(round(h * f0 / resolution))
            if b >= len(residual):
                break
            residual[max(0, b - 2): b + 3] = 0.0
    total = sum(s for _, s in found) or 1.0
    by_pc: dict[int, float] = {}
    for midi, s in found:
        by_pc[midi % 12] = by_pc.get(midi % 12, 0.0) + s / total
    return sorted(by_pc.items(), key=lambda kv: -kv[1])


def _tuning(cents: float) -> float:
    return max(0.0, 1.0 - abs(cents) / CENTS_ZERO_SCORE)


def score_pitch(target: PitchTarget, audio: np.ndarray, sample_rate: int) -> dict[str, Any]:
    """``{"score": 0–100, ...details}`` for one clip's mono audio against ``target``."""
    out: dict[str, Any] = {"target_kind": target.kind, "target": target.describe()}
    if target.kind == "chord":
        sounding = sounding_pitch_classes(audio, sample_rate)
        played = {pc for pc, _ in sounding}
        want = set(target.pitch_classes)
        out["sounding"] = [[NOTE_NAMES[pc], round(share, 3)] for pc, share in sounding]
        if not played:
            return out | {"score": 0.0, "reason": "no pitched sound"}
        jaccard = len(played & want) / len(played | want)
        return out | {"score": round(100 * jaccard, 2), "chord_tones_found": len(played & want),
                      "extra_pitch_classes": sorted(NOTE_NAMES[p] for p in played - want)}
    track = yin(audio, sample_rate)
    events = note_events(track)
    if not events:
        return out | {"score": 0.0, "reason": "no pitched sound" if np.any(audio) else "silence",
                      "dominant_note": None, "cents_error": None}
    power = 10 ** (track.level_db[track.voiced] / 10)
    midi_all = hz_to_midi(track.f0[track.voiced])
    if target.kind == "note":
        want = target.notes[0]
        semis = np.rint(midi_all).astype(int)
        weights = np.bincount(semis - semis.min(), weights=power)
        dominant = int(np.argmax(weights) + semis.min())
        on = semis == dominant
        cents = float(np.median(100 * (midi_all[on] - want)))  # vs the target: +30 = 30 cents sharp
        match = dominant == want
        score = 100 * _tuning(cents) if match else 0.0
        dominant_hz = float(np.median(track.f0[track.voiced][on]))
        return out | {"score": round(score, 2), "dominant_note": note_name(dominant),
                      "dominant_hz": round(dominant_hz, 2),
                      "dominant_cents": round(1200 * float(np.log2(dominant_hz / midi_to_hz(dominant))), 1),
                      "dominant_share": round(float(weights.max() / weights.sum()), 3),
                      "cents_error": round(cents, 1), "note_match": match,
                      "pitch_class_match": dominant % 12 == want % 12}
    if target.kind == "scale":
        played = _merge_repeats(events, key=lambda e: e.midi % 12)
        want_seq, got_seq = list(target.pitch_classes), [e.midi % 12 for e in played]
        names = [NOTE_NAMES[p] for p in got_seq]
    else:
        played = _merge_repeats(events, key=lambda e: e.midi)
        want_seq, got_seq = list(target.notes), [e.midi for e in played]
        names = [note_name(m) for m in got_seq]
    pairs = _lcs(want_seq, got_seq)
    match = len(pairs) / len(want_seq)
    cents = float(np.mean([abs(played[j].cents) for _, j in pairs])) if pairs else None
    score = 100 * match * (_tuning(cents) if cents is not None else 0.0)
    return out | {"score": round(score, 2), "played": names[:64], "sequence_match": round(match, 4),
                  "mean_abs_cents": None if cents is None else round(cents, 1)}
