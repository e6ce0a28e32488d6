"""The run directory's ``samples.jsonl``: one line per item, appended as items finish.

A line is written with a single ``write`` (fsynced every 0.2 s), so Ctrl-C and SIGKILL leave whole
lines; a kill in the middle of a write can leave a partial last line, which ``SampleStore`` cuts off
when it reopens.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FSYNC_INTERVAL_S = 0.2


class PredictionsError(ValueError):
    pass


class SampleStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[str, dict[str, Any]] = {}
        self.repaired_bytes = 0
        if path.exists():
            self._load()
        self._fd: int | None = None
        self._last_sync = 0.0

    def _load(self) -> None:
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):  # partial line from a killed writer: drop it, its item is re-run
            self.repaired_bytes = len(data) - end
            with open(self.path, "r+b") as fh:
                fh.truncate(end)
        for lineno, line in enumerate(data[:end].decode("utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PredictionsError(f"{self.path}:{lineno}: not valid JSON ({exc.msg})") from exc
            self.rows[row["qid"]] = row

    def drop(self, qids: set[str]) -> None:
        """Forget rows (e.g. failed calls to retry) by rewriting the file atomically without them."""
        if not qids:
            return
        self.rows = {q: r for q, r in self.rows.items() if q not in qids}
        tmp = self.path.with_suffix(".jsonl.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            for row in self.rows.values():
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def append(self, row: dict[str, Any]) -> None:
        """One ``write`` per line (whole lines survive a killed process: the OS holds them), then an
        fsync at most every FSYNC_INTERVAL_S (against power loss) so 100+ items/s stay cheap."""
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        data = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
        written = os.write(self._fd, data)
        if written != len(data):  # a short write would leave half a line: finish it
            os.write(self._fd, data[written:])
        now = time.monotonic()
        if now - self._last_sync >= FSYNC_INTERVAL_S:
            os.fsync(self._fd)
            self._last_sync = now
        self.rows[row["qid"]] = row

    def close(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None


def read_jsonl(path: Path, error: type[Exception] = ValueError, hint: str = "") -> list[tuple[int, Any]]:
    """``(line number, value)`` of every non-blank line; a line that is not JSON raises ``error``
    naming ``path:line`` (``hint`` says what to do about it)."""
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append((lineno, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise error(f"{path}:{lineno}: not valid JSON ({exc.msg}){hint}") from exc
    return rows


def read_predictions(path: Path) -> Iterator[dict[str, Any]]:
    """Rows holding at least ``qid`` and ``raw`` from a samples/predictions .jsonl or a .json list."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        data = json.loads(text)
        rows = data if isinstance(data, list) else data.get("samples", [])
        numbered = list(enumerate(rows, 1))
    else:
        numbered = read_jsonl(path, PredictionsError)
    first_line: dict[str, int] = {}
    for lineno, row in numbered:
        if not isinstance(row, dict) or "qid" not in row:
            raise PredictionsError(f"{path}:{lineno}: a prediction needs a 'qid' field")
        if "raw" not in row:
            raise PredictionsError(f"{path}:{lineno}: qid {row['qid']!r} has no 'raw' field")
        if row["qid"] in first_line:  # two answers to one item: which one to score is not ours to guess
            raise PredictionsError(
                f"{path}:{lineno}: qid {row['qid']!r} already answered on line {first_line[row['qid']]}")
        first_line[row["qid"]] = lineno
        yield row
