"""Shared fixtures: tiny real media files and random benchmarks built in code (no downloads)."""

from __future__ import annotations

import json
import random
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from mtavg.taxonomy import load_taxonomy

LABELS = "ABCDEFGH"


def write_tiny_clip(path: Path, seconds: float = 1.0, *, audio: bool = True, seed: int = 0) -> Path:
    """A real H.264 (+ AAC) mp4: 64x48 at 8 fps, a moving square and a tone."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=8)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("aac", rate=16000) if audio else None
        n_frames = int(seconds * 8)
        for i in range(n_frames):
            img = np.full((48, 64, 3), int(rng.integers(0, 255)), np.uint8)
            img[10:20, (i * 4) % 54:(i * 4) % 54 + 10] = 255
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
        if a is not None:
            t = np.arange(int(seconds * 16000)) / 16000
            samples = (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
            for start in range(0, len(samples), 1024):
                chunk = samples[start:start + 1024]
                frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = 16000, start, Fraction(1, 16000)
                for p in a.encode(frame):
                    c.mux(p)
            for p in a.encode():
                c.mux(p)
    return path


def _pair(rng: random.Random, video_ids: list[str]) -> list[str]:
    """Two clips of one script: videos 2k and 2k+1 share a script, as in the real benchmark."""
    k = rng.randrange(len(video_ids) // 2)
    pair = [video_ids[2 * k], video_ids[2 * k + 1]]
    rng.shuffle(pair)
    return pair


def random_items(rng: random.Random, video_ids: list[str], n_items: int) -> list[dict]:
    """Random valid QA items over every format and sub-dimension."""
    tax = load_taxonomy()
    modes = list(tax.failure_modes.values())
    items = []
    for i in range(n_items):
        fmt = rng.choice(["single", "single", "multi", "pairwise", "temporal"])
        mode = rng.choice(modes)
        n_opt = 2 if fmt == "pairwise" else rng.randint(3, 6)
        labels = list(LABELS[:n_opt])
        options = ({"A": "Clip 1", "B": "Clip 2"} if fmt == "pairwise"
                   else {lab: f"{m.name}" for lab, m in zip(labels, rng.sample(modes, n_opt), strict=True)})
        answer = sorted(rng.sample(labels, rng.randint(1, n_opt))) if fmt == "multi" else [rng.choice(labels)]
        item = {
            "qid": f"q{i:05d}", "format": fmt,
            "video_ids": _pair(rng, video_ids) if fmt == "pairwise" else [rng.choice(video_ids)],
            "question": f"Question {i} about {mode.name}?", "options": options, "answer": answer,
            "sub_dimension": mode.sub_dimension, "failure_mode": mode.slug,
        }
        if fmt == "temporal":
            windows = {LABELS[k]: [2.0 * k, 2.0 * k + 2.0] for k in range(4)}
            item.update(time_options=windows, time_answer=sorted(rng.sample(list(windows), rng.randint(1, 2))),
                        evidence="annotated evidence")
        items.append(item)
    return items


def write_bench(root: Path, videos: list[dict], items: list[dict]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "videos.jsonl").write_text("".join(json.dumps(v) + "\n" for v in videos))
    (root / "qa.jsonl").write_text("".join(json.dumps(it) + "\n" for it in items))
    return root


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Tests never touch the user's ~/.cache: response and media caches go to a temp dir."""
    monkeypatch.setenv("MTAVG_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> Path:
    return write_tiny_clip(tmp_path_factory.mktemp("media") / "clip.mp4")


@pytest.fixture()
def random_bench(tmp_path, tiny_clip) -> Path:
    """24 videos (hard links to one real clip), 120 random items, generators and settings recorded."""
    rng = random.Random(7)
    root = tmp_path / "bench"
    (root / "media").mkdir(parents=True)
    videos = []
    for i in range(24):
        dst = root / "media" / f"v{i:02d}.mp4"
        dst.write_bytes(tiny_clip.read_bytes())
        videos.append({"video_id": f"v{i:02d}", "path": f"media/v{i:02d}.mp4", "generator": f"gen{i % 3}",
                       "setting": "storyboard" if i % 2 else "short_drama", "duration_s": 1.0})
    return write_bench(root, videos, random_items(rng, [v["video_id"] for v in videos], 120))
