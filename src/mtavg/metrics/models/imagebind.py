"""ImageBind cosines: audio-video (``ib_av``), text-video (``ib_tv``), text-audio (``ib_ta``).

Two ways to run the model, chosen by what the weights path holds:

* ``imagebind_huge.pth`` (https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth, the checkpoint of
  facebookresearch/ImageBind) with the official code installed from that repo
  (``pip install git+https://github.com/facebookresearch/ImageBind``; it is not on PyPI):
  ``imagebind_model.imagebind_huge(pretrained=False)`` + ``load_state_dict``; text via its BPE tokenizer.
* a directory with an ONNX export (run with onnxruntime, no ImageBind code needed): ``vision.onnx``
  (N, 3, 2, 224, 224) -> (N, D), ``audio.onnx`` (N, 1, 128, 204) -> (N, D), ``text.onnx`` (N, 77) int64
  -> (N, D), each the model's output for N single clips, plus ``tokenizer/`` (a CLIP BPE tokenizer for
  transformers, e.g. from openai/clip-vit-large-patch14: same vocabulary as ImageBind's). Export once
  where the official code runs::

      import torch; from imagebind.models import imagebind_model
      m = imagebind_model.imagebind_huge(pretrained=True).eval()
      class One(torch.nn.Module):  # one modality; a clip axis of 1 so the model keeps N clips apart
          def __init__(self, key): super().__init__(); self.m, self.key = m, key
          def forward(self, x): return self.m({self.key: x if self.key == "text" else x[:, None]})[self.key]
      for key, x in {"vision": torch.randn(2, 3, 2, 224, 224), "audio": torch.randn(2, 1, 128, 204),
                     "text": torch.randint(0, 49408, (2, 77))}.items():
          torch.onnx.export(One(key), (x,), f"imagebind/{key}.onnx", input_names=["x"], output_names=["emb"],
                            dynamic_axes={"x": {0: "n"}, "emb": {0: "n"}}, opset_version=17)

Pre-processing is ImageBind's ``data.py``: video = 5 clips of 2 s evenly spread over the clip
(ConstantClipsPerVideoSampler), 2 frames each (first and last of the clip), short side scaled to 224
(bilinear), CLIP mean/std, 3 spatial crops (left/centre/right) -> (15, 3, 2, 224, 224); audio = 3 clips
of 2 s at 16 kHz, mean removed, Kaldi fbank (128 mel bins, 25 ms Hanning / 10 ms, dither 0), padded or
cut to 204 frames, normalised with mean -4.268 / std 9.138 -> (3, 1, 128, 204); text = 77 CLIP BPE
tokens. A modality's embedding is the mean of its clips' embeddings, as ImageBind reduces them.
"""

from __future__ import annotations

import importlib.util
import math
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

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
    from mtavg.metrics.base import ClipMedia

SPEC = WeightSpec(
    model="imagebind", names=("imagebind_huge.pth", "imagebind", "imagebind/imagebind_huge.pth"),
    source="facebookresearch/ImageBind (https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth; run it "
           "with the official code: pip install git+https://github.com/facebookresearch/ImageBind), "
           "or an ONNX export directory (vision.onnx, audio.onnx, text.onnx, tokenizer/; see the module doc)",
    what="imagebind_huge.pth or an ONNX export directory",
    repo="facebookresearch/ImageBind")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
AUDIO_MEAN, AUDIO_STD = -4.268, 9.138
RATE = 16000


# ---- pre-processing (imagebind/data.py) -------------------------------------------------------------

def clip_timepoints(duration: float, clips: int, clip_duration: float = 2.0) -> list[tuple[float, float]]:
    """ConstantClipsPerVideoSampler: ``clips`` starts evenly spread over [0, duration - clip_duration]."""
    max_start = max(duration - clip_duration, 0.0)
    step = max_start / max(clips - 1, 1)
    return [(step * i, step * i + clip_duration) for i in range(clips)]


def video_input(clip: ClipMedia, clips: int = 5, size: int = 224) -> np.ndarray:
    """(clips * 3, 3, 2, size, size) float32, as load_and_transform_video_data."""
    import torch

    times = np.asarray(clip.frame_times, dtype=np.float64)
    mean = torch.tensor(CLIP_MEAN)[:, None, None, None]
    std = torch.tensor(CLIP_STD)[:, None, None, None]
    out = []
    for start, end in clip_timepoints(media.clip_duration(clip), clips):
        # the frames of [start, end) (the decoder clamps past the end); UniformTemporalSubsample(2)
        first = int(np.searchsorted(times, start - 1e-6))
        last = max(int(np.searchsorted(times, end - 1e-6)) - 1, first)
        idx = np.clip(np.linspace(first, last, 2).astype(np.int64), 0, len(times) - 1)
        x = torch.from_numpy(clip.frames[idx]).permute(3, 0, 1, 2).float() / 255.0  # (C, T, H, W)
        h, w = x.shape[-2:]
        # pytorchvideo ShortSideScale
        new_h, new_w = (math.floor(h / w * size), size) if w < h else (size, math.floor(w / h * size))
        x = torch.nn.functional.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False)
        x = (x - mean) / std
        for spatial_idx in (0, 1, 2):  # uniform_crop: left/centre/right (top/centre/bottom if portrait)
            y_off, x_off = int(math.ceil((new_h - size) / 2)), int(math.ceil((new_w - size) / 2))
            if new_h > new_w:
                y_off = {0: 0, 1: y_off, 2: new_h - size}[spatial_idx]
            else:
                x_off = {0: 0, 1: x_off, 2: new_w - size}[spatial_idx]
            out.append(x[:, :, y_off:y_off + size, x_off:x_off + size])
    return torch.stack(out).numpy()


def kaldi_fbank(wave: Any, rate: int = RATE, num_mel_bins: int = 128) -> Any:
    """torchaudio.compliance.kaldi.fbank(wave[None], htk_compat=True, use_energy=False, window_type="hanning",
    dither=0, frame_length=25, frame_shift=10) for a 1-D float32 tensor: (frames, num_mel_bins)."""
    import torch

    size, shift, padded = int(rate * 0.025), int(rate * 0.010), 512
    if len(wave) < size:
        return torch.empty(0, num_mel_bins)
    m = 1 + (len(wave) - size) // shift
    frames = wave.as_strided((m, size), (shift, 1))
    frames = frames - frames.mean(dim=1, keepdim=True)  # remove_dc_offset
    prev = torch.nn.functional.pad(frames.unsqueeze(0), (1, 0), mode="replicate").squeeze(0)
    frames = frames - 0.97 * prev[:, :-1]  # pre-emphasis
    frames = frames * torch.hann_window(size, periodic=False, dtype=frames.dtype).unsqueeze(0)
    frames = torch.nn.functional.pad(frames, (0, padded - size))
    power = torch.fft.rfft(frames).abs().pow(2.0)
    # get_mel_banks(low 20 Hz, high = Nyquist), Kaldi's 1127 ln(1 + f/700) mel scale
    low, high = 1127.0 * math.log(1.0 + 20.0 / 700.0), 1127.0 * math.log(1.0 + (rate / 2) / 700.0)
    delta = (high - low) / (num_mel_bins + 1)
    b = torch.arange(num_mel_bins).unsqueeze(1)
    left, center, right = low + b * delta, low + (b + 1.0) * delta, low + (b + 2.0) * delta
    mel = 1127.0 * (1.0 + (rate / padded) * torch.arange(padded / 2) / 700.0).log()
    up, down = (mel - left) / (center - left), (right - mel) / (right - center)
    banks = torch.nn.functional.pad(torch.clamp(torch.min(up, down), min=0.0), (0, 1))
    energies = torch.mm(power, banks.T)
    return torch.max(energies, torch.tensor(torch.finfo(torch.float).eps)).log()


def audio_input(audio: np.ndarray, clips: int = 3, target_length: int = 204, rate: int = RATE) -> np.ndarray:
    """(clips, 1, 128, target_length) float32, as load_and_transform_audio_data."""
    import torch

    wave = torch.as_tensor(np.asarray(audio, dtype=np.float32))
    out = []
    for start, end in clip_timepoints(len(wave) / rate, clips):
        seg = wave[int(start * rate):int(end * rate)].clone()
        seg -= seg.mean() if len(seg) else 0.0
        fb = kaldi_fbank(seg, rate).transpose(0, 1)  # (128, frames)
        p = target_length - fb.shape[1]
        fb = torch.nn.functional.pad(fb, (0, p)) if p > 0 else fb[:, :target_length]
        out.append(((fb - AUDIO_MEAN) / AUDIO_STD).unsqueeze(0))
    return torch.stack(out).numpy()


# ---- back ends --------------------------------------------------------------------------------------

class Backend(Protocol):
    def embed(self, modality: str, x: np.ndarray) -> np.ndarray:
        """One embedding (D,) for one clip's stacked inputs (S, ...) of ``modality``."""
        ...

    def tokenize(self, text: str) -> np.ndarray:
        """(77,) int64 tokens."""
        ...


class TorchBackend:
    """A module with ImageBind's interface: ``model({modality: (B, S, ...)}) -> {modality: (B, D)}``."""

    def __init__(self, model: Any, device: str = "cpu", tokenizer: Any = None) -> None:
        self.model, self.device, self.tokenizer = model, device, tokenizer

    def embed(self, modality: str, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            t = torch.from_numpy(np.ascontiguousarray(x)).to(self.device)
            # video/audio: (1, S, ...) so the model averages its S clips; text is (1, 77) already
            out = self.model({modality: t if modality == "text" else t[None]})[modality]
            return out[0].float().cpu().numpy()

    def tokenize(self, text: str) -> np.ndarray:
        if self.tokenizer is None:
            raise ModelUnavailable("imagebind: no text tokenizer (install the official imagebind package)")
        return np.asarray(self.tokenizer(text)).reshape(-1)[:77].astype(np.int64)


class OnnxBackend:
    """``<dir>/{vision,audio,text}.onnx`` (per-clip embeddings, averaged here) + ``<dir>/tokenizer``."""

    def __init__(self, root: Path, device: str = "cpu") -> None:
        import onnxruntime as ort

        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") \
            else ["CPUExecutionProvider"]
        self.sessions = {m: ort.InferenceSession(str(root / f"{m}.onnx"), providers=providers)
                         for m in ("vision", "audio", "text") if (root / f"{m}.onnx").is_file()}
        self.tokenizer_dir = root / "tokenizer"

    def embed(self, modality: str, x: np.ndarray) -> np.ndarray:
        if modality not in self.sessions:
            raise WeightsNotFound(f"imagebind: the ONNX export has no {modality}.onnx")
        sess = self.sessions[modality]
        emb = sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(x)})[0]
        return emb.mean(axis=0)  # ImageBind's reduction over a modality's clips

    @property
    def _tok(self) -> Any:
        from transformers import AutoTokenizer

        if not hasattr(self, "_tokenizer"):
            self._tokenizer = AutoTokenizer.from_pretrained(str(self.tokenizer_dir), local_files_only=True)
        return self._tokenizer

    def tokenize(self, text: str) -> np.ndarray:
        if not self.tokenizer_dir.is_dir():
            raise WeightsNotFound(f"imagebind: {self.tokenizer_dir} (a CLIP BPE tokenizer) is missing")
        enc = self._tok(text, padding="max_length", max_length=77, truncation=True)
        ids = np.asarray(enc["input_ids"], dtype=np.int64)
        return np.where(np.asarray(enc["attention_mask"]) > 0, ids, 0)  # ImageBind pads with 0


@lru_cache(maxsize=2)
def load(path: str, device: str = "cpu") -> Backend:
    p = Path(path)
    pth = p if p.is_file() else p / "imagebind_huge.pth"
    if pth.is_file() and pth.suffix in (".pth", ".pt"):
        if missing := missing_packages("torch", "imagebind"):
            raise ModelUnavailable(f"imagebind: {pth.name} needs the official code (missing: "
                                   f"{', '.join(missing)}): pip install "
                                   "git+https://github.com/facebookresearch/ImageBind, or use an ONNX export")
        import torch
        from imagebind.models import imagebind_model
        from imagebind.models.multimodal_preprocessors import SimpleTokenizer

        model = imagebind_model.imagebind_huge(pretrained=False)
        model = model[0] if isinstance(model, tuple) else model  # some forks return (model, dim)
        model.load_state_dict(torch.load(str(pth), map_location="cpu", weights_only=True))
        package = importlib.util.find_spec("imagebind")  # data.py's pkg_resources path, without pkg_resources
        bpe = Path(list(package.submodule_search_locations)[0]) / "bpe" / "bpe_simple_vocab_16e6.txt.gz"
        return TorchBackend(model.to(device).eval(), device, SimpleTokenizer(bpe_path=str(bpe)))
    if p.is_dir() and any((p / f"{m}.onnx").is_file() for m in ("vision", "audio", "text")):
        if missing_packages("onnxruntime"):
            raise ModelUnavailable("imagebind: the ONNX export needs onnxruntime (pip install onnxruntime)")
        return OnnxBackend(p, device)
    raise SPEC.not_found([p], " (neither imagebind_huge.pth nor vision/audio/text.onnx there)")


def score_clip(clip: ClipMedia, *, weights: str | None = None, device: str | None = None,
               backend: Backend | None = None, text: str | None = None) -> dict[str, Any]:
    """ib_av, and ib_tv / ib_ta when the clip has a prompt (``backend`` injects a model, e.g. in tests)."""
    if backend is None:
        backend = load(str(resolve(SPEC, weights)), resolve_device(device, "imagebind"))
    emb: dict[str, np.ndarray] = {}
    if clip.frames is not None:
        emb["vision"] = backend.embed("vision", video_input(clip))
    if clip.audio is not None:
        emb["audio"] = backend.embed("audio", audio_input(media.audio_at_rate(clip, RATE)))
    out: dict[str, Any] = {}
    text = text or media.prompt_for(clip)
    if text:
        try:
            emb["text"] = backend.embed("text", backend.tokenize(text)[None])
        except (WeightsNotFound, ModelUnavailable) as exc:  # an export without text: keep ib_av
            out["text_skipped"] = str(exc)
    pairs = {"ib_av": ("audio", "vision"), "ib_tv": ("text", "vision"), "ib_ta": ("text", "audio")}
    for key, (a, b) in pairs.items():
        if a in emb and b in emb:
            out[key] = cosine(emb[a], emb[b])
    return out


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    return float(np.clip(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12), -1.0, 1.0))


def status() -> bool | str:
    if missing := missing_packages("torch"):
        return f"imagebind: needs {', '.join(missing)} (pip install torch)"
    try:
        path = resolve(SPEC)
    except WeightsNotFound:
        return SPEC.brief()
    if path.is_dir() and not (path / "imagebind_huge.pth").is_file():
        return "imagebind: the ONNX export needs onnxruntime" if missing_packages("onnxruntime") else True
    return "imagebind: imagebind_huge.pth needs the official package (pip install " \
           "git+https://github.com/facebookresearch/ImageBind)" if missing_packages("imagebind") else True


OUTPUTS = ("ib_av", "ib_tv", "ib_ta")
register_metric("imagebind", lambda clip: score_clip(clip), needs=("video", "audio"), extra="models",
                description="ImageBind cosines: audio-video, text-video, text-audio (higher is better)",
                available=status)
