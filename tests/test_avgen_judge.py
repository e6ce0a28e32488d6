"""AVGen-Bench judged modules: schemas, scores recombined in code, re-ask, failures recorded, resume."""

from __future__ import annotations

import json

import pytest

from conftest import write_tiny_clip
from mtavg.suites.avgen import aggregate
from mtavg.suites.avgen_judge import (
    JUDGE_MODULES,
    JudgeReplyInvalid,
    judge_prompt,
    parse_reply,
    run_judge_modules,
)
from mtavg.suites.avgen_prompts import load_prompts
from mtavg.suites.avgen_records import read_records
from mtavg.testing.fake_openai import FakeOpenAIServer

TEXT = {"texts": [{"text": "SALE", "shown": 2}, {"text": "50% OFF", "shown": 1}], "total": 99}
SPEECH = {"lines": [{"expected": "Hello", "heard": "Hello", "intelligible": 2, "matches": 2},
                    {"expected": "Bye now", "heard": "buy", "intelligible": 1, "matches": 0}], "coherent": 1}
HIPHY = {"events": [{"event": "ball falls", "plausible": 2}, {"event": "bounce", "plausible": 0},
                    {"event": "sound on impact", "plausible": 1}]}
HOLISTIC = {"elements": [{"element": "presenter", "present": 2}], "score": 3}


def test_scores_are_recombined_in_code_not_read_from_the_reply():
    assert JUDGE_MODULES["Text"].score(parse_reply(JUDGE_MODULES["Text"], json.dumps(TEXT))) == 75.0
    speech = JUDGE_MODULES["Speech"].score(parse_reply(JUDGE_MODULES["Speech"], json.dumps(SPEECH)))
    assert speech == pytest.approx(100 * (0.8 * (4 / 4 + 1 / 4) / 2 + 0.2 * 1 / 2))  # 60
    assert JUDGE_MODULES["HiPhy"].score(parse_reply(JUDGE_MODULES["HiPhy"], json.dumps(HIPHY))) == 50.0
    assert JUDGE_MODULES["Holistic"].score(parse_reply(JUDGE_MODULES["Holistic"], json.dumps(HOLISTIC))) == 100.0


def test_reply_inside_prose_or_a_code_fence_is_found():
    text = "Here you go:\n```json\n" + json.dumps(HIPHY) + "\n```"
    assert parse_reply(JUDGE_MODULES["HiPhy"], text)["events"][1]["plausible"] == 0


@pytest.mark.parametrize("module, reply, message", [
    ("Text", "I cannot watch videos.", "no JSON object"),
    ("Text", '{"texts": [{"text": "A", "shown": 3}]}', "texts[0].shown must be 0, 1 or 2"),
    ("Text", '{"texts": [{"text": "A", "shown": true}]}', "texts[0].shown must be 0, 1 or 2"),
    ("Text", '{"texts": "SALE"}', "field 'texts' must be a list"),
    ("Speech", '{"lines": [{"expected": "x", "intelligible": 2, "matches": 1}]}', "coherent must be 0, 1 or 2"),
    ("HiPhy", '{"events": []}', "is empty"),
    ("Holistic", '{"elements": [{"present": 2}]}', "elements[0].element must be a string"),
    ("Holistic", '{"elements": [', "no JSON object"),
])
def test_invalid_replies_say_why(module, reply, message):
    with pytest.raises(JudgeReplyInvalid, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_reply(JUDGE_MODULES[module], reply)


def test_prompt_carries_the_generation_prompt_and_the_schema(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "ads.json").write_text(json.dumps([{"content": "c", "prompt": "A sign reads 'SALE'."}]))
    prompt = load_prompts(tmp_path / "p").prompts[0]
    text = judge_prompt(JUDGE_MODULES["Text"], prompt)
    assert "A sign reads 'SALE'." in text and '"texts": [{"text": "...", "shown": 0}]' in text
    assert "empty 'texts' list" in text


@pytest.fixture
def suite(tmp_path):
    p = tmp_path / "prompts"
    p.mkdir()
    (p / "ads.json").write_text(json.dumps([
        {"content": "Sale banner", "prompt": "A banner reads 'SALE' then '50% OFF' while a voice says hello."},
        {"content": "No text here", "prompt": "A dog runs on a beach, waves crash."},
        {"content": "Never made", "prompt": "A cat sleeps."},
    ]))
    clips = tmp_path / "clips"
    write_tiny_clip(clips / "ads" / "Sale banner.mp4", seconds=1.0)
    write_tiny_clip(clips / "ads" / "No text here.mp4", seconds=1.0, seed=1)
    return load_prompts(p), clips


def responder_for(replies: dict[str, str], invalid_first: set[str] = frozenset()):
    seen: dict[str, int] = {}

    def respond(body: dict) -> str:
        text = " ".join(part.get("text", "") for m in body["messages"] for part in
                        (m["content"] if isinstance(m["content"], list) else [{"text": m["content"]}]))
        module = next(m for m, marker in MARKERS.items() if marker in text)
        clip = "dog" if "A dog runs" in text else "sale"
        key = f"{module}:{clip}"
        seen[key] = seen.get(key, 0) + 1
        if key in invalid_first and seen[key] == 1:
            return "Sure! The text is shown well."
        return replies.get(key, replies.get(module, "no idea"))
    return respond


MARKERS = {"Text": "piece of text", "Speech": "line of speech", "HiPhy": "physical events", "Holistic": "elements"}


def test_run_writes_records_with_reask_failures_and_missing_clips(suite, tmp_path):
    prompts, clips = suite
    replies = {"Text:sale": json.dumps(TEXT), "Text:dog": '{"texts": []}', "HiPhy": json.dumps(HIPHY),
               "Holistic:sale": json.dumps(HOLISTIC), "Holistic:dog": "I refuse."}
    with FakeOpenAIServer(responder=responder_for(replies, invalid_first={"HiPhy:sale"})) as srv:
        result = run_judge_modules(prompts, clips, tmp_path / "rec", generator="g", evaluator="openai:fake",
                                   modules=["Text", "HiPhy", "Holistic"], base_url=srv.base_url, transport="file",
                                   cache_path=tmp_path / "c.sqlite", concurrency=2)
        n_requests = len(srv.log)
    assert result["unmatched_prompts"] == ["ads/Never made.mp4"]
    by = {(r.module, r.clip): r for r in read_records(tmp_path / "rec")}
    assert by[("Text", "ads/Sale banner.mp4")].raw == 75.0
    assert by[("Text", "ads/No text here.mp4")].status == "not_applicable"
    hiphy = by[("HiPhy", "ads/Sale banner.mp4")]
    assert hiphy.status == "ok" and hiphy.raw == 50.0 and hiphy.details["attempts"] == 2  # re-asked once
    refused = by[("Holistic", "ads/No text here.mp4")]
    assert refused.status == "failed" and "invalid reply twice" in refused.error and refused.raw is None
    for module in ("Text", "HiPhy", "Holistic"):
        missing = by[(module, "ads/Never made.mp4")]
        assert missing.status == "failed" and missing.error == "clip missing"
    assert n_requests == 2 + 3 + 3  # Text 2, HiPhy 2 + one re-ask, Holistic 1 + a refused re-ask
    total = aggregate(read_records(tmp_path / "rec"))["g"]
    assert total.modules["Holistic"].n_failed == 2 and total.modules["Holistic"].item_coverage == pytest.approx(1 / 3)
    assert aggregate(read_records(tmp_path / "rec"), strict=True)["g"].modules["Holistic"].score == pytest.approx(100 / 3)

    # Re-run: finished judgements are kept; only the failed one is asked again (and fails again).
    with FakeOpenAIServer(responder=responder_for(replies)) as srv:
        run_judge_modules(prompts, clips, tmp_path / "rec", generator="g", evaluator="openai:fake",
                          modules=["Text", "HiPhy", "Holistic"], base_url=srv.base_url, transport="file",
                          cache=False)
        assert len(srv.log) == 2


def test_unknown_module_is_refused(suite, tmp_path):
    prompts, clips = suite
    with pytest.raises(ValueError, match="unknown judge module"):
        run_judge_modules(prompts, clips, tmp_path, generator="g", evaluator="baseline:random", modules=["Vis"])


def test_cli_judge_writes_records_and_lists_the_missing_clip(suite, tmp_path):
    from typer.testing import CliRunner

    from mtavg.cli import app

    prompts, clips = suite
    replies = {"Text:sale": json.dumps(TEXT), "Text:dog": '{"texts": []}'}
    with FakeOpenAIServer(responder=responder_for(replies)) as srv:
        res = CliRunner().invoke(app, ["avgen", "judge", str(prompts.root), str(clips), "--out", str(tmp_path / "r"),
                                       "--generator", "g", "--model", "openai:fake", "--modules", "Text",
                                       "--base-url", srv.base_url, "--option", "transport=file", "--no-cache",
                                       "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "no clip (failed in every module): ads/Never made.mp4" in res.output
    rows = {r.clip: r for r in read_records(tmp_path / "r" / "g" / "Text.jsonl")}
    assert rows["ads/Sale banner.mp4"].raw == 75.0 and rows["ads/Never made.mp4"].status == "failed"
