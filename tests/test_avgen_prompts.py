"""AVGen-Bench prompt suites: loading, the clip filename rule, matching with unmatched listed both ways."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtavg.cli import app
from mtavg.suites.avgen_prompts import (
    CATEGORIES,
    MAX_STEM_CHARS,
    PromptsInvalid,
    clip_stem,
    load_prompts,
    match_clips,
)

PROMPTS = Path(__file__).parent / "fixtures" / "avgen" / "prompts"
runner = CliRunner()


@pytest.mark.parametrize(("content", "stem"), [
    ("Onions hit a hot pan", "Onions hit a hot pan"),
    ("Kneading bread: step 2/3", "Kneading bread_ step 2_3"),
    ('  Say "hi"?  ', "Say _hi__"),
    ("Wine glass    resonance", "Wine glass resonance"),
    ("tab\there", "tab_here"),
    ("a*b<c>d|e\\f", "a_b_c_d_e_f"),
    ("   ", "untitled"),
    ("Case Is Kept. Dots too.", "Case Is Kept. Dots too."),
])
def test_clip_stem_follows_avgen_bench_rule(content, stem):
    assert clip_stem(content) == stem


def test_clip_stem_cuts_long_titles_without_trailing_space():
    long = "word " * 60
    stem = clip_stem(long)
    assert len(stem) <= MAX_STEM_CHARS and not stem.endswith(" ") and stem.startswith("word word")


def test_load_fixture_prompts():
    suite = load_prompts(PROMPTS)
    assert suite.categories == ("cooking", "musical_instrument_tutorial", "news", "physical_experiment")
    assert len(suite.prompts) == 7 and set(suite.categories) <= set(CATEGORIES)
    a4 = next(p for p in suite.prompts if "A4" in p.content)
    assert a4.category == "musical_instrument_tutorial" and a4.style is None
    assert a4.clip_relpath == "musical_instrument_tutorial/Recorder single note A4.mp4"
    assert next(p for p in suite.prompts if p.category == "news").style == "broadcast"
    assert suite.ignored_files == ()


def _copy_prompts(tmp_path: Path) -> Path:
    target = tmp_path / "prompts"
    shutil.copytree(PROMPTS, target)
    return target


def test_non_category_json_files_are_listed_not_loaded(tmp_path):
    root = _copy_prompts(tmp_path)
    (root / "cooking.expected_faces.json").write_text("{}")
    suite = load_prompts(root)
    assert [p.name for p in suite.ignored_files] == ["cooking.expected_faces.json"]
    assert len(suite.prompts) == 7


@pytest.mark.parametrize(("payload", "message"), [
    ({"content": "x", "prompt": "y"}, "must be a JSON list"),
    ([{"content": "x"}], r"news\.json#0: field 'prompt'"),
    ([{"content": "x", "prompt": "y"}, {"content": "", "prompt": "z"}], r"news\.json#1: field 'content'"),
    ([{"content": "x", "prompt": "y", "style": 3}], r"#0: field 'style'"),
    (["just text"], r"#0: each prompt must be an object"),
    ([{"content": "Same: one", "prompt": "a"}, {"content": "Same/ one", "prompt": "b"}],
     r"news\.json#1: maps to clip 'news/Same_ one\.mp4', as does .*news\.json#0"),
])
def test_bad_prompt_files_name_file_and_item(tmp_path, payload, message):
    root = _copy_prompts(tmp_path)
    (root / "news.json").write_text(json.dumps(payload))
    with pytest.raises(PromptsInvalid, match=message):
        load_prompts(root)


def test_empty_or_missing_prompt_directory_is_an_error(tmp_path):
    with pytest.raises(PromptsInvalid, match="not a directory"):
        load_prompts(tmp_path / "nowhere")
    with pytest.raises(PromptsInvalid, match="no prompts"):
        load_prompts(tmp_path)


def _clips(root: Path, *relpaths: str) -> Path:
    for rel in relpaths:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"\0")
    return root


def test_match_lists_unmatched_prompts_and_clips(tmp_path):
    suite = load_prompts(PROMPTS)
    root = _clips(tmp_path / "ovi",
                  "cooking/Onions hit a hot pan.mp4",
                  "cooking/Kneading bread_ step 2_3.mp4",
                  "musical_instrument_tutorial/Recorder single note A4.mp4",
                  "musical_instrument_tutorial/Cello open A string.mp4",
                  "news/Harbour weather bulletin.mp4",
                  "physical_experiment/Wine glass resonance.mp4",
                  # not matching: wrong case, wrong category, stray root file, unknown title
                  "physical_experiment/two balls dropped together.mp4",
                  "cooking/Harbour weather bulletin.mp4",
                  "stray.mp4",
                  "sports/Unknown title.mp4")
    (root / "news" / "notes.txt").write_text("not a clip")
    result = match_clips(suite, root)
    assert len(result.matched) == 6 and not result.complete
    assert [p.content for p in result.unmatched_prompts] == ["Two balls dropped together"]
    assert [c.relative_to(root).as_posix() for c in result.unmatched_clips] == [
        "cooking/Harbour weather bulletin.mp4", "physical_experiment/two balls dropped together.mp4",
        "sports/Unknown title.mp4", "stray.mp4"]
    data = result.to_dict()
    assert data["unmatched_prompts"][0]["expected_clip"] == "physical_experiment/Two balls dropped together.mp4"
    assert len(data["matched"]) == 6 and "stray.mp4" in data["unmatched_clips"]


def test_match_with_every_clip_present_is_complete(tmp_path):
    suite = load_prompts(PROMPTS)
    root = _clips(tmp_path / "gen", *(p.clip_relpath for p in suite.prompts))
    result = match_clips(suite, root)
    assert result.complete and len(result.matched) == len(suite.prompts)
    with pytest.raises(PromptsInvalid, match="clips root is not a directory"):
        match_clips(suite, tmp_path / "missing")


def test_cli_match_reports_both_ways(tmp_path):
    root = _clips(tmp_path / "gen", "news/Harbour weather bulletin.mp4", "news/Extra clip.mp4")
    res = runner.invoke(app, ["avgen", "match", str(PROMPTS), str(root)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "7 prompts, 1 matched, 6 prompts without a clip, 1 clips without a prompt" in res.stdout
    assert "no clip: cooking/Onions hit a hot pan.mp4" in res.stdout
    assert "no prompt: news/Extra clip.mp4" in res.stdout
    data = json.loads(runner.invoke(app, ["avgen", "match", str(PROMPTS), str(root), "--json"]).stdout)
    assert data["unmatched_clips"] == ["news/Extra clip.mp4"] and len(data["unmatched_prompts"]) == 6
    bad = runner.invoke(app, ["avgen", "match", str(tmp_path / "none"), str(root)])
    assert bad.exit_code == 2
