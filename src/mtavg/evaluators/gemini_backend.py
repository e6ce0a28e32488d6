"""``gemini:NAME`` — Google Gemini through the google-genai SDK (``pip install google-genai``).

This module only converts: a Request becomes one user turn whose parts are the media first (each
clip preceded by "Clip 1:"/"Clip 2:" when there are two), then the prompt text; the SDK's reply
becomes a Response. Retries, backoff, timeouts and caching belong to the run engine, so the SDK's
own retries are switched off and every failure is raised as a typed EvaluatorError.

Modality per clip: video+audio -> the original file; video only -> a remux without the audio
stream; audio only -> a 16 kHz mono WAV; neither -> nothing. Clips up to ``inline_max_bytes``
travel inline; larger ones go through the File API (uploaded once per content hash, found again by
``display_name`` = sha256 after a restart, deleted in ``aclose`` when this evaluator uploaded them).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import mimetypes
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtavg.evaluators import UnknownModel, register
from mtavg.evaluators.base import (
    Evaluator,
    EvaluatorError,
    MediaRef,
    PermanentError,
    Request,
    Response,
    TransientError,
)
from mtavg.media import MediaError, probe

_log = logging.getLogger(__name__)
#: Gemini samples video at 1 frame per second unless told otherwise (documented default).
GEMINI_VIDEO_FPS = 1.0
_RESOLUTIONS = {"low": "MEDIA_RESOLUTION_LOW", "medium": "MEDIA_RESOLUTION_MEDIUM", "high": "MEDIA_RESOLUTION_HIGH"}


class MissingAPIKey(UnknownModel):
    """No key in the environment; an UnknownModel so the CLI reports it like any unusable --model."""


@dataclass(frozen=True)
class _Clip:  # one clip in the form it will be sent
    path: Path
    mime: str
    size: int
    audio: bool  # audio really travels with it
    frames: int  # frames Gemini will sample (1 fps default)


def _genai() -> tuple[Any, Any, Any]:
    try:
        from google import genai
        from google.genai import errors, types
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise UnknownModel("gemini:* needs the google-genai package: pip install google-genai") from exc
    return genai, types, errors


class GeminiEvaluator(Evaluator):
    def __init__(
        self,
        model: str,
        *,
        api_key_env: str = "GEMINI_API_KEY",
        base_url: str | None = None,
        inline_max_bytes: int = 15 * 1024 * 1024,
        temperature: float = 0.0,
        max_output_tokens: int = 1024,
        json_mode: bool = True,
        media_resolution: str | None = None,
        delete_uploads: bool = True,
        upload_poll_s: float = 1.0,
        upload_timeout_s: float = 300.0,
        timeout_s: float | None = None,
        api_version: str = "v1beta",
    ) -> None:
        genai, types, self._errors = _genai()
        self._types = types
        key = os.environ.get(api_key_env) or (os.environ.get("GOOGLE_API_KEY") if api_key_env == "GEMINI_API_KEY"
                                               else None)
        if not key:
            extra = " (or GOOGLE_API_KEY)" if api_key_env == "GEMINI_API_KEY" else ""
            raise MissingAPIKey(f"gemini:{model} needs an API key: set the environment variable {api_key_env}{extra}")
        if media_resolution is not None and media_resolution.lower() not in _RESOLUTIONS:
            raise ValueError(f"media_resolution must be one of {', '.join(_RESOLUTIONS)}, not {media_resolution!r}")
        self._key = key
        self.model, self.name = model, f"gemini:{model}"
        self.inline_max_bytes, self.delete_uploads = inline_max_bytes, delete_uploads
        self.upload_poll_s, self.upload_timeout_s = upload_poll_s, upload_timeout_s
        self.json_mode = json_mode
        resolution = _RESOLUTIONS[media_resolution.lower()] if media_resolution else None
        self.fingerprint = json.dumps({"temperature": temperature, "max_output_tokens": max_output_tokens,
                                       "json_mode": json_mode, "media_resolution": resolution}, sort_keys=True)
        self.cacheable = temperature == 0
        self._config = types.GenerateContentConfig(
            temperature=temperature, max_output_tokens=max_output_tokens,
            response_mime_type="application/json" if json_mode else None, media_resolution=resolution)
        # attempts=1: the engine retries. Setting retry_options at all also disables the SDK's hidden
        # "sleep 1-10 s and try once more" on aiohttp connection errors.
        # api_version pinned: google-genai 3.x defaults to "v1" (1.x used "v1beta"); v1beta is where the
        # File API, JSON mode and media_resolution have always been, and a pin keeps SDK upgrades neutral.
        http = types.HttpOptions(base_url=base_url, api_version=api_version,
                                 retry_options=types.HttpRetryOptions(attempts=1),
                                 timeout=int(timeout_s * 1000) if timeout_s else None)  # milliseconds
        self._client = genai.Client(api_key=key, vertexai=False, http_options=http)
        self._files: dict[str, Any] = {}  # sha256 -> types.File (uploaded or found by display_name)
        self._owned: list[str] = []  # names of files this evaluator uploaded (the only ones aclose deletes)
        self._locks: dict[str, asyncio.Lock] = {}
        self._listing: dict[str, Any] | None = None  # display_name -> File from files.list, read once
        self._list_lock = asyncio.Lock()

    # ---- request ----------------------------------------------------------------------------------
    async def respond(self, request: Request) -> Response:
        types = self._types
        parts: list[Any] = []
        audio_sent, frames, size, transports = False, 0, 0, []
        labelled = len(request.media) > 1 or request.format == "pairwise"
        try:
            for i, ref in enumerate(request.media, 1):
                clip = await asyncio.to_thread(self._prepare, ref)
                if clip is None:
                    continue
                if labelled:
                    parts.append(types.Part.from_text(text=f"{_label(ref, i)}:"))
                if clip.size <= self.inline_max_bytes:
                    data = await asyncio.to_thread(clip.path.read_bytes)
                    parts.append(types.Part.from_bytes(data=data, mime_type=clip.mime))
                    transports.append("inline")
                else:
                    parts.append(await self._file_part(clip))
                    transports.append("file_api")
                audio_sent, frames, size = audio_sent or clip.audio, frames + clip.frames, size + clip.size
            parts.append(types.Part.from_text(text=request.prompt))
            reply = await self._client.aio.models.generate_content(
                model=self.model, contents=[types.Content(role="user", parts=parts)], config=self._config)
        except EvaluatorError:
            raise
        except MediaError as exc:
            raise PermanentError(f"{request.qid}: {self._redact(str(exc))}") from exc
        except Exception as exc:
            typed = self._typed(exc, request.qid)
            if typed is None:
                raise
            raise typed from exc
        meta: dict[str, Any] = {"transport": "+".join(dict.fromkeys(transports)) or "none", "bytes": size,
                                "json_mode": self.json_mode, "fps": GEMINI_VIDEO_FPS if frames else None}
        return Response(raw=_reply_text(reply, meta), usage=_usage(reply), audio_sent=audio_sent,
                        frames_sent=frames, meta=meta)

    def _prepare(self, ref: MediaRef) -> _Clip | None:
        """Pick the file that carries exactly the modalities the ref allows (runs in a thread)."""
        from mtavg.media.prepare import audio_wav, video_without_audio

        if not (ref.use_video or ref.use_audio):
            return None
        info = probe(ref.path)
        if ref.use_video:
            path = Path(ref.path) if ref.use_audio else video_without_audio(ref.path)
            mime = mimetypes.guess_type(str(path))[0] or "video/mp4"
            audio = ref.use_audio and info.has_audio
            frames = max(1, math.ceil((ref.duration_s or info.duration_s) * GEMINI_VIDEO_FPS - 1e-9))
        else:
            if not info.has_audio:  # nothing honest to send: the audio-delivery check will see audio_sent=False
                return None
            path, mime, audio, frames = audio_wav(ref.path), "audio/wav", True, 0
        return _Clip(path=path, mime=mime, size=path.stat().st_size, audio=audio, frames=frames)

    # ---- File API ---------------------------------------------------------------------------------
    async def _file_part(self, clip: _Clip) -> Any:
        from mtavg.media.prepare import file_sha256

        sha = await asyncio.to_thread(file_sha256, clip.path)
        lock = self._locks.setdefault(sha, asyncio.Lock())
        async with lock:  # concurrent requests for one clip share one upload
            file = self._files.get(sha) or await self._find_uploaded(sha)
            if file is None:
                file = await self._upload(clip, sha)
            self._files[sha] = file
            file = await self._wait_active(sha, file)
        return self._types.Part.from_uri(file_uri=file.uri, mime_type=file.mime_type or clip.mime)

    async def _find_uploaded(self, sha: str) -> Any:
        """A file an earlier (interrupted) run uploaded, found by display_name; listed once."""
        async with self._list_lock:
            if self._listing is None:
                listing: dict[str, Any] = {}
                async for f in await self._client.aio.files.list(config={"page_size": 100}):
                    if f.display_name and _state(f) != "FAILED":
                        listing[f.display_name] = f
                self._listing = listing
            return self._listing.pop(sha, None)

    async def _upload(self, clip: _Clip, sha: str) -> Any:
        config = self._types.UploadFileConfig(display_name=sha, mime_type=clip.mime)
        try:
            file = await self._client.aio.files.upload(file=str(clip.path), config=config)
        except (KeyError, TypeError, ValueError) as exc:
            # the SDK raises these when the upload session answers without a finalized file
            raise TransientError(f"{self.name}: upload of {clip.path.name} did not complete ({type(exc).__name__})"
                                 ) from exc
        self._owned.append(file.name)
        return file

    async def _wait_active(self, sha: str, file: Any) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.upload_timeout_s
        while _state(file) != "ACTIVE":
            if _state(file) == "FAILED":
                self._files.pop(sha, None)
                raise PermanentError(f"{self.name}: the File API could not process {file.name}: {file.error}")
            if loop.time() >= deadline:  # keep the file: the next attempt resumes polling
                raise TransientError(f"{self.name}: {file.name} still {_state(file)} after {self.upload_timeout_s} s")
            await asyncio.sleep(self.upload_poll_s)
            file = await self._client.aio.files.get(name=file.name)
            self._files[sha] = file
        return file

    async def aclose(self) -> None:
        if self.delete_uploads:
            for name in self._owned:
                try:
                    await self._client.aio.files.delete(name=name)
                except Exception as exc:  # noqa: BLE001 - best effort: uploads expire after 48 h anyway
                    _log.warning("%s: could not delete %s (%s)", self.name, name, type(exc).__name__)
            self._owned.clear()
        await self._client.aio.aclose()
        self._client.close()

    # ---- errors -----------------------------------------------------------------------------------
    def _redact(self, text: str) -> str:
        return text.replace(self._key, "***")

    def _typed(self, exc: Exception, qid: str) -> EvaluatorError | None:
        """The typed error for an SDK / transport failure; None for anything that is a bug here."""
        import pydantic

        timeouts, transport = _transport_errors()
        where = f"{qid}: {self.name}"
        if isinstance(exc, self._errors.APIError):
            code = exc.code or 0
            msg = self._redact(f"{where}: HTTP {code} {exc.status or ''}: {exc.message or ''}")[:600]
            if code == 429:
                return TransientError(msg, status=429, retry_after=_retry_after(exc))
            if code == 408 or code >= 500 or code < 400:
                return TransientError(msg, status=code, retry_after=_retry_after(exc))
            return PermanentError(msg, status=code)
        if isinstance(exc, timeouts):
            return TransientError(f"{where}: timed out ({type(exc).__name__})")
        if isinstance(exc, transport):  # connection refused/reset, body cut short, ...
            return TransientError(self._redact(f"{where}: {type(exc).__name__}: {exc}")[:600])
        if isinstance(exc, (json.JSONDecodeError, self._errors.UnknownApiResponseError, pydantic.ValidationError)):
            return TransientError(f"{where}: malformed response body ({type(exc).__name__})")
        return None


def _transport_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(timeout, transport) exception classes of whichever HTTP stack the SDK runs on: google-genai 3.x
    may use httpx or its fork httpx2 (separate namespaces, unrelated classes), or aiohttp."""
    import importlib

    timeouts: list[type[BaseException]] = [asyncio.TimeoutError]
    transport: list[type[BaseException]] = []
    for name in ("httpx", "httpx2"):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        timeouts.append(mod.TimeoutException)
        transport.append(mod.TransportError)
    try:
        import aiohttp

        transport.append(aiohttp.ClientError)
    except ImportError:
        pass
    return tuple(timeouts), tuple(transport)


def _label(ref: MediaRef, i: int) -> str:
    return ref.role if ref.role.startswith("Clip ") else f"Clip {i}"


def _state(file: Any) -> str:
    return str(getattr(file.state, "value", file.state) or "STATE_UNSPECIFIED")


def _reply_text(reply: Any, meta: dict[str, Any]) -> str:
    """The answer text; "" (which the parser marks invalid) for a blocked or empty candidate."""
    candidates = reply.candidates or []
    if candidates and candidates[0].finish_reason is not None:
        meta["finish_reason"] = getattr(candidates[0].finish_reason, "value", str(candidates[0].finish_reason))
    feedback = reply.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        meta["block_reason"] = getattr(feedback.block_reason, "value", str(feedback.block_reason))
        meta.setdefault("finish_reason", meta["block_reason"])
    if reply.model_version:
        meta["model_version"] = reply.model_version
    return reply.text or ""


def _usage(reply: Any) -> dict[str, Any] | None:
    um = reply.usage_metadata
    if um is None:
        return None
    usage = {"prompt_tokens": um.prompt_token_count, "completion_tokens": um.candidates_token_count}
    if um.thoughts_token_count:  # thinking models bill these as output too
        usage["thoughts_tokens"] = um.thoughts_token_count
    return usage


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def _retry_after(exc: Any) -> float | None:
    """Seconds the server asked us to wait: the Retry-After header, else google.rpc.RetryInfo."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass  # an HTTP-date: fall through to RetryInfo
    details = exc.details.get("error", exc.details) if isinstance(exc.details, dict) else {}
    for item in details.get("details", []) if isinstance(details, dict) else []:
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("google.rpc.RetryInfo"):
            m = _DURATION.match(str(item.get("retryDelay", "")))
            if m:
                return float(m.group(1))
    return None


# ---- registry -------------------------------------------------------------------------------------
def _bool(value: Any) -> bool:
    text = str(value).strip().lower()
    if text not in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
        raise ValueError(f"not a boolean: {value!r}")
    return text in {"1", "true", "yes", "on"}


def _opt_str(value: Any) -> str | None:
    return None if str(value).lower() in {"", "none", "null"} else str(value)


_COERCE = {
    "api_key_env": str, "base_url": _opt_str, "inline_max_bytes": int, "temperature": float,
    "max_output_tokens": int, "json_mode": _bool, "media_resolution": _opt_str, "delete_uploads": _bool,
    "upload_poll_s": float, "upload_timeout_s": float, "timeout_s": lambda v: None if _opt_str(v) is None else float(v), "api_version": str,
}


def gemini_factory(name: str, items: Any, options: dict[str, Any]) -> GeminiEvaluator:
    """Registry factory: options may come from the CLI as strings; unrelated ones (seed, ...) are ignored."""
    if not name:
        raise UnknownModel("gemini needs a model name, e.g. gemini:gemini-2.5-flash")
    kwargs = {k: _COERCE[k](v) for k, v in options.items() if k in _COERCE and v is not None}
    return GeminiEvaluator(name, **kwargs)


register("gemini", gemini_factory)
