"""audiobox-aesthetics: Content Enjoyment (CE), Content Usefulness (CU), Production Complexity (PC),
Production Quality (PQ), each on the model's ~1-10 scale (facebookresearch/audiobox-aesthetics).

Model code: the ``audiobox_aesthetics`` package from PyPI. Its metadata requires torchaudio and submitit,
which only its file reader / CLI use, so install it without them next to your torch:
``pip install --no-deps audiobox_aesthetics`` (it then needs only torch, numpy, huggingface_hub,
safetensors). Its ``AesPredictor`` module imports torchaudio at the top, so loading is re-done here the way
``AesPredictor.setup_model`` does it:
* ``checkpoint.pt`` (https://dl.fbaipublicfiles.com/audiobox-aesthetics/checkpoint.pt or the HF repo
  facebook/audiobox-aesthetics): ``AesMultiOutput(**model_cfg, target_transform=...)`` +
  ``load_state_dict`` of ``state_dict`` without its ``model.`` prefix;
* or a directory from ``hf download facebook/audiobox-aesthetics --local-dir DIR`` (config.json +
  model.safetensors): ``AesMultiOutput.from_pretrained(DIR)``.

Inference is ``AesPredictor.forward``: 16 kHz mono, 10 s windows with a 10 s hop, the last one
zero-padded with a mask, per-axis predictions de-normalised with the checkpoint's target transform and
averaged with weights = the share of real audio in each window. The audio is the analysis decode's
16 kHz track (the official reader resamples with torchaudio instead).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mtavg.metrics.base import register_metric
from mtavg.metrics.models import media
from mtavg.metrics.models.weights import (
    ModelUnavailable,
    WeightsNotFound,
    WeightSpec,
    missing_packages,
    resolve,
    resolve_device,
)

if TYPE_CHECKING:
    import torch

    from mtavg.metrics.base import ClipMedia

SPEC = WeightSpec(
    model="audiobox", names=("audiobox-aesthetics/checkpoint.pt", "checkpoint.pt", "audiobox-aesthetics"),
    source="facebook/audiobox-aesthetics (https://dl.fbaipublicfiles.com/audiobox-aesthetics/checkpoint.pt, "
           "or `hf download facebook/audiobox-aesthetics --local-dir $MTAVG_WEIGHTS/audiobox-aesthetics`)",
    what="checkpoint.pt (or the Hugging Face directory with config.json and model.safetensors)",
    repo="facebook/audiobox-aesthetics")
AXES = ("CE", "CU", "PC", "PQ")
RATE = 16000
WINDOW_S = HOP_S = 10
CFG_KEYS = ("proj_num_layer", "proj_ln", "proj_act_fn", "proj_dropout", "nth_layer", "use_weighted_layer_sum",
            "precision", "normalize_embed", "output_dim")
INSTALL = "pip install --no-deps audiobox_aesthetics (its torchaudio/submitit requirements are not needed)"


def build_from_checkpoint(ckpt: dict[str, Any]) -> torch.nn.Module:
    """AesPredictor.setup_model's local-checkpoint branch."""
    from audiobox_aesthetics.model.aes import AesMultiOutput

    state = {re.sub("^model.", "", k): v for k, v in ckpt["state_dict"].items()}
    cfg = {k: ckpt["model_cfg"][k] for k in CFG_KEYS}
    model = AesMultiOutput(**cfg, target_transform=ckpt["target_transform"])
    model.load_state_dict(state)
    return model


@lru_cache(maxsize=2)
def load(path: str, device: str = "cpu") -> torch.nn.Module:
    if missing_packages("audiobox_aesthetics"):
        raise ModelUnavailable(f"audiobox: needs the audiobox_aesthetics package: {INSTALL}")
    import torch

    p = Path(path)
    if p.is_dir() and (p / "checkpoint.pt").is_file():
        p = p / "checkpoint.pt"
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise SPEC.not_found([p], " (no checkpoint.pt or config.json inside)")
        from audiobox_aesthetics.model.aes import AesMultiOutput

        model = AesMultiOutput.from_pretrained(str(p), local_files_only=True)
    else:
        ckpt = torch.load(str(p), map_location="cpu", weights_only=True)
        model = build_from_checkpoint(ckpt)
    return model.to(device).eval()


def make_batch(wav: np.ndarray, rate: int = RATE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """make_inference_batch for one track: (N, 1, 160000) windows, (N, 1, 160000) masks, (N,) weights."""
    win, hop = WINDOW_S * rate, HOP_S * rate
    wavs, masks, weights = [], [], []
    for i in range(0, len(wav), hop):
        seg = wav[i:i + win]
        n = len(seg)
        wavs.append(np.pad(seg, (0, win - n))[None].astype(np.float32))
        mask = np.zeros((1, win), dtype=bool)
        mask[:, :n] = True
        masks.append(mask)
        weights.append(n / win)
    return np.stack(wavs), np.stack(masks), np.asarray(weights, dtype=np.float64)


def aggregate(preds: dict[str, np.ndarray], weights: np.ndarray,
              target_transform: dict[str, dict[str, float]]) -> dict[str, float]:
    """De-normalise each axis (x * std + mean) and take the weighted mean over windows."""
    out = {}
    for axis in AXES:
        tt = target_transform[axis]
        vals = np.asarray(preds[axis], dtype=np.float64).reshape(-1) * tt["std"] + tt["mean"]
        out[axis] = float((vals * weights).sum() / weights.sum())
    return out


def predict(model: Any, audio: np.ndarray, device: str = "cpu") -> dict[str, float]:
    import torch

    wav = np.asarray(audio, dtype=np.float32)
    if not len(wav):
        raise ValueError("audiobox: empty audio")
    wavs, masks, weights = make_batch(wav)
    with torch.inference_mode():
        preds = model({"wav": torch.from_numpy(wavs).to(device), "mask": torch.from_numpy(masks).to(device)})
        preds = {k: v.float().cpu().numpy() for k, v in preds.items()}
    return aggregate(preds, weights, model.target_transform)


def score_clip(clip: ClipMedia, *, weights: str | None = None, device: str | None = None,
               model: Any = None) -> dict[str, Any]:
    """CE, CU, PC, PQ of the clip's audio (``model`` injects a loaded one, e.g. in tests)."""
    if clip.audio is None:
        raise ValueError("audiobox: the clip has no audio")
    dev = resolve_device(device, "audiobox")
    if model is None:
        model = load(str(resolve(SPEC, weights)), dev)
    return predict(model, media.audio_at_rate(clip, RATE), dev)


def status() -> bool | str:
    if missing := missing_packages("torch", "audiobox_aesthetics"):
        return f"audiobox: needs {', '.join(missing)} (pip install torch; {INSTALL})"
    try:
        resolve(SPEC)
    except WeightsNotFound:
        return SPEC.brief()
    return True


OUTPUTS = AXES
register_metric("audiobox", lambda clip: score_clip(clip), needs=("audio",), extra="models",
                description="audiobox-aesthetics CE/CU/PC/PQ of the audio (about 1-10, higher is better)",
                available=status)
