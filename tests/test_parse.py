"""parse_response on responses shaped like what Gemini, GPT-4o, Qwen2.5-Omni and MiniCPM-o return."""

from __future__ import annotations

import pytest

from mtavg.parse import ParsedAnswer, parse_response

OPTS = {
    "A": "The speaker's lip motion lags behind the speech audio",
    "B": "The voice timbre changes between shots for the same character",
    "C": "Dialogue lines are assigned to the wrong speaker",
    "D": "Background music volume overwhelms the dialogue",
}
PAIR = {"A": "Clip 1", "B": "Clip 2"}
TIMES = {"A": (0.0, 2.0), "B": (2.0, 4.0), "C": (4.0, 6.0), "D": (6.0, 8.0)}


def bad(reason: str) -> tuple[str, str]:
    return ("invalid", reason)


SINGLE = [
    # --- JSON -----------------------------------------------------------------------------------
    ("json_list", '{"answer": ["B"], "rationale": "The voice changes at 3s."}', ["B"]),
    ("json_bare_string", '{"answer": "C", "rationale": "Lines swapped."}', ["C"]),
    ("json_fenced",
     'Here is my evaluation:\n```json\n{\n  "answer": ["D"],\n  "rationale": "Music is loud."\n}\n```',
     ["D"]),
    ("json_capital_key", '```json\n{"Answer": "B", "Rationale": "timbre shift"}\n```', ["B"]),
    ("json_paren_label", '{"answer": ["(B)"]}', ["B"]),
    ("json_dot_label", '{"answer": "B."}', ["B"]),
    ("json_lowercase_label", '{"answer": "b"}', ["B"]),
    ("json_option_text", '{"answer": "Dialogue lines are assigned to the wrong speaker."}', ["C"]),
    ("json_label_and_text", '{"answer": "A. The speaker\'s lip motion lags behind the speech audio"}', ["A"]),
    ("json_option_word", '{"answer": "Option D"}', ["D"]),
    ("json_embedded_in_prose",
     'After watching the clip, the mouth movements are fine but the voice sounds different in the second '
     'shot. {"answer": ["B"], "rationale": "voice timbre shift"} I hope this helps.', ["B"]),
    ("json_last_object_wins", 'Draft: {"answer": ["A"]}\nRevised after re-watching: {"answer": ["C"]}',
     ["C"]),
    ("json_beats_prose", 'The answer is A... let me format it.\n{"answer": ["D"], "rationale": "music"}',
     ["D"]),
    ("json_other_object_ignored", '{"observations": ["lip lag"]}\nAnswer: A', ["A"]),
    ("json_truncated", '```json\n{"answer": ["C"], "rationale": "In the second shot the line spoken by',
     ["C"]),
    ("json_single_quotes", "{'answer': ['B'], 'rationale': 'voice changes'}", ["B"]),
    ("json_trailing_comma", '{"answer": ["A"],}', ["A"]),
    ("json_not_option", '{"answer": ["E"], "rationale": "x"}', bad("not_an_option: E")),
    ("json_two_labels_single", '{"answer": ["A", "C"]}', bad("too_many_answers")),
    ("json_empty_list", '{"answer": [], "rationale": "Nothing wrong."}', bad("empty_answer")),
    ("json_none_of_above", '{"answer": "None of the above", "rationale": "all fine"}',
     bad("none_of_the_above")),
    ("json_free_text", '{"answer": "The clip looks natural"}', bad("not_an_option")),
    # --- strong declarations ---------------------------------------------------------------------
    ("answer_colon", "Answer: B", ["B"]),
    ("answer_is_paren", "Based on the audio, the answer is (C).", ["C"]),
    ("final_answer_bold", "The lips lag by ~200ms in the close-up.\n\nFinal answer: **A**", ["A"]),
    ("bold_answer_label", "**Answer:** D\n\nThe music drowns out the dialogue between 2s and 5s.", ["D"]),
    ("bold_whole_decl", "**Final Answer: B**", ["B"]),
    ("markdown_heading", "### Analysis\nThe second speaker's voice is different.\n\n### Final Answer\n**B**",
     ["B"]),
    ("answer_newline", "Final answer:\n\nC", ["C"]),
    ("correct_answer_is", "Therefore, the correct answer is B: the voice timbre changes.", ["B"]),
    ("answer_is_likely", "Given the drift, the answer is likely A.", ["A"]),
    ("answer_tag", "<think>lips lag?</think>\n<answer>A</answer>", ["A"]),
    ("answer_tag_spaces", "Reasoning: the voice changes.\n<answer> B </answer>", ["B"]),
    ("boxed", "So we conclude $\\boxed{C}$", ["C"]),
    ("boxed_text", "The final answer is $\\boxed{\\text{D}}$.", ["D"]),
    ("i_choose", "Considering everything, I choose option C.", ["C"]),
    ("go_with", "I'll go with B since the voice clearly changes.", ["B"]),
    ("option_is_correct", "Option D is the correct answer because the music masks speech.", ["D"]),
    ("explicit_beats_later_affirmation",
     "Answer: B\n\nA is not right here; D is the best fit for the music, but the voice clearly changes.",
     ["B"]),
    ("letter_is_correct", "Looking at the speakers again, C is correct.", ["C"]),
    ("answer_option_word", "Answer: Option B", ["B"]),
    ("answer_option_text", "Answer: Dialogue lines are assigned to the wrong speaker", ["C"]),
    ("answer_a_because", "Answer: A because the mouth keeps moving after the audio stops.", ["A"]),
    ("last_strong_wins",
     "Answer: A\n\nWait, on reflection the lips are fine; the voice changes.\n\nAnswer: C",
     ["C"]),
    ("strong_beats_later_weak",
     "The answer is B. Note that (A) and (C) were also considered but rejected.", ["B"]),
    ("strong_after_enumeration",
     "Let's go through each option:\nA. Lip lag: not observed.\nB. Timbre change: yes, at 00:03.\n"
     "C. Wrong speaker: no.\nD. Music: no.\n\n**Answer: B**", ["B"]),
    ("answer_with_think_block",
     "<think>Maybe A? The answer is A... no, the voice changes</think>\nThe answer is B.", ["B"]),
    # --- Chinese ------------------------------------------------------------------------------------
    ("zh_answer_colon", "答案：B", ["B"]),
    ("zh_answer_is", "视频中第二个镜头的声音明显变了，所以答案是B。", ["B"]),
    ("zh_choose", "综合来看，我选C，因为台词分配给了错误的说话人。", ["C"]),
    ("zh_final", "分析：口型与语音不同步。\n最终答案：A", ["A"]),
    ("zh_option_mention", "经过分析，选项D最符合，背景音乐太大。", ["D"]),
    # --- weak declarations ---------------------------------------------------------------------------
    ("bare_letter", "B", ["B"]),
    ("bare_letter_dot", "C.", ["C"]),
    ("bare_lowercase", "d", ["D"]),
    ("bold_letter", "After careful review: **D**", ["D"]),
    ("paren_letter", "The most fitting option is clearly visible at 0:04, so (C)", ["C"]),
    ("label_dot_text", "B. The voice timbre changes between shots for the same character", ["B"]),
    ("label_paren_text", "A) The speaker's lip motion lags behind the speech audio", ["A"]),
    ("option_text_alone", "Background music volume overwhelms the dialogue.", ["D"]),
    ("option_text_near_exact", "the voice timbre changes between shot for same character", ["B"]),
    ("option_b_mention", "I believe it's Option B, the timbre is different in the second shot.", ["B"]),
    ("enumeration_then_bold",
     "A. Lip lag - no\nB. Timbre - no\nC. Wrong speaker - yes\nD. Music - no\n\nSo the issue is **C**.",
      ["C"]),
    # --- English-word traps ------------------------------------------------------------------------
    ("article_a_then_answer",
     "A man and a woman argue in a kitchen. A subtle change in the man's voice occurs. Answer: B", ["B"]),
    ("article_a_only", "A man speaks while a woman listens; the scene is calm and well lit.",
     bad("no_answer_found")),
    ("pronoun_i", "I think the lips are a bit late, but I'm not totally sure about it.",
     bad("no_answer_found")),
    ("answer_colon_article", "Answer: A lot of background noise makes it hard, but (D) fits best.", ["D"]),
    ("answer_i_think", "Answer: I think it is D.", ["D"]),
    # --- not an option / too many ----------------------------------------------------------------
    ("answer_e", "Answer: E", bad("not_an_option: E")),
    ("bare_e", "E", bad("not_an_option: E")),
    ("weak_e_ignored", "As shown in figure (E), the voice changes. **B**", ["B"]),
    ("answer_two_single", "Answer: A, C", bad("too_many_answers")),
    ("answer_or_single", "The answer is B or C, hard to tell.", bad("too_many_answers")),
    # --- refusals / none ----------------------------------------------------------------------------
    ("refusal_video", "I'm sorry, but I cannot watch videos. I can only process text.", bad("refusal")),
    ("refusal_unable", "I'm unable to determine which option applies from the provided frames.",
     bad("refusal")),
    ("refusal_help", "I can't help with that.", bad("refusal")),
    ("refusal_with_stray_letters",
     "Sorry, I cannot view the video content, so I can't say whether (A) or (B) is right.", bad("refusal")),
    ("refusal_then_strong",
     "I cannot view the video directly, but judging from the audio track the answer is B.", ["B"]),
    ("ai_model", "As an AI, I don't have the ability to view media files.", bad("refusal")),
    ("zh_refusal", "抱歉，我无法观看视频。", bad("refusal")),
    ("none_above", "None of the above; the clip looks natural.", bad("none_of_the_above")),
    ("none_of_these_with_letters", "Options A and C don't apply, and none of these fit (B).",
     bad("none_of_the_above")),
    ("no_failure", "No failure is present in this clip.", bad("none_of_the_above")),
    ("answer_none", "Answer: None", bad("none_of_the_above")),
    ("answer_na", "Final answer: N/A", bad("none_of_the_above")),
    ("conclusion", "I. Visual: lips fine. II. Audio: the voice changes.\n\n**Conclusion:** B", ["B"]),
    ("most_accurate", "Having compared all four, the most accurate description is C.", ["C"]),
    ("option_b_correct_after_a_incorrect", "Option A is incorrect; option B is correct.", ["B"]),
    ("answer_bold_label_dash_text", "Answer: **B** - The voice timbre changes", ["B"]),
    ("answer_then_bold_line",
     "The answer is: \n**B. The voice timbre changes between shots for the same character**",
     ["B"]),
    ("speaker_a_not_label", "The woman (Speaker A) speaks the man's line, so the answer is C.", ["C"]),
    ("speaker_a_only", "Speaker A is talking but the lips of speaker B move.", bad("no_answer_found")),
    ("gpt4o_markdown",
     "Looking at the video:\n\n1. **Lip sync**: The lips match the audio.\n2. **Voice**: The man's voice "
     "becomes noticeably deeper after the cut at 00:03.\n3. **Music**: balanced.\n\nBased on this analysis, "
     "the best answer is **B**.", ["B"]),
    ("bold_dash_enumeration",
     "**A** - no lag\n**B** - voice shifts\n**C** - no\n**D** - no\n\nThe voice timbre changes, so (B).",
     ["B"]),
    ("bold_dash_enumeration_only",
     "**A** - no lag\n**B** - voice shifts\n**C** - no\n**D** - no", bad("no_answer_found")),
    ("not_a_its_b", "The answer is not A, it's B.", bad("no_answer_found")),
    ("cannot_see_mismatch_weak", "I cannot see the video, but the description suggests **B**.",
     bad("refusal")),
    ("prose_no_answer", "The video shows two people talking in a kitchen, lighting is warm.",
     bad("no_answer_found")),
    ("empty_string", "", bad("empty")),
    ("whitespace", "   \n ", bad("empty")),
    ("none_raw", None, bad("empty")),
    ("non_str_raw", 42, bad("empty")),
]

MULTI = [
    ("json_list", '{"answer": ["A", "C"], "rationale": "lag and swap"}', ["A", "C"]),
    ("json_string_list", '{"answer": "A, C"}', ["A", "C"]),
    ("json_unsorted_dupes", '{"answer": ["D", "A", "D"]}', ["A", "D"]),
    ("comma", "Answer: A, C", ["A", "C"]),
    ("and", "The answers are A and C.", ["A", "C"]),
    ("semicolon", "Answer: A; C", ["A", "C"]),
    ("ampersand", "Final answer: A & C", ["A", "C"]),
    ("oxford_list", "Answers: A, C, and D", ["A", "C", "D"]),
    ("answers_plural", "Answers: A, C, D", ["A", "C", "D"]),
    ("bare_list", "A, C", ["A", "C"]),
    ("bare_and", "B and D", ["B", "D"]),
    ("parens_and", "Both problems appear: (A) and (C).", ["A", "C"]),
    ("bold_list", "Selected failures: **A**, **D**", ["A", "D"]),
    ("bold_slash", "**Answer:** B/C", ["B", "C"]),
    ("answer_tag", "<answer>A, B, D</answer>", ["A", "B", "D"]),
    ("boxed", "$\\boxed{A, C}$", ["A", "C"]),
    ("zh_list", "答案：A、C", ["A", "C"]),
    ("zh_and", "答案是A和D", ["A", "D"]),
    ("answer_then_bullets", "Answers:\n- A\n- C\n\nBoth are clearly visible.", ["A", "C"]),
    ("final_then_text_bullets",
     "Final answer:\n1. A. The speaker's lip motion lags\n2. D. Background music volume overwhelms",
      ["A", "D"]),
    ("bullet_block",
     "The following failures are present:\n\n- **A.** The lips lag at 0:02.\n- **C.** Line given to the "
     "wrong speaker at 0:05.", ["A", "C"]),
    ("single_label_multi", "Answer: B", ["B"]),
    ("multi_last_wins", "Answer: A, B\nOn second thought the timbre is fine.\nAnswer: A, C, D",
     ["A", "C", "D"]),
    ("star_bullets", "Identified failures:\n* A\n* C", ["A", "C"]),
    ("affirmed_list", "A and C are correct.", ["A", "C"]),
    ("bold_colon_bullets", "- **A**: yes, the mouth lags\n- **C**: yes, wrong speaker", ["A", "C"]),
    ("bold_enumeration_then_final",
     "Let me evaluate each option:\n\n**A. Lip lag** - Present at 0:03.\n**B. Timbre** - Not present.\n"
     "**C. Wrong speaker** - Present.\n**D. Music** - Not present.\n\n**Final Answer: A, C**", ["A", "C"]),
    ("issues_are", "The issues present are A and D.", ["A", "D"]),
    ("multi_not_option", "Answer: A, F", bad("not_an_option: F")),
    ("multi_all_enumerated_no_answer",
     "A. Lip lag: present\nB. Timbre: absent\nC. Wrong speaker: present\nD. Music: absent",
     bad("no_answer_found")),
    ("multi_json_fenced_text",
     "```json\n{\"answer\": [\"Dialogue lines are assigned to the wrong speaker\", \"B\"]}\n```", ["B", "C"]),
]

PAIRWISE = [
    ("json", '{"answer": "B", "rationale": "Clip 2 drifts"}', ["B"]),
    ("json_clip_text", '{"answer": "Clip 1"}', ["A"]),
    ("clip_is_the_one", "Clip 1 has tight sync. Clip 2 is the one with the drift.", ["B"]),
    ("answer_clip", "Answer: Clip 2", ["B"]),
    ("clip_mentions_last", "In Clip 1 the voice changes halfway, which Clip 2 avoids. So: Clip 1", ["A"]),
    ("label", "Answer: (A)", ["A"]),
    ("bare_clip", "Clip 1.", ["A"]),
    ("bold_clip", "**Clip 2** shows the voice drifting away from the lips.", ["B"]),
    ("answer_is_clip", "Comparing both, Clip 2 exhibits worse sync. Therefore, the answer is Clip 2.", ["B"]),
    ("not_a_clip", "Answer: Clip 3", bad("no_answer_found")),
    ("both", "Answer: A and B", bad("too_many_answers")),
    ("neither", "Neither clip shows the failure.", bad("none_of_the_above")),
    ("zh", "答案：Clip 2", ["B"]),
]

TEMPORAL = [
    ("json", '{"primary_issue": "B", "time": ["A", "C"], "rationale": "timbre"}', (["B"], ["A", "C"])),
    ("json_string_time", '{"primary_issue": "C", "time": "B, D"}', (["C"], ["B", "D"])),
    ("json_range_time", '{"primary_issue": "A", "time": ["2.0-4.0s", "6.0 - 8.0 s"]}', (["A"], ["B", "D"])),
    ("json_number_pairs", '{"primary_issue": "A", "time": [[0, 2], [4.0, 6.0]]}', (["A"], ["A", "C"])),
    ("json_range_off_by_little", '{"primary_issue": "D", "time": ["2.04-3.98s"]}', (["D"], ["B"])),
    ("json_range_no_match", '{"primary_issue": "D", "time": ["2.5-3.5s", "C"]}', (["D"], ["C"])),
    ("json_no_time", '{"primary_issue": "B", "rationale": "x"}', (["B"], [])),
    ("json_answer_key", '```json\n{"answer": ["D"], "time": ["B"]}\n```', (["D"], ["B"])),
    ("json_truncated", '{"primary_issue": "C", "time": ["A", "B"], "rationale": "At 1.5s the man\'s li',
     (["C"], ["A", "B"])),
    ("prose", "Primary issue: B\nTime: A, C\nThe voice changes twice.", (["B"], ["A", "C"])),
    ("prose_segments", "The lips lag most visibly in segments B and C.\n\nAnswer: A", (["A"], ["B", "C"])),
    ("prose_time_ranges", "Answer: D\nTime: 0.0-2.0s, 4.0-6.0s", (["D"], ["A", "C"])),
    ("prose_bold", "**Primary issue:** C\n**Time segments:** D", (["C"], ["D"])),
    ("prose_no_time", "The answer is (A).", (["A"], [])),
    ("zh", "答案：B\n时间：A、D", (["B"], ["A", "D"])),
    ("prose_time_bullets", "Primary Issue: A\nTime Segments:\n- B (2.0-4.0s)\n- D (6.0-8.0s)",
     (["A"], ["B", "D"])),
    ("json_mmss_range", '{"primary_issue": "B", "time": ["0:02-0:04"]}', (["B"], ["B"])),
    ("prose_primary_with_text",
     "Primary issue: (C) Dialogue lines are assigned to the wrong speaker\nTime: B (2.0-4.0s)",
     (["C"], ["B"])),
    ("two_primary", '{"primary_issue": ["A", "B"], "time": ["A"]}', bad("too_many_answers")),
    ("refusal", "I cannot watch the video, so I cannot localise the failure.", bad("refusal")),
]


def _check(raw, options, fmt, expected, time_options=None):
    got = parse_response(raw, options, fmt, time_options)
    assert isinstance(got, ParsedAnswer)
    if isinstance(expected, tuple) and expected[0] == "invalid":
        assert not got.valid, got
        assert got.answer == [] and got.prediction() is None
        assert got.reason is not None and got.reason.startswith(expected[1]), got.reason
        return
    answer, time = expected if isinstance(expected, tuple) else (expected, [])
    assert got.valid, got
    assert got.reason is None
    assert got.answer == answer
    assert got.time == time
    assert got.prediction() == {"answer": answer, "time": time}


@pytest.mark.parametrize("case", SINGLE, ids=[c[0] for c in SINGLE])
def test_single(case):
    _check(case[1], OPTS, "single", case[2])


@pytest.mark.parametrize("case", MULTI, ids=[c[0] for c in MULTI])
def test_multi(case):
    _check(case[1], OPTS, "multi", case[2])


@pytest.mark.parametrize("case", PAIRWISE, ids=[c[0] for c in PAIRWISE])
def test_pairwise(case):
    _check(case[1], PAIR, "pairwise", case[2])


@pytest.mark.parametrize("case", TEMPORAL, ids=[c[0] for c in TEMPORAL])
def test_temporal(case):
    _check(case[1], OPTS, "temporal", case[2], TIMES)


def test_rationale_from_json():
    got = parse_response('{"answer": ["B"], "rationale": "The voice changes at 3s."}', OPTS, "single")
    assert got.rationale == "The voice changes at 3s."
    assert parse_response('{"answer": "B", "Explanation": "timbre"}', OPTS, "single").rationale == "timbre"
    assert parse_response("Answer: B", OPTS, "single").rationale is None


def test_rationale_from_truncated_json():
    got = parse_response('{"answer": ["C"], "rationale": "Line given to the wro', OPTS, "single")
    assert got.answer == ["C"] and got.rationale == "Line given to the wro"


def test_time_is_empty_outside_temporal():
    got = parse_response('{"answer": ["B"], "time": ["A"]}', OPTS, "single", TIMES)
    assert got.time == [] and got.answer == ["B"]


def test_temporal_without_time_options():
    got = parse_response('{"primary_issue": "B", "time": ["A"]}', OPTS, "temporal", None)
    assert got.valid and got.answer == ["B"] and got.time == []


def test_unknown_format_raises():
    with pytest.raises(ValueError, match="format"):
        parse_response("Answer: B", OPTS, "ranking")


ODD = ["{", "}{", "```json\n```", "\\boxed{", "<answer></answer>", "**", "(", "A" * 5000, "{" * 5000,
       '{"answer": null}', '{"answer": 3}', '{"answer": {"x": 1}}', "\x00\x01"]


@pytest.mark.parametrize("raw", ODD)
def test_odd_input_never_raises(raw):
    got = parse_response(raw, OPTS, "single")
    assert isinstance(got, ParsedAnswer)
    assert "" not in got.answer


def test_at_least_80_cases():
    assert len(SINGLE) + len(MULTI) + len(PAIRWISE) + len(TEMPORAL) >= 80
