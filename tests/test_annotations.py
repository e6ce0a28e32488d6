"""The annotation format: loading with every problem reported, writing, and evaluator diagnoses -> annotations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mtavg.annotations import (
    AnnotatedFailure,
    AnnotationsInvalid,
    RunBenchMismatch,
    VideoAnnotation,
    annotations_from_run,
    load_annotations,
    match_failure_mode,
    validate_annotations,
    write_annotations,
)
from mtavg.bench.demo import demo_annotations, make_clip_specs
from mtavg.bench.load import Benchmark
from mtavg.bench.schema import QAItem, Video


def _line(vid: str, gen: str = "g", failures: list | None = None, **extra) -> str:
    return json.dumps({"video_id": vid, "generator": gen, "failures": failures or [], **extra})


def _fail(mode: str = "dialogue_turn_taking_failure", sd: str = "IP", a: float | None = 1.0,
          b: float | None = 2.0, **extra) -> dict:
    return {"sub_dimension": sd, "failure_mode": mode, "start_s": a, "end_s": b, **extra}


def test_load_good_file_keeps_clean_videos_and_unlocalised_failures(tmp_path: Path) -> None:
    path = tmp_path / "annotations.jsonl"
    path.write_text("\n".join([
        _line("v1", failures=[_fail(evidence="both talk"), _fail("missing_ambient_sound", "SD", None, None)],
              annotator="ann-1"),
        "",  # blank lines are harmless
        _line("v2"),
    ]) + "\n")
    anns = load_annotations(path)
    assert [a.video_id for a in anns] == ["v1", "v2"]
    assert anns[1].failures == []
    assert anns[0].annotator == "ann-1"
    assert anns[0].failures[0].evidence == "both talk" and anns[0].failures[0].localised
    assert not anns[0].failures[1].localised


def test_every_problem_is_reported_at_once_with_file_line_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    lines = [
        _line("v1"),                                                         # 1 ok
        "{not json",                                                         # 2 bad JSON
        _line("v3", failures=[_fail(sd="XX")]),                              # 3 unknown sub-dimension
        _line("v4", failures=[_fail("made_up_mode")]),                       # 4 unknown mode
        _line("v5", failures=[_fail("missing_ambient_sound", "IP")]),        # 5 mode not in its sub-dim
        _line("v6", failures=[_fail(a=5.0, b=2.0)]),                         # 6 start > end
        _line("v1"),                                                         # 7 duplicate video_id
        json.dumps({"video_id": "v8", "generator": "g"}),                    # 8 failures missing
        _line("v9", failures=[_fail(a=1.0, b=None)]),                        # 9 half a segment
        _line("v10", failures=[_fail(), _fail()]),                           # 10 same segment twice
        _line("v11", colour="red"),                                          # 11 unknown field
        json.dumps({"video_id": "v12", "generator": "g",
                    "failures": [{"sub_dimension": "IP", "failure_mode": "reaction_timing_failure"}]}),  # 12
        _line("v13", failures=[_fail(a=float("nan"), b=2.0)]),              # 13 NaN time
        _line("v14", failures=[_fail(a=-1.0, b=2.0)]),                      # 14 negative time
    ]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(AnnotationsInvalid) as exc:
        load_annotations(path)
    found = {(p.line, p.field, p.code) for p in exc.value.problems}
    assert found == {
        (2, None, "invalid_json"),
        (3, "failures.0.sub_dimension", "unknown_sub_dimension"),
        (4, "failures.0.failure_mode", "unknown_failure_mode"),
        (5, "failures.0.failure_mode", "mode_not_in_sub_dimension"),
        (6, "failures.0", "start_after_end"),
        (7, "video_id", "duplicate_video_id"),
        (8, "failures", "missing_field"),
        (9, "failures.0", "half_segment"),
        (10, "failures.1", "duplicate_failure"),
        (11, "colour", "extra_field"),
        (12, "failures.0.start_s", "missing_field"),
        (12, "failures.0.end_s", "missing_field"),
        (13, "failures.0", "non_finite_time"),
        (14, "failures.0.start_s", "negative_time"),
    }
    text = str(exc.value)
    assert f"{path}:5: failures.0.failure_mode: 'missing_ambient_sound' belongs to SD, not IP" in text
    assert f"{path}:7: video_id: duplicate video_id 'v1' (first at line 1)" in text
    assert [p.line for p in exc.value.problems] == sorted(p.line for p in exc.value.problems)


def test_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_annotations(tmp_path / "nope.jsonl")


def test_write_then_load_round_trips(tmp_path: Path) -> None:
    anns = [
        VideoAnnotation(video_id="v1", generator="g1", annotator="a", failures=[
            AnnotatedFailure(sub_dimension="IP", failure_mode="reaction_timing_failure", start_s=0.0, end_s=8.0,
                             evidence="lag"),
            AnnotatedFailure(sub_dimension="SD", failure_mode="missing_ambient_sound", start_s=None, end_s=None)]),
        VideoAnnotation(video_id="v2", generator="g2", failures=[]),
    ]
    path = write_annotations(anns, tmp_path / "sub" / "annotations.jsonl")
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert rows[0]["failures"][1] == {"sub_dimension": "SD", "failure_mode": "missing_ambient_sound",
                                      "start_s": None, "end_s": None}  # times always written
    assert "annotator" not in rows[1]
    assert load_annotations(path) == anns


def test_validate_annotations_checks_records_built_in_code() -> None:
    bad = VideoAnnotation(video_id="v", generator="g", failures=[
        AnnotatedFailure(sub_dimension="EP", failure_mode="robotic_movement", start_s=1, end_s=2)])
    with pytest.raises(AnnotationsInvalid, match="belongs to MP, not EP"):
        validate_annotations([bad])


def test_match_failure_mode_by_name_or_slug() -> None:
    assert match_failure_mode("Dialogue Turn-Taking Failure") == "dialogue_turn_taking_failure"
    assert match_failure_mode("dialogue_turn_taking_failure") == "dialogue_turn_taking_failure"
    assert match_failure_mode("  scene–music emotion conflict ") == "scene_music_emotion_conflict"
    assert match_failure_mode("30-Degree Rule Violation") == "30_degree_rule_violation"
    assert match_failure_mode("Clip 1") is None


def test_demo_annotations_are_the_injected_failures() -> None:
    specs = make_clip_specs(0)
    anns = demo_annotations(specs)
    validate_annotations(anns)
    assert [a.video_id for a in anns] == [s.video_id for s in specs]  # clean takes included
    for ann, spec in zip(anns, specs, strict=True):
        assert ann.generator == spec.generator
        assert [(f.failure_mode, f.start_s, f.end_s) for f in ann.failures] == \
            [(i.failure_mode, i.start_s, i.end_s) for i in spec.injections]
    assert sum(not a.failures for a in anns) == 4


# ---------------------------------------------------------------- evaluator diagnoses
def _bench() -> Benchmark:
    videos = {v: Video(video_id=v, path=f"media/{v}.mp4", generator=g, duration_s=8.0)
              for v, g in (("v1", "gA"), ("v2", "gA"), ("v3", "gB"))}
    window = {"A": (0.0, 2.0), "B": (2.0, 4.0), "C": (4.0, 6.0), "D": (6.0, 8.0)}
    items = [
        QAItem(qid="s1", format="single", video_ids=["v1"], question="Which?", answer=["A"], sub_dimension="IP",
               failure_mode="dialogue_turn_taking_failure",
               options={"A": "Dialogue Turn-Taking Failure", "B": "Missing Ambient Sound", "C": "Something Else"}),
        QAItem(qid="m1", format="multi", video_ids=["v1"], question="All?", answer=["A"], sub_dimension="IP",
               failure_mode="dialogue_turn_taking_failure",
               options={"A": "Dialogue Turn-Taking Failure", "B": "Missing Ambient Sound", "C": "Something Else"}),
        QAItem(qid="t1", format="temporal", video_ids=["v1"], question="Primary?", answer=["B"], sub_dimension="IP",
               failure_mode="dialogue_turn_taking_failure", time_options=window, time_answer=["B"],
               options={"A": "Reaction Timing Failure", "B": "Dialogue Turn-Taking Failure"}),
        QAItem(qid="t2", format="temporal", video_ids=["v1"], question="Primary?", answer=["B"], sub_dimension="IP",
               failure_mode="dialogue_turn_taking_failure", time_options=window, time_answer=["D"],
               options={"A": "Reaction Timing Failure", "B": "Dialogue Turn-Taking Failure"}),
        QAItem(qid="s2", format="single", video_ids=["v2"], question="Which?", answer=["A"], sub_dimension="SD",
               failure_mode="missing_ambient_sound", options={"A": "Missing Ambient Sound", "B": "Robotic Movement"}),
        QAItem(qid="p1", format="pairwise", video_ids=["v2", "v3"], question="Which clip?", answer=["A"],
               sub_dimension="SD", failure_mode="missing_ambient_sound", options={"A": "Clip 1", "B": "Clip 2"}),
    ]
    return Benchmark(root=Path("/nonexistent"), name="tiny", videos=videos, items=items)


def _sample(qid: str, answer: list[str] | None, time: list[str] | None = None, valid: bool = True) -> dict:
    pred = None if answer is None else {"answer": answer, "time": time or []}
    return {"qid": qid, "model": "judge-x", "modality": "full", "prediction": pred, "valid": valid}


def test_annotations_from_run_reads_choices_segments_and_counts_the_rest() -> None:
    samples = [
        _sample("s1", ["B"]),                  # Missing Ambient Sound on v1 (not localised)
        _sample("m1", ["A", "B", "C"]),        # turn-taking, ambient again, and an unmatched text
        _sample("t1", ["B"], ["B", "C"]),      # turn-taking at 2-4 + 4-6 -> one segment 2-6
        _sample("t2", ["B"], ["A"]),           # turn-taking again at 0-2 -> touches 2-6 -> 0-6
        _sample("s2", None, valid=False),      # invalid: skipped, v2 stays without evidence
        _sample("p1", ["A"]),                  # pairwise: names a clip, not a mode
    ]
    diag = annotations_from_run(_bench(), samples)
    assert [a.video_id for a in diag.annotations] == ["v1", "v2", "v3"]  # every benchmark video
    v1 = diag.annotations[0]
    assert v1.annotator == "judge-x" and v1.generator == "gA"
    got = sorted((f.failure_mode, f.sub_dimension, f.start_s, f.end_s) for f in v1.failures)
    assert got == [("dialogue_turn_taking_failure", "IP", 0.0, 6.0), ("missing_ambient_sound", "SD", None, None)]
    assert "m1" in next(f for f in v1.failures if f.failure_mode == "dialogue_turn_taking_failure").evidence
    assert diag.annotations[1].failures == [] and diag.annotations[2].failures == []
    assert diag.unmatched_options == {"Something Else": 1}
    assert (diag.n_used, diag.n_invalid, diag.n_other_format) == (4, 1, 1)
    assert diag.videos_not_asked == ["v2", "v3"]
    validate_annotations(diag.annotations)


def test_disjoint_windows_stay_separate_segments() -> None:
    diag = annotations_from_run(_bench(), [_sample("t1", ["B"], ["A", "C"])])
    segs = [(f.start_s, f.end_s) for f in diag.annotations[0].failures]
    assert segs == [(0.0, 2.0), (4.0, 6.0)]


def test_annotations_from_run_rejects_foreign_or_mixed_samples() -> None:
    with pytest.raises(RunBenchMismatch, match="not in benchmark tiny: zz"):
        annotations_from_run(_bench(), [_sample("zz", ["A"])])
    other = {**_sample("s2", ["A"]), "model": "judge-y"}
    with pytest.raises(RunBenchMismatch, match="mix evaluators"):
        annotations_from_run(_bench(), [_sample("s1", ["A"]), other])
    named = annotations_from_run(_bench(), [_sample("s1", ["A"]), other], annotator="panel")
    assert named.annotations[0].annotator == "panel"
