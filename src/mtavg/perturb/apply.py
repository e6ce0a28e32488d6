"""Apply one perturbation to one clip: decode, transform, re-encode, and write the sidecar record."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mtavg.media import probe
from mtavg.media.cache import file_sha256
from mtavg.perturb.catalogue import get_spec
from mtavg.perturb.io import read_audio, write_clip

#: The positive's "perturbation": the same decode and AAC re-encode as a negative, nothing else, so an
#: evaluator cannot tell positives from negatives by codec traces.
IDENTITY = "none"


def sidecar_path(clip: str | Path) -> Path:
    return Path(clip).with_suffix(".json")


def perturb_clip(src: str | Path, out: str | Path, perturbation: str, params: dict[str, Any] | None = None, *,
                 reencode_video: bool = False, media_root: str | Path | None = None,
                 record: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``out`` = ``src`` with ``perturbation`` applied (``"none"`` for a positive) and its sidecar.

    The sidecar (``out`` with .json) holds the source's path and sha256, the perturbation, its exact
    parameters, the encoder settings and what the op measured (frames held, ...), plus ``record``'s fields.
    A relative ``donor_path`` (mismatches) is taken relative to ``media_root``.
    Returns the sidecar's content. Raises MediaError subclasses for unusable sources, ValueError for
    parameters that do not fit the clip.
    """
    src, out = Path(src), Path(out)
    params = dict(params or {})
    info = probe(src)
    audio = read_audio(src) if info.has_audio else None
    op = None
    if perturbation != IDENTITY:
        spec = get_spec(perturbation)
        if spec.target == "audio":
            if audio is None:
                raise ValueError(f"{src}: {perturbation} needs an audio stream and the clip has none")
            if spec.needs_donor:
                donor = Path(params["donor_path"])
                if not donor.is_absolute() and media_root is not None:
                    donor = Path(media_root) / donor
                audio = spec.apply(audio, donor_track=read_audio(donor), **params)
            else:
                audio = spec.apply(audio, **params)
        else:
            op = spec.apply(**params)
    encode = write_clip(src, out, audio=audio, video_op=op, reencode_video=reencode_video)
    effect = {k: encode.pop(k) for k in ("frames_held", "frames_dropped") if k in encode}
    side = {
        **(record or {}),
        "path": out.name,
        "source_path": str(src),
        "source_sha256": file_sha256(src),
        "perturbation": perturbation,
        "params": params,
        "encode": encode,
        "effect": effect,
        "duration_s": probe(out).duration_s,
        "audio_duration_s": round(audio.duration_s, 6) if audio is not None else None,
    }
    write_json(sidecar_path(out), side)
    return side


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically (tmp + rename): a killed build never leaves half a record."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)
