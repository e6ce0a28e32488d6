"""`mtavg perturb build`: the pair dataset on disk, its benchmark files, resume, failures, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtavg.bench import load_benchmark, validate_benchmark
from mtavg.cli import app
from mtavg.perturb import CATALOGUE
from mtavg.perturb.build import BuildConflict, BuildOptions, build_pairs
from mtavg.suites.yesno import DIMENSIONS

runner = CliRunner()


def write_clip(path: Path, seconds: float, seed: int) -> Path:
    """64x48 at 12 fps: a textured background with a moving square; sound: a tone under random noise
    bursts (aperiodic, so a time shift has one cross-correlation peak)."""
    import numpy as np

    from mtavg.bench.demo_media import encode_mp4

    rng = np.random.default_rng(seed)
    texture = rng.integers(40, 200, (48, 64, 3), dtype=np.uint8)
    frames = []
    for i in range(int(seconds * 12)):
        img = texture.copy()
        img[10:22, (i * 3) % 50:(i * 3) % 50 + 12] = 250
        frames.append(img)
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    bursts = np.repeat(rng.random(n // 400 + 1) > 0.6, 400)[:n]
    audio = 0.1 * np.sin(2 * np.pi * (200 + 40 * seed) * t) + 0.3 * bursts * rng.standard_normal(n)
    encode_mp4(path, frames, audio.astype(np.float32), fps=12, sample_rate=16000)
    return path


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("src")
    for i in range(6):
        write_clip(root / f"cat{i % 2}" / f"clip{i}.mp4", 3.0, seed=i)
    (root / "cat0" / "broken.mp4").write_bytes(b"not a video at all" * 10)
    return root


@pytest.fixture(scope="module")
def built(src, tmp_path_factory):
    out = tmp_path_factory.mktemp("pairs")
    report = build_pairs(src, out, BuildOptions(mix="all", n=len(CATALOGUE), seed=1, jobs=1))
    return out, report


def test_every_type_is_made_with_its_recorded_parameters(built):
    out, report = built
    manifest = lines(out / "manifest.jsonl")
    plan = {p["clip_id"]: p for p in lines(out / "plan.jsonl")}
    negatives = [r for r in manifest if r["role"] == "negative"]
    assert sorted(r["perturbation"] for r in negatives) == sorted(CATALOGUE)
    assert all(r["status"] == "ok" and r["error"] is None for r in manifest)
    for r in manifest:
        clip = out / r["path"]
        side = json.loads(clip.with_suffix(".json").read_text())
        assert clip.is_file() and side["params"] == plan[r["clip_id"]]["params"] == r["params"]
        assert side["perturbation"] == r["perturbation"] and side["source_id"] == r["source_id"]
        assert side["encode"]["video"] == ("libx264" if CATALOGUE.get(r["perturbation"]) and
                                           CATALOGUE[r["perturbation"]].target == "video" else "copy")
        assert r["category"] == r["source_path"].split("/")[0]
    assert report.made == len(manifest) and report.reused == 0 and not report.failed


def test_unreadable_sources_are_listed_not_used(built):
    out, report = built
    assert [s["path"] for s in report.skipped_sources] == ["cat0/broken.mp4"]
    assert "cat0/broken.mp4" in json.dumps(json.loads((out / "build.json").read_text())["skipped_sources"])
    assert all("broken" not in r["source_id"] for r in lines(out / "manifest.jsonl"))


def test_the_dataset_is_a_valid_yes_no_benchmark(built):
    out, _ = built
    assert validate_benchmark(out) == []
    bench = load_benchmark(str(out))
    assert bench.taxonomy is not None and bench.taxonomy.name == "avbench"
    manifest = {r["clip_id"]: r for r in lines(out / "manifest.jsonl")}
    dims_of: dict[str, set] = {}
    for item in bench.items:
        clip = manifest[item.video_ids[0]]
        assert item.options == {"A": "Yes", "B": "No"} and item.meta["role"] == clip["role"]
        if clip["role"] == "negative":
            assert item.answer == ["B"] and item.failure_mode == clip["perturbation"]
            dim = CATALOGUE[clip["perturbation"]].dimension
            assert item.meta["dimension"] == dim and item.sub_dimension == DIMENSIONS[dim].code
            assert item.question == DIMENSIONS[dim].question
            dims_of.setdefault(clip["source_id"], set()).add(dim)
        else:
            assert item.answer == ["A"] and item.failure_mode.startswith("clean_")
    # every negative has its positive asked the same question
    positive_items = {(it.meta["source_id"], it.meta["dimension"]) for it in bench.items if it.meta["role"] == "positive"}
    assert {(s, d) for s, ds in dims_of.items() for d in ds} <= positive_items


def test_rerun_keeps_what_is_made_and_remakes_a_stale_clip(src, built):
    out, _ = built
    again = build_pairs(src, out, BuildOptions(mix="all", n=len(CATALOGUE), seed=1, jobs=1))
    assert again.made == 0 and again.reused == len(again.planned)
    victim = next(r for r in lines(out / "manifest.jsonl") if r["role"] == "negative")
    side_path = (out / victim["path"]).with_suffix(".json")
    side = json.loads(side_path.read_text())
    side_path.write_text(json.dumps({**side, "plan_key": "stale"}))
    third = build_pairs(src, out, BuildOptions(mix="all", n=len(CATALOGUE), seed=1, jobs=1))
    assert third.made == 1


def test_another_build_into_the_same_directory_is_refused(src, built):
    out, _ = built
    with pytest.raises(BuildConflict, match="seed"):
        build_pairs(src, out, BuildOptions(mix="all", n=len(CATALOGUE), seed=2, jobs=1))


def test_a_failing_clip_is_recorded_kept_out_of_the_bench_and_retried(src, tmp_path, monkeypatch):
    import mtavg.perturb.build as build_mod

    real = build_mod.perturb_clip

    def flaky(src_path, out_path, perturbation, *a, **kw):
        if perturbation == "noise":
            raise ValueError("encoder exploded")
        return real(src_path, out_path, perturbation, *a, **kw)

    monkeypatch.setattr(build_mod, "perturb_clip", flaky)
    opts = BuildOptions(mix="noise=1,time_shift=1", n=4, jobs=1)
    report = build_pairs(src, tmp_path / "d", opts)
    failed = {f["clip_id"] for f in report.failed}
    assert len(failed) == 2 and all("encoder exploded" in f["error"] for f in report.failed)
    manifest = {r["clip_id"]: r for r in lines(tmp_path / "d" / "manifest.jsonl")}
    assert {c for c, r in manifest.items() if r["status"] == "failed"} == failed
    assert not any(v["video_id"] in failed for v in lines(tmp_path / "d" / "videos.jsonl"))
    assert json.loads((tmp_path / "d" / "build.json").read_text())["status"] == "incomplete"
    monkeypatch.setattr(build_mod, "perturb_clip", real)
    fixed = build_pairs(src, tmp_path / "d", opts)
    assert fixed.made == 2 and not fixed.failed
    assert json.loads((tmp_path / "d" / "build.json").read_text())["status"] == "complete"


def test_labels_give_category_text_and_generator(src, tmp_path):
    labels = tmp_path / "labels.csv"
    rows = ["clip,category,text,generator"] + [f"clip{i}.mp4,,a clip of thing {i % 3},gen{i % 2}" for i in range(6)]
    labels.write_text("\n".join(rows) + "\n")
    report = build_pairs(src, tmp_path / "d", BuildOptions(mix="semantic_mismatch=1", n=6, labels=labels,
                                                           plan_only=True))
    by_id = {s.clip_id: s for s in report.sources}
    assert by_id["cat0__clip0"].text == "a clip of thing 0" and by_id["cat1__clip1"].generator == "gen1"
    # the label file gave no category, so the folder is the category; donors come from the other folder
    for p in report.planned:
        if p.role == "negative":
            assert by_id[p.params["donor"]].category != by_id[p.source_id].category
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"clip": "clip0.mp4"}\n{"category": "x"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        build_pairs(src, tmp_path / "e", BuildOptions(labels=bad, plan_only=True))


def test_cli_plan_only_1000_realises_the_mix(src, tmp_path):
    out = tmp_path / "plan"
    result = runner.invoke(app, ["perturb", "build", str(src), "--out", str(out), "--n", "1000", "--plan-only",
                                 "--mix", "avbench"])
    assert result.exit_code == 0, result.output
    facts = json.loads((out / "build.json").read_text())
    for name, share in facts["requested"].items():
        assert abs(facts["realised_planned"][name]["share"] - share) <= 0.03
    assert facts["n_negatives"] == 1000 and not (out / "media").exists()
    assert "random_mismatch" in result.output and "1000 negatives" in result.output


def test_cli_build_verify_apply_and_eval(src, tmp_path):
    out = tmp_path / "d"
    res = runner.invoke(app, ["perturb", "build", str(src), "--out", str(out), "--n", "4", "--no-progress",
                              "--mix", "time_shift=1,noise=1,colour_cast=1,freeze=1", "--jobs", "1"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["perturb", "verify", str(out)])
    assert res.exit_code == 0, res.output
    assert "4 pass, 0 fail" in res.output
    # a dataset whose record lies about a parameter fails verification
    manifest = lines(out / "manifest.jsonl")
    for r in manifest:
        if r["perturbation"] == "time_shift":
            r["params"]["shift_ms"] += 80
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in manifest))
    res = runner.invoke(app, ["perturb", "verify", str(out)])
    assert res.exit_code == 1 and "1 fail" in res.output
    clip = next(src.rglob("clip1.mp4"))
    res = runner.invoke(app, ["perturb", "apply", str(clip), str(tmp_path / "one.mp4"), "--type", "filter",
                              "--param", "kind=lowpass", "--param", "high_hz=800"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "one.json").read_text())["params"] == {"kind": "lowpass", "high_hz": 800}
    res = runner.invoke(app, ["perturb", "apply", str(clip), str(tmp_path / "two.mp4"), "--type", "wobble"])
    assert res.exit_code == 2 and "unknown perturbation" in res.output
    res = runner.invoke(app, ["eval", "--bench", str(out), "--model", "baseline:random", "--out",
                              str(tmp_path / "run"), "--no-progress"])
    assert res.exit_code == 0, res.output
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["n_items"] == len(lines(out / "qa.jsonl")) and set(results["sub_dimensions"]) <= {"AV", "VQ"}
