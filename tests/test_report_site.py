"""The static HTML report without a browser: files, embedded data, escaping, media, links, errors."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtavg.bench import load_benchmark
from mtavg.bench.schema import QAItem
from mtavg.cli import app
from mtavg.evaluators import make_evaluator
from mtavg.report.site import build_site, embed_json
from mtavg.report.site_items import ReportInputError, sample_status
from mtavg.run import parsed_fields, results_from_rows, run_eval, write_results

PAYLOAD = ('</script><script>window.__pwned=1;alert(1)</script><img src=x onerror="window.__pwned=1">'
           "<!-- & &amp; \u2028")


def make_run(bench_dir: Path, out: Path, model: str, raw_of: Callable[[QAItem], str | None], *,
             modality: str = "full", error_of: Callable[[QAItem], str | None] | None = None) -> Path:
    """A run directory as `mtavg eval` writes it, with answers chosen by ``raw_of``."""
    bench = load_benchmark(bench_dir)
    rows = []
    for it in bench.items:
        raw, error = raw_of(it), error_of(it) if error_of else None
        fields = parsed_fields(it, raw) if error is None else {}
        rows.append({"qid": it.qid, "model": model, "modality": modality, "raw": raw, "error": error, **fields})
    out.mkdir(parents=True, exist_ok=True)
    (out / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (out / "run.json").write_text(json.dumps({"model": model, "modality": modality, "bench": bench.name,
                                              "bench_root": str(bench.root)}))
    write_results(out / "results.json", results_from_rows(bench, rows, model=model, modality=modality, n_boot=20))
    return out


def gold_raw(item: QAItem) -> str:
    return json.dumps({"answer": item.answer, "time": item.time_answer or [], "rationale": "gold"})


def hostile_raw(item: QAItem) -> str:
    """Markup in the raw text and (for every other item) in the parsed rationale too."""
    if int(item.qid[1:]) % 2:
        return json.dumps({"answer": [next(iter(item.options))], "rationale": PAYLOAD})
    return PAYLOAD + " Answer: " + next(iter(item.options))


def site_data(index: Path) -> dict:
    text = index.read_text(encoding="utf-8")
    match = re.search(r'<script type="application/json" id="mtavg-data">(.*?)</script>', text, re.S)
    assert match, "embedded item data not found"
    return json.loads(match.group(1))


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts: list[dict] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]
        if tag == "script":
            self.scripts.append(a)


def parse_links(index: Path) -> _Links:
    parser = _Links()
    parser.feed(index.read_text(encoding="utf-8"))
    return parser


@pytest.fixture()
def runs(random_bench, tmp_path) -> list[Path]:
    """A real baseline run, a perfect one and one whose answers carry markup."""
    bench = load_benchmark(random_bench)
    real = tmp_path / "runs" / "prior"
    run_eval(bench, make_evaluator("baseline:prior", bench.items), real, progress=False, n_boot=20)
    return [real, make_run(random_bench, tmp_path / "runs" / "gold", "oracle", gold_raw),
            make_run(random_bench, tmp_path / "runs" / "evil", "evil", hostile_raw)]


def test_every_item_and_answer_is_in_the_site(random_bench, runs, tmp_path):
    index = build_site(runs, tmp_path / "site", title="demo")
    data = site_data(index)
    bench = load_benchmark(random_bench)
    assert [it["qid"] for it in data["items"]] == [it.qid for it in bench.items]
    assert data["evaluators"] == ["baseline:prior", "oracle", "evil"]
    oracle = data["evaluators"].index("oracle")
    for rec, item in zip(data["items"], bench.items, strict=True):
        assert set(rec["answers"]) == {"0", "1", "2"}
        assert rec["answers"][str(oracle)]["status"] == "correct"
        assert rec["answer"] == item.answer and [o[0] for o in rec["options"]] == list(item.options)
        assert len(rec["clips"]) == (2 if item.format == "pairwise" else 1)
        if item.format == "temporal":
            assert rec["time_answer"] == item.time_answer and len(rec["time_options"]) == len(item.time_options)
    prior = [json.loads(line) for line in (runs[0] / "samples.jsonl").read_text().splitlines()]
    by_qid = {rec["qid"]: rec["answers"]["0"] for rec in data["items"]}
    for row in prior:  # the real run's stored fields and the site's re-parse agree
        assert by_qid[row["qid"]]["raw"] == row["raw"]
        assert by_qid[row["qid"]]["status"] == sample_status(row)


def test_injected_markup_stays_inside_the_json(random_bench, runs, tmp_path):
    index = build_site(runs, tmp_path / "site", title="<script>alert('title')</script>")
    text = index.read_text(encoding="utf-8")
    assert "<script>window.__pwned" not in text and "<img src=x" not in text and "alert('title')</script>" not in text
    block = re.search(r'id="mtavg-data">(.*?)</script>', text, re.S).group(1)
    assert not set("<>&") & set(block)  # nothing in the data can open or close an element
    assert [s.get("type") for s in parse_links(index).scripts] == ["application/json", None]
    data = site_data(index)
    evil = str(data["evaluators"].index("evil"))
    bench = load_benchmark(random_bench)
    for rec, item in zip(data["items"], bench.items, strict=True):  # the exact text survives the escaping
        assert rec["answers"][evil]["raw"] == hostile_raw(item)
    assert any(rec["answers"][evil].get("rationale") == PAYLOAD.strip() for rec in data["items"])


def test_embed_json_round_trips_without_markup_characters():
    tricky = {"a": "</script><!-- <b>&amp;</b> -->", "b": ["\u2028\u2029", "é ✓"], "n": None}
    text = embed_json(tricky)
    assert not set("<>&\u2028\u2029") & set(text)
    assert json.loads(text) == tricky


def test_clips_are_linked_into_the_site_and_links_are_relative(runs, tmp_path):
    out = tmp_path / "site"
    index = build_site(runs, out)
    links = parse_links(index)
    assert links.urls, "no links at all"
    for url in links.urls:
        assert not re.match(r"^([a-z]+:|/)", url) or url == "data:,", f"not a relative link: {url}"
        if not url.startswith(("#", "data:")):
            assert (out / url).is_file(), f"{url} is not in the site folder"
    for rec in site_data(index)["items"]:
        for clip in rec["clips"]:
            assert clip["src"].startswith("media/") and (out / clip["src"]).is_file()
    media = sorted((out / "media").iterdir())
    bench_clip = tmp_path / "bench" / "media" / media[0].name
    assert media[0].stat().st_ino == bench_clip.stat().st_ino  # same file system: hard-linked, not copied
    assert build_site(runs, out) == index  # rebuilding over an existing site works
    assert sorted((out / "media").iterdir()) == media


def test_tables_and_figures_sections(runs, tmp_path):
    fig = tmp_path / "figs" / "chart.svg"
    fig.parent.mkdir()
    fig.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>')
    index = build_site(runs, tmp_path / "site", figures=[fig])
    text = index.read_text(encoding="utf-8")
    assert '<table class="mtavg-table" id="table3">' in text and 'id="table5"' in text
    assert '<img src="figures/chart.svg"' in text and (tmp_path / "site" / "figures" / "chart.svg").is_file()
    for name in ("table3.csv", "table3.tex", "table5.md"):
        assert f'href="tables/{name}"' in text and (tmp_path / "site" / "tables" / name).is_file()
    twin = tmp_path / "other" / "chart.svg"
    twin.parent.mkdir()
    twin.write_text(fig.read_text())
    with pytest.raises(ReportInputError, match="two figures are named chart.svg"):
        build_site(runs, tmp_path / "site", figures=[fig, twin])
    with pytest.raises(ReportInputError, match="only PNG and SVG"):
        build_site(runs, tmp_path / "site2", figures=[tmp_path / "runs" / "gold" / "results.json"])


def test_csp_allows_exactly_the_inlined_script(runs, tmp_path):
    text = build_site(runs, tmp_path / "site").read_text(encoding="utf-8")
    script = re.search(r"<script>(.*?)</script>", text, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    csp = html.unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', text).group(1))
    assert f"script-src 'sha256-{digest}'" in csp and "default-src 'none'" in csp
    assert "http:" not in csp and "https:" not in csp


def test_a_missing_clip_leaves_its_item_with_a_note(random_bench, runs, tmp_path):
    os.remove(random_bench / "media" / "v03.mp4")
    warnings: list[str] = []
    index = build_site(runs, tmp_path / "site", on_warning=warnings.append)
    assert len(warnings) == 1 and "media/v03.mp4" in warnings[0]
    affected = [rec for rec in site_data(index)["items"] if any(c["id"] == "v03" for c in rec["clips"])]
    assert affected, "fixture has no item on v03"
    for rec in affected:
        clip = next(c for c in rec["clips"] if c["id"] == "v03")
        assert clip["src"] is None and "clip file missing" in clip["note"]
    assert "1 clip(s) are missing" in index.read_text(encoding="utf-8")


def test_status_of_a_sample():
    assert sample_status({"valid": True, "score": 1.0}) == "correct"
    assert sample_status({"valid": True, "score": 0.5}) == "partial"
    assert sample_status({"valid": True, "score": 0.0}) == "incorrect"
    assert sample_status({"valid": False, "score": 0.0}) == "invalid"
    assert sample_status({"valid": True, "score": 1.0, "error": "timeout"}) == "invalid"


def test_failed_calls_show_their_error(random_bench, tmp_path):
    run = make_run(random_bench, tmp_path / "runs" / "flaky", "flaky", lambda it: None,
                   error_of=lambda it: "TimeoutError: 300 s" if it.qid == "q00000" else None)
    item = site_data(build_site([run], tmp_path / "site"))["items"][0]
    assert item["qid"] == "q00000"
    assert item["answers"]["0"] == {"status": "invalid", "valid": False, "invalid_reason": "call_failed",
                                    "score": 0.0, "error": "TimeoutError: 300 s"}


def test_labels_tell_modalities_and_repeated_runs_apart(random_bench, tmp_path):
    runs = [make_run(random_bench, tmp_path / "a" / "full", "m", gold_raw),
            make_run(random_bench, tmp_path / "a" / "no_audio", "m", gold_raw, modality="no_audio"),
            make_run(random_bench, tmp_path / "b" / "full", "m", gold_raw)]
    index = build_site(runs, tmp_path / "site")
    assert site_data(index)["evaluators"] == ["m · a/full", "m (w/o Audio)", "m · b/full"]
    assert 'id="table6"' in index.read_text(encoding="utf-8")  # one model under two modalities: the ablation
    with pytest.raises(ReportInputError, match="given twice"):
        build_site([runs[0], runs[0]], tmp_path / "site2")


def test_input_errors_name_the_file(random_bench, runs, tmp_path):
    (runs[1] / "samples.jsonl").rename(runs[1] / "moved.jsonl")
    with pytest.raises(ReportInputError, match=r"gold has no samples\.jsonl"):
        build_site(runs, tmp_path / "site")
    other = make_run(random_bench, tmp_path / "other", "x", gold_raw)
    meta = json.loads((other / "run.json").read_text())
    (other / "run.json").write_text(json.dumps({**meta, "bench": "another-bench"}))
    results = json.loads((other / "results.json").read_text())
    (other / "results.json").write_text(json.dumps({**results, "bench": "another-bench"}))
    for given in (None, random_bench):
        with pytest.raises(ReportInputError, match="different benchmarks"):
            build_site([runs[0], other], tmp_path / "site", bench=given)
    with (runs[0] / "samples.jsonl").open("a") as fh:  # after a blank line: the file's line is named
        fh.write("\n" + json.dumps({"qid": "not-a-qid", "raw": "A"}) + "\n")
    lineno = len((runs[0] / "samples.jsonl").read_text().splitlines())
    with pytest.raises(ReportInputError, match=rf"samples\.jsonl:{lineno}: qid 'not-a-qid'"):
        build_site([runs[0]], tmp_path / "site")


def test_cli_report_writes_the_site_with_figures(runs, tmp_path):
    out = tmp_path / "site"
    res = CliRunner().invoke(app, ["report", *map(str, runs), "--out", str(out), "--title", "CLI report"])
    assert res.exit_code == 0, res.output
    text = (out / "index.html").read_text(encoding="utf-8")
    assert "<title>CLI report</title>" in text
    pngs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert pngs and all(f'src="figures/{name}"' in text or name.replace(".png", ".svg") in text for name in pngs)
    assert any(name.startswith("radar_") for name in pngs)


def test_cli_report_errors_are_clear(runs, tmp_path):
    (runs[0] / "results.json").unlink()
    res = CliRunner().invoke(app, ["report", *map(str, runs), "--out", str(tmp_path / "site")])
    assert res.exit_code == 2 and "has no results.json" in " ".join(res.output.split())
    res = CliRunner().invoke(app, ["report", str(runs[1]), "--out", str(tmp_path / "site"),
                                   "--metrics", str(tmp_path / "nope.jsonl")])
    assert res.exit_code == 2 and "nope.jsonl does not exist" in " ".join(res.output.split())


def test_cli_report_adds_failure_figures_and_metric_table(runs, tiny_clip, tmp_path):
    from mtavg.annotations import write_annotations
    from mtavg.metrics.run import compute_clip
    from test_analysis_failures import fixture_annotations

    annotations = write_annotations(fixture_annotations(), tmp_path / "annotations.jsonl")
    records = [compute_clip(tiny_clip, ["loudness"], video_id=f"c{i}", generator=g)
               for i, g in enumerate(["genA", "genB"])]
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "site"
    res = CliRunner().invoke(app, ["report", *map(str, runs), "--out", str(out),
                                   "--annotations", str(annotations), "--metrics", str(metrics)])
    assert res.exit_code == 0, res.output
    text = (out / "index.html").read_text(encoding="utf-8")
    assert 'id="table4"' in text and ">genA<" in text
    assert any(p.name.startswith("failure") for p in (out / "figures").iterdir())  # annotation figures
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"video_id": "x"}\n')
    res = CliRunner().invoke(app, ["report", str(runs[1]), "--out", str(out), "--metrics", str(bad)])
    assert res.exit_code == 2 and "bad.jsonl:1: not a per-clip record" in " ".join(res.output.split())
