"""mtavg.score_clip / score_clips / ascore_clips: P(Yes) per clip from Python, against a loopback server."""

from __future__ import annotations

import asyncio
import math
import threading
import zlib
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest

import mtavg
from conftest import write_tiny_clip
from mtavg import ClipScore, ClipScoreError
from mtavg.testing.fake_openai import FakeOpenAIServer

YES, NO = (" Yes", "Yes", "yes"), ("No", "NO")


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.setenv("MTAVG_CACHE_DIR", str(tmp_path / "media_cache"))


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("api_clips")
    return [write_tiny_clip(root / f"{name}.mp4", 1.0, seed=i) for i, name in enumerate(("alpha", "beta", "gamma"))]


def stem_of(body: dict) -> str:
    for msg in body.get("messages") or []:
        for part in msg.get("content") if isinstance(msg.get("content"), list) else []:
            url = (part.get("video_url") or part.get("audio_url") or {}).get("url", "") if isinstance(part, dict) else ""
            if url.startswith("file://"):
                return Path(unquote(urlparse(url).path)).stem
    return "?"


def alts_for(stem: str) -> list[tuple[str, float]]:
    rng = np.random.default_rng(zlib.crc32(stem.encode()))
    tokens = [*YES, *NO, "Maybe"]
    probs = rng.dirichlet(np.ones(len(tokens))) * 0.95
    return [(tokens[i], math.log(float(probs[i]))) for i in rng.permutation(len(tokens))]


def hand(stem: str) -> float:
    alts = alts_for(stem)
    yes = sum(math.exp(lp) for t, lp in alts if t in YES)
    no = sum(math.exp(lp) for t, lp in alts if t in NO)
    return yes / (yes + no)


class PerClip:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []  # (stem, prompt text)
        self.lock = threading.Lock()

    def __call__(self, body: dict) -> list[tuple[str, float]]:
        stem = stem_of(body)
        text = "\n".join(p.get("text", "") for m in body["messages"] for p in m["content"] if p.get("type") == "text")
        with self.lock:
            self.seen.append((stem, text))
        return alts_for(stem)


@pytest.fixture()
def srv():
    rec = PerClip()
    with FakeOpenAIServer(first_token=rec) as server:
        server.rec = rec
        yield server


def fake(srv, tmp_path) -> dict:
    return {"evaluator": "openai:fake", "base_url": srv.base_url, "transport": "file",
            "cache_path": tmp_path / "c.sqlite"}


def test_random_baseline_is_a_deterministic_probability(clips):
    a = mtavg.score_clip(clips[0], evaluator="baseline:random")
    assert isinstance(a, float) and 0.0 <= a <= 1.0
    assert mtavg.score_clip(str(clips[0]), evaluator="baseline:random") == a
    assert mtavg.score_clip(clips[1], evaluator="baseline:random") != a  # seeded per clip, not one constant
    assert mtavg.score_clip(clips[0], evaluator="baseline:random", dimension="speech_realism") != a


def test_score_clip_on_the_server_is_the_hand_value_and_cached(clips, srv, tmp_path):
    p = mtavg.score_clip(clips[0], **fake(srv, tmp_path))
    assert p == pytest.approx(hand("alpha"), abs=1e-12)
    entry = srv.log[0]
    assert (entry["max_tokens"], entry["logprobs"], entry["top_logprobs"]) == (1, True, 20)
    assert "Is this audio and video properly matched?" in srv.rec.seen[0][1]
    # a clip scored before costs nothing (the cache path may be a str)
    again = mtavg.score_clips([clips[0]], **{**fake(srv, tmp_path), "cache_path": str(tmp_path / "c.sqlite")})
    assert len(srv.log) == 1 and again[0].cached is True and again[0].score == p
    # cache=False asks again
    assert mtavg.score_clip(clips[0], **fake(srv, tmp_path), cache=False) == p and len(srv.log) == 2


def test_score_clips_keeps_order_and_reports_a_missing_file(clips, srv, tmp_path):
    missing = tmp_path / "nowhere" / "gone.mp4"
    paths = [clips[2], missing, clips[0], clips[1]]
    out = mtavg.score_clips(paths, concurrency=4, **fake(srv, tmp_path))
    assert [r.path for r in out] == [str(p) for p in paths]
    assert all(isinstance(r, ClipScore) for r in out)
    for r, stem in zip([out[0], out[2], out[3]], ("gamma", "alpha", "beta"), strict=True):
        assert r.error is None and r.score == pytest.approx(hand(stem), abs=1e-12)
    assert out[1].score is None and "gone.mp4" in out[1].error
    assert len(srv.log) == 3  # the missing clip never reached the server
    with pytest.raises(ClipScoreError, match="gone.mp4"):
        mtavg.score_clip(missing, **fake(srv, tmp_path))


def test_text_dimensions_need_the_text(clips, srv, tmp_path):
    out = mtavg.score_clips(clips[:2], dimension="video_text", **fake(srv, tmp_path))
    assert all(r.score is None and "text" in r.error for r in out)
    with pytest.raises(ClipScoreError, match="text"):
        mtavg.score_clip(clips[0], dimension="video_text", **fake(srv, tmp_path))
    assert srv.log == []
    p = mtavg.score_clip(clips[0], dimension="video_text", text="a white square slides right", **fake(srv, tmp_path))
    assert 0.0 < p < 1.0
    stem, text = srv.rec.seen[-1]
    assert "Does the video match this description: a white square slides right" in text
    assert p == pytest.approx(hand(stem), abs=1e-12)
    assert srv.log[-1]["video_has_audio"] == [False]  # video_text sees the picture only
    with pytest.raises(ValueError, match="2 clips but 1 texts"):
        mtavg.score_clips(clips[:2], dimension="video_text", texts=["one"], **fake(srv, tmp_path))


def test_unknown_dimension_is_a_key_error_listing_the_known_ones(clips):
    for call in (mtavg.score_clip, lambda p, **kw: mtavg.score_clips([p], **kw)):
        with pytest.raises(KeyError, match="av_consistency.*video_text"):
            call(clips[0], dimension="lip_sync", evaluator="baseline:random")


def test_an_evaluator_without_probabilities_is_refused(clips):
    with pytest.raises(ValueError, match="baseline:text cannot score yes/no probabilities"):
        mtavg.score_clips(clips[:1], evaluator="baseline:text")


def test_ascore_clips_inside_a_running_loop(clips, srv, tmp_path):
    async def main() -> tuple[list[ClipScore], list[ClipScore]]:
        random = await mtavg.ascore_clips(clips, evaluator="baseline:random")
        served = await mtavg.ascore_clips(clips, **fake(srv, tmp_path))
        return random, served

    random, served = asyncio.run(main())
    assert [r.score for r in random] == [r.score for r in mtavg.score_clips(clips, evaluator="baseline:random")]
    assert [r.score for r in served] == pytest.approx([hand(p.stem) for p in clips], abs=1e-12)
