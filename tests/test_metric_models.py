"""Model-metric plugins: weights resolution, pre/post-processing and shapes on tiny random models."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mtavg.metrics.base import METRICS, ClipMedia  # noqa: E402
from mtavg.metrics.models import (  # noqa: E402
    WeightsNotFound,
    audiobox,
    clap,
    configure,
    imagebind,
    list_models,
    media,
    synchformer,
    syncnet,
    tiny,
    weights,
)

NAMES = ("syncnet", "synchformer", "imagebind", "clap", "audiobox")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Every test starts with an empty weights directory and no per-model overrides."""
    for key in list(os.environ):
        if key.startswith("MTAVG_") and key != "MTAVG_SILERO_VAD_ONNX":
            monkeypatch.delenv(key)
    root = tmp_path / "weights"
    root.mkdir()
    monkeypatch.setenv("MTAVG_WEIGHTS", str(root))
    for module in (syncnet, clap, imagebind, synchformer, audiobox):  # no model cached across tests
        getattr(module, "_cached_model", getattr(module, "load", None)).cache_clear()
    return root


def make_clip(seconds: float = 1.0, fps: float = 25.0, hw: tuple[int, int] = (96, 128), seed: int = 0,
              path: Path | None = None, **extras: object) -> ClipMedia:
    rng = np.random.default_rng(seed)
    n = int(round(seconds * fps))
    frames = rng.integers(0, 256, (n, *hw, 3), dtype=np.uint8)
    audio = (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32)
    return ClipMedia(path=path or Path("/nonexistent/clip.mp4"), frames=frames,
                     frame_times=np.arange(n) / fps, fps=fps, audio=audio, sample_rate=16000,
                     duration_s=seconds, video_id="clip", extras=dict(extras))


# ---- weights, devices, listing ----------------------------------------------------------------------

def test_weights_resolution_order_and_message(tmp_path: Path, _isolated_env: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    spec = syncnet.SPEC
    with pytest.raises(WeightsNotFound) as err:
        weights.resolve(spec)
    msg = str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    assert "syncnet_v2.model" in msg and "joonson/syncnet_python" in msg and "MTAVG_SYNCNET_WEIGHTS" in msg
    assert str(_isolated_env / "syncnet_v2.model") in msg
    (_isolated_env / "syncnet_v2.model").write_bytes(b"x")
    assert weights.resolve(spec) == _isolated_env / "syncnet_v2.model"
    other = tmp_path / "elsewhere.model"
    other.write_bytes(b"y")
    monkeypatch.setenv("MTAVG_SYNCNET_WEIGHTS", str(other))  # the per-model flag beats the directory
    assert weights.resolve(spec) == other
    explicit = tmp_path / "explicit.model"
    with pytest.raises(WeightsNotFound, match="explicit.model"):  # an explicit path must exist
        weights.resolve(spec, explicit)
    explicit.write_bytes(b"z")
    assert weights.resolve(spec, explicit) == explicit


def test_configure_and_devices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(weights_dir=tmp_path, device="cpu", clap=tmp_path / "c")  # env: inherited by worker processes
    assert os.environ["MTAVG_WEIGHTS"] == str(tmp_path)
    assert os.environ["MTAVG_CLAP_WEIGHTS"] == str(tmp_path / "c")
    assert weights.resolve_device(model="clap") == "cpu" and weights.resolve_device("auto") in ("cpu", "cuda")
    with pytest.raises(ValueError, match="unknown device"):
        weights.resolve_device("tpu")
    if not torch.cuda.is_available():
        monkeypatch.setenv("MTAVG_SYNCNET_DEVICE", "cuda")
        with pytest.raises(ValueError, match="CUDA is not available"):
            weights.resolve_device(model="syncnet")


def test_list_models_and_registry(_isolated_env: Path) -> None:
    rows = {r["name"]: r for r in list_models()}
    assert set(rows) == set(NAMES)
    for name in NAMES:
        spec = METRICS[name]
        assert spec.extra == "models" and spec.available() is not True
        assert rows[name]["available"] is False and rows[name]["why"] and rows[name]["outputs"]
    assert "imagebind_huge.pth" in rows["imagebind"]["why"]
    assert "laion/clap-htsat-unfused" in rows["clap"]["why"]
    tiny.save_syncnet(_isolated_env / "syncnet_v2.model")
    assert METRICS["syncnet"].available() is True
    assert {r["name"]: r["available"] for r in list_models()}["syncnet"] is True


def test_metric_without_weights_raises_naming_the_download(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clap, "_hub_cache_dir", lambda: None)  # ignore a real HF cache on this machine
    clip = make_clip(0.5, prompt="a dog barks")
    for name, needle in (("syncnet", "syncnet_v2.model"), ("synchformer", "v-iashin/Synchformer"),
                         ("imagebind", "imagebind_huge.pth"), ("audiobox", "facebook/audiobox-aesthetics"),
                         ("clap", "hf download laion/clap-htsat-unfused")):
        with pytest.raises(WeightsNotFound, match=needle.replace(".", r"\.")):
            METRICS[name].fn(clip)


# ---- SyncNet ----------------------------------------------------------------------------------------

def test_mfcc_matches_python_speech_features() -> None:
    psf = pytest.importorskip("python_speech_features")
    audio = np.random.default_rng(1).standard_normal(16000 + 77) * 0.2
    x = syncnet.pcm16(audio)
    np.testing.assert_allclose(syncnet.mfcc(x), psf.mfcc(x.astype(np.int16), 16000), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("shift", [-4, 0, 3])
def test_calc_pdist_finds_a_known_offset(shift: int) -> None:
    """Audio features = video features moved by ``shift`` frames (positive: audio ahead)."""
    rng = np.random.default_rng(2)
    base = torch.from_numpy(rng.standard_normal((60 + 2 * 15, 8)).astype(np.float32))
    video = base[15:75]
    audio = base[15 + shift:75 + shift]  # a_i = v_{i+shift}
    dists = syncnet.calc_pdist(video, audio, vshift=15)
    assert len(dists) == 60 and all(d.shape == (31,) for d in dists)
    # window j of frame i compares v_i with a_{i+j-15}; outside the clip, with zeros
    assert torch.isclose(dists[0][0], torch.linalg.vector_norm(video[0] + 1e-6))
    out = syncnet.lse_scores(video, audio, vshift=15)
    assert out["av_offset_frames"] == shift
    assert out["lse_d"] < 0.5 and out["lse_c"] > 1.0
    assert out["lse_d"] == pytest.approx(float(out["mean_dists"].min()))


def test_syncnet_state_dict_keys_match_the_official_s(tmp_path: Path) -> None:
    """SyncNetModel.S: convs at Sequential indices 0, 4, 8, 11, 14, 18 with BatchNorms right after them."""
    state = syncnet.build_model().state_dict()
    expected = set()
    for branch in ("netcnnaud", "netcnnlip"):
        for conv in (0, 4, 8, 11, 14, 18):
            expected |= {f"{branch}.{conv}.weight", f"{branch}.{conv}.bias"}
            expected |= {f"{branch}.{conv + 1}.{p}" for p in
                         ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
    for fc in ("netfcaud", "netfclip"):
        expected |= {f"{fc}.0.weight", f"{fc}.0.bias", f"{fc}.3.weight", f"{fc}.3.bias"}
        expected |= {f"{fc}.1.{p}" for p in
                     ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
    assert set(state) == expected
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert shapes["netcnnaud.0.weight"] == (64, 1, 3, 3) and shapes["netcnnaud.18.weight"] == (512, 256, 5, 4)
    assert shapes["netcnnlip.0.weight"] == (96, 3, 5, 7, 7)
    assert shapes["netcnnlip.18.weight"] == (512, 256, 1, 6, 6)
    assert shapes["netfcaud.3.weight"] == (1024, 512) and shapes["netfclip.1.running_mean"] == (512,)
    old = {k: v for k, v in state.items() if "num_batches_tracked" not in k}  # files from torch < 0.4
    torch.save(old, tmp_path / "old.model")
    assert not syncnet.load_model(str(tmp_path / "old.model")).training
    torch.save({**old, "extra.weight": torch.zeros(1)}, tmp_path / "bad.model")
    with pytest.raises(ValueError, match="not a SyncNet"):
        syncnet.load_model(str(tmp_path / "bad.model"))


def test_face_crops_bgr_geometry_and_gap_filling() -> None:
    frames = np.zeros((14, 96, 128, 3), np.uint8)
    frames[..., 2] = 255  # blue everywhere
    frames[:, 30:60, 50:80] = (255, 0, 0)  # a red "face"
    boxes = np.tile(np.array([[50.0, 30.0, 80.0, 60.0]]), (14, 1))
    boxes[5] = np.nan  # a missed detection is interpolated
    crops = syncnet.face_crops(frames, boxes)
    assert crops.shape == (14, 224, 224, 3) and crops.dtype == np.uint8
    # box half-size 15: rows [y-15, y+27], cols [x-21, x+21] -> the face spans the top of the crop
    assert tuple(crops[7, 60, 112]) == (0, 0, 255)  # BGR: red is the last channel
    assert tuple(crops[7, 220, 112]) == (255, 0, 0)  # below the face: blue, first channel
    centre = syncnet.face_crops(frames[:3], None)  # no boxes: the centred min(H, W) square
    assert centre.shape == (3, 224, 224, 3)
    assert tuple(syncnet.face_crops(frames[:3], boxes[:3])[1, 60, 112]) == (0, 0, 255)  # short track


def test_syncnet_plugin_end_to_end_on_random_weights(_isolated_env: Path) -> None:
    tiny.save_syncnet(_isolated_env / "syncnet_v2.model")
    clip = make_clip(1.0, fps=30.0)  # resampled to 25 fps inside
    out = METRICS["syncnet"].fn(clip)
    assert np.isfinite(out["lse_c"]) and np.isfinite(out["lse_d"]) and out["lse_c"] >= 0
    assert out["n_windows"] == min(25, 16000 // 640) - 5 and -15 <= out["av_offset_frames"] <= 15
    assert out["face_source"] == "centre"
    boxes = np.tile(np.array([[40.0, 20.0, 90.0, 80.0]]), (30, 1))
    assert syncnet.score_clip(make_clip(1.0, fps=30.0, face_boxes=boxes))["face_source"] == "detected"


# ---- CLAP -------------------------------------------------------------------------------------------

def test_clap_windows_and_resampling() -> None:
    a = np.arange(25)  # deterministic windows instead of the feature extractor's random crop
    assert [w.tolist()[0] for w in clap.audio_windows(a, 10)] == [0, 10, 15]
    assert all(len(w) == 10 for w in clap.audio_windows(a, 10)) and len(clap.audio_windows(a[:7], 10)) == 1
    tone = np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000).astype(np.float32)
    y = media.resample_audio(tone, 16000, 48000)
    ref = np.sin(2 * np.pi * 1000 * np.arange(48000) / 48000)
    assert len(y) == 48000 and np.abs(y[2000:-2000] - ref[2000:-2000]).max() < 0.02


def test_clap_plugin_on_a_tiny_random_model(_isolated_env: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("transformers")
    tiny.save_clap(_isolated_env / "clap-htsat-unfused")
    assert METRICS["clap"].available() is True
    clip = make_clip(2.5, prompt="a dog barks in the rain")
    out = METRICS["clap"].fn(clip)
    assert -1.0 <= out["clap_ta"] <= 1.0 and out["n_windows"] == 3  # 2.5 s in 1 s windows: 0, 1, 1.5 s
    assert METRICS["clap"].fn(clip) == out  # no random crop: the same score twice
    assert "skipped" in METRICS["clap"].fn(make_clip(1.0))  # no prompt
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"video_id": "clip", "script": {"prompt": "a man speaks"}}) + "\n")
    monkeypatch.setenv("MTAVG_PROMPTS", str(prompts))
    assert -1.0 <= METRICS["clap"].fn(make_clip(1.0))["clap_ta"] <= 1.0


def test_clap_rereads_a_real_file_at_48k(_isolated_env: Path, tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from conftest import write_tiny_clip
    from mtavg.metrics.base import load_clip

    clip = load_clip(write_tiny_clip(tmp_path / "c.mp4", 1.0))
    audio48 = media.audio_at(clip, 48000)
    assert abs(len(audio48) - 3 * len(clip.audio)) < 48000 * 0.1
    tiny.save_clap(_isolated_env / "clap-htsat-unfused")
    assert -1.0 <= clap.score_clip(clip, text="a tone")["clap_ta"] <= 1.0


# ---- ImageBind --------------------------------------------------------------------------------------

def test_imagebind_video_preprocessing() -> None:
    assert imagebind.clip_timepoints(6.0, 5) == [(0.0, 2.0), (1.0, 3.0), (2.0, 4.0), (3.0, 5.0), (4.0, 6.0)]
    assert imagebind.clip_timepoints(1.5, 3) == [(0.0, 2.0)] * 3  # ConstantClipsPerVideoSampler: all at 0
    clip = make_clip(6.0, fps=10.0, hw=(96, 128))
    ramp = np.tile(np.linspace(0, 255, 128).astype(np.uint8)[None, :, None], (96, 1, 3))
    clip.frames[:] = ramp  # brighter to the right
    x = imagebind.video_input(clip)
    assert x.shape == (15, 3, 2, 224, 224) and x.dtype == np.float32
    left, centre, right = x[0].mean(), x[1].mean(), x[2].mean()  # 3 spatial crops of temporal clip 0
    assert left < centre < right
    clip.frames[:] = 128
    x = imagebind.video_input(clip)
    expected = (128 / 255 - np.array(imagebind.CLIP_MEAN)) / np.array(imagebind.CLIP_STD)
    np.testing.assert_allclose(x[4, :, 1, 100, 100], expected, rtol=1e-5)


def test_imagebind_audio_preprocessing_and_fbank_scale() -> None:
    x = imagebind.audio_input(np.zeros(32000, np.float32) + 0.01)  # 2 s: 198 fbank frames, padded to 204
    assert x.shape == (3, 1, 128, 204) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0, :, 198:], (0 - imagebind.AUDIO_MEAN) / imagebind.AUDIO_STD, rtol=1e-6)
    t = np.arange(16000) / 16000
    fb = imagebind.kaldi_fbank(torch.from_numpy(np.sin(2 * np.pi * 1000 * t).astype(np.float32)))
    assert fb.shape == (1 + (16000 - 400) // 160, 128)
    # the loudest bin is the one whose centre (Kaldi mel scale, 20 Hz - 8 kHz) is nearest 1 kHz
    low, high = 1127 * np.log(1 + 20 / 700), 1127 * np.log(1 + 8000 / 700)
    centres = 700 * (np.exp((low + (np.arange(128) + 1) * (high - low) / 129) / 1127) - 1)
    assert int(fb.mean(0).argmax()) in {int(np.abs(centres - 1000).argmin()) + d for d in (-1, 0, 1)}


def test_imagebind_torch_backend_and_onnx_export_agree(_isolated_env: Path) -> None:
    model, tok = tiny.imagebind_module(), tiny.text_tokenizer(_isolated_env / "bpe")
    clip = make_clip(3.0, fps=10.0, prompt="a dog barks")

    def tokenize(text: str) -> np.ndarray:
        enc = tok(text, padding="max_length", max_length=77)
        return np.where(np.asarray(enc["attention_mask"]) > 0, enc["input_ids"], 0)

    ref = imagebind.score_clip(clip, backend=imagebind.TorchBackend(model, tokenizer=tokenize))
    assert set(ref) == {"ib_av", "ib_tv", "ib_ta"} and all(-1 <= v <= 1 for v in ref.values())
    assert set(imagebind.score_clip(make_clip(3.0), backend=imagebind.TorchBackend(model))) == {"ib_av"}
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    tiny.export_imagebind_onnx(model, _isolated_env / "imagebind", tok)
    assert METRICS["imagebind"].available() is True
    assert METRICS["imagebind"].fn(clip) == pytest.approx(ref, abs=1e-5)  # per-clip outputs averaged here
    import shutil

    shutil.rmtree(_isolated_env / "imagebind" / "tokenizer")  # no tokenizer: A-V still scored, text noted
    out = imagebind.score_clip(clip, weights=str(_isolated_env / "imagebind"))
    assert out["ib_av"] == pytest.approx(ref["ib_av"], abs=1e-5) and "tokenizer" in out["text_skipped"]


# ---- Synchformer ------------------------------------------------------------------------------------

def test_synchformer_class_grid_and_desync() -> None:
    grid = synchformer.class_grid()
    assert len(grid) == 21 and grid[0] == -2.0 and grid[-1] == 2.0
    np.testing.assert_allclose(grid, -2.0 + 0.2 * np.arange(21), atol=1e-6)
    logits = np.full((4, 21), -5.0)
    for row, cls in enumerate((0, 10, 20, 13)):  # -2.0, 0.0, +2.0, +0.6 s
        logits[row, cls] = 5.0
    out = synchformer.desync(logits, [0.0, 3.2, 6.4, 9.6])
    assert out["desync"] == pytest.approx((2.0 + 0.0 + 2.0 + 0.6) / 4)
    assert out["offset_s"] == pytest.approx(0.6 / 4) and out["n_windows"] == 4
    assert out["window_offsets_s"] == [-2.0, 0.0, 2.0, 0.6] and 0.9 < out["p_top"] <= 1.0


def test_synchformer_windows_and_segments() -> None:
    assert synchformer.WINDOW_FRAMES == 120
    assert synchformer.window_starts(200) == [0, 80]  # 8 s: av-benchmark's first and last 14 segments
    assert synchformer.window_starts(120) == [0] and synchformer.window_starts(60) == [0]
    assert synchformer.window_starts(300) == [0, 90, 180]
    seg = synchformer.video_segments(np.arange(120)[:, None, None, None] * np.ones((1, 1, 1, 1)))
    assert seg.shape == (14, 16, 1, 1, 1) and seg[3, 5].item() == 3 * 8 + 5 and seg[13, 15].item() == 119
    audio = synchformer.audio_segments(np.zeros(76800, np.float32))
    assert audio.shape == (14, 1, 128, 66)
    pad = (0 - synchformer.SPEC_MEAN) / (2 * synchformer.SPEC_STD)  # the 66th frame is padding
    np.testing.assert_allclose(audio[:, :, :, 65], pad, rtol=1e-6)
    silent = (np.log(1e-6) - synchformer.SPEC_MEAN) / (2 * synchformer.SPEC_STD)
    np.testing.assert_allclose(audio[:, :, :, :65], silent, rtol=1e-5)
    tone = synchformer.audio_segments(np.sin(2 * np.pi * 1000 * np.arange(76800) / 16000).astype(np.float32))
    centres = 700 * (10 ** (np.linspace(0, 2595 * np.log10(1 + 8000 / 700), 130)[1:-1] / 2595) - 1)  # HTK
    assert synchformer.mel_filterbank().shape == (513, 128)
    assert int(tone[0, 0, :, 10:50].mean(-1).argmax()) == int(np.abs(centres - 1000).argmin())
    wins = synchformer.windows(make_clip(8.0, fps=30.0))
    assert [w[0] for w in wins] == [0.0, 3.2] and wins[0][1].shape == (14, 16, 3, 224, 224)
    assert wins[1][2].shape == (14, 1, 128, 66) and -1.0 <= wins[0][1].min() <= wins[0][1].max() <= 1.0
    short = synchformer.windows(make_clip(2.0))  # shorter than 4.8 s: one window padded with black frames
    assert len(short) == 1 and (short[0][1][-1] == -1.0).all()


class KnownLogits:
    """A stand-in that 'predicts' a chosen class per window and records what it was given."""

    def __init__(self, classes: list[int]) -> None:
        self.classes, self.shapes = list(classes), []

    def logits(self, video: np.ndarray, audio: np.ndarray) -> np.ndarray:
        self.shapes.append((video.shape, audio.shape))
        out = np.zeros((1, 21))
        out[0, self.classes.pop(0)] = 10.0
        return out


def test_synchformer_stand_in_and_onnx_path(_isolated_env: Path) -> None:
    stub = KnownLogits([3, 15])  # -1.4 s, +1.0 s
    out = synchformer.score_clip(make_clip(8.0), backend=stub)
    assert out["desync"] == pytest.approx(1.2) and out["window_starts_s"] == [0.0, 3.2]
    assert stub.shapes == [((1, 14, 16, 3, 224, 224), (1, 14, 1, 128, 66))] * 2

    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    model = tiny.synchformer_module()
    tiny.export_synchformer_onnx(model, _isolated_env / "synchformer.onnx")
    assert METRICS["synchformer"].available() is True
    clip = make_clip(5.0)
    got = METRICS["synchformer"].fn(clip)

    class Torch:
        def logits(self, video: np.ndarray, audio: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return model(torch.from_numpy(video), torch.from_numpy(audio)).numpy()

    ref = synchformer.score_clip(clip, backend=Torch())
    assert got["window_offsets_s"] == ref["window_offsets_s"] and got["desync"] == ref["desync"]
    assert got["p_top"] == pytest.approx(ref["p_top"], abs=1e-6)
    assert 0.0 <= got["desync"] <= 2.0 and got["n_windows"] == 2


# ---- audiobox-aesthetics ----------------------------------------------------------------------------

def test_audiobox_windows_weights_and_denormalisation() -> None:
    wavs, masks, w = audiobox.make_batch(np.ones(25 * 16000, np.float32))
    assert wavs.shape == (3, 1, 160000) and masks.shape == (3, 1, 160000)
    np.testing.assert_allclose(w, [1.0, 1.0, 0.5])
    assert masks[2].sum() == 80000 and wavs[2, 0, 80000:].sum() == 0
    tt = {a: {"mean": 5.0, "std": 2.0} for a in audiobox.AXES}
    preds = {a: np.array([0.0, 1.0, -1.0]) for a in audiobox.AXES}
    out = audiobox.aggregate(preds, w, tt)  # de-normalised 5, 7, 3 weighted 1, 1, 0.5
    assert out == {a: pytest.approx((5 + 7 + 1.5) / 2.5) for a in audiobox.AXES}


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")  # from the package's WavLM code
def test_audiobox_official_checkpoint_format_on_a_tiny_model(_isolated_env: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    aes = pytest.importorskip("audiobox_aesthetics.model.aes")
    from audiobox_aesthetics.model.wavlm import WavLMConfig

    tiny_cfg = WavLMConfig({**vars(aes.DEFAULT_AUDIO_CFG), "encoder_layers": 2, "encoder_embed_dim": 32,
                            "encoder_ffn_embed_dim": 64, "encoder_attention_heads": 2, "conv_pos": 16,
                            "conv_pos_groups": 4, "num_buckets": 16, "max_distance": 32,
                            "conv_feature_layers": "[(32,10,5)] + [(32,3,2)] * 4 + [(32,2,2)] * 2"})
    monkeypatch.setattr(aes, "DEFAULT_AUDIO_CFG", tiny_cfg)  # the package builds WavLM from this config
    cfg = {"proj_num_layer": 1, "proj_ln": False, "proj_act_fn": "gelu", "proj_dropout": 0, "nth_layer": 3,
           "use_weighted_layer_sum": True, "precision": "32", "normalize_embed": True, "output_dim": 1}
    tt = {a: {"mean": 5.5, "std": 1.5} for a in audiobox.AXES}
    torch.manual_seed(0)
    model = aes.AesMultiOutput(**cfg, target_transform=tt)
    ckpt = {"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}, "model_cfg": cfg,
            "target_transform": tt}
    (_isolated_env / "audiobox-aesthetics").mkdir()
    torch.save(ckpt, _isolated_env / "audiobox-aesthetics" / "checkpoint.pt")
    assert METRICS["audiobox"].available() is True
    clip = make_clip(12.0, fps=2.0, hw=(8, 8))
    out = METRICS["audiobox"].fn(clip)
    assert set(out) == set(audiobox.AXES) and all(np.isfinite(v) for v in out.values())
    assert out == pytest.approx(audiobox.predict(model.eval(), clip.audio), abs=1e-5)
