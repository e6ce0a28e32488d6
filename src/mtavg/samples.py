"""The run directory's ``samples.jsonl``: one line per item, appended and fsynced as items finish.

A line is written with a single ``write`` then ``fsync``, so Ctrl-C leaves whole lines; a SIGKILL in
the middle of a write can leave a partial last line, which ``SampleStore`` cuts off when it reopens.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class PredictionsError(ValueError):
    pass


class SampleStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[str, dict[str, Any]] = {}
        self.repaired_bytes = 0
        if path.exists():
            self._load()
        self._fh = None

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
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "ab")  # noqa: SIM115 - kept open for the run, closed in close()
        self._fh.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.rows[row["qid"]] = row

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def read_predictions(path: Path) -> Iterator[dict[str, Any]]:
    """Rows holding at least ``qid`` and ``raw`` from a samples/predictions .jsonl or a .json list."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        data = json.loads(text)
        rows = data if isinstance(data, list) else data.get("samples", [])
        numbered = list(enumerate(rows, 1))
    else:
        numbered = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                numbered.append((lineno, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise PredictionsError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
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
