"""lmms-eval interop: the exported task is well-formed and self-contained; imported samples score identically."""

from __future__ import annotations

import ast
import importlib.util
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mtavg.bench import load_benchmark
from mtavg.bench.demo import build_demo_bench
from mtavg.cli import app
from mtavg.evaluators import make_evaluator
from mtavg.interop import LmmsEvalSamplesError, export_lmms_eval, import_lmms_eval_samples
from mtavg.prompts import render_prompt
from mtavg.run import run_eval

SCORE_KEYS = ("n_items", "n_invalid", "overall", "categories", "formats", "temporal", "multi_strict")


class _TaskLoader(yaml.SafeLoader):
    """lmms-eval's YAML: ``!function utils.name`` marks a function in the task's utils.py."""


_TaskLoader.add_constructor("!function", lambda loader, node: ("function", loader.construct_scalar(node)))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return load_benchmark(build_demo_bench(tmp_path_factory.mktemp("demo") / "bench", seed=0))


@pytest.fixture(scope="module")
def exported(demo, tmp_path_factory):
    return export_lmms_eval(demo, tmp_path_factory.mktemp("lmms") / "tasks")


def _utils(path: Path):
    spec = importlib.util.spec_from_file_location("exported_utils", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _docs(exported) -> list[dict]:
    return [json.loads(x) for x in exported.docs.read_text().splitlines()]


def test_yaml_uses_lmms_eval_keys_and_points_at_existing_files(exported, demo):
    cfg = yaml.load(exported.yaml.read_text(), Loader=_TaskLoader)  # noqa: S506 - our own loader, safe base
    assert cfg["task"] == exported.task == "mtavg_bench" and exported.yaml.name == "mtavg_bench.yaml"
    assert cfg["dataset_path"] == "json" and cfg["test_split"] == "test"
    assert Path(cfg["dataset_kwargs"]["data_files"]["test"]) == exported.docs and exported.docs.exists()
    assert cfg["output_type"] == "generate_until" and cfg["generation_kwargs"]["temperature"] == 0
    utils = _utils(exported.utils)
    functions = [cfg["doc_to_visual"], cfg["doc_to_text"], cfg["process_results"],
                 cfg["metric_list"][0]["aggregation"]]
    for kind, ref in functions:
        module, name = ref.split(".")
        assert kind == "function" and module == "utils" and callable(getattr(utils, name))
    assert cfg["metadata"]["n_items"] == len(demo.items) == exported.n_docs


def test_utils_is_self_contained_and_renders_our_prompt(exported, demo):
    imported = {n.module if isinstance(n, ast.ImportFrom) else a.name
                for n in ast.walk(ast.parse(exported.utils.read_text())) if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in n.names}
    assert not any(str(m).startswith("mtavg") for m in imported), imported  # lmms-eval's env may lack mtavg
    utils = _utils(exported.utils)
    for doc in _docs(exported):
        item = demo.item(doc["qid"])
        assert utils.doc_to_text(doc) == render_prompt(item)
        assert utils.doc_to_text(doc, {"pre_prompt": "P:", "post_prompt": ":Q"}) == f"P:{render_prompt(item)}:Q"
        paths = utils.doc_to_visual(doc, None)
        assert paths == [str(demo.video_path(v).resolve()) for v in item.video_ids]
        assert all(Path(p).is_file() for p in paths)
        assert utils.process_results(doc, ['{"answer": ["A"]}']) == {
            "mtavg_record": {"qid": doc["qid"], "raw": '{"answer": ["A"]}'}}
    assert utils.aggregate_records([{"raw": "A"}, {"raw": " "}]) == 50.0


def test_media_root_rewrites_paths_for_another_machine(demo, tmp_path):
    other = export_lmms_eval(demo, tmp_path, task="mine", media_root=Path("/mnt/bench"))
    doc = _docs(other)[0]
    assert other.yaml.name == "mine.yaml" and doc["video_paths"][0].startswith("/mnt/bench/media/")
    with pytest.raises(ValueError, match="task name"):
        export_lmms_eval(demo, tmp_path, task="bad-name")


def _lmms_samples(exported, run_rows: dict[str, dict], path: Path) -> Path:
    """What lmms-eval --log_samples writes for our task, holding a real run's raw answers."""
    utils = _utils(exported.utils)
    lines = []
    for doc_id, doc in enumerate(_docs(exported)):
        raw = run_rows[doc["qid"]]["raw"]
        sample = {"doc_id": doc_id, "doc": doc, "target": doc["answer"],
                  "arguments": [[utils.doc_to_text(doc), {"max_new_tokens": 512}]],
                  "resps": [[raw]], "filtered_resps": [raw], "doc_hash": "x", "prompt_hash": "y",
                  **utils.process_results(doc, [raw])}
        lines.append(sample)
        if doc_id % 7 == 0:
            lines.append({**sample, "filter": "second"})  # one doc logged per filter: kept once
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(s) + "\n" for s in lines))
    return path


def test_imported_samples_score_exactly_like_the_run(exported, demo, tmp_path):
    run_dir = tmp_path / "run"
    res = run_eval(demo, make_evaluator("baseline:random", demo.items, seed=5), run_dir, progress=False, n_boot=0)
    rows = {r["qid"]: r for r in map(json.loads, (run_dir / "samples.jsonl").read_text().splitlines())}
    samples = _lmms_samples(exported, rows, tmp_path / "logs" / "20260101_samples_mtavg_bench.jsonl")
    pred = tmp_path / "pred.jsonl"
    runner = CliRunner()
    out = runner.invoke(app, ["import", "lmms-eval", str(samples), "--out", str(pred), "--model", "baseline:random"])
    assert out.exit_code == 0, out.output
    preds = [json.loads(x) for x in pred.read_text().splitlines()]
    assert len(preds) == len(demo.items) and {p["qid"]: p["raw"] for p in preds} == {q: r["raw"] for q, r in
                                                                                    rows.items()}
    scored = runner.invoke(app, ["score", "--bench", str(demo.root), "--predictions", str(pred),
                                 "--out", str(tmp_path / "results.json")])
    assert scored.exit_code == 0, scored.output
    again = json.loads((tmp_path / "results.json").read_text())
    for key in SCORE_KEYS:
        assert again[key] == res[key], key
    assert {k: v["score"] for k, v in again["sub_dimensions"].items()} == \
        {k: v["score"] for k, v in res["sub_dimensions"].items()}
    assert again["model"] == "baseline:random"


def test_old_json_logs_and_bad_samples_are_named(tmp_path):
    old = tmp_path / "task.json"
    old.write_text(json.dumps({"args": {}, "logs": [{"doc_id": 0, "doc": {"qid": "q1"}, "resps": [["B"]],
                                                      "filtered_resps": ["B"]}]}))
    assert import_lmms_eval_samples(old, tmp_path / "p.jsonl") == 1
    assert json.loads((tmp_path / "p.jsonl").read_text())["raw"] == "B"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"doc_id": 0, "doc": {}, "resps": [["A"]]}) + "\n")
    with pytest.raises(LmmsEvalSamplesError, match=r"bad\.jsonl:1: no qid"):
        import_lmms_eval_samples(bad, tmp_path / "p2.jsonl")
    clash = tmp_path / "clash.jsonl"
    clash.write_text("".join(json.dumps({"doc": {"qid": "q1"}, "resps": [[x]]}) + "\n" for x in ("A", "B")))
    with pytest.raises(LmmsEvalSamplesError, match=r"clash\.jsonl:2: qid 'q1' answered differently"):
        import_lmms_eval_samples(clash, tmp_path / "p3.jsonl")
    result = CliRunner().invoke(app, ["import", "lmms-eval", str(bad), "--out", str(tmp_path / "p4.jsonl")])
    assert result.exit_code == 2 and "no qid" in " ".join(result.output.split())


def test_lmms_eval_loads_the_exported_task(exported):
    pytest.importorskip("lmms_eval", reason="lmms-eval not installed (heavy); the YAML checks above still run")
    from lmms_eval.tasks import TaskManager, get_task_dict

    manager = TaskManager(include_path=str(exported.directory.parent))
    assert exported.task in manager.all_tasks
    task = get_task_dict([exported.task], manager)[exported.task]
    docs = list(task.test_docs())
    assert len(docs) == exported.n_docs and task.doc_to_visual(docs[0]) == docs[0]["video_paths"]
