"""The ``Table`` model and its renderers: Markdown, CSV, LaTeX (booktabs) and HTML.

A ``Table`` holds numbers (with optional 95% CIs), a one-level grouped header (e.g. Acting /
Atmosphere / Cinematography over the sub-dimension codes) and which cells are best per column; the
renderers only format it. ``mtavg.report.tables`` builds the papers' tables on top of it.
"""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Better = Literal["max", "min"] | None
MISSING = "–"  # an absent score (sub-dimension with no items, unjudged RC): never shown as 0


@dataclass
class Cell:
    value: float | None = None
    ci: tuple[float, float] | None = None  # 95% interval, same unit as value
    text: str | None = None  # shown instead of the number, e.g. "3/60"
    bold: bool = False  # best in its column (set by Table.mark_best)


@dataclass
class Row:
    label: str
    cells: list[Cell]
    ranked: bool = True  # False: shown but never bold and not compared (e.g. an "all clips" row)


@dataclass
class Table:
    """A table with a one-level grouped header; ``groups`` are (label, span) over the data columns."""

    title: str
    columns: list[str]
    rows: list[Row]
    caption: str = ""
    row_header: str = "Evaluator"
    groups: list[tuple[str, int]] = field(default_factory=list)
    better: list[Better] | None = None  # per column: which direction is best (None: not ranked)
    digits: list[int] | None = None  # per column (default 2)
    key: str = "table"  # file stem and LaTeX label (tab:<key>)

    def __post_init__(self) -> None:
        n = len(self.columns)
        if self.groups and sum(span for _, span in self.groups) != n:
            raise ValueError(f"table {self.key}: group spans {self.groups} do not cover {n} columns")
        for name, per_column in (("better", self.better), ("digits", self.digits)):
            if per_column is not None and len(per_column) != n:
                raise ValueError(f"table {self.key}: {name} has {len(per_column)} entries for {n} columns")
        for row in self.rows:
            if len(row.cells) != n:
                raise ValueError(f"table {self.key}, row {row.label!r}: {len(row.cells)} cells for {n} columns")

    def digits_of(self, j: int) -> int:
        return 2 if self.digits is None else self.digits[j]

    def mark_best(self) -> Table:
        """Bold the best value of each ranked column, compared as displayed (ties are all bold).

        A column with fewer than two values has no best.
        """
        for j, direction in enumerate(self.better or [None] * len(self.columns)):
            shown = [(row.cells[j], round(row.cells[j].value, self.digits_of(j))) for row in self.rows
                     if row.ranked and row.cells[j].value is not None]
            for cell in (row.cells[j] for row in self.rows):
                cell.bold = False
            if direction is None or len(shown) < 2:
                continue
            best = (max if direction == "max" else min)(v for _, v in shown)
            for cell, v in shown:
                cell.bold = v == best
        return self

    @property
    def has_ci(self) -> bool:
        return any(c.ci is not None for row in self.rows for c in row.cells)

    # ------------------------------------------------------------------ renderers
    def _plain(self, cell: Cell, j: int, ci: bool) -> str:
        if cell.text is not None:
            return cell.text
        if cell.value is None:
            return MISSING
        d = self.digits_of(j)
        out = f"{cell.value:.{d}f}"
        if ci and cell.ci is not None:
            out += f" [{cell.ci[0]:.{d}f}, {cell.ci[1]:.{d}f}]"
        return out

    def _group_cells(self) -> list[str]:
        return [cell for label, span in self.groups for cell in [label, *[""] * (span - 1)]]

    def to_markdown(self, *, ci: bool = False) -> str:
        """GitHub Markdown. With groups, the header row carries the group labels (Markdown has no
        column spans) and the column names follow as the first row; best values are **bold**."""

        def esc(text: str) -> str:
            return text.replace("|", "\\|")

        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(cells) + " |"

        names = [esc(self.row_header), *map(esc, self.columns)]
        rule = "|---|" + "---:|" * len(self.columns)
        head = [line(["", *map(esc, self._group_cells())]), rule, line(names)] if self.groups else [line(names), rule]
        def shown(c: Cell, j: int) -> str:
            text = esc(self._plain(c, j, ci))
            return f"**{text}**" if c.bold else text

        body = [line([esc(row.label), *(shown(c, j) for j, c in enumerate(row.cells))]) for row in self.rows]
        return "\n".join([*([self.caption, ""] if self.caption else []), *head, *body])

    def to_csv(self) -> str:
        """One header row of column names; numbers at full precision (``text`` cells as shown, absent
        values empty); ``<column> ci95 lo/hi`` columns follow each column when the table has CIs."""
        with_ci = self.has_ci
        header = [self.row_header]
        for name in self.columns:
            header += [name, f"{name} ci95 lo", f"{name} ci95 hi"] if with_ci else [name]
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        for row in self.rows:
            out = [row.label]
            for c in row.cells:
                out.append(c.text if c.text is not None else "" if c.value is None else repr(float(c.value)))
                if with_ci:
                    out += ["", ""] if c.ci is None else [repr(float(c.ci[0])), repr(float(c.ci[1]))]
            writer.writerow(out)
        return buf.getvalue()

    def to_latex(self, *, ci: bool = False) -> str:
        """A booktabs ``table`` float: grouped header with \\multicolumn and \\cmidrule, best in \\textbf."""
        n = len(self.columns)
        lines = [r"\begin{table}[t]", r"\centering",
                 rf"\caption{{{latex_escape(' '.join(filter(None, [self.title, self.caption])))}}}",
                 rf"\label{{tab:{latex_escape(self.key)}}}", rf"\begin{{tabular}}{{l{'r' * n}}}", r"\toprule"]
        if self.groups:
            cells, rules, start = [""], [], 2
            for label, span in self.groups:
                cells.append(rf"\multicolumn{{{span}}}{{c}}{{{latex_escape(label)}}}" if label else
                             " & ".join([""] * span))
                if label:
                    rules.append(rf"\cmidrule(lr){{{start}-{start + span - 1}}}")
                start += span
            lines += [" & ".join(cells) + r" \\", " ".join(rules)] if rules else [" & ".join(cells) + r" \\"]
        lines += [" & ".join(map(latex_escape, [self.row_header, *self.columns])) + r" \\", r"\midrule"]
        for row in self.rows:
            cells = [latex_escape(row.label)]
            for j, c in enumerate(row.cells):
                text = latex_escape(self._plain(c, j, False))
                text = rf"\textbf{{{text}}}" if c.bold else text
                if ci and c.ci is not None and c.text is None and c.value is not None:
                    d = self.digits_of(j)
                    text += rf"\,{{\scriptsize[{c.ci[0]:.{d}f}, {c.ci[1]:.{d}f}]}}"
                cells.append(text)
            lines.append(" & ".join(cells) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
        return "\n".join(lines)

    def to_html(self, *, ci: bool = False) -> str:
        """A ``<table class="mtavg-table">``: caption, <thead> with the group row, best cells ``class="best"``."""
        e = html.escape
        parts = [f'<table class="mtavg-table" id="{e(self.key)}">',
                 f"<caption><strong>{e(self.title)}</strong>{' ' + e(self.caption) if self.caption else ''}</caption>",
                 "<thead>"]
        if self.groups:
            groups = "".join(f'<th colspan="{span}" class="group">{e(label)}</th>' for label, span in self.groups)
            parts.append(f"<tr><th></th>{groups}</tr>")
        parts.append("<tr>" + "".join(f'<th scope="col">{e(n)}</th>' for n in [self.row_header, *self.columns])
                     + "</tr>")
        parts += ["</thead>", "<tbody>"]
        for row in self.rows:
            cells = []
            for j, c in enumerate(row.cells):
                classes = ["num", *(["best"] if c.bold else []), *(["missing"] if c.value is None and c.text is None
                                                                     else [])]
                body = e(self._plain(c, j, False))
                if ci and c.ci is not None and c.text is None and c.value is not None:
                    d = self.digits_of(j)
                    body += f' <span class="ci">[{c.ci[0]:.{d}f}, {c.ci[1]:.{d}f}]</span>'
                cells.append(f'<td class="{" ".join(classes)}">{body}</td>')
            parts.append(f'<tr><th scope="row">{e(row.label)}</th>{"".join(cells)}</tr>')
        parts += ["</tbody>", "</table>"]
        return "\n".join(parts)


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "|": r"\textbar{}", "<": r"\textless{}", ">": r"\textgreater{}", "–": "--", "—": "---",
                  "∩": r"$\cap$", "×": r"$\times$", "±": r"$\pm$"}
_LATEX_RE = re.compile("|".join(re.escape(k) for k in _LATEX_SPECIAL))


def latex_escape(text: str) -> str:
    """Text safe in LaTeX text mode (names like ``a_b&c`` or ``50%``)."""
    return _LATEX_RE.sub(lambda m: _LATEX_SPECIAL[m.group(0)], text)
