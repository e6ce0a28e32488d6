"""Structured scripts: schema, cross-field validation, JSON extraction, generation prompts, `construct prompts`."""

from __future__ import annotations

import copy
import json

import pytest
from typer.testing import CliRunner

from mtavg.cli import app
from mtavg.construct import (
    Script,
    ScriptInvalid,
    analysis_prompt,
    generation_prompts,
    load_script,
    parse_script,
    retry_prompt,
    script_json_schema,
)
from mtavg.construct.prompts import PromptTemplateError, render_template
from mtavg.construct.script import extract_json_object

runner = CliRunner()


def valid_script_dict(seconds: tuple[float, ...] = (0.0, 9.0, 18.5, 27.0)) -> dict:
    """A de-identified two-hander; segment boundaries at ``seconds``."""
    segs = []
    for i, (a, b) in enumerate(zip(seconds, seconds[1:], strict=False)):
        segs.append({
            "index": i + 1, "start_s": a, "end_s": b, "premise": f"Beat {i + 1}: the argument escalates.",
            "setting": "A cramped kitchen at night, one hanging lamp, rain on the window.",
            "tone": "tense, hushed", "characters": ["C1", "C2"],
            "dialogue": [
                {"speaker": "C1", "text": f"You knew, line {i + 1}.", "emotion": "restrained anger",
                 "start_s": a + 0.5, "end_s": a + 2.0},
                {"speaker": "C2", "text": "I was going to tell you.", "emotion": "guilty"},
            ],
            "actions": ["C1 slams a mug down", "C2 looks away"],
            "camera": ["medium two-shot, static", "cut to a close-up of C2"],
        })
    return {
        "clip_summary": "Two people argue in a kitchen about a secret one of them kept.",
        "inference_rules": ["C1 and C2 are siblings", "the secret concerns their father"],
        "characters": [
            {"id": "C1", "descriptor": "the older sister", "appearance": "woman in her forties, grey cardigan",
             "voice": "low, clipped"},
            {"id": "C2", "name": "the younger brother", "appearance": "man in his twenties, hoodie",
             "voice": "soft, hesitant"},
        ],
        "segments": segs,
    }


# ------------------------------------------------------------------ schema and validation
def test_a_valid_script_round_trips_through_a_file(tmp_path):
    script = parse_script(json.dumps(valid_script_dict()), duration_s=27.2)
    assert [s.index for s in script.segments] == [1, 2, 3] and script.duration_s == 27.2
    assert script.character("C2").descriptor == "the younger brother"  # "name" is accepted for descriptor
    assert script.segments[0].dialogue[0].emotion == "restrained anger"
    path = tmp_path / "s.json"
    path.write_text(script.to_json())
    assert load_script(path) == script
    assert "descriptor" in json.loads(path.read_text())["characters"][1]
    with pytest.raises(KeyError, match="C7"):
        script.character("C7")


def test_every_cross_field_problem_is_reported_with_its_path():
    raw = valid_script_dict()
    seg0, seg1 = raw["segments"][0], raw["segments"][1]
    seg0["index"] = 2
    seg0["dialogue"][0]["speaker"] = "C9"
    seg0["dialogue"][1].update(start_s=12.0, end_s=11.0)
    seg1["start_s"] = 5.0
    seg1["characters"].append("C3")
    raw["segments"][2]["end_s"] = 31.0
    raw["characters"].append(dict(raw["characters"][0]))
    with pytest.raises(ScriptInvalid) as info:
        parse_script(json.dumps(raw), duration_s=27.2, source="clip.mp4")
    assert info.value.source == "clip.mp4" and str(info.value).startswith("clip.mp4: invalid script")
    assert info.value.errors == [
        "characters.2.id: duplicate id 'C1' (also characters.0)",
        "segments.0.index: is 2, expected 1 (segments are numbered 1, 2, ... in order)",
        "segments.0.dialogue.0.speaker: 'C9' is not in the character registry (C1, C2)",
        "segments.0.dialogue.1: end_s 11 is not after start_s 12",
        "segments.0.dialogue.1.start_s: 12 is outside its segment (0-9 s)",
        "segments.0.dialogue.1.end_s: 11 is outside its segment (0-9 s)",
        "segments.1.start_s: 5 is before the previous segment's end 9 "
        "(segments must be in time order and not overlap)",
        "segments.1.characters.2: 'C3' is not in the character registry (C1, C2)",
        "segments.2.end_s: 31 is after the end of the clip (27.2 s)",
    ]


def test_shape_errors_name_their_fields():
    raw = valid_script_dict()
    raw["segments"][0]["dialog"] = []  # misspelt key: an error, not silently dropped
    raw["segments"][1]["premise"] = "   "
    del raw["characters"][0]["voice"]
    raw["segments"][2]["end_s"] = "late"
    with pytest.raises(ScriptInvalid) as info:
        parse_script(json.dumps(raw))
    errors = info.value.errors
    assert "segments.0.dialog: Extra inputs are not permitted" in errors
    assert "segments.1.premise: String should have at least 1 character" in errors
    assert "characters.0.voice: Field required" in errors
    assert any(e.startswith("segments.2.end_s: Input should be a valid number") for e in errors)
    with pytest.raises(ScriptInvalid, match="segments: List should have at least 1 item"):
        parse_script(json.dumps({**valid_script_dict(), "segments": []}))


def test_inverted_segment_and_the_clip_duration_tolerance():
    raw = valid_script_dict((0.0, 9.0))
    raw["segments"][0].update(start_s=9.0, end_s=3.0)
    raw["segments"][0]["dialogue"] = []
    with pytest.raises(ScriptInvalid, match=r"segments\.0: end_s 3 is not after start_s 9"):
        parse_script(json.dumps(raw))
    ok = valid_script_dict((0.0, 9.1))
    assert parse_script(json.dumps(ok), duration_s=9.0).duration_s == 9.0  # 0.1 s over: container rounding
    with pytest.raises(ScriptInvalid, match="after the end of the clip"):
        parse_script(json.dumps(ok), duration_s=8.5)
    # the clip's measured duration wins over what the script claims
    assert parse_script(json.dumps({**ok, "duration_s": 99.0}), duration_s=9.0).duration_s == 9.0


def test_segment_length_outside_8_to_10_s_is_a_warning_not_an_error():
    script = parse_script(json.dumps(valid_script_dict((0.0, 9.0, 15.0, 27.0))))
    assert script.length_warnings() == [
        "segments.1: 6.00 s long, outside the 8-10 s target",
        "segments.2: 12.00 s long, outside the 8-10 s target",
    ]
    assert script.length_warnings((5.0, 13.0)) == []


def test_json_schema_describes_the_script():
    schema = script_json_schema()
    assert set(schema["required"]) == {"clip_summary", "segments"} and schema["additionalProperties"] is False
    seg = schema["$defs"]["Segment"]
    assert {"index", "start_s", "end_s", "premise", "setting", "tone"} <= set(seg["required"])
    assert set(schema["$defs"]["DialogueLine"]["required"]) == {"speaker", "text", "emotion"}
    assert "real person" in schema["$defs"]["Character"]["properties"]["descriptor"]["description"]
    assert Script.model_validate(valid_script_dict()).segments  # the schema's model accepts the sample


# ------------------------------------------------------------------ JSON in a model's answer
def test_json_is_found_in_fences_and_prose():
    body = json.dumps(valid_script_dict())
    assert extract_json_object(f"Here it is:\n```json\n{body}\n```\nHope it helps {{!}}")["clip_summary"]
    assert extract_json_object(f"Sure. {body} Anything else?")["segments"]


@pytest.mark.parametrize(("text", "message"), [
    ("", "the answer is empty"),
    ("I cannot watch videos.", "no JSON object in the answer"),
    ('{"clip_summary": "x", "segments": [}', "invalid JSON: Expecting value at line 1, column 36"),
    ("```json\n[1, 2]\n```", "no JSON object"),
])
def test_unusable_answers_say_why(text, message):
    with pytest.raises(ScriptInvalid) as info:
        parse_script(text, source="clip.mp4")
    assert message in info.value.errors[0] and info.value.source == "clip.mp4"


def test_load_script_names_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    with pytest.raises(ScriptInvalid, match=r"(?s)bad\.json: invalid script .*invalid JSON"):
        load_script(bad)
    with pytest.raises(ScriptInvalid, match="unreadable"):
        load_script(tmp_path / "missing.json")


# ------------------------------------------------------------------ prompts
def test_analysis_prompt_embeds_schema_duration_and_de_identification():
    text = analysis_prompt(27.43)
    assert "27.4 seconds" in text and "Set duration_s to 27.43." in text and "8-10 seconds" in text
    assert "never name an actor" in text and "listen to its soundtrack" in text
    assert json.dumps(script_json_schema(), separators=(",", ":")) in text
    assert "no soundtrack" in analysis_prompt(None, has_audio=False)
    assert "unknown number of seconds" in analysis_prompt(None)


def test_retry_prompt_quotes_the_answer_and_every_error():
    text = retry_prompt("BASE REQUEST", "{broken", ["invalid JSON: x", "segments.0.index: is 2"])
    assert text.startswith("BASE REQUEST") and "<<<\n{broken\n>>>" in text
    assert "- invalid JSON: x\n- segments.0.index: is 2" in text
    long = retry_prompt("B", "y" * 10_000, ["e"])
    assert "... (4000 more characters)" in long and len(long) < 7000


def test_templates_are_rendered_strictly():
    with pytest.raises(PromptTemplateError, match=r"template t: placeholder \$tone has no value"):
        render_template("Tone: $tone", {"premise": "p"}, name="t")
    with pytest.raises(PromptTemplateError, match=r"write \$\$"):
        render_template("costs $5", {}, name="t")
    assert render_template("costs $$5 $x", {"x": 1}, name="t") == "costs $5 1\n"


def test_text_mode_renders_one_prompt_per_segment_with_descriptors():
    script = Script.model_validate(valid_script_dict())
    prompts = generation_prompts(script, "text")
    assert [p.segment_index for p in prompts] == [1, 2, 3] and {p.mode for p in prompts} == {"text"}
    first = prompts[0]
    assert (first.start_s, first.end_s, first.duration_s, first.image) == (0.0, 9.0, 9.0, None)
    assert first.characters == ("C1", "C2")
    assert 'the older sister (restrained anger): "You knew, line 1."' in first.prompt
    assert "the younger brother: man in his twenties, hoodie; voice: soft, hesitant" in first.prompt
    assert "Segment 1 of 3, 9 seconds" in first.prompt and "- C1 and C2 are siblings" in first.prompt
    assert "$" not in first.prompt and "- medium two-shot, static" in first.prompt
    assert json.loads(json.dumps(first.to_dict()))["characters"] == ["C1", "C2"]


def test_continuation_mode_conditions_later_segments_on_the_previous_last_frame():
    raw = valid_script_dict()
    quiet = copy.deepcopy(raw["segments"][1])
    quiet.update(dialogue=[], actions=[], camera=[], characters=[])
    raw["segments"][1] = quiet
    prompts = generation_prompts(Script.model_validate(raw), "continuation")
    assert [p.mode for p in prompts] == ["text", "continuation", "continuation"]
    assert prompts[0].image is None
    assert prompts[2].image == {"source": "last_frame_of_previous_segment", "segment_index": 2}
    assert "last frame of segment 2" in prompts[2].prompt and "Previously: Beat 2" in prompts[2].prompt
    assert "- no dialogue" in prompts[1].prompt and "- no one on screen" in prompts[1].prompt
    assert prompts[1].characters == ()
    with pytest.raises(ValueError, match="unknown generation mode"):
        generation_prompts(Script.model_validate(raw), "storyboard")  # type: ignore[arg-type]


def test_construct_prompts_command(tmp_path):
    script = tmp_path / "script.json"
    script.write_text(json.dumps(valid_script_dict((0.0, 9.0, 15.0))))
    out = tmp_path / "p" / "prompts.jsonl"
    res = runner.invoke(app, ["construct", "prompts", str(script), "--out", str(out), "--mode", "continuation"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["mode"] for r in rows] == ["text", "continuation"] and rows[1]["image"]["segment_index"] == 1
    assert "6.00 s long" in " ".join(res.stderr.split())  # the short segment is warned about, still rendered
    res = runner.invoke(app, ["construct", "prompts", str(script)])
    assert res.exit_code == 0 and len(res.stdout.splitlines()) == 2
    assert json.loads(res.stdout.splitlines()[0])["mode"] == "text"
    res = runner.invoke(app, ["construct", "prompts", str(script), "--mode", "storyboard"])
    assert res.exit_code == 2 and "unknown --mode" in " ".join(res.stderr.split())
    script.write_text(json.dumps({**valid_script_dict(), "segments": []}))
    res = runner.invoke(app, ["construct", "prompts", str(script)])
    assert res.exit_code == 2 and "at least 1 item" in " ".join(res.stderr.split())
