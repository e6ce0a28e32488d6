"""``openai:NAME`` — any OpenAI-compatible chat server: OpenAI itself, or vLLM serving Qwen2.5-Omni.

This module converts a Request into one chat message (media parts first, then the prompt) and the
reply into a Response, with every failure typed. Retries, rate limits and caching belong to the run
engine: the client runs with ``max_retries=0`` and nothing is remembered between calls.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import json
import math
import mimetypes
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mtavg.endpoints import EndpointPool, split_urls
from mtavg.evaluators import register
from mtavg.evaluators.base import Evaluator, MediaRef, PermanentError, Request, Response, TransientError

AUDIO_RATE = 16000
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}
_TRANSIENT_STATUS = {408, 409}


@dataclass
class _Built:
    """One converted request: the message content and what it really carries."""

    content: list[dict[str, Any]]
    audio_sent: bool = False
    frames_sent: int = 0
    use_audio_in_video: bool = False
    video_parts: int = 0


class OpenAIEvaluator(Evaluator):
    """video_mode "video" sends each clip as a video_url (vLLM; frames_sent is the count requested via
    fps/max_frames, which the server samples), "frames" as JPEG image_url parts (servers without video
    input; frames_sent is what was sent). audio_mode "in_video" keeps the soundtrack in the mp4 and sets
    mm_processor_kwargs.use_audio_in_video (Qwen2.5-Omni); "separate" mutes the video and adds a WAV
    part. transport "data" inlines base64; "file" sends file:// paths (a server sharing the disk).
    Several endpoints (``base_url="http://a/v1,http://b/v1"`` or a list) are load-balanced by an
    EndpointPool: least requests in flight, at most ``per_endpoint_concurrency`` each, failover on
    connection errors and 5xx with an ``endpoint_cooldown`` before a failed endpoint is probed again."""

    def __init__(
        self, model: str, *, base_url: str | list[str] | None = None, api_key_env: str = "OPENAI_API_KEY",
        video_mode: str = "video", audio_mode: str = "in_video", transport: str = "data",
        fps: float = 2.0, max_frames: int = 32, max_pixels: int | None = 360 * 420, max_tokens: int = 512,
        temperature: float = 0.0, logprobs: bool = False, top_logprobs: int = 0, seed: int | None = None,
        mm_processor_kwargs: dict[str, Any] | None = None, extra_body: dict[str, Any] | None = None,
        request_timeout: float = 600.0, per_endpoint_concurrency: int | None = None,
        endpoint_cooldown: float = 10.0,
    ) -> None:
        if not model:
            raise ValueError("openai: a model name is required (openai:NAME)")
        for label, value, allowed in (("video_mode", video_mode, ("video", "frames")),
                                      ("audio_mode", audio_mode, ("in_video", "separate")),
                                      ("transport", transport, ("data", "file"))):
            if value not in allowed:
                raise ValueError(f"openai: {label}={value!r}; choose one of: {', '.join(allowed)}")
        if fps <= 0 or max_frames < 1 or max_tokens < 1 or not 0 <= top_logprobs <= 20 or request_timeout <= 0:
            raise ValueError("openai: fps, max_frames, max_tokens, request_timeout must be positive; "
                             "top_logprobs in 0..20")
        urls = split_urls(base_url)
        self.model, self.api_key_env = model, api_key_env
        self.base_url: str | None = urls[0] if len(urls) == 1 else None
        # One endpoint keeps the direct path; several go through the pool (balancing, failover, counters).
        self._pool = EndpointPool(urls, per_endpoint=per_endpoint_concurrency, cooldown_s=endpoint_cooldown) \
            if len(urls) > 1 else None
        self._urls = urls
        self.video_mode, self.audio_mode, self.transport = video_mode, audio_mode, transport
        self.fps, self.max_frames, self.max_pixels = float(fps), int(max_frames), max_pixels
        self.max_tokens, self.temperature, self.seed = int(max_tokens), float(temperature), seed
        self.logprobs, self.top_logprobs = bool(logprobs), int(top_logprobs)
        self.mm_processor_kwargs, self.extra_body = dict(mm_processor_kwargs or {}), dict(extra_body or {})
        self.request_timeout = float(request_timeout)
        self._api_key = self._resolve_key()
        import openai  # noqa: F401 - ~0.5 s: pay it here, not inside the first (timed) request
        self._clients: dict[str | None, Any] = {}
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self.name = f"openai:{model}"
        # Everything that changes what the model sees or how it decodes; never the key or the URL.
        self.fingerprint = json.dumps({
            "video_mode": video_mode, "audio_mode": audio_mode, "transport": transport, "fps": self.fps,
            "max_frames": self.max_frames, "max_pixels": max_pixels, "audio_rate": AUDIO_RATE,
            "max_tokens": self.max_tokens, "temperature": self.temperature, "seed": seed,
            "logprobs": self.logprobs, "top_logprobs": self.top_logprobs,
            "mm_processor_kwargs": self.mm_processor_kwargs, "extra_body": self.extra_body,
        }, sort_keys=True, separators=(",", ":"))
        self.cacheable = self.temperature == 0.0

    def _resolve_key(self) -> str:
        if key := os.environ.get(self.api_key_env):
            return key
        if self._urls and all(urlparse(u).hostname in _LOCAL_HOSTS for u in self._urls):
            return "EMPTY"  # a local vLLM server takes any key
        raise ValueError(f"openai: environment variable {self.api_key_env} is not set "
                         f"(set it, or pass --api-key-env VAR; a localhost --base-url needs no key)")

    def _get_client(self, url: str | None = None) -> Any:
        """The client for one endpoint (default: the only one, or OpenAI's own when none was given)."""
        # An async HTTP client is bound to the loop it first ran on; a new asyncio.run needs new ones.
        loop = asyncio.get_running_loop()
        if self._client_loop is not loop:
            self._clients, self._client_loop = {}, loop
        url = url if url is not None else self.base_url
        if url not in self._clients:
            import openai

            self._clients[url] = openai.AsyncOpenAI(base_url=url, api_key=self._api_key, max_retries=0,
                                                    timeout=self.request_timeout)
        return self._clients[url]

    def endpoint_stats(self) -> list[dict[str, Any]] | None:
        """Per-endpoint requests, errors, failovers and latency when several endpoints are in use."""
        return self._pool.stats() if self._pool is not None else None

    async def aclose(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            with contextlib.suppress(RuntimeError):  # its loop is gone already: nothing left to release
                await client.close()

    # ---- Request -> message content -------------------------------------------------------------

    def _url(self, path: Path, default_mime: str) -> str:
        if self.transport == "file":
            return path.resolve().as_uri()
        mime = mimetypes.guess_type(path.name)[0] or default_mime
        return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"

    def _audio_part(self, path: Path, wav: bytes | None = None) -> dict[str, Any]:
        from mtavg.media.prepare import audio_wav

        if self.transport == "file":  # input_audio takes base64 only; vLLM reads audio_url file:// paths
            return {"type": "audio_url", "audio_url": {"url": audio_wav(path, AUDIO_RATE).resolve().as_uri()}}
        data = wav if wav is not None else audio_wav(path, AUDIO_RATE).read_bytes()
        return {"type": "input_audio", "input_audio": {"data": base64.b64encode(data).decode("ascii"),
                                                       "format": "wav"}}

    def _clip_parts(self, ref: MediaRef, built: _Built) -> None:
        from mtavg.media import prepare, probe

        path, parts = Path(ref.path), built.content
        if not ref.use_video:
            if ref.use_audio:  # no_vision: the soundtrack alone
                parts.append(self._audio_part(path))
                built.audio_sent = True
            return
        if self.video_mode == "frames":
            clip = prepare.decode_clip(path, fps=self.fps, max_frames=self.max_frames, max_pixels=self.max_pixels,
                               sample_rate=AUDIO_RATE, with_audio=ref.use_audio)
            assert clip.frames is not None
            times = ", ".join(f"{t:.1f}" for t in clip.frame_times)
            # Without the times a frame-only model cannot answer "when" (temporal items).
            parts.append({"type": "text", "text": f"{len(clip.frames)} frames at t = {times} s:"})
            for frame in clip.frames:
                url = f"data:image/jpeg;base64,{base64.b64encode(prepare.jpeg_bytes(frame)).decode('ascii')}"
                parts.append({"type": "image_url", "image_url": {"url": url}})
            built.frames_sent += len(clip.frames)
            if ref.use_audio and clip.audio is not None:
                parts.append(self._audio_part(path, prepare.wav_bytes(clip.audio, AUDIO_RATE)))
                built.audio_sent = True
            return
        has_audio = probe(path).has_audio
        if ref.use_audio and self.audio_mode == "in_video":
            video = path  # the original mp4, soundtrack inside
            built.use_audio_in_video = built.use_audio_in_video or has_audio
            built.audio_sent = built.audio_sent or has_audio
        else:
            video = prepare.video_without_audio(path) if has_audio else path
        parts.append({"type": "video_url", "video_url": {"url": self._url(video, "video/mp4")}})
        built.video_parts += 1
        # The server samples the frames; this is the count we ask for (fps, max_frames), not a measurement.
        duration = ref.duration_s if ref.duration_s is not None else probe(path).duration_s
        built.frames_sent += len(prepare.frame_times_for(duration, fps=self.fps, n_frames=None,
                                                         max_frames=self.max_frames))
        if ref.use_audio and self.audio_mode == "separate" and has_audio:
            parts.append(self._audio_part(path))
            built.audio_sent = True

    def build_content(self, request: Request) -> _Built:
        """The user message's content parts (blocking: reads and encodes media; run it in a thread)."""
        built = _Built(content=[])
        for ref in request.media:
            if len(request.media) > 1:
                built.content.append({"type": "text", "text": f"{ref.role}:"})
            self._clip_parts(ref, built)
        built.content.append({"type": "text", "text": request.prompt})
        return built

    def _mm_kwargs(self, built: _Built) -> dict[str, Any]:
        mm: dict[str, Any] = {}
        if built.video_parts:
            mm["fps"] = self.fps
            if self.max_pixels is not None:
                mm["max_pixels"] = self.max_pixels
        if built.use_audio_in_video:
            mm["use_audio_in_video"] = True
        return {**mm, **self.mm_processor_kwargs}  # the user's settings win

    # ---- calling the server ---------------------------------------------------------------------

    async def _call(self, request: Request, **overrides: Any) -> tuple[dict[str, Any], _Built]:
        # media reading and encoding blocks, so it runs in a thread; a text-only request needs none
        built = await asyncio.to_thread(self.build_content, request) if request.media \
            else self.build_content(request)
        kwargs: dict[str, Any] = {
            "model": self.model, "messages": [{"role": "user", "content": built.content}],
            "temperature": self.temperature, "max_tokens": self.max_tokens,
        }
        if self.seed is not None:
            kwargs["seed"] = self.seed
        if self.logprobs:
            kwargs.update(logprobs=True, **({"top_logprobs": self.top_logprobs} if self.top_logprobs else {}))
        kwargs.update(overrides)
        body = {**kwargs, **self.extra_body}  # extra_body: server-specific fields at the top level
        mm = {**self.extra_body.get("mm_processor_kwargs", {}), **self._mm_kwargs(built)}
        if mm:
            body["mm_processor_kwargs"] = mm

        async def post(url: str | None) -> Any:
            try:
                # client.post with a plain dict, not chat.completions.create: the typed layer walks every
                # (base64) part and builds pydantic models, which doubled our per-request CPU at high rates.
                return await self._get_client(url).post("/chat/completions", body=body, cast_to=object)
            except Exception as exc:  # noqa: BLE001 - every failure leaves as a typed EvaluatorError
                raise self._translate(exc) from None

        data = await (self._pool.run(post) if self._pool is not None else post(None))
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list) or not data["choices"]:
            raise TransientError("malformed response: no choices in the reply body")
        return data, built

    async def respond(self, request: Request) -> Response:
        data, built = await self._call(request)
        choice = data["choices"][0] or {}
        content = (choice.get("message") or {}).get("content") or ""
        if isinstance(content, list):  # some servers answer in content parts
            content = "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
        usage = data.get("usage") or None
        return Response(
            raw=str(content),  # empty stays empty: the parser marks it invalid 'empty'
            logprobs=_logprobs(choice),
            usage={"prompt_tokens": usage.get("prompt_tokens"),
                   "completion_tokens": usage.get("completion_tokens")} if usage else None,
            audio_sent=built.audio_sent, frames_sent=built.frames_sent,
            meta={"video_mode": self.video_mode, "audio_mode": self.audio_mode, "transport": self.transport,
                  "fps": self.fps, "max_frames": self.max_frames, "max_pixels": self.max_pixels,
                  "use_audio_in_video": built.use_audio_in_video},
        )

    async def yes_probability(self, request: Request) -> float:
        data, _ = await self._call(request, logprobs=True, top_logprobs=20, max_tokens=1)
        tokens = _logprobs(data["choices"][0] or {}) or []
        if not tokens:
            raise PermanentError(f"{self.name}: no logprobs returned for {request.qid} (does the server support them?)")
        first = tokens[0]
        seen: dict[str, float] = {t["token"]: t["logprob"] for t in first["top_logprobs"]}
        seen.setdefault(first["token"], first["logprob"])
        p = {"yes": 0.0, "no": 0.0}
        for token, logprob in seen.items():
            word = token.strip().lower()
            if word in p and logprob is not None:
                p[word] += math.exp(logprob)
        if p["yes"] + p["no"] <= 0:
            raise PermanentError(f"{self.name}: neither Yes nor No among the top tokens for {request.qid}")
        return p["yes"] / (p["yes"] + p["no"])

    # ---- errors -----------------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        if self._api_key and self._api_key != "EMPTY":
            text = text.replace(self._api_key, "***")
        return text[:500]

    def _translate(self, exc: Exception) -> Exception:
        import openai

        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            msg = self._scrub(f"{self.name}: HTTP {status}: {_error_message(exc)}")
            if status == 429 or status in _TRANSIENT_STATUS or status >= 500:
                return TransientError(msg, status=status, retry_after=_retry_after(exc.response.headers))
            return PermanentError(msg, status=status)
        if isinstance(exc, openai.APITimeoutError):
            return TransientError(f"{self.name}: request timed out after {self.request_timeout:g}s")
        if isinstance(exc, openai.APIConnectionError):
            cause = type(exc.__cause__).__name__ if exc.__cause__ else ""
            if cause in ("RemoteProtocolError", "ReadError", "IncompleteRead", "EndOfStream"):
                return TransientError(self._scrub(f"{self.name}: malformed response: body cut short ({cause})"))
            return TransientError(self._scrub(f"{self.name}: connection error ({cause or exc})"))
        if isinstance(exc, (openai.APIResponseValidationError, ValueError)):  # JSONDecodeError is a ValueError
            return TransientError(self._scrub(f"{self.name}: malformed response ({type(exc).__name__})"))
        if isinstance(exc, openai.OpenAIError):
            return PermanentError(self._scrub(f"{self.name}: {type(exc).__name__}: {exc}"))
        return exc  # not the client's: a bug in this module or the media layer, let it speak for itself


def _error_message(exc: Any) -> str:
    body = exc.body
    inner = body.get("error", body) if isinstance(body, dict) else None
    if isinstance(inner, dict) and inner.get("message"):
        return str(inner["message"])[:300]
    return (json.dumps(body) if isinstance(body, dict) else str(body or exc.message))[:300]


def _retry_after(headers: Any) -> float | None:
    """Seconds the server asks us to wait: ``retry-after-ms``, or ``retry-after`` in seconds or an HTTP date."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        with contextlib.suppress(TypeError, ValueError):
            return max(0.0, float(headers.get(name)) / scale)
    with contextlib.suppress(TypeError, ValueError):
        return max(0.0, email.utils.parsedate_to_datetime(headers.get("retry-after")).timestamp() - time.time())
    return None


def _logprobs(choice: dict[str, Any]) -> list[dict[str, Any]] | None:
    content = (choice.get("logprobs") or {}).get("content")
    if not content:
        return None
    return [{"token": t.get("token"), "logprob": t.get("logprob"),
             "top_logprobs": [{"token": x.get("token"), "logprob": x.get("logprob")}
                              for x in t.get("top_logprobs") or []]} for t in content]


# ---- registry: options arrive as strings from the CLI -----------------------------------------------

_TYPES: dict[str, type] = {
    "base_url": str, "api_key_env": str, "video_mode": str, "audio_mode": str, "transport": str,
    "fps": float, "max_frames": int, "max_pixels": int, "max_tokens": int, "temperature": float,
    "logprobs": bool, "top_logprobs": int, "seed": int, "mm_processor_kwargs": dict, "extra_body": dict,
    "request_timeout": float, "per_endpoint_concurrency": int, "endpoint_cooldown": float,
}


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _coerce(key: str, value: Any) -> Any:
    kind = _TYPES[key]
    if not isinstance(value, str) or kind is str:
        return value
    text = value.strip().lower() if kind is not dict else value
    try:
        if kind is bool and text in _TRUE | _FALSE:
            return text in _TRUE
        if key == "max_pixels" and text in ("none", ""):
            return None
        if kind is int and float(text) == int(float(text)):
            return int(float(text))
        if kind is float:
            return float(text)
        if kind is dict and isinstance(parsed := json.loads(text), dict):
            return parsed
    except (ValueError, OverflowError):
        pass
    raise ValueError(f"openai: option {key}={value!r} is not a valid {kind.__name__}")


def options_from_dict(options: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for OpenAIEvaluator from loosely typed options; None means 'default'."""
    unknown = sorted(set(options) - set(_TYPES))
    if unknown:
        raise ValueError(f"openai: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(_TYPES))}")
    return {k: _coerce(k, v) for k, v in options.items() if v is not None}


def factory(name: str, items: Any, options: dict[str, Any]) -> Evaluator:
    """The registry entry for ``openai:NAME`` (options may be CLI strings; see options_from_dict)."""
    return OpenAIEvaluator(name, **options_from_dict(options))


register("openai", factory)
