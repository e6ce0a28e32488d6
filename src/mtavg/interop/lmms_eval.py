"""lmms-eval interop: export a benchmark as an lmms-eval task, import its logged samples as predictions.

Export writes ``DIR/<task>/{<task>.yaml, <task>.jsonl, utils.py}``. The YAML uses lmms-eval's
documented keys (``dataset_path: json`` + ``dataset_kwargs.data_files`` for a local file,
``doc_to_visual`` / ``doc_to_text`` / ``process_results`` as ``!function utils.…``, ``metric_list``
with an aggregation function). The docs carry mtavg's rendered prompt and absolute clip paths, so
``utils.py`` needs no mtavg in the lmms-eval environment (see lmms_eval_utils.py). Run it with
``lmms-eval --include_path DIR --tasks <task> --log_samples ...``.

Import reads the ``--log_samples`` output (``*_samples_<task>.jsonl`` lines with ``doc_id``, ``doc``,
``resps``, ``filtered_resps`` and our ``mtavg_record``; or an older ``<task>.json`` with a ``logs``
list) and writes ``{"qid", "raw"}`` lines for ``mtavg score``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from mtavg.bench import Benchmark
from mtavg.prompts import render_prompt

GENERATION = {"max_new_tokens": 512, "temperature": 0, "do_sample": False}


class LmmsEvalSamplesError(ValueError):
    """A logged-samples file that cannot be turned into predictions (names file:line)."""


@dataclass(frozen=True)
class ExportedTask:
    task: str
    directory: Path
    yaml: Path
    utils: Path
    docs: Path
    n_docs: int


def task_name_for(bench: Benchmark) -> str:
    """``mtavg_<bench>`` with only the characters lmms-eval task names use."""
    return "mtavg_" + (re.sub(r"[^0-9A-Za-z_]+", "_", bench.name).strip("_").lower() or "bench")


def export_docs(bench: Benchmark, media_root: Path | None = None) -> list[dict[str, Any]]:
    """One lmms-eval doc per item: qid, rendered prompt, clip paths (absolute, or under ``media_root``)."""
    root = Path(media_root) if media_root is not None else bench.root.resolve()
    docs = []
    for item in bench.items:
        paths = [str(root / bench.videos[v].path) for v in item.video_ids]
        docs.append({"qid": item.qid, "format": item.format, "sub_dimension": item.sub_dimension,
                     "video_ids": list(item.video_ids), "video_paths": paths, "prompt": render_prompt(item),
                     "answer": ",".join(item.answer)})
    return docs


def _yaml_text(task: str, docs_path: Path, bench: Benchmark) -> str:
    # Scalars are JSON-quoted: valid YAML, and paths with ':' or '#' stay intact.
    q = json.dumps
    gen = "\n".join(f"  {k}: {q(v)}" for k, v in GENERATION.items())
    return (f"# lmms-eval task exported by `mtavg export lmms-eval` from benchmark {bench.name}.\n"
            f"# Scores: mtavg import lmms-eval SAMPLES.jsonl --out pred.jsonl && mtavg score --predictions pred.jsonl\n"
            f"task: {q(task)}\n"
            f"dataset_path: json\n"
            f"dataset_kwargs:\n  data_files:\n    test: {q(str(docs_path))}\n"
            f"test_split: test\n"
            f"output_type: generate_until\n"
            f"doc_to_visual: !function utils.doc_to_visual\n"
            f"doc_to_text: !function utils.doc_to_text\n"
            f"doc_to_target: \"answer\"\n"
            f"generation_kwargs:\n{gen}\n"
            f"process_results: !function utils.process_results\n"
            f"metric_list:\n  - metric: mtavg_record\n    aggregation: !function utils.aggregate_records\n"
            f"    higher_is_better: true\n"
            f"metadata:\n  version: 0.0\n  mtavg_bench: {q(bench.name)}\n  n_items: {len(bench.items)}\n")


def export_lmms_eval(bench: Benchmark, out_dir: Path, *, task: str | None = None,
                     media_root: Path | None = None) -> ExportedTask:
    """Write the task directory ``out_dir/<task>/`` (YAML, docs jsonl, utils.py)."""
    name = task or task_name_for(bench)
    if not re.fullmatch(r"[A-Za-z_][0-9A-Za-z_]*", name):
        raise ValueError(f"task name {name!r}: use letters, digits and underscores")
    directory = Path(out_dir).resolve() / name
    directory.mkdir(parents=True, exist_ok=True)
    docs = export_docs(bench, media_root)
    docs_path = directory / f"{name}.jsonl"
    docs_path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    utils_path = directory / "utils.py"
    utils_path.write_text(resources.files("mtavg.interop").joinpath("lmms_eval_utils.py").read_text("utf-8"),
                          encoding="utf-8")
    yaml_path = directory / f"{name}.yaml"
    yaml_path.write_text(_yaml_text(name, docs_path, bench), encoding="utf-8")
    return ExportedTask(name, directory, yaml_path, utils_path, docs_path, len(docs))


# ---- import ---------------------------------------------------------------------------------------

def _sample_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":  # older lmms-eval: one JSON document with a "logs" list
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LmmsEvalSamplesError(f"{path}: not valid JSON ({exc.msg})") from exc
        logs = data.get("logs") if isinstance(data, dict) else data
        if not isinstance(logs, list):
            raise LmmsEvalSamplesError(f"{path}: expected a list of samples or an object with 'logs'")
        yield from enumerate(logs, 1)
        return
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as exc:
                raise LmmsEvalSamplesError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc


def _first_text(value: Any) -> str | None:
    """The first string inside lmms-eval's nested response lists (``[["text"]]`` or ``["text"]``)."""
    while isinstance(value, (list, tuple)):
        if not value:
            return None
        value = value[0]
    return value if isinstance(value, str) else None


def sample_to_prediction(row: Any, where: str) -> dict[str, Any]:
    """``{"qid", "raw", "doc_id"}`` from one logged sample; ``raw`` is the unfiltered model output."""
    if not isinstance(row, dict):
        raise LmmsEvalSamplesError(f"{where}: a sample must be a JSON object")
    record = row.get("mtavg_record") if isinstance(row.get("mtavg_record"), dict) else {}
    doc = row.get("doc") if isinstance(row.get("doc"), dict) else {}
    qid = record.get("qid") or doc.get("qid")
    if not qid:
        raise LmmsEvalSamplesError(f"{where}: no qid (neither mtavg_record.qid nor doc.qid); "
                                   "was the task exported by `mtavg export lmms-eval`?")
    raw = next((t for t in (_first_text(row.get("resps")), _first_text(row.get("filtered_resps")),
                            record.get("raw")) if isinstance(t, str)), None)
    if raw is None:
        raise LmmsEvalSamplesError(f"{where}: qid {qid!r} has no response (resps / filtered_resps)")
    return {"qid": str(qid), "raw": raw, "doc_id": row.get("doc_id")}


def import_lmms_eval_samples(samples: Path, out: Path, *, model: str | None = None) -> int:
    """Write predictions (qid, raw, model, modality, source) from lmms-eval's logged samples; returns count.

    A doc logged once per filter (same qid, same raw) is kept once; two different answers to one qid
    are an error, since which one to score is not ours to guess.
    """
    seen: dict[str, tuple[str, str]] = {}
    rows = []
    for lineno, sample in _sample_rows(samples):
        where = f"{samples}:{lineno}"
        pred = sample_to_prediction(sample, where)
        if pred["qid"] in seen:
            first_where, first_raw = seen[pred["qid"]]
            if first_raw != pred["raw"]:
                raise LmmsEvalSamplesError(f"{where}: qid {pred['qid']!r} answered differently at {first_where}")
            continue
        seen[pred["qid"]] = (where, pred["raw"])
        rows.append({**pred, "model": model or "lmms-eval", "modality": "full", "source": "lmms-eval"})
    if not rows:
        raise LmmsEvalSamplesError(f"{samples}: no samples")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return len(rows)
