"""Benchmark loading, validation and stats (DESIGN.md "Benchmark directory"); no network needed."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mtavg.bench import (
    Benchmark,
    BenchmarkInvalid,
    BenchmarkNotFound,
    Problem,
    bench_stats,
    format_stats_table,
    load_benchmark,
    resolve_benchmark,
    save_qa_parquet,
    validate_benchmark,
)
from mtavg.bench.stats import stats_rows

OPTS4 = {"A": "No issue", "B": "Frozen face", "C": "Wrong emotion", "D": "Over-acting"}
VIDEOS: list[dict[str, Any]] = [
    {"video_id": "v1", "path": "media/v1.mp4", "generator": "veo", "setting": "storyboard", "duration_s": 8.0},
    {"video_id": "v2", "path": "media/v2.mp4", "generator": "sora", "setting": "short_drama", "duration_s": 12.0},
    {"video_id": "v3", "path": "media/v3.mp4", "generator": "veo"},
]
SINGLE = {"qid": "q1", "format": "single", "video_ids": ["v1"], "question": "What goes wrong?",
          "options": OPTS4, "answer": ["B"], "sub_dimension": "EP",
          "failure_mode": "facial_expression_inconsistency"}
MULTI = {"qid": "q2", "format": "multi", "video_ids": ["v2"], "question": "Which apply?",
         "options": {"A": "Eyeline off", "B": "None", "C": "Late reaction"}, "answer": ["A", "C"],
         "sub_dimension": "IP", "failure_mode": "interaction_eyeline_failure", "meta": {"k": None, "n": [1, 2]}}
PAIRWISE = {"qid": "q3", "format": "pairwise", "video_ids": ["v1", "v2"], "question": "Which clip is worse?",
            "options": {"A": "Clip 1", "B": "Clip 2"}, "answer": ["A"], "sub_dimension": "CT",
            "failure_mode": "action_continuity_break"}
TEMPORAL = {"qid": "q4", "format": "temporal", "video_ids": ["v3"], "question": "Main issue and when?",
            "options": OPTS4, "answer": ["C"], "sub_dimension": "SD", "failure_mode": "missing_ambient_sound",
            "time_options": {"A": [0.0, 2.0], "B": [2.0, 4.5]}, "time_answer": ["B"],
            "evidence": "street is silent", "template_id": "t1"}
ITEMS = [SINGLE, MULTI, PAIRWISE, TEMPORAL]


def _line(rec: dict | str) -> str:
    return rec if isinstance(rec, str) else json.dumps(rec)


def write_bench(root: Path, videos: list = VIDEOS, items: list = ITEMS) -> Path:
    (root / "media").mkdir(parents=True, exist_ok=True)
    for v in VIDEOS:
        (root / v["path"]).write_bytes(b"\x00\x00\x00\x18ftypmp42")  # never decoded here
    (root / "videos.jsonl").write_text("".join(_line(v) + "\n" for v in videos))
    (root / "qa.jsonl").write_text("".join(_line(q) + "\n" for q in items))
    return root


def append(root: Path, name: str, rec: dict | str) -> int:
    """Append one line to a benchmark file and return its 1-based line number."""
    path = root / name
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, _line(rec)]) + "\n")
    return len(lines) + 1


def edit(base: dict, **changes: Any) -> dict:
    out = json.loads(json.dumps(base))
    for k, v in changes.items():
        if v is ...:
            out.pop(k, None)
        else:
            out[k] = v
    return out


@pytest.fixture
def bench(tmp_path: Path) -> Path:
    return write_bench(tmp_path / "bench")


# ------------------------------------------------------------------ defect catalogue
# Each case builds one bad line (given the root and a fresh key) and lists the (code, field) it must cause.
Make = Callable[[Path, str], "dict | str"]


def _outside(root: Path, key: str) -> str:
    target = root.parent / f"outside-{key}.mp4"
    target.write_bytes(b"x")  # exists, so only the location is wrong
    return target.name


def _symlink(root: Path, key: str) -> dict:
    link = root / "media" / f"{key}.mp4"
    link.symlink_to(root.parent / _outside(root, key))
    return {"video_id": key, "path": f"media/{key}.mp4"}


def _video(root: Path, key: str, **changes: Any) -> dict:
    (root / "media" / f"{key}.mp4").write_bytes(b"x")
    return edit({"video_id": key, "path": f"media/{key}.mp4"}, **changes)


QA_CASES: dict[str, tuple[Make, list[tuple[str, str | None]]]] = {
    "invalid_json": (lambda r, k: '{"qid": "' + k + '", ', [("invalid_json", None)]),
    "not_object": (lambda r, k: "[1, 2]", [("not_object", None)]),
    "missing_field": (lambda r, k: edit(SINGLE, qid=k, question=...), [("missing_field", "question")]),
    "wrong_type": (lambda r, k: edit(SINGLE, qid=k, question=5), [("wrong_type", "question")]),
    "wrong_type_nested": (lambda r, k: edit(SINGLE, qid=k, options={"A": "x", "B": 3}, answer=["A"]),
                          [("wrong_type", "options.B")]),
    "extra_field": (lambda r, k: edit(SINGLE, qid=k, difficulty="hard"), [("extra_field", "difficulty")]),
    "bad_format": (lambda r, k: edit(SINGLE, qid=k, format="choice"), [("invalid_value", "format")]),
    "unknown_sub_dimension": (lambda r, k: edit(SINGLE, qid=k, sub_dimension="XX"),
                              [("unknown_sub_dimension", "sub_dimension")]),
    "unknown_failure_mode": (lambda r, k: edit(SINGLE, qid=k, failure_mode="made_up"),
                             [("unknown_failure_mode", "failure_mode")]),
    "failure_mode_mismatch": (lambda r, k: edit(SINGLE, qid=k, failure_mode="missing_ambient_sound"),
                              [("failure_mode_mismatch", "failure_mode")]),
    "bad_option_labels": (lambda r, k: edit(SINGLE, qid=k, options={"A": "a", "B": "b", "D": "d"}, answer=["A"]),
                          [("bad_option_labels", "options")]),
    "too_few_options": (lambda r, k: edit(SINGLE, qid=k, options={"A": "a"}, answer=["A"]),
                        [("option_count", "options")]),
    "too_many_options": (lambda r, k: edit(SINGLE, qid=k, options={c: c for c in "ABCDEFGHI"}, answer=["A"]),
                         [("option_count", "options")]),
    "answer_not_in_options": (lambda r, k: edit(SINGLE, qid=k, answer=["E"]),
                              [("answer_not_in_options", "answer")]),
    "single_two_answers": (lambda r, k: edit(SINGLE, qid=k, answer=["A", "B"]), [("answer_count", "answer")]),
    "single_no_answer": (lambda r, k: edit(SINGLE, qid=k, answer=[]), [("answer_count", "answer")]),
    "multi_no_answer": (lambda r, k: edit(MULTI, qid=k, answer=[]), [("answer_count", "answer")]),
    "duplicate_answer": (lambda r, k: edit(MULTI, qid=k, answer=["A", "A"]), [("duplicate_answer", "answer")]),
    "pairwise_one_video": (lambda r, k: edit(PAIRWISE, qid=k, video_ids=["v1"]), [("video_count", "video_ids")]),
    "pairwise_three_videos": (lambda r, k: edit(PAIRWISE, qid=k, video_ids=["v1", "v2", "v3"]),
                              [("video_count", "video_ids")]),
    "single_two_videos": (lambda r, k: edit(SINGLE, qid=k, video_ids=["v1", "v2"]), [("video_count", "video_ids")]),
    "temporal_no_time_options": (lambda r, k: edit(TEMPORAL, qid=k, time_options=...),
                                 [("missing_temporal_field", "time_options")]),
    "temporal_no_time_answer": (lambda r, k: edit(TEMPORAL, qid=k, time_answer=...),
                                [("missing_temporal_field", "time_answer")]),
    "time_answer_not_in_options": (lambda r, k: edit(TEMPORAL, qid=k, time_answer=["C"]),
                                   [("time_answer_not_in_options", "time_answer")]),
    "time_range_reversed": (lambda r, k: edit(TEMPORAL, qid=k, time_options={"A": [3, 2], "B": [2, 4.5]}),
                            [("bad_time_range", "time_options.A")]),
    "time_range_negative": (lambda r, k: edit(TEMPORAL, qid=k, time_options={"A": [0, 2], "B": [-1, 4.5]}),
                            [("bad_time_range", "time_options.B")]),
    "non_temporal_time_options": (lambda r, k: edit(SINGLE, qid=k, time_options={"A": [0, 1]}),
                                  [("unexpected_time_field", "time_options")]),
    "duplicate_qid": (lambda r, k: edit(MULTI, qid="q1"), [("duplicate_qid", "qid")]),
    "unknown_video": (lambda r, k: edit(SINGLE, qid=k, video_ids=["nope"]), [("unknown_video", "video_ids.0")]),
}

VIDEO_CASES: dict[str, tuple[Make, list[tuple[str, str | None]]]] = {
    "video_invalid_json": (lambda r, k: "{video_id: " + k, [("invalid_json", None)]),
    "video_missing_field": (lambda r, k: {"video_id": k}, [("missing_field", "path")]),
    "video_wrong_type": (lambda r, k: _video(r, k, duration_s="long"), [("wrong_type", "duration_s")]),
    "video_extra_field": (lambda r, k: _video(r, k, fps=25), [("extra_field", "fps")]),
    "duplicate_video_id": (lambda r, k: _video(r, k, video_id="v1"), [("duplicate_video_id", "video_id")]),
    "absolute_path": (lambda r, k: _video(r, k, path=str(r / "media" / "v1.mp4")), [("absolute_path", "path")]),
    "dotdot_path": (lambda r, k: {"video_id": k, "path": "../" + _outside(r, k)}, [("path_outside_root", "path")]),
    "symlink_outside": (_symlink, [("path_outside_root", "path")]),
    "missing_media": (lambda r, k: {"video_id": k, "path": f"media/{k}-gone.mp4"}, [("missing_media", "path")]),
}

ALL_CASES = {**{k: ("qa.jsonl", *v) for k, v in QA_CASES.items()},
             **{k: ("videos.jsonl", *v) for k, v in VIDEO_CASES.items()}}


def keyset(problems: list[Problem]) -> set[tuple[str, int | None, str | None, str]]:
    return {(p.file, p.line, p.field, p.code) for p in problems}


def test_valid_fixture_has_no_problems(bench: Path) -> None:
    assert validate_benchmark(bench) == []


@pytest.mark.parametrize("case", list(ALL_CASES))
def test_each_defect_is_reported_with_file_line_field(bench: Path, case: str) -> None:
    file, make, expected = ALL_CASES[case]
    line = append(bench, file, make(bench, f"bad-{case}"))
    problems = validate_benchmark(bench)
    # Exactly the expected problems: no cascade of follow-up errors from one defect.
    assert keyset(problems) == {(file, line, field, code) for code, field in expected}, problems


def test_all_defects_at_once(bench: Path) -> None:
    expected = set()
    for i, (case, (file, make, exp)) in enumerate(ALL_CASES.items()):
        line = append(bench, file, make(bench, f"bad{i}-{case}"))
        expected |= {(file, line, field, code) for code, field in exp}
    problems = validate_benchmark(bench)
    assert keyset(problems) == expected
    assert len(problems) == len(ALL_CASES)
    with pytest.raises(BenchmarkInvalid) as err:
        load_benchmark(bench)
    assert len(err.value.problems) == len(ALL_CASES)
    assert all(str(p) in str(err.value) for p in problems)  # the message lists every problem


def test_problem_str(bench: Path) -> None:
    line = append(bench, "qa.jsonl", edit(SINGLE, qid="x", answer=["E"]))
    (p,) = validate_benchmark(bench)
    assert str(p) == f"qa.jsonl:{line}: answer: 'E' is not an option (options: A, B, C, D)"
    assert str(Problem("qa.jsonl", None, None, "no QA items", "no_items")) == "qa.jsonl: no QA items"


def test_path_with_dotdot_inside_root_is_fine(bench: Path) -> None:
    append(bench, "videos.jsonl", {"video_id": "v9", "path": "media/../media/v1.mp4"})
    assert validate_benchmark(bench) == []


@pytest.mark.parametrize("content", ["", "\n\n"])
def test_empty_qa_file(tmp_path: Path, content: str) -> None:
    root = write_bench(tmp_path / "b", items=[])
    (root / "qa.jsonl").write_text(content)
    assert keyset(validate_benchmark(root)) == {("qa.jsonl", None, None, "no_items")}


def test_missing_files(tmp_path: Path) -> None:
    root = write_bench(tmp_path / "b")
    (root / "qa.jsonl").unlink()
    assert keyset(validate_benchmark(root)) == {("qa.jsonl", None, None, "missing_file")}
    (root / "videos.jsonl").unlink()
    assert ("videos.jsonl", None, None, "missing_file") in keyset(validate_benchmark(root))


def test_blank_lines_keep_line_numbers(bench: Path) -> None:
    text = (bench / "qa.jsonl").read_text()
    (bench / "qa.jsonl").write_text("\n" + text + "\n" + json.dumps(edit(SINGLE, qid="z", answer=["Q"])) + "\n")
    (p,) = validate_benchmark(bench)
    assert (p.line, p.code) == (len(ITEMS) + 3, "answer_not_in_options")


# ------------------------------------------------------------------ loading
def test_load_valid(bench: Path) -> None:
    b = load_benchmark(bench)
    assert isinstance(b, Benchmark)
    assert b.name == "bench" and b.root == bench
    assert list(b.videos) == ["v1", "v2", "v3"]
    assert [it.qid for it in b.items] == ["q1", "q2", "q3", "q4"] and len(b) == 4
    assert b.item("q4").time_options == {"A": (0.0, 2.0), "B": (2.0, 4.5)}
    assert b.video_path("v2") == bench / "media" / "v2.mp4" and b.video_path("v2").is_file()
    with pytest.raises(KeyError, match="nope"):
        b.item("nope")
    with pytest.raises(KeyError, match="nope"):
        b.video_path("nope")


def test_load_without_validation_skips_semantic_checks_only(bench: Path) -> None:
    append(bench, "videos.jsonl", {"video_id": "v9", "path": "media/not-downloaded.mp4"})
    append(bench, "qa.jsonl", edit(SINGLE, qid="q9", video_ids=["v9"]))
    assert len(load_benchmark(bench, validate=False).items) == 5
    with pytest.raises(BenchmarkInvalid, match="not-downloaded"):
        load_benchmark(bench)
    append(bench, "qa.jsonl", "{broken")
    with pytest.raises(BenchmarkInvalid, match="invalid JSON"):
        load_benchmark(bench, validate=False)  # unreadable rows are never dropped silently


def test_parquet_round_trip_equals_jsonl(bench: Path) -> None:
    from_jsonl = load_benchmark(bench).items
    save_qa_parquet(from_jsonl, bench / "qa.parquet")
    (bench / "qa.jsonl").unlink()
    assert load_benchmark(bench).items == from_jsonl
    assert from_jsonl[1].meta == {"k": None, "n": [1, 2]}  # nulls inside nested values survive


def test_parquet_written_naively_with_structs(bench: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from_jsonl = load_benchmark(bench).items
    # Plain from_pylist makes struct columns padded with nulls (options of q3 gain C, D = null).
    # (meta is left out: a struct cannot tell a stored null from padding, save_qa_parquet keeps both.)
    rows = [it.model_dump(mode="json", exclude={"meta"}) for it in from_jsonl]
    pq.write_table(pa.Table.from_pylist(rows), bench / "qa.parquet")
    (bench / "qa.jsonl").unlink()
    assert load_benchmark(bench).items == [it.model_copy(update={"meta": None}) for it in from_jsonl]


def test_parquet_problems_name_rows(bench: Path) -> None:
    items = load_benchmark(bench).items
    items[2] = items[2].model_copy(update={"answer": ["Z"]})  # model_copy skips validation
    save_qa_parquet(items, bench / "qa.parquet")
    (bench / "qa.jsonl").unlink()
    assert keyset(validate_benchmark(bench)) == {("qa.parquet", 3, "answer", "answer_not_in_options")}


def test_corrupt_parquet_is_a_problem(bench: Path) -> None:
    (bench / "qa.jsonl").unlink()
    (bench / "qa.parquet").write_bytes(b"not parquet")
    assert keyset(validate_benchmark(bench)) == {("qa.parquet", None, None, "invalid_parquet")}


# ------------------------------------------------------------------ resolution
def _fake_hf_cache(cache: Path, repo: str, sha: str = "0123456789abcdef0123456789abcdef01234567") -> Path:
    repo_dir = cache / ("datasets--" + repo.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(sha)
    return write_bench(repo_dir / "snapshots" / sha)


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("HF_HUB_CACHE", "HF_HOME", "HF_DATASETS_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)  # "org/name" must not exist as a local path
    return tmp_path


def test_resolve_hf_id_from_local_cache(offline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    snap = _fake_hf_cache(offline / "hub", "org/name")
    monkeypatch.setenv("HF_HUB_CACHE", str(offline / "hub"))
    assert resolve_benchmark("org/name") == snap
    b = load_benchmark("hf://datasets/org/name")
    assert b.name == "org/name" and len(b.items) == 4


def test_resolve_hf_id_via_hf_home(offline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    snap = _fake_hf_cache(offline / "home" / "hub", "org/name")
    monkeypatch.setenv("HF_HOME", str(offline / "home"))
    assert resolve_benchmark("org/name") == snap


def test_hf_id_absent_gives_clear_message(offline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(offline / "hub"))
    with pytest.raises(BenchmarkNotFound) as err:
        resolve_benchmark("org/missing")
    msg = str(err.value)
    assert "org/missing" in msg and "does not exist" in msg
    assert "not in the local HF cache" in msg and str(offline / "hub") in msg and "HF_HUB_OFFLINE" in msg
    assert "huggingface-cli download --repo-type dataset org/missing" in msg


def test_hf_missing_library(offline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import now raises ImportError
    with pytest.raises(BenchmarkNotFound, match=r"mtavg-bench\[hf\]"):
        resolve_benchmark("org/name")


def test_local_path_errors(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkNotFound, match="does not exist"):
        resolve_benchmark(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BenchmarkNotFound, match="holds no videos.jsonl"):
        resolve_benchmark(tmp_path / "empty")


# ------------------------------------------------------------------ stats
def test_stats(bench: Path) -> None:
    s = bench_stats(load_benchmark(bench))
    assert (s["n_videos"], s["n_items"], s["temporal_items"]) == (3, 4, 1)
    assert s["formats"] == {"single": 1, "multi": 1, "pairwise": 1, "temporal": 1}
    assert list(s["sub_dimensions"]) == ["EP", "MP", "DP", "IP", "MC", "EC", "SD", "IC", "IG", "CT"]
    assert s["sub_dimensions"] == {"EP": 1, "MP": 0, "DP": 0, "IP": 1, "MC": 0, "EC": 0, "SD": 1,
                                   "IC": 0, "IG": 0, "CT": 1}
    assert s["categories"] == {"acting": 2, "atmosphere": 1, "cinematography": 1}
    assert (s["failure_modes_covered"], s["failure_modes_total"]) == (4, 45)
    assert s["videos_per_setting"] == {"short_drama": 1, "storyboard": 1}
    assert s["items_per_setting"] == {"storyboard": 2, "short_drama": 1}  # q3 via its first clip; q4 none
    assert s["videos_per_generator"] == {"veo": 2, "sora": 1}
    assert s["mean_options"] == 3.25
    assert (s["mean_duration_s"], s["total_duration_s"]) == (10.0, 20.0)
    json.dumps(s)  # plain JSON for results / reports
    rows = dict(stats_rows(s))
    assert rows["QA items"] == "4" and rows["Failure modes covered"] == "4 / 45"
    assert format_stats_table(s).row_count == len(stats_rows(s))
