"""The gemini backend against a real loopback HTTP fake, through the real google-genai client."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
from pathlib import Path

import pytest

from conftest import write_tiny_clip

pytest.importorskip("google.genai")

from mtavg.evaluators import make_evaluator  # noqa: E402
from mtavg.evaluators.base import MediaRef, PermanentError, Request, TransientError  # noqa: E402
from mtavg.evaluators.gemini_backend import GeminiEvaluator, MissingAPIKey  # noqa: E402
from mtavg.testing.fake_gemini import FakeGeminiServer  # noqa: E402

KEY = "AIzaSyFAKE-mtavg-9f8e7d6c5b4a3210-dontleak"
PROMPT = "Which failure do you see?\nA. lips out of sync\nB. wrong speaker\nC. none\nAnswer in JSON."
USE = {"full": (True, True), "no_audio": (True, False), "no_vision": (False, True), "text": (False, False)}


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("MTAVG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_GENAI_API_VERSION", raising=False)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("gemini_clips")
    return (write_tiny_clip(root / "a.mp4", 2.0, seed=1), write_tiny_clip(root / "b.mp4", 1.5, seed=2))


@pytest.fixture()
def fake():
    with FakeGeminiServer() as server:
        yield server


def request(paths: tuple[Path, ...], modality: str = "full", fmt: str = "single") -> Request:
    video, audio = USE[modality]
    roles = [f"Clip {i}" for i in range(1, len(paths) + 1)] if len(paths) > 1 else ["Clip"]
    media = tuple(MediaRef(video_id=p.stem, path=p, role=r, use_video=video, use_audio=audio)
                  for p, r in zip(paths, roles, strict=True))
    return Request(qid="q1", prompt=PROMPT, media=media, modality=modality, format=fmt,  # type: ignore[arg-type]
                   question="Which failure do you see?", options={"A": "a", "B": "b", "C": "c"})


def run(fake: FakeGeminiServer, req: Request, **kw):
    """One respond() through a fresh evaluator; returns (response or exception, evaluator)."""
    async def go():
        ev = GeminiEvaluator("gemini-test", base_url=fake.base_url, upload_poll_s=0.01, **kw)
        try:
            return await ev.respond(req), ev
        except Exception as exc:  # noqa: BLE001 - the tests inspect the typed error
            return exc, ev
        finally:
            await ev.aclose()
    return asyncio.run(go())


# ---- conversion ---------------------------------------------------------------------------------
def test_full_sends_inline_video_with_audio_before_the_prompt(fake, clips):
    resp, _ = run(fake, request(clips[:1]))
    (rec,) = fake.requests
    assert rec["kinds"] == ["inline_video", "text"]
    assert rec["model"] == "gemini-test" and rec["texts"] == [PROMPT]
    (media,) = rec["media"]
    assert media["mime"] == "video/mp4" and media["has_audio"] is True and media["video_frames"] == 16
    assert json.loads(resp.raw)["answer"] == ["A"]
    assert resp.audio_sent is True and resp.frames_sent == 2  # 2 s clip at Gemini's default 1 fps
    assert resp.meta["transport"] == "inline" and resp.meta["bytes"] == clips[0].stat().st_size


def test_no_audio_sends_video_without_an_audio_stream(fake, clips):
    resp, _ = run(fake, request(clips[:1], "no_audio"))
    (rec,) = fake.requests
    assert rec["kinds"] == ["inline_video", "text"]
    assert rec["media"][0]["has_audio"] is False and rec["media"][0]["video_frames"] == 16
    assert resp.audio_sent is False and resp.frames_sent == 2


def test_no_vision_sends_only_a_wav(fake, clips):
    resp, _ = run(fake, request(clips[:1], "no_vision"))
    (rec,) = fake.requests
    assert rec["kinds"] == ["inline_audio", "text"]
    (media,) = rec["media"]
    assert media["mime"] == "audio/wav" and media["video_frames"] == 0
    assert media["audio_s"] == pytest.approx(2.0, abs=0.1)
    assert resp.audio_sent is True and resp.frames_sent == 0


def test_text_sends_the_prompt_alone(fake, clips):
    resp, _ = run(fake, request(clips[:1], "text"))
    (rec,) = fake.requests
    assert rec["kinds"] == ["text"] and rec["media"] == []
    assert resp.audio_sent is False and resp.frames_sent == 0 and resp.meta["transport"] == "none"


def test_pairwise_labels_each_clip_before_it(fake, clips):
    resp, _ = run(fake, request(clips, fmt="pairwise"))
    (rec,) = fake.requests
    assert rec["kinds"] == ["text", "inline_video", "text", "inline_video", "text"]
    assert rec["texts"] == ["Clip 1:", "Clip 2:", PROMPT]
    assert [m["video_frames"] for m in rec["media"]] == [16, 12]
    assert resp.frames_sent == 2 + 2  # ceil(2.0) + ceil(1.5)


def test_decoding_options_and_usage(fake, clips):
    resp, ev = run(fake, request(clips[:1]))
    (rec,) = fake.requests
    assert rec["temperature"] == 0 and rec["response_mime_type"] == "application/json"
    assert rec["generation_config"]["maxOutputTokens"] == 1024
    assert resp.usage == {"prompt_tokens": rec_tokens(rec), "completion_tokens": 8}
    assert KEY not in ev.fingerprint and '"temperature": 0.0' in ev.fingerprint
    assert rec["api_key_present"] is True


def rec_tokens(rec) -> int:
    return sum(len(t.split()) for t in rec["texts"]) + 258 * len(rec["media"])


def test_factory_coerces_cli_strings_and_json_mode_off(fake, clips):
    ev = make_evaluator("gemini:gemini-test", base_url=fake.base_url, seed=3, inline_max_bytes="100",
                        json_mode="false", temperature="0.5", max_output_tokens="64", media_resolution="low")
    assert isinstance(ev, GeminiEvaluator) and ev.name == "gemini:gemini-test"
    assert ev.inline_max_bytes == 100 and ev.json_mode is False and ev.cacheable is False
    resp = asyncio.run(_respond_and_close(ev, request(clips[:1], "text")))
    cfg = fake.requests[0]["generation_config"]
    assert "responseMimeType" not in cfg and cfg["temperature"] == 0.5 and cfg["maxOutputTokens"] == 64
    assert cfg["mediaResolution"] == "MEDIA_RESOLUTION_LOW" and resp.meta["json_mode"] is False


async def _respond_and_close(ev, req):
    try:
        return await ev.respond(req)
    finally:
        await ev.aclose()


def test_missing_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY")
    with pytest.raises(MissingAPIKey, match="GEMINI_API_KEY"):
        GeminiEvaluator("m")
    with pytest.raises(MissingAPIKey, match="MY_KEY"):
        GeminiEvaluator("m", api_key_env="MY_KEY")
    monkeypatch.setenv("GOOGLE_API_KEY", KEY)
    assert GeminiEvaluator("m").name == "gemini:m"  # the SDK's own variable is the fallback


def test_blocked_candidate_gives_empty_raw_with_finish_reason(clips):
    def blocked(record, body):
        return {"candidates": [{"finishReason": "SAFETY", "index": 0}],
                "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 0}}
    with FakeGeminiServer(responder=blocked) as fake:
        resp, _ = run(fake, request(clips[:1]))
    assert resp.raw == "" and resp.meta["finish_reason"] == "SAFETY"

    def prompt_blocked(record, body):
        return {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}
    with FakeGeminiServer(responder=prompt_blocked) as fake:
        resp, _ = run(fake, request(clips[:1]))
    assert resp.raw == "" and resp.meta["block_reason"] == "PROHIBITED_CONTENT" and resp.usage is None


# ---- File API -----------------------------------------------------------------------------------
def test_large_clip_is_uploaded_once_polled_until_active_reused_and_deleted(clips):
    req = request(clips[:1])

    async def go(fake):
        ev = GeminiEvaluator("gemini-test", base_url=fake.base_url, inline_max_bytes=1000, upload_poll_s=0.01)
        first = await asyncio.gather(ev.respond(req), ev.respond(req))  # concurrent: still one upload
        again = await ev.respond(req)
        assert len(fake.files) == 1
        await ev.aclose()
        return [*first, again]

    with FakeGeminiServer(processing_polls=2) as fake:
        responses = asyncio.run(go(fake))
        assert len(fake.ops("upload_start")) == 1 and len(fake.ops("list_files")) == 1
        assert [r["op"] for r in fake.ops("get_file")] == ["get_file"] * 3  # PROCESSING, PROCESSING, ACTIVE
        for rec in fake.requests:
            assert rec["kinds"] == ["file", "text"] and rec["media"][0]["has_audio"] is True
        assert fake.ops("upload_start")[0]["display_name"] == hashlib.sha256(clips[0].read_bytes()).hexdigest()
        assert fake.files == {} and len(fake.deleted) == 1  # aclose removed it
    assert all(r.meta["transport"] == "file_api" and r.audio_sent and r.frames_sent == 2 for r in responses)


def test_a_resumed_run_finds_the_upload_by_content_hash(clips):
    req = request(clips[:1], "no_vision")

    async def go(fake):
        for _ in range(2):  # two evaluators, as after a restart; the first keeps its upload
            ev = GeminiEvaluator("gemini-test", base_url=fake.base_url, inline_max_bytes=10, upload_poll_s=0.01,
                                 delete_uploads=False)
            await ev.respond(req)
            await ev.aclose()

    with FakeGeminiServer(processing_polls=0) as fake:
        asyncio.run(go(fake))
        assert len(fake.ops("upload_start")) == 1 and len(fake.ops("list_files")) == 2
        assert [r["kinds"] for r in fake.requests] == [["file", "text"]] * 2
        assert fake.requests[1]["media"][0]["mime"] == "audio/wav" and len(fake.files) == 1


def test_failed_processing_is_permanent_and_slow_processing_transient(clips):
    with FakeGeminiServer(final_state="FAILED") as fake:
        err, _ = run(fake, request(clips[:1]), inline_max_bytes=10)
        assert isinstance(err, PermanentError) and "could not process" in str(err)
        assert fake.requests == []
    with FakeGeminiServer(processing_polls=10_000) as fake:
        err, _ = run(fake, request(clips[:1]), inline_max_bytes=10, upload_timeout_s=0.1)
        assert isinstance(err, TransientError) and "PROCESSING" in str(err)


# ---- errors -------------------------------------------------------------------------------------
def _error_for(faults=None, responder=None, **kw):
    with FakeGeminiServer(faults=faults, responder=responder, hold_s=5) as fake:
        err, _ = run(fake, request((write_tiny_clip(Path(kw.pop("tmp")) / "e.mp4", 1.0),)), **kw)
        return err, list(fake.log)


def test_http_errors_become_typed_and_the_sdk_does_not_retry(tmp_path):
    seen = []
    err, log = _error_for({"p_429": 1.0, "retry_after": 7}, tmp=tmp_path)
    assert type(err) is TransientError and err.status == 429 and err.retry_after == 7.0
    assert len([r for r in log if r["op"] == "generateContent"]) == 1  # no hidden SDK retry
    seen += [err, log]
    err, log = _error_for({"p_429": 1.0, "retry_after": 3, "retry_after_header": False}, tmp=tmp_path)
    assert err.status == 429 and err.retry_after == 3.0  # from google.rpc.RetryInfo
    seen += [err, log]
    err, log = _error_for({"p_500": 1.0}, tmp=tmp_path)
    assert type(err) is TransientError and err.status == 500
    assert len([r for r in log if r["op"] == "generateContent"]) == 1
    seen += [err, log]
    err, log = _error_for({"fail_first_n": 1, "fail_status": 503}, tmp=tmp_path)
    assert type(err) is TransientError and err.status == 503
    err, log = _error_for(responder=lambda rec, body: (400, {"error": {
        "code": 400, "message": f"API key not valid: {KEY}", "status": "INVALID_ARGUMENT"}}), tmp=tmp_path)
    assert type(err) is PermanentError and err.status == 400 and "***" in str(err)
    seen += [err, log]
    for item in seen:
        assert KEY not in (str(item) if isinstance(item, Exception) else json.dumps(item, default=str))


def test_broken_bodies_timeouts_and_refused_connections_are_transient(tmp_path):
    for faults in ({"p_truncated": 1.0}, {"p_malformed": 1.0}):
        err, _ = _error_for(faults, tmp=tmp_path)
        assert type(err) is TransientError, faults
        assert KEY not in str(err)
    err, _ = _error_for({"p_timeout": 1.0}, tmp=tmp_path, timeout_s=0.3)
    assert type(err) is TransientError and "timed out" in str(err)

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def refused():
        ev = GeminiEvaluator("gemini-test", base_url=f"http://127.0.0.1:{port}")
        try:
            await ev.respond(request((write_tiny_clip(tmp_path / "r.mp4", 1.0),), "text"))
        finally:
            await ev.aclose()
    with pytest.raises(TransientError) as info:
        asyncio.run(refused())
    assert KEY not in str(info.value)


def test_fake_faults_are_seeded():
    def draws(seed):
        with FakeGeminiServer(faults={"p_500": 0.5, "seed": seed}) as fake:
            return [fake.draw_fault() for _ in range(20)]
    assert draws(1) == draws(1) and draws(1) != draws(2)
