"""A progress bar for long work: items done, rate, elapsed, ETA, and invalid/error counts."""

from __future__ import annotations

from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class ItemProgress:
    def __init__(self, total: int, *, done: int = 0, label: str = "items", enabled: bool = True,
                 ledger: Any = None) -> None:
        self.invalid = self.errors = 0
        self.ledger = ledger  # mtavg.loop.Ledger: calls, cache hits, retries, cost so far
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("invalid {task.fields[invalid]} errors {task.fields[errors]} {task.fields[ledger]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            disable=not enabled, transient=False,
        )
        self._task = self._progress.add_task(label, total=total, completed=done, invalid=0, errors=0,
                                             ledger=self._ledger_text())

    def _ledger_text(self) -> str:
        if self.ledger is None:
            return ""
        lg = self.ledger
        return f"calls {lg.calls} cached {lg.cached} retries {lg.retries} ${lg.cost_usd:.4f}"

    def __enter__(self) -> ItemProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.stop()

    def advance(self, row: dict[str, Any]) -> None:
        self.errors += bool(row.get("error"))
        self.invalid += not row.get("valid")
        self._progress.update(self._task, advance=1, invalid=self.invalid, errors=self.errors,
                              ledger=self._ledger_text())
