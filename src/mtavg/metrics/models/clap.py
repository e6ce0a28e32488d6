"""CLAP text-audio cosine (LAION CLAP through transformers' ``ClapModel``), e.g. laion/clap-htsat-unfused.

The model and its processor load from a local directory with ``from_pretrained(dir,
local_files_only=True)``: ``$MTAVG_WEIGHTS/clap-htsat-unfused`` (or ``MTAVG_CLAP_WEIGHTS`` / the weights
option, any ClapModel directory such as laion/larger_clap_general), else the Hugging Face cache if
``hf download laion/clap-htsat-unfused`` put it there. Nothing is downloaded at run time.

Audio: the clip's track re-read at the feature extractor's rate (48 kHz; the 16 kHz analysis decode
would drop everything above 8 kHz), mono. The feature extractor takes at most ``nb_max_samples``
(10 s); longer tracks are cut into 10 s windows (the last one aligned to the end) instead of the
extractor's random crop, so scores are deterministic; window embeddings (unit length) are averaged.
Text: the clip's prompt (``clip.extras["prompt"]`` or the ``$MTAVG_PROMPTS`` file, see
``media.prompt_for``). Score ``clap_ta`` = cosine(text embedding, audio embedding), in [-1, 1].
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mtavg.metrics.base import register_metric
from mtavg.metrics.models import media
from mtavg.metrics.models.weights import (
    WeightsNotFound,
    WeightSpec,
    missing_packages,
    require,
    resolve,
    resolve_device,
)

if TYPE_CHECKING:
    from mtavg.metrics.base import ClipMedia

HUB_ID = "laion/clap-htsat-unfused"
SPEC = WeightSpec(
    model="clap", names=("clap-htsat-unfused", "clap"),
    source=f"the Hugging Face repo {HUB_ID} (`hf download {HUB_ID} --local-dir "
           "$MTAVG_WEIGHTS/clap-htsat-unfused`; any transformers ClapModel repo works)",
    what="a transformers CLAP directory (config.json, weights, tokenizer, preprocessor_config.json)",
    repo="laion/clap-htsat-unfused")


def weights_dir(explicit: str | Path | None = None) -> Path:
    """The local CLAP directory: explicit/env/$MTAVG_WEIGHTS, else the HF cache's snapshot of HUB_ID."""
    try:
        return resolve(SPEC, explicit)
    except WeightsNotFound:
        if explicit:
            raise
        cached = _hub_cache_dir()
        if cached is None:
            raise
        return cached


def _hub_cache_dir() -> Path | None:
    if missing_packages("huggingface_hub"):
        return None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(HUB_ID, "config.json")
    return Path(found).parent if isinstance(found, str) else None


@lru_cache(maxsize=2)
def load(path: str, device: str = "cpu") -> tuple[Any, Any]:
    """(ClapModel, ClapProcessor) from a local directory."""
    from transformers import ClapModel, ClapProcessor

    try:
        model = ClapModel.from_pretrained(path, local_files_only=True)
        processor = ClapProcessor.from_pretrained(path, local_files_only=True)
    except OSError as exc:  # transformers' "does not appear to have a file named ..."
        raise SPEC.not_found([Path(path)], f" ({str(exc).strip().splitlines()[0][:200]})") from exc
    return model.to(device).eval(), processor


def _pooled(out: Any) -> Any:
    """get_*_features return a tensor (transformers 4) or an output whose pooler_output holds it (5)."""
    return out.pooler_output if hasattr(out, "pooler_output") else out


def audio_windows(audio: np.ndarray, n: int) -> list[np.ndarray]:
    """Deterministic <= n-sample windows covering the track: 0, n, 2n, ... and the last aligned to the end."""
    if len(audio) <= n:
        return [audio]
    starts = list(range(0, len(audio) - n, n)) + [len(audio) - n]
    return [audio[s:s + n] for s in starts]


def embed_audio(model: Any, processor: Any, audio: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Unit-length audio embedding of a mono track at the feature extractor's sampling rate."""
    import torch

    fe = processor.feature_extractor
    windows = audio_windows(np.asarray(audio, dtype=np.float32), int(fe.nb_max_samples))
    feats = fe(windows, sampling_rate=fe.sampling_rate, return_tensors="pt")
    kwargs = {"input_features": feats["input_features"].to(device)}
    if "is_longer" in feats:
        kwargs["is_longer"] = feats["is_longer"].to(device)
    with torch.inference_mode():
        emb = torch.nn.functional.normalize(_pooled(model.get_audio_features(**kwargs)).float(), dim=-1)
        mean = torch.nn.functional.normalize(emb.mean(0), dim=-1)
    return mean.cpu().numpy()


def embed_text(model: Any, processor: Any, text: str, device: str = "cpu") -> np.ndarray:
    import torch

    tok = processor.tokenizer([text], padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        out = model.get_text_features(input_ids=tok["input_ids"].to(device),
                                      attention_mask=tok["attention_mask"].to(device))
        emb = torch.nn.functional.normalize(_pooled(out).float(), dim=-1)[0]
    return emb.cpu().numpy()


def score_clip(clip: ClipMedia, *, weights: str | None = None, device: str | None = None,
               model: Any = None, processor: Any = None, text: str | None = None) -> dict[str, Any]:
    """``clap_ta`` of one clip (``model``/``processor`` inject loaded ones, e.g. in tests)."""
    text = text or media.prompt_for(clip)
    if not text:
        return {"skipped": "no text prompt for this clip (clip.extras['prompt'] or $MTAVG_PROMPTS)"}
    dev = resolve_device(device, "clap")
    if model is None or processor is None:
        require("clap", "torch", "transformers", hint="pip install 'mtavg-bench[hf]' torch")
        model, processor = load(str(weights_dir(weights)), dev)
    audio = media.audio_at(clip, int(processor.feature_extractor.sampling_rate))
    a = embed_audio(model, processor, audio, dev)
    t = embed_text(model, processor, text, dev)
    n = len(audio_windows(audio, int(processor.feature_extractor.nb_max_samples)))
    return {"clap_ta": float(np.clip(np.dot(a, t), -1.0, 1.0)), "n_windows": n}


def status() -> bool | str:
    if missing := missing_packages("torch", "transformers"):
        return f"clap: needs {', '.join(missing)} (pip install 'mtavg-bench[hf]' torch)"
    try:
        weights_dir()
    except WeightsNotFound:
        return SPEC.brief()
    return True


OUTPUTS = ("clap_ta",)
register_metric("clap", lambda clip: score_clip(clip), needs=("audio",), extra="models",
                description="CLAP text-audio cosine of the clip's prompt and audio (higher is better)",
                available=status)
