"""`construct analyse` against the loopback fake OpenAI server: validated scripts, re-asks, giving up."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from typer.testing import CliRunner

from mtavg.cli import app
from mtavg.construct import ScriptAnalysisFailed, analyse, analyse_video, load_script
from mtavg.construct.analyse import make_analysis_evaluator
from mtavg.limits import RetryPolicy
from mtavg.testing.fake_openai import FakeOpenAIServer
from test_construct_script import valid_script_dict

runner = CliRunner()
FAST = RetryPolicy(max_attempts=3, base_delay_s=0.01, timeout_s=30)


@pytest.fixture(autouse=True)
def _no_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # a localhost server needs none


def scripted(*answers: str) -> Callable[[dict], str]:
    """A responder that gives ``answers`` in order and repeats the last one."""
    queue = list(answers)

    def respond(_body: dict) -> str:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return respond


def clip_script(**changes) -> dict:
    """A valid script of the 1 s test clip (one short segment)."""
    raw = valid_script_dict((0.0, 1.0))
    raw["segments"][0]["dialogue"][0].update(start_s=0.1, end_s=0.6)
    raw["segments"][0].update(changes)
    return raw


def test_invalid_json_is_re_asked_with_the_error_quoted(tiny_clip):
    good = json.dumps(clip_script())
    with FakeOpenAIServer(responder=scripted('Here is the plan: {"clip_summary": "two people", ', good)) as srv:
        result = analyse(tiny_clip, "openai:omni", options={"base_url": srv.base_url}, policy=FAST)
        log = srv.log
    assert len(log) == 2 and len(result.attempts) == 2
    first, second = log
    # the clip went out with its soundtrack, and the request asked for a schema-valid script
    assert first["part_types"] == ["video_url", "text"] and first["video_has_audio"] == [True]
    assert '"$defs"' in first["text"] and "never name an actor" in first["text"]
    assert first["max_tokens"] == 8192  # the script budget, not the QA default
    # the re-ask quotes the rejected answer and its error, after the original request
    assert second["text"].startswith(first["text"].strip())
    assert '<<<\nHere is the plan: {"clip_summary": "two people",\n>>>' in second["text"]
    assert "- invalid JSON: Expecting property name enclosed in double quotes" in second["text"]
    assert second["part_types"] == ["video_url", "text"]  # the clip is sent again with the follow-up
    assert result.attempts[0].errors and result.attempts[1].errors == []
    script = result.script
    assert script.duration_s == pytest.approx(1.0, abs=0.1) and script.segments[0].dialogue[0].speaker == "C1"
    assert result.model == "openai:omni" and result.warnings == ["segments.0: 1.00 s long, outside the 8-10 s target"]


def test_schema_errors_are_re_asked_with_their_paths(tiny_clip):
    bad = clip_script()
    bad["segments"][0]["dialogue"][1]["speaker"] = "C9"
    bad["segments"][0]["end_s"] = 4.0
    with FakeOpenAIServer(responder=scripted(json.dumps(bad), json.dumps(clip_script()))) as srv:
        script = analyse_video(tiny_clip, make_analysis_evaluator("openai:omni", {"base_url": srv.base_url}))
        second = srv.log[1]["text"]
    assert "- segments.0.dialogue.1.speaker: 'C9' is not in the character registry (C1, C2)" in second
    assert "- segments.0.end_s: 4 is after the end of the clip" in second
    assert script.segments[0].dialogue[1].speaker == "C2"


def test_gives_up_after_max_attempts_naming_the_video_and_last_errors(tiny_clip):
    with FakeOpenAIServer(responder=scripted("I cannot help with that.")) as srv:
        with pytest.raises(ScriptAnalysisFailed) as info:
            analyse(tiny_clip, "openai:omni", options={"base_url": srv.base_url}, max_attempts=2)
        assert len(srv.log) == 2
    exc = info.value
    assert exc.video == tiny_clip and len(exc.attempts) == 2 and exc.call_error is None
    assert str(tiny_clip) in str(exc) and "no valid script after 2 attempt(s)" in str(exc)
    assert exc.errors == ["no JSON object in the answer; reply with one JSON object and nothing else"]
    assert exc.raw == "I cannot help with that."


def test_transient_failures_are_retried_by_the_request_loop_not_re_asked(tiny_clip):
    with FakeOpenAIServer(responder=scripted(json.dumps(clip_script())),
                          faults={"fail_first_n": 1, "fail_first_status": 503}) as srv:
        result = analyse(tiny_clip, "openai:omni", options={"base_url": srv.base_url}, policy=FAST)
        assert [r["status"] for r in srv.log] == [503, 200]
    assert len(result.attempts) == 1  # one answer; the 503 never reached the validator


def test_a_failed_call_is_a_typed_error_not_an_invalid_answer(tiny_clip):
    with FakeOpenAIServer(faults={"p_400": 1.0}) as srv:
        with pytest.raises(ScriptAnalysisFailed) as info:
            analyse(tiny_clip, "openai:omni", options={"base_url": srv.base_url}, policy=FAST)
        assert len(srv.log) == 1  # a 400 is permanent: no retry, no re-ask
    assert "HTTP 400" in info.value.call_error and info.value.attempts == []
    with pytest.raises(ValueError, match="max_attempts must be at least 1"):
        analyse(tiny_clip, "openai:omni", options={"base_url": srv.base_url}, max_attempts=0)


def test_user_options_override_the_answer_budget():
    ev = make_analysis_evaluator("openai:omni", {"base_url": "http://127.0.0.1:9/v1", "max_tokens": "1000"})
    assert ev.max_tokens == 1000
    assert make_analysis_evaluator("openai:omni", {"base_url": "http://127.0.0.1:9/v1"}).max_tokens == 8192
    with pytest.raises(ValueError, match="already configured"):
        analyse("clip.mp4", ev, options={"max_tokens": 5})


def flat(text: str) -> str:
    """Console output with rich's line wrapping undone."""
    return " ".join(text.split())


def test_construct_analyse_command(tiny_clip, tmp_path):
    out = tmp_path / "scripts" / "clip.json"
    with FakeOpenAIServer(responder=scripted("{", json.dumps(clip_script()))) as srv:
        res = runner.invoke(app, ["construct", "analyse", str(tiny_clip), "--model", "openai:omni",
                                  "--base-url", srv.base_url, "--out", str(out), "--max-attempts", "2"])
    assert res.exit_code == 0, res.output
    assert "valid after 2 attempt(s)" in flat(res.stderr) and "outside the 8-10 s target" in flat(res.stderr)
    assert load_script(out).characters[0].descriptor == "the older sister"
    with FakeOpenAIServer(responder=scripted("no")) as srv:
        res = runner.invoke(app, ["construct", "analyse", str(tiny_clip), "--model", "openai:omni",
                                  "--base-url", srv.base_url, "--max-attempts", "1"])
    assert res.exit_code == 1 and "no valid script after 1 attempt(s)" in flat(res.stderr)
    res = runner.invoke(app, ["construct", "analyse", str(tiny_clip), "--model", "nosuch:x"])
    assert res.exit_code == 2 and "unknown model kind" in flat(res.stderr)
