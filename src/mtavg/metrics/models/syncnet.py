"""SyncNet LSE-D / LSE-C (Chung & Zisserman 2016; the ``S`` model of joonson/syncnet_python).

Loads the official ``syncnet_v2.model`` (a state dict of ``S``) into the same architecture, re-implemented
here layer for layer with the same attribute names (netcnnaud, netfcaud, netcnnlip, netfclip), so the
file loads with no key left over (old files lack BatchNorm ``num_batches_tracked`` buffers only).

Pre-processing follows the official pipeline (run_pipeline.py + SyncNetInstance.evaluate):
  * video at 25 fps; per frame a face crop from the face box (half-size ``bs`` = max(w, h) / 2, boxes
    median-filtered over 13 frames, frame padded with grey 110, rows [y - bs, y + 1.8 bs], columns
    [x - 1.4 bs, x + 1.4 bs]), resized to 224x224, BGR channel order (cv2), raw 0-255 values;
    5 consecutive crops per video window;
  * audio 16 kHz as int16 values -> MFCC (python_speech_features defaults: 25 ms / 10 ms, 13 cepstra,
    26 filters, NFFT 512, pre-emphasis 0.97, lifter 22, c0 = log frame energy); 20 MFCC frames
    (0.2 s) per window, 4 MFCC frames per video frame;
  * distances between every video window and the audio windows within +-vshift frames (default 15, as
    in Wav2Lip's LSE scripts), ``calc_pdist`` with zero padding; LSE-D = min over offsets of the mean
    distance, LSE-C = median - min, AV offset = vshift - argmin (frames).

Face boxes: ``clip.extras["face_boxes"]`` ((T, 4) x1, y1, x2, y2 per analysis frame, NaN where no
face) or ``mtavg.metrics.lips.face_boxes(clip)`` when that module provides it; otherwise the centred
min(H, W) square is used (a talking-head close-up) and the record says ``face_source: "centre"``.
The official pipeline's S3FD detector, scene cuts and track selection are not re-run here.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from mtavg.metrics.base import register_metric
from mtavg.metrics.models import media
from mtavg.metrics.models.weights import WeightSpec, require, resolve, resolve_device

if TYPE_CHECKING:
    import torch

    from mtavg.metrics.base import ClipMedia

SPEC = WeightSpec(
    model="syncnet", names=("syncnet_v2.model", "syncnet/syncnet_v2.model"),
    source="joonson/syncnet_python (https://github.com/joonson/syncnet_python; its download_model.sh "
           "fetches http://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model)",
    what="syncnet_v2.model (the SyncNet state dict)",
    repo="joonson/syncnet_python")
VIDEO_FPS = 25
AUDIO_RATE = 16000
CROP = 224
VSHIFT = 15
BATCH = 20


def build_model(fc_dim: int = 1024) -> torch.nn.Module:
    """The ``S`` network of SyncNetModel.py (same layers, order and attribute names)."""
    from torch import nn

    class S(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.netcnnaud = nn.Sequential(
                nn.Conv2d(1, 64, (3, 3), (1, 1), (1, 1)), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                nn.MaxPool2d((1, 1), (1, 1)),
                nn.Conv2d(64, 192, (3, 3), (1, 1), (1, 1)), nn.BatchNorm2d(192), nn.ReLU(inplace=True),
                nn.MaxPool2d((3, 3), (1, 2)),
                nn.Conv2d(192, 384, (3, 3), padding=(1, 1)), nn.BatchNorm2d(384), nn.ReLU(inplace=True),
                nn.Conv2d(384, 256, (3, 3), padding=(1, 1)), nn.BatchNorm2d(256), nn.ReLU(inplace=True),
                nn.Conv2d(256, 256, (3, 3), padding=(1, 1)), nn.BatchNorm2d(256), nn.ReLU(inplace=True),
                nn.MaxPool2d((3, 3), (2, 2)),
                nn.Conv2d(256, 512, (5, 4), padding=(0, 0)), nn.BatchNorm2d(512), nn.ReLU())
            self.netfcaud = nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(),
                                          nn.Linear(512, fc_dim))
            self.netfclip = nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(),
                                          nn.Linear(512, fc_dim))
            self.netcnnlip = nn.Sequential(
                nn.Conv3d(3, 96, (5, 7, 7), (1, 2, 2), 0), nn.BatchNorm3d(96), nn.ReLU(inplace=True),
                nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
                nn.Conv3d(96, 256, (1, 5, 5), (1, 2, 2), (0, 1, 1)), nn.BatchNorm3d(256),
                nn.ReLU(inplace=True),
                nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
                nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256), nn.ReLU(inplace=True),
                nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256), nn.ReLU(inplace=True),
                nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256), nn.ReLU(inplace=True),
                nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
                nn.Conv3d(256, 512, (1, 6, 6), padding=0), nn.BatchNorm3d(512), nn.ReLU(inplace=True))

        def forward_aud(self, x: torch.Tensor) -> torch.Tensor:  # (N, 1, 13, 20) -> (N, fc_dim)
            mid = self.netcnnaud(x)
            return self.netfcaud(mid.view(mid.size(0), -1))

        def forward_lip(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, 5, 224, 224) -> (N, fc_dim)
            mid = self.netcnnlip(x)
            return self.netfclip(mid.view(mid.size(0), -1))

    return S()


def load_model(path: str, device: str = "cpu") -> torch.nn.Module:
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k.removeprefix("__S__."): v for k, v in state.items()}  # a saved SyncNetInstance
    fc_dim = int(state["netfcaud.3.weight"].shape[0]) if "netfcaud.3.weight" in state else 1024
    model = build_model(fc_dim)
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise ValueError(f"syncnet: {path} is not a SyncNet S state dict (missing {missing[:5]}, "
                         f"unexpected {result.unexpected_keys[:5]})")
    return model.to(device).eval()


# ---- MFCC: python_speech_features.mfcc with its defaults, in numpy ----------------------------------

def _hz2mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595 * np.log10(1 + np.asarray(hz) / 700.0)


def _mel2hz(mel: np.ndarray) -> np.ndarray:
    return 700 * (10 ** (np.asarray(mel) / 2595.0) - 1)


def mel_filterbank(nfilt: int = 26, nfft: int = 512, rate: int = AUDIO_RATE) -> np.ndarray:
    mel = np.linspace(_hz2mel(0), _hz2mel(rate / 2), nfilt + 2)
    bins = np.floor((nfft + 1) * _mel2hz(mel) / rate)
    fb = np.zeros((nfilt, nfft // 2 + 1))
    for j in range(nfilt):
        for i in range(int(bins[j]), int(bins[j + 1])):
            fb[j, i] = (i - bins[j]) / (bins[j + 1] - bins[j])
        for i in range(int(bins[j + 1]), int(bins[j + 2])):
            fb[j, i] = (bins[j + 2] - i) / (bins[j + 2] - bins[j + 1])
    return fb


def mfcc(signal: np.ndarray, rate: int = AUDIO_RATE, numcep: int = 13, nfilt: int = 26, nfft: int = 512,
         preemph: float = 0.97, lifter: int = 22) -> np.ndarray:
    """(frames, numcep) MFCCs, numerically python_speech_features.mfcc(signal, rate)."""
    x = np.asarray(signal, dtype=np.float64)
    x = np.append(x[0], x[1:] - preemph * x[:-1])
    flen, fstep = int(round(0.025 * rate)), int(round(0.010 * rate))
    n = 1 if len(x) <= flen else 1 + int(np.ceil((len(x) - flen) / fstep))
    padded = np.concatenate([x, np.zeros((n - 1) * fstep + flen - len(x))])
    frames = padded[np.arange(flen)[None, :] + fstep * np.arange(n)[:, None]]
    pspec = np.square(np.abs(np.fft.rfft(frames, nfft))) / nfft
    energy = pspec.sum(1)
    energy = np.where(energy == 0, np.finfo(float).eps, energy)
    feat = pspec @ mel_filterbank(nfilt, nfft, rate).T
    feat = np.log(np.where(feat == 0, np.finfo(float).eps, feat))
    k, m = np.arange(nfilt)[:, None], np.arange(nfilt)[None, :]  # DCT-II, orthonormal (scipy norm="ortho")
    scale = np.where(k == 0, np.sqrt(1 / nfilt), np.sqrt(2 / nfilt))
    basis = np.cos(np.pi * k * (2 * m + 1) / (2 * nfilt)) * scale
    cep = (feat @ basis.T)[:, :numcep]
    cep *= 1 + (lifter / 2.0) * np.sin(np.pi * np.arange(numcep) / lifter)
    cep[:, 0] = np.log(energy)
    return cep


def pcm16(audio: np.ndarray) -> np.ndarray:
    """Float [-1, 1] -> the int16 values the official code reads from its 16-bit wav (as float64)."""
    return np.clip(np.round(np.asarray(audio, dtype=np.float64) * 32768.0), -32768, 32767)


# ---- offsets and scores: calc_pdist and the confidence of SyncNetInstance.evaluate ------------------

def calc_pdist(feat1: torch.Tensor, feat2: torch.Tensor, vshift: int = VSHIFT) -> list[torch.Tensor]:
    """For each video window i, distances to audio windows i-vshift..i+vshift (zeros outside the clip)."""
    import torch

    win = vshift * 2 + 1
    feat2p = torch.nn.functional.pad(feat2, (0, 0, vshift, vshift))
    return [torch.nn.functional.pairwise_distance(feat1[[i], :].repeat(win, 1), feat2p[i:i + win, :])
            for i in range(len(feat1))]


def lse_scores(im_feat: torch.Tensor, cc_feat: torch.Tensor, vshift: int = VSHIFT) -> dict[str, Any]:
    import torch

    mdist = torch.mean(torch.stack(calc_pdist(im_feat, cc_feat, vshift), 1), 1)  # (2*vshift+1,)
    minval, minidx = torch.min(mdist, 0)
    return {"lse_d": float(minval), "lse_c": float(torch.median(mdist) - minval),
            "av_offset_frames": int(vshift - minidx), "mean_dists": mdist.numpy()}


# ---- face crops -----------------------------------------------------------------------------------

def _medfilt(x: np.ndarray, k: int = 13) -> np.ndarray:
    """scipy.signal.medfilt (zero padding at both ends), as the official crop smoothing uses."""
    k = min(k, len(x) if len(x) % 2 else len(x) - 1)  # official tracks are >= 100 frames; ours may be short
    if k <= 1:
        return np.asarray(x, dtype=np.float64)
    padded = np.concatenate([np.zeros(k // 2), x, np.zeros(k // 2)])
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, k), axis=1)


def face_boxes(clip: ClipMedia) -> np.ndarray | None:
    """(T, 4) boxes per analysis frame (NaN rows where no face), from extras or mtavg.metrics.lips."""
    boxes = clip.extras.get("face_boxes")
    if boxes is None:
        try:
            from mtavg.metrics import lips
        except ImportError:
            return None
        fn = getattr(lips, "face_boxes", None)
        boxes = fn(clip) if callable(fn) else None
    if boxes is None:
        return None
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return boxes if np.isfinite(boxes).all(axis=1).any() else None


def face_crops(frames: np.ndarray, boxes: np.ndarray | None, crop_scale: float = 0.4) -> np.ndarray:
    """(T, 224, 224, 3) uint8 BGR crops of run_pipeline.crop_video; centred square without boxes."""
    from PIL import Image

    t, h, w = frames.shape[:3]
    if boxes is None:  # centred min(H, W) square: the crop of a face box of half-size min(H, W) / 2.8
        s = np.full(t, min(h, w) / (2 + 2 * crop_scale))
        x, y = np.full(t, w / 2.0), np.full(t, h / 2.0 - crop_scale * s)
    else:
        ok = np.isfinite(boxes).all(axis=1)
        ts = np.arange(t)
        b = np.stack([np.interp(ts, ts[ok], boxes[ok, j]) for j in range(4)], axis=1)  # fill gaps
        s = _medfilt(np.maximum(b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]) / 2)
        y, x = _medfilt((b[:, 1] + b[:, 3]) / 2), _medfilt((b[:, 0] + b[:, 2]) / 2)
    out = np.empty((t, CROP, CROP, 3), dtype=np.uint8)
    for i in range(t):
        bs = max(float(s[i]), 1.0)
        bsi = int(bs * (1 + 2 * crop_scale))
        img = np.pad(frames[i], ((bsi, bsi), (bsi, bsi), (0, 0)), constant_values=110)
        my, mx = y[i] + bsi, x[i] + bsi
        face = img[int(my - bs):int(my + bs * (1 + 2 * crop_scale)),
                   int(mx - bs * (1 + crop_scale)):int(mx + bs * (1 + crop_scale))]
        out[i] = np.asarray(Image.fromarray(np.ascontiguousarray(face)).resize((CROP, CROP), Image.BILINEAR))
    return out[..., ::-1]  # RGB -> BGR: the model was trained on cv2 frames


# ---- the metric -------------------------------------------------------------------------------------

def evaluate(model: torch.nn.Module, crops_bgr: np.ndarray, audio: np.ndarray, *, device: str = "cpu",
             vshift: int = VSHIFT, batch_size: int = BATCH) -> dict[str, Any]:
    """SyncNetInstance.evaluate on prepared inputs: (T, 224, 224, 3) BGR crops at 25 fps, 16 kHz audio."""
    import torch

    cc = mfcc(pcm16(audio)).T  # (13, frames)
    min_length = min(len(crops_bgr), len(audio) // 640)
    lastframe = min_length - 5
    if lastframe < 1:
        raise ValueError(f"syncnet: clip too short ({min_length} frames at 25 fps; needs at least 6)")
    cct = torch.from_numpy(cc[None, None].astype(np.float32))
    im_feat, cc_feat = [], []
    with torch.inference_mode():
        for i in range(0, lastframe, batch_size):
            idx = range(i, min(lastframe, i + batch_size))
            # (N, 3, 5, 224, 224): five consecutive crops, channels first, raw 0-255 values
            win = np.stack([crops_bgr[v:v + 5] for v in idx]).transpose(0, 4, 1, 2, 3)
            im_feat.append(model.forward_lip(torch.from_numpy(win.astype(np.float32)).to(device)).cpu())
            aud = torch.cat([cct[:, :, :, v * 4:v * 4 + 20] for v in idx], 0)
            cc_feat.append(model.forward_aud(aud.to(device)).cpu())
    scores = lse_scores(torch.cat(im_feat, 0), torch.cat(cc_feat, 0), vshift)
    scores.pop("mean_dists")
    return {**scores, "n_windows": lastframe}


@lru_cache(maxsize=2)
def _cached_model(path: str, device: str) -> Any:
    return load_model(path, device)


def score_clip(clip: ClipMedia, *, weights: str | None = None, device: str | None = None,
               model: Any = None, vshift: int = VSHIFT) -> dict[str, Any]:
    """LSE-C / LSE-D of one clip (``model`` injects an already built network, e.g. in tests)."""
    if clip.frames is None or clip.audio is None:
        raise ValueError("syncnet: needs both video and audio")
    dev = resolve_device(device, "syncnet")
    if model is None:
        require("syncnet", "torch", hint="pip install torch")
        model = _cached_model(str(resolve(SPEC, weights)), dev)
    idx = media.frame_indices(clip, VIDEO_FPS)
    boxes = face_boxes(clip)
    if boxes is not None and len(boxes) != len(clip.frames):
        boxes = None  # boxes of another frame rate cannot be matched to frames
    crops = face_crops(clip.frames[idx], None if boxes is None else boxes[idx])
    out = evaluate(model, crops, media.audio_at_rate(clip, AUDIO_RATE), device=dev, vshift=vshift)
    return {**out, "face_source": "centre" if boxes is None else "detected"}


def status() -> bool | str:
    """True, or why the metric cannot run here (missing package or weights)."""
    from mtavg.metrics.models.weights import missing_packages, weights_status

    if missing := missing_packages("torch"):
        return f"syncnet: needs {', '.join(missing)} (pip install torch)"
    return weights_status(SPEC)


OUTPUTS = ("lse_c", "lse_d", "av_offset_frames")
register_metric("syncnet", lambda clip: score_clip(clip), needs=("video", "audio"), extra="models",
                description="SyncNet lip sync: LSE-C (higher is better), LSE-D (lower is better), offset",
                available=status)
