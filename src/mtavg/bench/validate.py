"""Check a benchmark directory against the contract in DESIGN.md ("Benchmark directory").

Every problem is collected (never stop at the first) and names ``file:line`` and the field, so one
run of ``mtavg validate`` shows everything an annotator has to fix.  The readers here are shared with
:mod:`mtavg.bench.load`, so loading and validating see exactly the same rows.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from pydantic import BaseModel, ValidationError

from mtavg.bench.schema import QAItem, Video
from mtavg.taxonomy import Taxonomy, TaxonomyError, taxonomy_for_bench

VIDEOS_FILE = "videos.jsonl"
QA_FILES = ("qa.jsonl", "qa.parquet")  # qa.jsonl wins when both exist
MIN_OPTIONS, MAX_OPTIONS = 2, 8
ONE_ANSWER_FORMATS = ("single", "pairwise", "temporal")
# Fields whose length rules are checked below with a clearer message than pydantic's too_short/too_long.
_OWN_LENGTH_CHECKS = ("video_ids", "answer")
_PYDANTIC_CODES = {"missing": "missing_field", "extra_forbidden": "extra_field", "literal_error": "invalid_value"}

Row = tuple[int, Any]  # (1-based line / row number, decoded value)


@dataclass(frozen=True)
class Problem:
    file: str  # relative to the benchmark root, e.g. "qa.jsonl"
    line: int | None  # 1-based line (row for parquet); None for whole-file problems
    field: str | None  # dotted path, e.g. "time_options.B.0"
    message: str
    code: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


@dataclass
class Scan:
    """What one pass over a benchmark directory found: parsed records plus every problem."""

    problems: list[Problem] = field(default_factory=list)
    videos: dict[str, Video] = field(default_factory=dict)
    items: list[QAItem] = field(default_factory=list)
    qa_file: str | None = None
    taxonomy: Taxonomy | None = None  # the one the benchmark declares; None when unread (semantic=False)


# ---------------------------------------------------------------- readers
def qa_file_of(root: Path) -> Path | None:
    return next((root / n for n in QA_FILES if (root / n).is_file()), None)


def read_jsonl(path: Path, name: str) -> tuple[list[Row], list[Problem]]:
    """Decode every non-blank line; a bad line becomes a Problem and reading goes on."""
    rows: list[Row] = []
    problems: list[Problem] = []
    with path.open(encoding="utf-8", errors="replace") as fh:
        for n, text in enumerate(fh, start=1):
            if not text.strip():
                continue  # blank lines (e.g. a trailing newline) are harmless
            try:
                rows.append((n, json.loads(text)))
            except json.JSONDecodeError as e:
                problems.append(Problem(name, n, None, f"invalid JSON: {e.msg} (column {e.colno})", "invalid_json"))
    return rows, problems


def read_parquet(path: Path) -> list[Row]:
    """Rows of qa.parquet as plain dicts shaped like qa.jsonl lines (nulls mean "absent")."""
    try:
        import pyarrow.parquet as pq  # lazy: only parquet benchmarks need pyarrow
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(f"reading {path} needs pyarrow: pip install 'mtavg-bench[parquet]'") from e
    table = pq.read_table(path)
    columns = {name: [_from_arrow(v, table.schema.field(name).type) for v in table.column(name).to_pylist()]
               for name in table.column_names}
    rows: list[Row] = []
    for i in range(table.num_rows):
        record = {k: _decode_nested(k, col[i]) for k, col in columns.items() if col[i] is not None}
        rows.append((i + 1, record))
    return rows


_NESTED_FIELDS = ("options", "video_ids", "answer", "time_options", "time_answer", "meta", "script")


def _decode_nested(key: str, value: Any) -> Any:
    # Writers that cannot store nested values (CSV converters, our own save_qa_parquet) keep them as JSON text.
    if key in _NESTED_FIELDS and isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value  # left as a string: the schema check reports the wrong type
    return value


def _from_arrow(value: Any, typ: Any) -> Any:
    """Undo Arrow's encodings of JSON objects: maps come back as pairs, structs padded with nulls."""
    import pyarrow as pa

    if value is None:
        return None
    if pa.types.is_map(typ):
        return {k: _from_arrow(v, typ.item_type) for k, v in value}
    if pa.types.is_struct(typ):
        # A struct column has the union of every row's keys; a key a row never had reads back as null.
        return {f.name: _from_arrow(value[f.name], f.type) for f in typ if value.get(f.name) is not None}
    if pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ):
        return [_from_arrow(v, typ.value_type) for v in value]
    return value


# ---------------------------------------------------------------- checks
def _schema_problems(model: type[BaseModel], raw: dict, name: str, line: int) -> tuple[Any, list[Problem]]:
    try:
        return model.model_validate(raw), []
    except ValidationError as err:
        out = []
        for e in err.errors():
            loc = ".".join(str(p) for p in e["loc"])
            if e["type"] in ("too_short", "too_long") and loc in _OWN_LENGTH_CHECKS:
                continue
            out.append(Problem(name, line, loc or None, e["msg"], _PYDANTIC_CODES.get(e["type"], "wrong_type")))
        return None, out


def _labels(n: int) -> list[str]:
    return [chr(ord("A") + i) for i in range(n)]


def _str_list(value: Any) -> list[str] | None:
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


def _check_labels(labels: list[str], fld: str, bounds: tuple[int, int] | None) -> Iterable[tuple[str, str, str]]:
    if bounds and not bounds[0] <= len(labels) <= bounds[1]:
        yield fld, f"{len(labels)} options; need {bounds[0]}-{bounds[1]}", "option_count"
    if sorted(labels) != _labels(len(labels)):
        yield fld, f"labels {', '.join(labels)} are not consecutive A, B, C, ...", "bad_option_labels"


def _check_answer(labels: list[str], answer: list[str], fld: str) -> Iterable[tuple[str, str, str]]:
    for a in answer:
        if a not in labels:
            yield fld, f"{a!r} is not an option (options: {', '.join(labels)})", "answer_not_in_options"
    dups = sorted({a for a in answer if answer.count(a) > 1})
    if dups:
        yield fld, f"duplicated label(s) {', '.join(dups)}", "duplicate_answer"


def _check_taxonomy(raw: dict, tax: Taxonomy) -> Iterable[tuple[str, str, str]]:
    sd, fm = raw.get("sub_dimension"), raw.get("failure_mode")
    if isinstance(sd, str) and sd not in tax.sub_dimensions:
        yield "sub_dimension", (f"unknown sub-dimension {sd!r} in taxonomy {tax.name} "
                                f"(known: {', '.join(tax.sub_dimensions)})"), "unknown_sub_dimension"
    if isinstance(fm, str):
        if fm not in tax.failure_modes:
            yield "failure_mode", f"unknown failure mode {fm!r} in taxonomy {tax.name}", "unknown_failure_mode"
        elif sd in tax.sub_dimensions and tax.failure_modes[fm].sub_dimension != sd:
            yield "failure_mode", (f"{fm!r} belongs to {tax.failure_modes[fm].sub_dimension}, "
                                   f"not to the item's sub-dimension {sd}"), "failure_mode_mismatch"


def _check_item(raw: dict, video_ids: set[str], tax: Taxonomy | None) -> Iterable[tuple[str, str, str]]:
    """Semantic checks on one raw qa row; guarded so a wrong-typed field (already reported) is skipped.

    ``tax`` None: the benchmark's taxonomy could not be read (reported once), so membership is not checked.
    """
    fmt = raw.get("format")
    fmt = fmt if fmt in ("single", "multi", "pairwise", "temporal") else None
    if tax is not None:
        yield from _check_taxonomy(raw, tax)

    options = raw.get("options")
    labels = list(options) if isinstance(options, dict) else None
    if labels is not None:
        yield from _check_labels(labels, "options", (MIN_OPTIONS, MAX_OPTIONS))
    answer = _str_list(raw.get("answer"))
    if answer is not None:
        if labels is not None:
            yield from _check_answer(labels, answer, "answer")
        if fmt in ONE_ANSWER_FORMATS and len(answer) != 1:
            yield "answer", f"{fmt} items take exactly one answer, got {len(answer)}", "answer_count"
        elif fmt == "multi" and not answer:
            yield "answer", "multi items take at least one answer, got 0", "answer_count"

    vids = _str_list(raw.get("video_ids"))
    if vids is not None:
        want = 2 if fmt == "pairwise" else 1
        if fmt and len(vids) != want:
            yield "video_ids", f"{fmt} items take {want} video id(s), got {len(vids)}", "video_count"
        for i, v in enumerate(vids):
            if v not in video_ids:
                yield f"video_ids.{i}", f"unknown video id {v!r} (not in {VIDEOS_FILE})", "unknown_video"

    yield from _check_temporal(raw, fmt)


def _check_temporal(raw: dict, fmt: str | None) -> Iterable[tuple[str, str, str]]:
    t_opts, t_ans = raw.get("time_options"), raw.get("time_answer")
    if fmt is None:
        return
    if fmt != "temporal":
        for k in ("time_options", "time_answer"):
            if raw.get(k) is not None:
                yield k, f"only temporal items carry {k} (format is {fmt})", "unexpected_time_field"
        return
    if not t_opts:
        yield "time_options", "temporal items need time_options {label: [start_s, end_s]}", "missing_temporal_field"
    if not t_ans:
        yield "time_answer", "temporal items need a non-empty time_answer", "missing_temporal_field"
    if not isinstance(t_opts, dict) or not t_opts:
        return
    yield from _check_labels(list(t_opts), "time_options", None)
    for label, span in t_opts.items():
        ok = isinstance(span, list | tuple) and len(span) == 2 and all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in span)
        if ok and (span[0] < 0 or span[0] >= span[1]):
            yield f"time_options.{label}", f"bad time range [{span[0]}, {span[1]}]: need 0 <= start < end", \
                "bad_time_range"
    answer = _str_list(t_ans)
    if answer:
        for f, msg, code in _check_answer(list(t_opts), answer, "time_answer"):
            yield f, msg, ("time_answer_not_in_options" if code == "answer_not_in_options" else code)


def _check_video_path(root: Path, real_root: Path, path: str) -> tuple[str, str] | None:
    if PurePosixPath(path).is_absolute() or PureWindowsPath(path).is_absolute():
        return f"path {path!r} is absolute; paths are relative to the benchmark root", "absolute_path"
    norm = posixpath.normpath(path.replace("\\", "/"))
    if norm == ".." or norm.startswith("../"):
        return f"path {path!r} leaves the benchmark root", "path_outside_root"
    full = root / path
    # Resolve symlinks: a link under media/ pointing elsewhere would break when the directory is shipped.
    if not full.resolve().is_relative_to(real_root):
        return f"path {path!r} resolves outside the benchmark root ({full.resolve()})", "path_outside_root"
    if not full.is_file():
        return f"media file {path!r} does not exist", "missing_media"
    return None


# ---------------------------------------------------------------- driver
def _read(path: Path | None, name: str) -> tuple[list[Row], list[Problem]]:
    if path is None or not path.is_file():
        what = " or ".join(QA_FILES) if name in QA_FILES else name
        return [], [Problem(name, None, None, f"missing {what}", "missing_file")]
    if path.suffix != ".parquet":
        return read_jsonl(path, name)
    try:
        return read_parquet(path), []
    except ImportError:
        raise
    except Exception as e:  # pyarrow raises several types for a corrupt or truncated file
        return [], [Problem(name, None, None, f"unreadable parquet: {e}", "invalid_parquet")]


def _typed(rows: list[Row], model: type[BaseModel], name: str, key: str, scan: Scan,
           ) -> Iterable[tuple[int, dict, Any]]:
    """(line, raw, record-or-None) for each object row; reports non-objects, schema errors, duplicate keys."""
    first: dict[str, int] = {}
    for line, raw in rows:
        if not isinstance(raw, dict):
            scan.problems.append(Problem(name, line, None, "line is not a JSON object", "not_object"))
            continue
        rec, probs = _schema_problems(model, raw, name, line)
        scan.problems += probs
        k = raw.get(key)
        if isinstance(k, str) and k in first:
            scan.problems.append(Problem(name, line, key, f"duplicate {key} {k!r} (first on line {first[k]})",
                                         f"duplicate_{key}"))
            continue
        if isinstance(k, str):
            first[k] = line
        yield line, raw, rec


def _bench_taxonomy(root: Path, problems: list[Problem]) -> Taxonomy | None:
    """The benchmark's declared taxonomy (bench.json / taxonomy.json / default); a defect becomes a Problem."""
    try:
        return taxonomy_for_bench(root)
    except TaxonomyError as e:
        file, real_root = Path(e.file or "bench.json").resolve(), root.resolve()
        name = file.relative_to(real_root).as_posix() if file.is_relative_to(real_root) else str(file)
        problems += [Problem(name, None, None, p, "invalid_taxonomy") for p in e.problems]
        return None


def scan_benchmark(root: Path, *, semantic: bool = True) -> Scan:
    """Read and check everything; ``semantic=False`` keeps only reading and schema problems."""
    root = Path(root)
    real_root = root.resolve()
    scan = Scan()
    vrows, scan.problems = _read(root / VIDEOS_FILE, VIDEOS_FILE)
    if semantic:
        scan.taxonomy = _bench_taxonomy(root, scan.problems)
    video_ids: set[str] = set()  # every id seen, even on a row with another error: no cascade into items
    for line, raw, video in _typed(vrows, Video, VIDEOS_FILE, "video_id", scan):
        if isinstance(raw.get("video_id"), str):
            video_ids.add(raw["video_id"])
        if semantic and isinstance(raw.get("path"), str):
            bad = _check_video_path(root, real_root, raw["path"])
            if bad:
                scan.problems.append(Problem(VIDEOS_FILE, line, "path", *bad))
        if video is not None:
            scan.videos[video.video_id] = video

    qpath = qa_file_of(root)
    scan.qa_file = qname = qpath.name if qpath else QA_FILES[0]
    qrows, read_problems = _read(qpath, qname)
    scan.problems += read_problems
    if not qrows and not read_problems:
        scan.problems.append(Problem(qname, None, None, "no QA items", "no_items"))
    for line, raw, item in _typed(qrows, QAItem, qname, "qid", scan):
        if semantic:
            scan.problems += [Problem(qname, line, f, m, c) for f, m, c in _check_item(raw, video_ids, scan.taxonomy)]
        if item is not None:
            scan.items.append(item)
    # Reading reports bad JSON before the checks run; present everything in file and line order.
    scan.problems.sort(key=lambda p: (p.file != VIDEOS_FILE, p.line or 0))
    return scan


def validate_benchmark(root: Path | str) -> list[Problem]:
    """Every problem in the benchmark directory ``root`` (empty list = valid)."""
    return scan_benchmark(Path(root)).problems
