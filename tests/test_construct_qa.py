"""QA construction from failure annotations: templates, distractors, balance, temporal grid, bench output."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtavg.annotations import AnnotatedFailure, VideoAnnotation, match_failure_mode, write_annotations
from mtavg.bench import load_benchmark, validate_benchmark
from mtavg.bench.schema import FORMATS, Video
from mtavg.construct.qa import QAConfig, QAConstructionError, build_qa, generate_qa, time_grid, windows_hit
from mtavg.construct.qa_bench import load_videos_meta, write_benchmark
from mtavg.construct.similarity import CONFUSABLE_PAIRS, ModeSimilarity, co_occurrence
from mtavg.construct.templates import TemplateError, load_templates, parse_templates
from mtavg.taxonomy import load_taxonomy

GENERATORS = ("veo3", "sora2", "kling", "wan")


def make_fixture(root: Path, n_scripts: int = 22, seed: int = 7) -> tuple[list[VideoAnnotation], dict[str, Video]]:
    """``2 * n_scripts`` annotated clips (two generators per script) with placeholder media files.

    Modes are taken 7 apart around the taxonomy so every sub-dimension occurs; some clips are clean and
    some failures are not localised (null times), as in real annotation files.
    """
    tax = load_taxonomy()
    modes = list(tax.failure_modes)
    rng = random.Random(seed)
    anns, videos, k = [], [], 0
    (root / "media").mkdir(parents=True, exist_ok=True)
    for s in range(n_scripts):
        duration = float(rng.choice([8, 9, 10]))
        for j in range(2):
            vid = f"clip-{s:02d}-{j}"
            failures: list[AnnotatedFailure] = []
            for _ in range([0, 1, 1, 2, 2, 3][rng.randrange(6)]):
                mode = modes[k % len(modes)]
                k += 7
                start = None if rng.random() < 0.15 else round(rng.uniform(0, duration - 2), 1)
                end = None if start is None else round(min(duration, start + rng.uniform(0.5, 3)), 1)
                failures.append(AnnotatedFailure(sub_dimension=tax.failure_modes[mode].sub_dimension,
                                                 failure_mode=mode, start_s=start, end_s=end,
                                                 evidence=f"{tax.failure_modes[mode].name} at {start}"))
            anns.append(VideoAnnotation(video_id=vid, generator=GENERATORS[(s + j) % 4], annotator=f"ann-{s % 3}",
                                        failures=failures))
            (root / "media" / f"{vid}.mp4").write_bytes(b"placeholder: validation only checks the file exists")
            videos.append(Video(video_id=vid, path=f"media/{vid}.mp4", duration_s=duration, setting="short_drama",
                                script={"script_id": f"s{s:02d}", "story_context": "two friends argue",
                                        "key_event": "the keys are lost", "relationship_dynamic": "siblings",
                                        "action": "A hands B the keys"}))
    write_annotations(anns, root / "annotations.jsonl")
    (root / "videos.jsonl").write_text("".join(v.model_dump_json(exclude_none=True) + "\n" for v in videos))
    return anns, {v.video_id: v for v in videos}


def build_bench(root: Path, out: Path, seed: int = 1) -> Path:
    anns, videos = make_fixture(root)
    result = build_qa(anns, videos, config=QAConfig(seed=seed))
    write_benchmark(result.items, anns, videos, root, out, skipped=result.skipped)
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("qa")
    anns, videos = make_fixture(root / "src")
    result = build_qa(anns, videos, config=QAConfig(seed=1))
    stats = write_benchmark(result.items, anns, videos, root / "src", root / "bench", skipped=result.skipped)
    return anns, videos, result, stats, root / "bench"


def test_fixture_yields_a_valid_benchmark_with_every_format(built):
    anns, _, result, stats, bench = built
    assert len(anns) >= 40
    assert validate_benchmark(bench) == []
    assert all(stats["formats"][f] > 0 for f in FORMATS)
    loaded = load_benchmark(bench)
    assert len(loaded.items) == len(result.items) == stats["n_items"]


def test_at_least_20_templates_across_all_formats(built):
    items = built[2].items
    assert all(it.template_id for it in items)
    assert len({it.template_id for it in items}) >= 20
    for fmt in FORMATS:
        used = {it.template_id for it in items if it.format == fmt}
        assert used and all(t.startswith(f"{fmt}.") for t in used)


def test_distractors_are_real_modes_other_than_gold_and_absent_from_the_clip(built):
    anns, _, result, _, _ = built
    present = {a.video_id: {f.failure_mode for f in a.failures} for a in anns}
    tax = load_taxonomy()
    for it in result.items:
        if it.format == "pairwise":
            continue
        modes = {label: match_failure_mode(text) for label, text in it.options.items()}
        assert None not in modes.values(), it.qid
        gold = {modes[a] for a in it.answer}
        assert gold == set(it.meta["gold_modes"]) and gold <= present[it.video_ids[0]]
        for label, mode in modes.items():
            if label not in it.answer:
                assert mode in tax.failure_modes and mode not in present[it.video_ids[0]], it.qid
        assert len(set(modes.values())) == len(modes)  # no option twice


def test_distractors_come_from_the_nearest_band_first(built):
    anns, _, result, _, _ = built
    present = {a.video_id: {f.failure_mode for f in a.failures} for a in anns}
    sim = ModeSimilarity.from_annotations(anns)
    for it in result.items:
        if it.format not in ("single", "temporal"):
            continue
        ranked = sim.ranked([it.failure_mode], exclude=present[it.video_ids[0]])
        chosen = [c for c in ranked if c.slug in it.meta["distractors"]]
        lowest = min(c.tier for c in chosen)
        # every candidate of a band above the lowest one used was taken
        assert all(c.slug in it.meta["distractors"] for c in ranked if c.tier > lowest), it.qid


def test_gold_positions_balanced_within_ten_percent(built):
    items = built[2].items
    for fmt in FORMATS:
        groups: dict[int, Counter[str]] = {}
        for it in items:
            if it.format == fmt:
                groups.setdefault(len(it.options), Counter()).update(it.answer)
        for n, counts in groups.items():
            total = sum(counts.values())
            for label in "ABCDEFGH"[:n]:
                assert abs(counts[label] / total - 1 / n) <= 0.10, (fmt, n, counts)
            if fmt != "multi":  # one gold per item: least-used placement keeps counts within one
                assert max(counts.values()) - min(counts[label] for label in "ABCDEFGH"[:n]) <= 1


def test_same_seed_same_items_other_seed_differs(tmp_path):
    anns, videos = make_fixture(tmp_path)
    dump = [it.model_dump() for it in generate_qa(anns, videos, seed=5)]
    assert dump == [it.model_dump() for it in generate_qa(anns, videos, seed=5)]
    assert dump != [it.model_dump() for it in generate_qa(anns, videos, seed=6)]


def test_no_duplicate_questions(built):
    items = built[2].items
    asked = Counter((it.format, tuple(sorted(it.video_ids)), it.question) for it in items)
    assert max(asked.values()) == 1
    content = Counter((it.format, tuple(sorted(it.video_ids)), frozenset(it.options.values()),
                       frozenset(it.options[a] for a in it.answer), it.failure_mode) for it in items)
    assert max(content.values()) == 1
    assert len({it.qid for it in items}) == len(items)


def test_temporal_gold_windows_are_those_overlapping_the_segments(built):
    anns, videos, result, _, _ = built
    by_id = {a.video_id: a for a in anns}
    temporal = [it for it in result.items if it.format == "temporal"]
    assert temporal
    for it in temporal:
        vid = it.video_ids[0]
        segs = [(f.start_s, f.end_s) for f in by_id[vid].failures if f.failure_mode == it.failure_mode and f.localised]
        assert it.time_options == time_grid(videos[vid].duration_s)
        want = [k for k, (a, b) in it.time_options.items() if any(min(b, e) - max(a, s) > 0 for s, e in segs)]
        assert it.time_answer == want and 0 < len(want) < len(it.time_options)
        assert it.evidence


def test_pairwise_compares_one_script_across_generators(built):
    anns, videos, result, _, _ = built
    by_id = {a.video_id: a for a in anns}
    pairs = [it for it in result.items if it.format == "pairwise"]
    assert pairs
    for it in pairs:
        a, b = (by_id[v] for v in it.video_ids)
        assert videos[a.video_id].script["script_id"] == videos[b.video_id].script["script_id"]
        assert a.generator != b.generator
        bad = it.video_ids["AB".index(it.answer[0])]
        good = next(v for v in it.video_ids if v != bad)
        assert it.failure_mode in {f.failure_mode for f in by_id[bad].failures}
        assert it.failure_mode not in {f.failure_mode for f in by_id[good].failures}
        assert it.options == {"A": "Clip 1", "B": "Clip 2"}


def test_without_metadata_no_pairwise_or_temporal_items(tmp_path):
    anns, _ = make_fixture(tmp_path)
    result = build_qa(anns, None)
    assert {it.format for it in result.items} == {"single", "multi"}
    assert result.skipped["pairwise: clip without script.script_id"] == len(anns)


def test_time_grid_and_hits():
    assert time_grid(9.0) == {"A": (0.0, 2.0), "B": (2.0, 4.0), "C": (4.0, 6.0), "D": (6.0, 8.0), "E": (8.0, 9.0)}
    assert time_grid(8.5) == {"A": (0.0, 2.0), "B": (2.0, 4.0), "C": (4.0, 6.0), "D": (6.0, 8.5)}
    long = time_grid(20.0)  # widened so the options stay <= 8
    assert len(long) == 8 and long["A"] == (0.0, 2.5) and long["H"] == (17.5, 20.0)
    grid = time_grid(9.0)
    assert windows_hit(grid, [(1.5, 4.0)]) == ["A", "B"]  # touching 4.0 is not overlapping C
    assert windows_hit(grid, [(4.0, 4.0)]) == ["C"]  # a point hits the window holding it
    assert windows_hit(grid, [(9.0, 9.0)]) == ["E"]
    with pytest.raises(ValueError):
        time_grid(0)


def test_similarity_bands_and_co_occurrence():
    tax = load_taxonomy()
    anns = [VideoAnnotation(video_id=f"v{i}", generator="g", failures=[
        AnnotatedFailure(sub_dimension=tax.failure_modes[m].sub_dimension, failure_mode=m, start_s=None, end_s=None)
        for m in modes]) for i, modes in enumerate([("missing_ambient_sound", "blocking_issues"),
                                                    ("missing_ambient_sound",), ("blocking_issues", "robotic_movement")])]
    co = co_occurrence(anns)
    assert co[frozenset(("missing_ambient_sound", "blocking_issues"))] == pytest.approx(1 / 3)
    sim = ModeSimilarity(co)
    g = "missing_ambient_sound"
    same_sd, same_cat = sim.score(g, "missing_scripted_sound"), sim.score(g, "music_tone_drift")
    cooc, other = sim.score(g, "blocking_issues"), sim.score(g, "robotic_movement")
    assert same_sd > same_cat > cooc > other == 0
    assert sim.tier(g, "blocking_issues") == 1 and sim.tier(g, "robotic_movement") == 0
    assert sim.tier("overpowering_background_audio", "music_tone_drift") == 2  # same category beats curated pair
    assert all(a in tax.failure_modes and b in tax.failure_modes for a, b, _ in CONFUSABLE_PAIRS)
    ranked = sim.ranked([g], exclude=["overpowering_background_audio"])
    assert [c.slug for c in ranked[:1]] == ["missing_scripted_sound"]
    assert g not in {c.slug for c in ranked} and "overpowering_background_audio" not in {c.slug for c in ranked}


def test_pick_takes_bands_in_order():
    sim, rng = ModeSimilarity(), random.Random(0)
    picked = sim.pick(["speech_mode_confusion"], 6, rng)  # DP has 3 modes: 2 same-sd, then same category
    assert [c.tier for c in picked] == [3, 3, 2, 2, 2, 2]
    assert {c.slug for c in picked[:2]} == {"dialogue_content_deviation", "speaker_identity_error"}
    assert all(load_taxonomy().failure_modes[c.slug].category == "acting" for c in picked)


def test_builtin_templates_and_their_rules():
    templates = load_templates()
    assert len(templates) >= 20 and {t.format for t in templates} == set(FORMATS)
    tax = load_taxonomy()
    for code, sd in tax.sub_dimensions.items():  # every sub-dimension has a wording of its own
        assert any(t.scope == f"sub_dimension:{code}" for t in templates), code
        mode = tax.failure_modes[sd.failure_modes[0]]
        for t in templates:
            if t.applies_to(mode) and t.format != "pairwise":
                assert mode.name not in t.render(mode, tax)  # never gives the answer away

    bad = {"templates": [
        {"id": "x", "format": "single", "scope": "any", "question": "Is it {mode}?", "n_options": 4},
        {"id": "x", "format": "temporal", "scope": "category:nope", "question": "When?", "n_options": 4},
        {"id": "y", "format": "pairwise", "scope": "any", "question": "Which clip?", "n_options": 3},
    ]}
    with pytest.raises(TemplateError) as exc:
        parse_templates(bad, "t.json")
    text = str(exc.value)
    for needle in ("give the answer away", "duplicate id", "unknown category 'nope'", "n_options 3",
                   "must name the failure"):
        assert needle in text


def test_metadata_conflicts_are_reported_per_video(tmp_path):
    anns, videos = make_fixture(tmp_path)
    bad = next(a for a in anns if any(f.localised for f in a.failures))
    videos[bad.video_id] = videos[bad.video_id].model_copy(update={"duration_s": 0.5, "generator": "other"})
    with pytest.raises(QAConstructionError) as exc:
        build_qa(anns, videos)
    assert f"video {bad.video_id}: generator" in str(exc.value)
    assert "after the clip's end (0.5 s)" in str(exc.value)


def test_write_benchmark_needs_media_and_refuses_to_overwrite(tmp_path):
    anns, videos = make_fixture(tmp_path / "src")
    items = generate_qa(anns, videos, seed=0)
    write_benchmark(items, anns, videos, tmp_path / "src", tmp_path / "bench")
    with pytest.raises(FileExistsError):
        write_benchmark(items, anns, videos, tmp_path / "src", tmp_path / "bench")
    (tmp_path / "src" / "media" / f"{items[0].video_ids[0]}.mp4").unlink()
    with pytest.raises(QAConstructionError, match="media file .* not found"):
        write_benchmark(items, anns, videos, tmp_path / "src", tmp_path / "bench", overwrite=True)


def test_stats_table_counts_everything(built):
    _, _, result, stats, bench = built
    on_disk = json.loads((bench / "stats.json").read_text())
    assert on_disk == stats
    assert sum(stats["formats"].values()) == sum(stats["sub_dimensions"].values()) == len(result.items)
    assert sum(stats["templates"].values()) == len(result.items)
    assert stats["failure_modes"] and set(stats["failure_modes"]) <= set(load_taxonomy().failure_modes)
    md = (bench / "stats.md").read_text()
    for title in ("Items per format", "Items per sub-dimension", "Items per failure mode", "Items per template"):
        assert f"## {title}" in md


def test_videos_meta_errors_name_file_and_line(tmp_path):
    path = tmp_path / "videos.jsonl"
    path.write_text('{"video_id": "a", "path": "a.mp4"}\n{"video_id": "b", "path": "b.mp4", "colour": 1}\n'
                    '{"video_id": "a", "path": "c.mp4"}\n')
    with pytest.raises(Exception) as exc:
        load_videos_meta(path)
    assert f"{path}:2: colour" in str(exc.value) and f"{path}:3: video_id: duplicate video_id 'a'" in str(exc.value)


def test_cli_construct_qa(tmp_path):
    import mtavg.cli_construct_qa  # noqa: F401 - registers the commands
    from mtavg.cli import app

    make_fixture(tmp_path / "src")
    runner = CliRunner()
    args = ["construct", "qa", str(tmp_path / "src" / "annotations.jsonl"), "--out", str(tmp_path / "bench"),
            "--seed", "3"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert validate_benchmark(tmp_path / "bench") == []
    assert "templates" in res.output
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "exists" in again.output
    bad = runner.invoke(app, [*args, "--force", "--formats", "single,essay"])
    assert bad.exit_code == 2 and "unknown format" in bad.output
