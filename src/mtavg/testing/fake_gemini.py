"""A loopback fake of the Gemini Developer API, enough for google-genai's async client.

Speaks the real wire protocol over HTTP/1.1 on 127.0.0.1: ``models/{m}:generateContent``, the
resumable upload (``upload/v1beta/files`` start, then ``upload, finalize`` to the returned URL),
``files/{id}`` get/delete and ``files`` list. Each generateContent request is recorded with what
actually arrived (part order, whether an mp4 had an audio stream, frames, WAV seconds, generation
config, whether a key was present — never the key itself). Faults (429 with Retry-After and
RetryInfo, 500, a held request, a body cut short, malformed JSON, the first N failing) hit
generateContent only and are drawn per request from a seeded RNG, so a failing run replays.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import re
import threading
import time
import uuid
import wave
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

Responder = Callable[[dict[str, Any], dict[str, Any]], Any]
_FAULTS = {"p_429": 0.0, "p_500": 0.0, "p_timeout": 0.0, "p_truncated": 0.0, "p_malformed": 0.0,
           "fail_first_n": 0, "fail_status": 503, "retry_after": 7, "retry_after_header": True, "seed": 0}
_OPTION = re.compile(r"^\s*([A-H])[.)]\s+\S", re.M)


def _error(code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        body["details"] = details
    return {"error": body}


def _get(obj: dict[str, Any], camel: str, default: Any = None) -> Any:
    """A field by its camelCase or snake_case name: proto JSON accepts both and google-genai mixes them
    (``inlineData`` holding ``mime_type``, a File body in snake_case)."""
    if camel in obj:
        return obj[camel]
    return obj.get(re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), camel), default)


def b64decode(text: str) -> bytes:
    """Standard or URL-safe base64, padded or not (google-genai sends URL-safe)."""
    text = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4))


def default_responder(record: dict[str, Any], body: dict[str, Any]) -> str:
    """A valid answer in the project's JSON format: the first option label found in the prompt."""
    labels = _OPTION.findall("\n".join(record["texts"])) or ["A"]
    return json.dumps({"answer": [labels[0]], "primary_issue": labels[0], "time": ["A"], "rationale": "fake"})


def inspect_media(data: bytes, mime: str) -> dict[str, Any]:
    """What a media payload really contains: audio stream / video frames for video, seconds for WAV."""
    info: dict[str, Any] = {"mime": mime, "bytes": len(data)}
    try:
        if "wav" in mime:
            with wave.open(io.BytesIO(data)) as w:
                info.update(has_audio=True, video_frames=0, audio_s=w.getnframes() / w.getframerate())
            return info
        import av

        with av.open(io.BytesIO(data)) as c:
            info["has_audio"] = bool(c.streams.audio)
            info["video_frames"] = sum(1 for _ in c.decode(video=0)) if c.streams.video else 0
            info["audio_s"] = None
    except Exception as exc:  # noqa: BLE001 - a bad payload is recorded, not fatal to the server
        info["error"] = f"{type(exc).__name__}: {exc}"
    return info


class FakeGeminiServer:
    def __init__(self, latency: float = 0.0, faults: dict[str, Any] | None = None,
                 responder: Responder | None = None, processing_polls: int = 1, *,
                 final_state: str = "ACTIVE", hold_s: float = 30.0) -> None:
        self.latency, self.responder, self.processing_polls = latency, responder or default_responder, processing_polls
        self.final_state, self.hold_s = final_state, hold_s
        self.log: list[dict[str, Any]] = []
        self.files: dict[str, dict[str, Any]] = {}  # "files/<id>" -> {"meta": File JSON, "data": bytes, "polls"}
        self.deleted: list[str] = []
        self._sessions: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.set_faults(faults)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.fake = self  # type: ignore[attr-defined]
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def set_faults(self, faults: dict[str, Any] | None = None) -> None:
        unknown = set(faults or {}) - set(_FAULTS)
        if unknown:
            raise ValueError(f"unknown fault(s): {', '.join(sorted(unknown))}")
        with self._lock:
            self.faults = {**_FAULTS, **(faults or {})}
            self._rng = random.Random(self.faults["seed"])
            self._n_generate = 0

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The recorded generateContent requests only."""
        return [r for r in self.log if r["op"] == "generateContent"]

    def ops(self, op: str) -> list[dict[str, Any]]:
        return [r for r in self.log if r["op"] == op]

    def stop(self) -> None:
        if not self._stopping.is_set():
            self._stopping.set()  # releases held "timeout" requests
            self._httpd.shutdown()
            self._httpd.server_close()

    def __enter__(self) -> FakeGeminiServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- routing --------------------------------------------------------------------------------
    def handle(self, h: _Handler, method: str) -> None:
        url = urlsplit(h.path)
        query = parse_qs(url.query)
        body_bytes = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        safe_query = urlencode({k: v for k, v in query.items() if k != "key"}, doseq=True)
        record: dict[str, Any] = {
            "op": "unknown", "method": method, "path": url.path + (f"?{safe_query}" if safe_query else ""),
            "api_key_present": bool(h.headers.get("x-goog-api-key") or "key" in query), "time": time.time(),
        }
        with self._lock:
            self.log.append(record)
        # both API versions: google-genai 3.x defaults to v1, older releases (and the docs) use v1beta
        m = re.match(r"(/upload)?/(v1|v1beta)(/.*)$", url.path)
        if m is None:
            return h.send_json(404, _error(404, "NOT_FOUND", f"no such method: {method} {url.path}"))
        upload, record["api_version"], path = bool(m.group(1)), m.group(2), m.group(3)
        if method == "POST" and not upload and (m := re.fullmatch(r"/models/([^/:]+):generateContent", path)):
            record.update(op="generateContent", model=m.group(1))
            return self._generate(h, record, body_bytes)
        if method == "POST" and upload and path == "/files":
            if "upload_id" in query:
                record["op"] = "upload"
                return self._upload_chunk(h, record, query["upload_id"][0], body_bytes)
            record["op"] = "upload_start"
            return self._upload_start(h, record, body_bytes)
        if not upload and path == "/files" and method == "GET":
            record["op"] = "list_files"
            return self._list(h, query)
        if not upload and (m := re.fullmatch(r"/(files/[^/]+)", path)) and method in ("GET", "DELETE"):
            record.update(op="get_file" if method == "GET" else "delete_file", name=m.group(1))
            return self._get_or_delete(h, method, m.group(1))
        h.send_json(404, _error(404, "NOT_FOUND", f"no such method: {method} {url.path}"))

    # ---- generateContent ------------------------------------------------------------------------
    def _generate(self, h: _Handler, record: dict[str, Any], raw: bytes) -> None:
        try:
            body = json.loads(raw)
        except ValueError:
            return h.send_json(400, _error(400, "INVALID_ARGUMENT", "request body is not JSON"))
        kinds, texts, media = [], [], []
        problem = None
        for content in body.get("contents", []):
            for part in content.get("parts", []):
                if "text" in part:
                    kinds.append("text")
                    texts.append(part["text"])
                elif (inline := _get(part, "inlineData")) is not None:
                    mime = _get(inline, "mimeType", "")
                    kinds.append("inline_audio" if mime.startswith("audio/") else "inline_video")
                    media.append(inspect_media(b64decode(inline.get("data", "")), mime))
                elif (file_data := _get(part, "fileData")) is not None:
                    kinds.append("file")
                    uri = _get(file_data, "fileUri", "")
                    name = "files/" + uri.rstrip("/").rsplit("/", 1)[-1]
                    stored = self.files.get(name)
                    if stored is None:
                        problem = (403, "PERMISSION_DENIED", f"You do not have permission to access {name}")
                        continue
                    if stored["meta"]["state"] != "ACTIVE":
                        problem = (400, "FAILED_PRECONDITION", f"The File {name} is not in an ACTIVE state")
                    media.append({**inspect_media(stored["data"], _get(file_data, "mimeType", "")),
                                  "file": name})
                else:
                    kinds.append("other")
        config = _get(body, "generationConfig", {})
        record.update(kinds=kinds, texts=texts, text="\n".join(texts), media=media, generation_config=config,
                      temperature=config.get("temperature"), response_mime_type=_get(config, "responseMimeType"))
        if problem:
            return h.send_json(problem[0], _error(*problem))
        fault = self.draw_fault()
        record["fault"] = fault
        if self.latency:
            time.sleep(self.latency)
        if fault == "fail_first":
            code = int(self.faults["fail_status"])
            return h.send_json(code, _error(code, "UNAVAILABLE" if code == 503 else "INTERNAL", "injected failure"))
        if fault == "429":
            delay = self.faults["retry_after"]
            info = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{delay}s"}]
            headers = {"Retry-After": str(delay)} if self.faults["retry_after_header"] else {}
            return h.send_json(429, _error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted", info), headers)
        if fault == "500":
            return h.send_json(500, _error(500, "INTERNAL", "An internal error has occurred."))
        if fault == "timeout":
            self._stopping.wait(self.hold_s)  # hold: the client's timeout fires first
            h.close_connection = True
            return None
        answer = self.responder(record, body)
        if isinstance(answer, tuple):
            return h.send_json(answer[0], answer[1])
        reply = answer if isinstance(answer, dict) else self._reply(record, str(answer))
        if fault == "malformed":
            return h.send_bytes(200, b'{"candidates": [{"content": ', "application/json")
        if fault == "truncated":
            data = json.dumps(reply).encode()
            return h.send_bytes(200, data, "application/json", cut=len(data) // 2)
        return h.send_json(200, reply)

    def draw_fault(self) -> str | None:
        """The fault for the next generateContent request (None = answer normally)."""
        f = self.faults
        with self._lock:
            self._n_generate += 1
            if self._n_generate <= f["fail_first_n"]:
                return "fail_first"
            r, edge = self._rng.random(), 0.0
            for name in ("429", "500", "timeout", "truncated", "malformed"):
                edge += float(f[f"p_{name}"])
                if r < edge:
                    return name
        return None

    def _reply(self, record: dict[str, Any], text: str) -> dict[str, Any]:
        prompt_tokens = sum(len(t.split()) for t in record["texts"]) + 258 * len(record["media"])
        return {
            "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP",
                            "index": 0}],
            "usageMetadata": {"promptTokenCount": prompt_tokens, "candidatesTokenCount": len(text.split()),
                              "totalTokenCount": prompt_tokens + len(text.split())},
            "modelVersion": record["model"], "responseId": uuid.uuid4().hex[:16],
        }

    # ---- File API -------------------------------------------------------------------------------
    def _upload_start(self, h: _Handler, record: dict[str, Any], raw: bytes) -> None:
        if h.headers.get("X-Goog-Upload-Protocol") != "resumable" or h.headers.get("X-Goog-Upload-Command") != "start":
            return h.send_json(400, _error(400, "INVALID_ARGUMENT", "expected a resumable upload start"))
        meta = (json.loads(raw or b"{}").get("file") or {})
        sid = uuid.uuid4().hex
        with self._lock:
            self._sessions[sid] = {
                "display_name": _get(meta, "displayName"), "data": bytearray(),
                "mime": h.headers.get("X-Goog-Upload-Header-Content-Type") or _get(meta, "mimeType"),
                "size": int(h.headers.get("X-Goog-Upload-Header-Content-Length") or 0),
            }
        record.update(display_name=_get(meta, "displayName"), size=self._sessions[sid]["size"])
        url = f"{self.base_url}/upload/{record['api_version']}/files?upload_id={sid}&upload_protocol=resumable"
        h.send_bytes(200, b"", "text/plain", {"X-Goog-Upload-URL": url, "X-Goog-Upload-Status": "active"})

    def _upload_chunk(self, h: _Handler, record: dict[str, Any], sid: str, chunk: bytes) -> None:
        session = self._sessions.get(sid)
        command = h.headers.get("X-Goog-Upload-Command", "")
        record.update(command=command, bytes=len(chunk))
        # every answer carries X-Goog-Upload-Status: without it the SDK re-sends the chunk (sleeping 1, 2, 4 s)
        if session is None or int(h.headers.get("X-Goog-Upload-Offset") or 0) != len(session["data"]):
            return h.send_json(400, _error(400, "INVALID_ARGUMENT", "unknown upload session or wrong offset"),
                               {"X-Goog-Upload-Status": "final"})
        session["data"] += chunk
        if "finalize" not in command:
            return h.send_bytes(200, b"", "text/plain", {"X-Goog-Upload-Status": "active"})
        data = bytes(session.pop("data"))
        file_id = f"fake-{uuid.uuid4().hex[:12]}"
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        meta = {
            "name": f"files/{file_id}", "displayName": session["display_name"], "mimeType": session["mime"],
            "sizeBytes": str(len(data)), "createTime": now, "updateTime": now,
            "sha256Hash": base64.b64encode(hashlib.sha256(data).hexdigest().encode()).decode(),
            "uri": f"{self.base_url}/v1beta/files/{file_id}", "source": "UPLOADED",
            "state": "PROCESSING" if self.processing_polls > 0 else self.final_state,
        }
        with self._lock:
            self.files[meta["name"]] = {"meta": meta, "data": data, "polls": 0}
            self._sessions.pop(sid, None)
        record["name"] = meta["name"]
        h.send_json(200, {"file": meta}, {"X-Goog-Upload-Status": "final"})

    def _get_or_delete(self, h: _Handler, method: str, name: str) -> None:
        with self._lock:
            stored = self.files.get(name)
            if stored is not None and method == "GET":
                stored["polls"] += 1
                if stored["polls"] > self.processing_polls:
                    stored["meta"]["state"] = self.final_state
            if stored is not None and method == "DELETE":
                del self.files[name]
                self.deleted.append(name)
        if stored is None:
            return h.send_json(404, _error(404, "NOT_FOUND", f"File {name} not found."))
        h.send_json(200, dict(stored["meta"]) if method == "GET" else {})

    def _list(self, h: _Handler, query: dict[str, list[str]]) -> None:
        size = int(query.get("pageSize", ["10"])[0])
        start = int(query.get("pageToken", ["0"])[0] or 0)
        with self._lock:
            metas = [dict(f["meta"]) for f in self.files.values()]
        body: dict[str, Any] = {"files": metas[start:start + size]}
        if start + size < len(metas):
            body["nextPageToken"] = str(start + size)
        h.send_json(200, body)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive like the real endpoint; every answer has Content-Length
    server: Any

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
        pass

    def _serve(self, method: str) -> None:
        try:
            self.server.fake.handle(self, method)
        except Exception as exc:  # noqa: BLE001 - a bug in the fake answers 500 instead of dropping the line
            self.send_json(500, _error(500, "INTERNAL", f"fake server error: {type(exc).__name__}: {exc}"))

    def do_GET(self) -> None:  # noqa: N802
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve("DELETE")

    def send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self.send_bytes(status, json.dumps(obj).encode(), "application/json; charset=UTF-8", headers)

    def send_bytes(self, status: int, data: bytes, ctype: str, headers: dict[str, str] | None = None,
                   cut: int | None = None) -> None:
        """Send a response; with ``cut`` only that many body bytes go out before the connection drops."""
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if cut is not None:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data if cut is None else data[:cut])
        self.wfile.flush()
        if cut is not None:
            self.close_connection = True
