"""The ``hf`` backend on a tiny random Qwen2.5-Omni thinker built offline (needs the [hf] extra)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers", minversion="4.52")

from conftest import write_tiny_clip  # noqa: E402
from mtavg.evaluators import make_evaluator  # noqa: E402
from mtavg.evaluators.base import MediaRef, Request  # noqa: E402
from mtavg.evaluators.hf_backend import (  # noqa: E402
    HFModelNotFound,
    QwenOmniEvaluator,
    numpy_video_processor,
)
from mtavg.testing.tiny_qwen_omni import build_tiny_qwen_omni  # noqa: E402

# transformers' own processor code converts tensors with np.arange(tensor): not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
MAX_PIXELS = 112 * 112
MODALITIES = {"full": (True, True), "no_audio": (True, False), "no_vision": (False, True), "text": (False, False)}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen_omni(tmp_path_factory.mktemp("tiny_qwen_omni"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_clip(tmp_path_factory.mktemp("clips") / "c.mp4", 2.0)


@pytest.fixture(scope="module")
def evaluator(tiny_dir: Path) -> QwenOmniEvaluator:
    return QwenOmniEvaluator(str(tiny_dir), max_new_tokens=8, max_pixels=MAX_PIXELS, fps=2.0)


def make_request(clip: Path, modality: str, prompt: str = "Is the lip sync broken? Answer Yes or No.") -> Request:
    video, audio = MODALITIES[modality]
    media = (MediaRef("v1", clip, "Clip", use_video=video, use_audio=audio, duration_s=2.0),)
    return Request(qid=f"q-{modality}", prompt=prompt, media=media if video or audio else (),
                   modality=modality, format="single", question="Q?", options={"A": "a", "B": "b"})


class Spy:
    """Stands in for the processor / generate: records keyword arguments and outputs, delegates the rest."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.inner(*args, **kwargs)
        self.calls.append((kwargs, out))
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def spied(evaluator: QwenOmniEvaluator, monkeypatch: pytest.MonkeyPatch) -> tuple[Spy, Spy]:
    proc, gen = Spy(evaluator.processor), Spy(evaluator.model.generate)
    monkeypatch.setattr(evaluator, "processor", proc)
    monkeypatch.setattr(evaluator.model, "generate", gen)
    return proc, gen


def audio_in_video_flag(kwargs: dict[str, Any]) -> bool:
    # transformers < 5.23 calls the processor's flag use_audio_in_video; later ones load_audio_from_video
    return bool(kwargs.get("use_audio_in_video") or kwargs.get("load_audio_from_video"))


@pytest.mark.parametrize("modality", list(MODALITIES))
def test_respond_sends_what_the_modality_allows(evaluator, clip, spied, modality) -> None:
    proc, gen = spied
    resp = asyncio.run(evaluator.respond(make_request(clip, modality)))
    (proc_kwargs, inputs), = proc.calls
    (gen_kwargs, _), = gen.calls
    video, audio = MODALITIES[modality]
    assert isinstance(resp.raw, str) and resp.raw
    assert ("input_features" in inputs) is audio and resp.audio_sent is audio
    assert ("pixel_values_videos" in inputs) is video
    assert (resp.frames_sent > 0) is video
    interleaved = video and audio  # the soundtrack rides inside the video, as Qwen2.5-Omni was trained
    assert audio_in_video_flag(proc_kwargs) is interleaved
    assert gen_kwargs["use_audio_in_video"] is interleaved and resp.meta["use_audio_in_video"] is interleaved
    assert gen_kwargs["do_sample"] is False and gen_kwargs["max_new_tokens"] == 8
    assert inputs["input_ids"].shape[0] == 1  # batch size 1
    ids = inputs["input_ids"][0].tolist()
    tok = evaluator.processor.tokenizer
    assert (tok.audio_token_id in ids) is audio and (tok.video_token_id in ids) is video
    assert resp.usage["prompt_tokens"] == len(ids) and 0 < resp.usage["completion_tokens"] <= 8
    assert resp.meta["max_pixels"] == MAX_PIXELS and resp.meta["max_frames"] == 32


def test_full_sends_two_seconds_of_frames_and_audio(evaluator, clip, spied) -> None:
    proc, _ = spied
    resp = asyncio.run(evaluator.respond(make_request(clip, "full")))
    (kwargs, inputs), = proc.calls
    assert resp.frames_sent == 4 and resp.meta["fps"] == 2.0  # 2 s at 2 fps
    assert [v.shape[0] for v in kwargs["videos"]] == [4] and len(kwargs["audio"]) == 1
    assert abs(len(kwargs["audio"][0]) / 16000 - 2.0) < 0.1  # the clip's whole track at 16 kHz
    assert int(inputs["feature_attention_mask"].sum()) > 150  # ~100 mel frames per second went in
    text = evaluator.processor.tokenizer.decode(inputs["input_ids"][0])
    assert "<|vision_bos|><|audio_bos|><|VIDEO|>" in text and "<|AUDIO|><|audio_eos|><|vision_eos|>" in text


def test_pairwise_labels_both_clips(evaluator, clip, spied) -> None:
    proc, _ = spied
    refs = (MediaRef("v1", clip, "Clip 1", True, True, 2.0), MediaRef("v2", clip, "Clip 2", True, True, 2.0))
    req = Request("qp", "Which clip is worse?", refs, "full", "pairwise", "Q?", {"A": "Clip 1", "B": "Clip 2"})
    resp = asyncio.run(evaluator.respond(req))
    (kwargs, inputs), = proc.calls
    assert resp.frames_sent == 8 and len(kwargs["audio"]) == 2 and inputs["video_grid_thw"].shape[0] == 2
    text = evaluator.processor.tokenizer.decode(inputs["input_ids"][0])
    assert text.index("Clip 1:") < text.index("Clip 2:") < text.index("Which clip is worse?")


@pytest.mark.parametrize("modality", ["full", "no_vision", "text"])
def test_yes_probability_matches_hand_computation(evaluator, clip, spied, modality) -> None:
    proc, gen = spied
    p = asyncio.run(evaluator.yes_probability(make_request(clip, modality)))
    assert 0.0 <= p <= 1.0 and not gen.calls  # one forward pass, no generation
    (kwargs, inputs), = proc.calls
    with torch.no_grad():
        logits = evaluator.model(**inputs, use_audio_in_video=audio_in_video_flag(kwargs)).logits[0, -1]
    probs = torch.softmax(logits.double(), dim=-1)
    tok = evaluator.processor.tokenizer
    yes = tok.convert_tokens_to_ids(["Yes", "ĠYes", "yes", "Ġyes", "YES", "ĠYES"])
    no = tok.convert_tokens_to_ids(["No", "ĠNo", "no", "Ġno", "NO", "ĠNO"])
    expected = float(probs[yes].sum() / (probs[yes].sum() + probs[no].sum()))
    assert p == pytest.approx(expected, abs=1e-6)


def test_one_generation_at_a_time(evaluator, clip, monkeypatch) -> None:
    active, peak, inner = [0], [0], evaluator.model.generate
    lock = threading.Lock()

    def generate(**kwargs: Any) -> Any:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            return inner(**kwargs)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(evaluator.model, "generate", generate)

    async def many() -> list[Any]:
        return await asyncio.gather(*(evaluator.respond(make_request(clip, m)) for m in ("full", "no_audio", "text")))

    assert all(r.raw for r in asyncio.run(many())) and peak[0] == 1


def test_numpy_video_processor_matches_the_image_processor(evaluator) -> None:
    """Frame k of each temporal patch must hold exactly the patch the (PIL) image processor makes of
    frame k (it writes one image into both temporal slots): same resize, normalisation, patch order."""
    transformers = pytest.importorskip("transformers")
    if not hasattr(transformers, "Qwen2VLImageProcessorPil"):
        pytest.skip("transformers < 5 has no PIL-backed Qwen2-VL image processor")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 60, 90, 3), dtype=np.uint8)
    size = {"shortest_edge": 56 * 56, "longest_edge": 112 * 168}
    video = numpy_video_processor()(frames, size=size, return_tensors="np")
    image_proc = transformers.Qwen2VLImageProcessorPil.from_pretrained(evaluator.model_path)
    images = [image_proc(images=[f], size=size, return_tensors="np") for f in frames]
    assert video["video_grid_thw"].tolist() == images[0]["image_grid_thw"].tolist() == [[1, 4, 6]]
    patches = video["pixel_values_videos"].reshape(-1, 3, 2, 14, 14)  # (C, temporal, 14, 14) per row
    for k in (0, 1):
        expected = images[k]["pixel_values"].reshape(-1, 3, 2, 14, 14)[:, :, k]
        np.testing.assert_allclose(patches[:, :, k], expected, atol=1e-5)


def test_numpy_video_processor_matches_the_stock_one() -> None:
    """Where torchvision is installed: same grid and patch layout as transformers' own video processor
    (pixel values differ by the resize implementation only)."""
    pytest.importorskip("torchvision")
    from transformers import Qwen2VLVideoProcessor

    frames = np.random.default_rng(1).integers(0, 256, (3, 60, 90, 3), dtype=np.uint8)
    size = {"shortest_edge": 56 * 56, "longest_edge": 112 * 168}
    ours = numpy_video_processor()(frames, size=size, return_tensors="np")
    stock = Qwen2VLVideoProcessor()(videos=[frames], size=size, return_tensors="np")
    assert ours["video_grid_thw"].tolist() == stock["video_grid_thw"].tolist() == [[2, 4, 6]]
    np.testing.assert_allclose(ours["pixel_values_videos"], stock["pixel_values_videos"], atol=0.02)


def test_silent_clip_in_full_sends_no_audio(evaluator, tmp_path, spied) -> None:
    proc, gen = spied
    silent = write_tiny_clip(tmp_path / "silent.mp4", 1.0, audio=False)
    ref = MediaRef("v1", silent, "Clip", use_video=True, use_audio=True, duration_s=1.0)
    resp = asyncio.run(evaluator.respond(Request("qs", "Any issue?", (ref,), "full", "single", "Q?", {"A": "a"})))
    (kwargs, inputs), = proc.calls
    assert not resp.audio_sent and "input_features" not in inputs and resp.frames_sent == 2
    assert not audio_in_video_flag(kwargs) and gen.calls[0][0]["use_audio_in_video"] is False


def test_unreadable_clip_is_a_permanent_error(evaluator, tmp_path) -> None:
    from mtavg.evaluators.base import PermanentError

    ref = MediaRef("v1", tmp_path / "gone.mp4", "Clip", use_video=True, use_audio=True, duration_s=1.0)
    with pytest.raises(PermanentError, match="q-gone"):
        asyncio.run(evaluator.respond(Request("q-gone", "?", (ref,), "full", "single", "Q?", {"A": "a"})))


def test_full_release_layout_loads_the_thinker(tmp_path, clip) -> None:
    """The Qwen/Qwen2.5-Omni-7B layout (thinker + talker config, thinker.* weights) loads as a thinker."""
    path = build_tiny_qwen_omni(tmp_path / "release", full_release=True)
    ev = QwenOmniEvaluator(str(path), max_new_tokens=4, max_pixels=MAX_PIXELS)
    assert type(ev.model).__name__ == "Qwen2_5OmniThinkerForConditionalGeneration"
    assert asyncio.run(ev.respond(make_request(clip, "full"))).raw


def test_missing_directory_says_how_to_get_it(tmp_path) -> None:
    with pytest.raises(HFModelNotFound) as err:
        QwenOmniEvaluator(str(tmp_path / "nowhere"))
    message = str(err.value)
    assert str(tmp_path / "nowhere") in message and "not found locally" in message
    assert "download Qwen/Qwen2.5-Omni-7B" in message and isinstance(err.value, ValueError)


def test_directory_without_config(tmp_path) -> None:
    with pytest.raises(HFModelNotFound, match="no config.json"):
        QwenOmniEvaluator(str(tmp_path))


@pytest.mark.parametrize("local_files_only", [None, False])
def test_hub_id_not_in_cache_offline(tmp_path, monkeypatch, local_files_only) -> None:
    import huggingface_hub.constants as hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)  # read at import time
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))  # an empty cache
    with pytest.raises(HFModelNotFound) as err:
        QwenOmniEvaluator("mtavg-tests/not-a-model", local_files_only=local_files_only)
    message = str(err.value)
    assert "'mtavg-tests/not-a-model' was not found locally" in message
    assert "hf download mtavg-tests/not-a-model" in message and "Traceback" not in message


def test_registered_kind_and_option_parsing(tiny_dir, monkeypatch) -> None:
    import mtavg.evaluators.hf_backend as hf

    seen: dict[str, Any] = {}
    monkeypatch.setattr(hf, "QwenOmniEvaluator", lambda name, **kw: seen.update(name=name, **kw) or "ev")
    assert make_evaluator(f"hf:{tiny_dir}", (), seed=0, max_new_tokens="4", fps="1.5",
                          local_files_only="false", device="cpu") == "ev"
    assert seen == {"name": str(tiny_dir), "max_new_tokens": 4, "fps": 1.5, "local_files_only": False,
                    "device": "cpu"}
    with pytest.raises(ValueError, match="unknown option"):
        make_evaluator(f"hf:{tiny_dir}", (), temperature="0.5")
    with pytest.raises(ValueError, match="max_frames"):
        make_evaluator(f"hf:{tiny_dir}", (), max_frames="many")


def test_importing_the_backend_needs_no_torch() -> None:
    code = "import sys, mtavg, mtavg.evaluators.hf_backend; assert 'torch' not in sys.modules, 'torch'"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
