"""Audio signal metrics, registered on import: vad, loudness, speech_background, pitch, overlap, dnsmos.

Each reads ``clip.audio`` (float32 mono, 16 kHz from the analysis decode). Intermediate results are
shared through ``clip.extras``: ``vad_segments`` (Silero, see ``mtavg.metrics.vad``) and
``pitch_track`` (YIN). Metrics built on speech activity need Silero VAD and say so through
``available()``; none of them falls back to an energy detector (``vad.energy_segments`` exists for
callers who choose it explicitly).

Implementations live in ``audio_level`` (loudness, speech vs background), ``audio_pitch`` (YIN, notes),
``audio_overlap`` (two voices at once) and ``audio_dnsmos`` (DNSMOS with speechmos' weights).
"""

from __future__ import annotations

from typing import Any

from mtavg.metrics.audio_dnsmos import dnsmos_metric, dnsmos_status
from mtavg.metrics.audio_level import loudness_metric, loudness_status, speech_background_metric
from mtavg.metrics.audio_overlap import overlap_metric
from mtavg.metrics.audio_pitch import pitch_aggregate, pitch_metric
from mtavg.metrics.base import ClipMedia, register_metric
from mtavg.metrics.vad import clip_speech_segments, model_source, vad_status

AUDIO = ("audio",)


def vad_metric(clip: ClipMedia) -> dict[str, Any]:
    segs = clip_speech_segments(clip)
    speech_s = sum(b - a for a, b in segs)
    return {
        "speech_ratio": round(speech_s / clip.duration_s, 4) if clip.duration_s > 0 else 0.0,
        "speech_s": round(speech_s, 3),
        "n_segments": len(segs),
        "segments": [[a, b] for a, b in segs],
        "model": model_source(),  # which wheel's model: v5 and v6 segment slightly differently
    }


register_metric("vad", vad_metric, needs=AUDIO, extra="vad", available=vad_status,
                description="Silero VAD (ONNX) speech segments, speech ratio and segment count")
register_metric("loudness", loudness_metric, needs=AUDIO, available=loudness_status,
                description="Integrated loudness (LUFS) and range, peak/RMS dBFS, clipping, silence, "
                            "longest digital silence")
register_metric("speech_background", speech_background_metric, needs=AUDIO, extra="vad", available=vad_status,
                description="RMS inside vs outside VAD speech, speech-to-background dB, "
                            "noise floor of the gaps")
register_metric("pitch", pitch_metric, aggregate=pitch_aggregate, needs=AUDIO,
                description="YIN f0 track: voiced ratio, median f0, dominant note (name, Hz, cents off A440 "
                            "equal temperament)")
register_metric("overlap", overlap_metric, needs=AUDIO, extra="vad", available=vad_status,
                description="Two voices at once (multi-pitch salience inside VAD speech): ratio and segments")
register_metric("dnsmos", dnsmos_metric, needs=AUDIO, extra="dnsmos", available=dnsmos_status,
                description="DNSMOS P.835 SIG/BAK/OVRL and P.808 MOS of the whole clip (speechmos weights)")
