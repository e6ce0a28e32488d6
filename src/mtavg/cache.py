"""Content-addressed response cache (SQLite), shared across runs and processes.

Key = backend name + evaluator fingerprint (decoding and media parameters) + prompt-template version
+ the rendered prompt + each clip's content hash and how it was sent + modality. A re-run, another
run directory or another benchmark holding the same clip and question reuses the answer with no
model call. Only successful responses are stored; errors are retried, never cached. No secret is
ever part of a key or a value (requests carry none).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from mtavg.evaluators.base import Evaluator, Request, Response
from mtavg.prompts import TEMPLATE_VERSION


def default_cache_path() -> Path:
    root = Path(os.environ.get("MTAVG_CACHE_DIR") or Path.home() / ".cache" / "mtavg")
    return root / "responses.sqlite"


def request_key(evaluator: Evaluator, request: Request, media_hashes: dict[str, str], kind: str = "answer") -> str:
    """The cache key of one call; ``media_hashes`` maps video_id -> content sha256."""
    payload = {
        "kind": kind,
        "backend": evaluator.name,
        "fingerprint": evaluator.fingerprint,
        "template": TEMPLATE_VERSION,
        "prompt": request.prompt,
        "modality": request.modality,
        "media": [[media_hashes[m.video_id], m.role, m.use_video, m.use_audio] for m in request.media],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class ResponseCache:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection used from the event-loop thread; WAL lets other processes read and write too.
        self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # survives a killed process; fsync at checkpoints
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, backend TEXT, created REAL, body TEXT)"
        )
        self.hits = self.misses = 0

    def get(self, key: str) -> Response | None:
        row = self._db.execute("SELECT body FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        body: dict[str, Any] = json.loads(row[0])
        return Response(**body)

    def put(self, key: str, backend: str, response: Response) -> None:
        body = {
            "raw": response.raw, "logprobs": response.logprobs, "usage": response.usage,
            "audio_sent": response.audio_sent, "frames_sent": response.frames_sent, "meta": response.meta,
        }
        self._db.execute(
            "INSERT OR REPLACE INTO responses (key, backend, created, body) VALUES (?, ?, ?, ?)",
            (key, backend, time.time(), json.dumps(body, ensure_ascii=False)),
        )

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        self._db.close()
