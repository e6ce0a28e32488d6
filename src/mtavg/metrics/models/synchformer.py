"""Synchformer DeSync (Iashin et al. 2024; the DeSync of MMAudio's av-benchmark and AVGen-Bench style tables).

The model classifies the audio-visual offset of a 4.8 s window into 21 classes over +-2 s (class i <->
-2.0 + 0.2 i seconds, positive = audio ahead). DeSync = mean over windows of |offset of the argmax class|.

Back ends, chosen by the weights path:
* ``synchformer_state_dict.pth`` (av-benchmark / MMAudio's conversion of the AudioSet model) with
  ``av_bench`` installed (``pip install git+https://github.com/hkchengrex/av-benchmark``):
  ``extract_vfeats`` / ``extract_afeats`` / ``compare_v_a`` exactly as av-benchmark's evaluate.py;
* ``<exp>.pt`` with ``cfg-<exp>.yaml`` beside it (v-iashin/Synchformer's release, e.g. 24-01-04T16-39-21)
  with a clone of that repo on ``MTAVG_SYNCHFORMER_CODE``: the repo's model from its config,
  ``model(vid, aud)``;
* ``synchformer.onnx`` (inputs ``video`` (B, 14, 16, 3, 224, 224), ``audio`` (B, 14, 1, 128, 66); output
  ``logits`` (B, 21)), run with onnxruntime. Export once where av_bench runs::

      import torch; from av_bench.synchformer.synchformer import Synchformer
      m = Synchformer().eval(); m.load_state_dict(torch.load("synchformer_state_dict.pth", weights_only=True))
      class Logits(torch.nn.Module):
          def __init__(self): super().__init__(); self.m = m
          def forward(self, video, audio):
              b, s = video.shape[:2]
              v = self.m.extract_vfeats(video.flatten(0, 1)[:, None]).unflatten(0, (b, s))[:, :, 0]
              return self.m.compare_v_a(v, self.m.extract_afeats(audio))
      torch.onnx.export(Logits(), (torch.randn(1, 14, 16, 3, 224, 224), torch.randn(1, 14, 1, 128, 66)),
                        "synchformer.onnx", input_names=["video", "audio"], output_names=["logits"],
                        dynamic_axes={"video": {0: "b"}, "audio": {0: "b"}, "logits": {0: "b"}},
                        opset_version=17)

Pre-processing (the repo's sync.yaml test transforms / av-benchmark): video at 25 fps, short side resized
to 224 (bicubic) and centre-cropped to 224, [0, 1] then mean/std 0.5; audio 16 kHz. A 4.8 s window is
14 segments of 16 frames (0.64 s) with a stride of 8 frames, and 14 audio segments of 10240 samples with
a stride of 5120; each audio segment -> mel spectrogram (n_fft 1024, win 400, hop 160, 128 mels, HTK,
power 2, centred reflect padding, as torchaudio's MelSpectrogram) -> log(x + 1e-6) -> padded to 66 frames
-> (x + 4.2677393) / (2 * 4.5689974). Windows: ceil(duration / 4.8) of them, evenly spread from the start
to the end (for an 8 s clip: 0-4.8 s and 3.2-8 s, av-benchmark's first and last 14 segments); a clip
shorter than 4.8 s is padded with black frames and silence, as av-benchmark pads.
"""

from __future__ import annotations

import math
import sys
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
    option,
    resolve,
    resolve_device,
)

if TYPE_CHECKING:
    import torch

    from mtavg.metrics.base import ClipMedia

SPEC = WeightSpec(
    model="synchformer", names=("synchformer_state_dict.pth", "synchformer.onnx", "synchformer"),
    source="v-iashin/Synchformer (https://github.com/v-iashin/Synchformer, README 'Pre-trained Models': the "
           "AudioSet model 24-01-04T16-39-21 .pt + cfg-24-01-04T16-39-21.yaml; set MTAVG_SYNCHFORMER_CODE "
           "to a clone of the repo), or av-benchmark's synchformer_state_dict.pth (hkchengrex/av-benchmark, "
           "with pip install git+https://github.com/hkchengrex/av-benchmark), or an ONNX export (see the "
           "module doc)",
    what="a Synchformer checkpoint (synchformer_state_dict.pth, <exp>.pt + cfg-<exp>.yaml) or "
         "synchformer.onnx",
    repo="v-iashin/Synchformer")
FPS, RATE, SIZE = 25, 16000, 224
SEG_FRAMES, SEG_STRIDE, N_SEG = 16, 8, 14
WINDOW_FRAMES = SEG_FRAMES + SEG_STRIDE * (N_SEG - 1)  # 120 frames = 4.8 s
SEG_SAMPLES, SAMPLE_STRIDE = 10240, 5120
SAMPLES_PER_FRAME = RATE // FPS  # 640
MAX_SPEC_T, SPEC_MEAN, SPEC_STD = 66, -4.2677393, 4.5689974
N_CLASSES, MAX_OFF = 21, 2.0


def class_grid() -> np.ndarray:
    """make_class_grid(-2, 2, 21): class i <-> -2.0 + 0.2 i seconds (float32 as the repo's)."""
    return np.linspace(-MAX_OFF, MAX_OFF, N_CLASSES).astype(np.float32)


# ---- pre-processing ---------------------------------------------------------------------------------

def window_starts(n_frames: int) -> list[int]:
    """Start frames of the 120-frame windows: ceil(n / 120) of them from 0 to n - 120."""
    if n_frames <= WINDOW_FRAMES:
        return [0]
    n = math.ceil(n_frames / WINDOW_FRAMES)
    return [int(round(s)) for s in np.linspace(0, n_frames - WINDOW_FRAMES, n)]


def prepare_frames(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, 3, 224, 224) float32: short side 224 (bicubic), centre crop, mean/std 0.5."""
    out = np.empty((len(frames), 3, SIZE, SIZE), dtype=np.float32)
    for i, f in enumerate(frames):
        x = media.center_crop(media.resize_short_side(f, SIZE), SIZE).astype(np.float32) / 255.0
        out[i] = ((x - 0.5) / 0.5).transpose(2, 0, 1)
    return out


def mel_filterbank(n_freqs: int = 513, n_mels: int = 128, rate: int = RATE) -> torch.Tensor:
    """torchaudio's melscale_fbanks(n_freqs, 0, rate // 2, n_mels, rate, norm=None, mel_scale="htk")."""
    import torch

    all_freqs = torch.linspace(0, rate // 2, n_freqs)
    m_max = 2595.0 * math.log10(1.0 + (rate // 2) / 700.0)
    f_pts = 700.0 * (10.0 ** (torch.linspace(0.0, m_max, n_mels + 2) / 2595.0) - 1.0)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts.unsqueeze(0) - all_freqs.unsqueeze(1)
    down, up = (-1.0 * slopes[:, :-2]) / f_diff[:-1], slopes[:, 2:] / f_diff[1:]
    return torch.max(torch.zeros(1), torch.min(down, up))  # (n_freqs, n_mels)


def audio_segments(audio: np.ndarray) -> np.ndarray:
    """(4.8 s of 16 kHz audio) -> (14, 1, 128, 66) normalised log-mel segments."""
    import torch

    wave = torch.as_tensor(np.asarray(audio, dtype=np.float32))
    segs = torch.stack([wave[i * SAMPLE_STRIDE:i * SAMPLE_STRIDE + SEG_SAMPLES] for i in range(N_SEG)])
    spec = torch.stft(segs, n_fft=1024, hop_length=160, win_length=400, window=torch.hann_window(400),
                      center=True, pad_mode="reflect", normalized=False, onesided=True,
                      return_complex=True).abs().pow(2.0)  # (14, 513, 65)
    mel = torch.matmul(spec.transpose(-1, -2), mel_filterbank()).transpose(-1, -2)
    x = torch.log(mel + 1e-6)
    x = torch.nn.functional.pad(x, (0, MAX_SPEC_T - x.shape[-1])) if x.shape[-1] < MAX_SPEC_T \
        else x[..., :MAX_SPEC_T]
    return ((x - SPEC_MEAN) / (2 * SPEC_STD)).unsqueeze(1).numpy()


def video_segments(frames: np.ndarray) -> np.ndarray:
    """(120, 3, 224, 224) -> (14, 16, 3, 224, 224)."""
    return np.stack([frames[i * SEG_STRIDE:i * SEG_STRIDE + SEG_FRAMES] for i in range(N_SEG)])


def windows(clip: ClipMedia) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """(start_s, video (14, 16, 3, 224, 224), audio (14, 1, 128, 66)) for each window of the clip."""
    frames = media.frames_at_rate(clip, FPS)
    audio = media.audio_at_rate(clip, RATE)
    n = min(len(frames), len(audio) // SAMPLES_PER_FRAME) or len(frames)
    out = []
    for start in window_starts(n):
        f = frames[start:start + WINDOW_FRAMES]
        a = audio[start * SAMPLES_PER_FRAME:(start + WINDOW_FRAMES) * SAMPLES_PER_FRAME]
        if len(f) < WINDOW_FRAMES:  # black frames, as av-benchmark pads short videos
            f = np.concatenate([f, np.zeros((WINDOW_FRAMES - len(f), *f.shape[1:]), dtype=f.dtype)])
        if len(a) < WINDOW_FRAMES * SAMPLES_PER_FRAME:
            a = np.pad(a, (0, WINDOW_FRAMES * SAMPLES_PER_FRAME - len(a)))
        out.append((start / FPS, video_segments(prepare_frames(f)), audio_segments(a)))
    return out


# ---- post-processing --------------------------------------------------------------------------------

def desync(logits: np.ndarray, starts: list[float] | None = None) -> dict[str, Any]:
    """Per-window argmax class -> offset; DeSync = mean |offset| (seconds)."""
    logits = np.asarray(logits, dtype=np.float64).reshape(-1, N_CLASSES)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    idx = logits.argmax(1)
    offsets = class_grid()[idx].astype(np.float64)
    return {"desync": float(np.mean(np.abs(offsets))), "offset_s": float(np.mean(offsets)),
            "p_top": float(np.mean(probs[np.arange(len(idx)), idx])), "n_windows": len(idx),
            "window_offsets_s": [round(float(o), 2) for o in offsets],
            **({"window_starts_s": [round(s, 2) for s in starts]} if starts is not None else {})}


# ---- back ends --------------------------------------------------------------------------------------

class Backend(Protocol):
    def logits(self, video: np.ndarray, audio: np.ndarray) -> np.ndarray:
        """(B, 14, 16, 3, 224, 224), (B, 14, 1, 128, 66) -> (B, 21)."""
        ...


class AvBenchBackend:
    """av-benchmark's Synchformer: the per-segment features then ``compare_v_a``, as its evaluate.py."""

    def __init__(self, model: Any, device: str = "cpu") -> None:
        self.model, self.device = model, device

    def logits(self, video: np.ndarray, audio: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            v = torch.from_numpy(video).to(self.device)
            b, s = v.shape[:2]
            vf = self.model.extract_vfeats(v.flatten(0, 1)[:, None])  # (b s) 1 t d, as extract_video.py
            vf = vf.reshape(b, s, *vf.shape[2:])
            af = self.model.extract_afeats(torch.from_numpy(audio).to(self.device))
            return self.model.compare_v_a(vf[:, :N_SEG], af[:, :N_SEG]).float().cpu().numpy()


class RepoBackend:
    """v-iashin/Synchformer's model: ``_, logits = model(vid, aud)``."""

    def __init__(self, model: Any, device: str = "cpu") -> None:
        self.model, self.device = model, device

    def logits(self, video: np.ndarray, audio: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            vid, aud = torch.from_numpy(video).to(self.device), torch.from_numpy(audio).to(self.device)
            _, out = self.model(vid, aud)
            return out.float().cpu().numpy()


class OnnxBackend:
    def __init__(self, path: Path, device: str = "cpu") -> None:
        import onnxruntime as ort

        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") \
            else ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(path), providers=providers)

    def logits(self, video: np.ndarray, audio: np.ndarray) -> np.ndarray:
        feeds = {"video": video.astype(np.float32), "audio": audio.astype(np.float32)}
        return self.session.run(None, feeds)[0]


def _checkpoint(p: Path) -> tuple[Path, Path | None]:
    """(weights file, its cfg yaml or None) inside a directory or as given."""
    if p.is_dir():
        for name in ("synchformer.onnx", "synchformer_state_dict.pth"):
            if (p / name).is_file():
                return p / name, None
        pts = sorted(p.glob("*.pt"))
        if not pts:
            raise SPEC.not_found([p], " (no synchformer.onnx, synchformer_state_dict.pth or <exp>.pt inside)")
        p = pts[0]
    cfg = p.parent / f"cfg-{p.stem}.yaml"
    return p, cfg if cfg.is_file() else None


@lru_cache(maxsize=2)
def load(path: str, device: str = "cpu") -> Backend:
    file, cfg = _checkpoint(Path(path))
    if file.suffix == ".onnx":
        if missing_packages("onnxruntime"):
            raise ModelUnavailable("synchformer: the ONNX export needs onnxruntime (pip install onnxruntime)")
        return OnnxBackend(file, device)
    import torch

    if cfg is not None:  # the original repo's checkpoint: build the model from its config
        code = option("synchformer", "code")
        if not code or not Path(code, "model", "sync_model.py").is_file():
            raise ModelUnavailable(f"synchformer: {file.name} is a v-iashin/Synchformer checkpoint; set "
                                   "MTAVG_SYNCHFORMER_CODE to a clone of https://github.com/v-iashin/Synchformer")
        sys.path.insert(0, str(Path(code).resolve()))
        from omegaconf import OmegaConf
        from utils.utils import instantiate_from_config

        conf = OmegaConf.load(cfg)
        # as the repo's example.py patch_config: extractor weights are inside the checkpoint
        conf.model.params.afeat_extractor.params.ckpt_path = None
        conf.model.params.vfeat_extractor.params.ckpt_path = None
        conf.model.params.transformer.target = conf.model.params.transformer.target.replace(
            ".modules.feature_selector.", ".sync_model.")
        model = instantiate_from_config(conf.model)
        try:
            ckpt = torch.load(file, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - the release pickles its training state too (trusted official file)
            ckpt = torch.load(file, map_location="cpu", weights_only=False)
        model.load_state_dict(ckpt["model"])
        return RepoBackend(model.to(device).eval(), device)
    if missing_packages("av_bench"):
        raise ModelUnavailable(f"synchformer: {file.name} needs av-benchmark's model code: pip install "
                               "git+https://github.com/hkchengrex/av-benchmark (or use an ONNX export)")
    from av_bench.synchformer.synchformer import Synchformer

    model = Synchformer()
    model.load_state_dict(torch.load(file, map_location="cpu", weights_only=True))
    return AvBenchBackend(model.to(device).eval(), device)


def score_clip(clip: ClipMedia, *, weights: str | None = None, device: str | None = None,
               backend: Backend | None = None) -> dict[str, Any]:
    """DeSync of one clip (``backend`` injects a model, e.g. a stand-in in tests)."""
    if clip.frames is None or clip.audio is None:
        raise ValueError("synchformer: needs both video and audio")
    if backend is None:
        backend = load(str(resolve(SPEC, weights)), resolve_device(device, "synchformer"))
    starts, rows = [], []
    for start, video, audio in windows(clip):  # one window at a time: ~140 MB of frames each
        starts.append(start)
        rows.append(np.asarray(backend.logits(video[None], audio[None])).reshape(-1, N_CLASSES)[0])
    return desync(np.stack(rows), starts)


def status() -> bool | str:
    if missing := missing_packages("torch"):
        return f"synchformer: needs {', '.join(missing)} (pip install torch)"
    try:
        file, cfg = _checkpoint(resolve(SPEC))
    except WeightsNotFound:
        return SPEC.brief()
    if file.suffix == ".onnx":
        return "synchformer: the ONNX export needs onnxruntime" if missing_packages("onnxruntime") else True
    if cfg is not None:
        code = option("synchformer", "code")
        return True if code and Path(code, "model", "sync_model.py").is_file() else \
            "synchformer: set MTAVG_SYNCHFORMER_CODE to a clone of https://github.com/v-iashin/Synchformer"
    return "synchformer: synchformer_state_dict.pth needs av_bench (pip install " \
           "git+https://github.com/hkchengrex/av-benchmark)" if missing_packages("av_bench") else True


OUTPUTS = ("desync", "offset_s")
register_metric("synchformer", lambda clip: score_clip(clip), needs=("video", "audio"), extra="models",
                description="Synchformer DeSync: mean |A-V offset| over 4.8 s windows, s (lower is better)",
                available=status)
