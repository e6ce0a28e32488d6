"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests and throughput benchmarks.

It answers ``POST /v1/chat/completions`` in the project's JSON answer format, records what arrived
(which media parts, whether a video carries audio) so tests prove delivery rather than assume it,
and injects faults (429, 500, slow, truncated or non-JSON bodies) from a seeded RNG.
Run it in-process (``with FakeOpenAIServer(latency=0.1) as srv:``) or as a process
(``python -m mtavg.testing.fake_openai --port 0 --latency 0.2``, which prints its base URL); both
serve the control endpoints GET /_log, GET /_stats, POST /_faults (JSON), POST /_reset.
``kill()`` imitates a crashed node: requests in flight and on kept-alive connections are cut with no
response (recorded with ``killed: True``), and new connections are refused.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import math
import random
import re
import signal
import socket
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlparse

RecordedRequest = dict[str, Any]
_OPTION = re.compile(r"^([A-H])\.\s", re.M)
_YES_NO = re.compile(r"\byes\b.{0,20}\bno\b", re.I | re.S)


@dataclass
class Faults:
    """Per-request fault probabilities (one RNG draw per request, in arrival order)."""

    seed: int = 0
    p_429: float = 0.0
    p_500: float = 0.0
    p_400: float = 0.0
    p_timeout: float = 0.0
    p_truncated: float = 0.0
    p_bad_json: float = 0.0
    fail_first_n: int = 0  # deterministic: the first N requests after set_faults fail ...
    fail_first_status: int = 500  # ... with this status
    retry_after: float = 1.0  # seconds, sent in Retry-After with 429
    timeout_hold: float = 30.0  # how long a "timeout" request is held before it is answered

    def pick(self, rng: random.Random, index: int) -> str | None:
        if index < self.fail_first_n:
            return f"fail_first_{self.fail_first_status}"
        u, acc = rng.random(), 0.0
        for name in ("429", "500", "400", "timeout", "truncated", "bad_json"):
            acc += getattr(self, f"p_{name}")
            if u < acc:
                return name
        return None


def default_responder(request_json: dict[str, Any]) -> str:
    """The first option of the prompt, as a valid answer for every format (or "Yes" to a yes/no question)."""
    text = _text_of(request_json)
    if _YES_NO.search(text) or (request_json.get("max_tokens") or 99) <= 2:
        return "Yes"
    labels = _OPTION.findall(text)
    first = labels[0] if labels else "A"
    return json.dumps({"answer": [first], "primary_issue": first, "time": [first], "rationale": "fake"})


def _text_of(request_json: dict[str, Any]) -> str:
    out = []
    for msg in request_json.get("messages") or []:
        content = msg.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        out += [str(p.get("text", "")) for p in parts if isinstance(p, dict) and p.get("type") == "text"]
    return "\n".join(out)


def _source(url: str) -> Any:
    """A data: URL's payload (file-like), or the local path of a file:// URL (the server shares the disk)."""
    if url.startswith("data:"):
        return io.BytesIO(base64.b64decode(url.split(",", 1)[1]))
    if not url.startswith("file://"):
        raise ValueError(f"unsupported URL {url[:16]!r}...")
    return unquote(urlparse(url).path)


def _probe_video(url: str) -> tuple[bool, int]:
    import av

    with av.open(_source(url)) as c:
        if not c.streams.video:
            raise ValueError("no video stream")
        frames = c.streams.video[0].frames or sum(1 for p in c.demux(video=0) if p.size)
        return bool(c.streams.audio), int(frames)


def _wav_seconds(url: str) -> float:
    with wave.open(_source(url), "rb") as w:
        return w.getnframes() / float(w.getframerate())


# part type -> (counter, the key holding {"url": ...}); input_audio carries base64 data instead
_PARTS = {"video_url": ("n_video_parts", "video_url"), "image_url": ("n_image_parts", "image_url"),
          "input_audio": ("n_audio_parts", None), "audio_url": ("n_audio_parts", "audio_url")}


def inspect_request(body: dict[str, Any], *, inspect_media: bool = True) -> RecordedRequest:
    """What arrived: part counts always; decoded media facts when ``inspect_media``."""
    rec: RecordedRequest = {
        "model": body.get("model"), "n_messages": len(body.get("messages") or []), "text": _text_of(body),
        "part_types": [], "n_video_parts": 0, "n_image_parts": 0, "n_audio_parts": 0,
        "video_has_audio": [], "video_frames": [], "audio_seconds": [], "url_schemes": [], "media_errors": [],
        "mm_processor_kwargs": body.get("mm_processor_kwargs"), "logprobs": bool(body.get("logprobs")),
        "top_logprobs": body.get("top_logprobs"), "max_tokens": body.get("max_tokens"),
        "temperature": body.get("temperature"), "seed": body.get("seed"),
    }
    for msg in body.get("messages") or []:
        content = msg.get("content")
        for part in content if isinstance(content, list) else []:
            kind = part.get("type") if isinstance(part, dict) else None
            rec["part_types"].append(kind)
            if kind not in _PARTS:
                continue
            counter, field = _PARTS[kind]
            rec[counter] += 1
            try:
                url = part[field]["url"] if field else "data:audio/wav;base64," + part["input_audio"]["data"]
                rec["url_schemes"].append(url.split(":", 1)[0])
                if inspect_media and kind == "video_url":
                    has_audio, frames = _probe_video(url)
                    rec["video_has_audio"].append(has_audio)
                    rec["video_frames"].append(frames)
                elif inspect_media and kind != "image_url":
                    rec["audio_seconds"].append(round(_wav_seconds(url), 4))
            except Exception as exc:  # noqa: BLE001 - a bad part is recorded, never a server crash
                rec["media_errors"].append(f"{kind}: {type(exc).__name__}: {exc}")
    return rec


def _logprobs(content: str, top_n: int, yes_no: tuple[float, float] | None) -> dict[str, Any]:
    def entry(token: str, p: float, alts: list[tuple[str, float]]) -> dict[str, Any]:
        top = sorted(alts, key=lambda a: -a[1])[:top_n]
        return {"token": token, "logprob": math.log(p), "bytes": list(token.encode()),
                "top_logprobs": [{"token": t, "logprob": math.log(q), "bytes": list(t.encode())} for t, q in top]}

    if yes_no is not None:
        p_yes, p_no = yes_no
        alts = [("Yes", p_yes), ("No", p_no)] + ([("Maybe", 1 - p_yes - p_no)] if p_yes + p_no < 1 else [])
        return {"content": [entry(content, dict(alts).get(content, 0.5), alts)]}
    tokens = re.findall(r"\w+|\s+|[^\w\s]", content)
    return {"content": [entry(t, 0.99, [(t, 0.99), ("\u2581", 0.005)]) for t in tokens]}


class _State:
    def __init__(self, latency: float, faults: Faults, responder: Callable[[dict], str] | None,
                 inspect_media: bool, yes_no: tuple[float, float],
                 first_token: Callable[[dict], list[tuple[str, float]] | None] | None = None) -> None:
        self.latency, self.responder, self.inspect_media, self.yes_no = latency, responder, inspect_media, yes_no
        self.first_token = first_token
        self.lock, self.stopping, self.dead = threading.Lock(), threading.Event(), threading.Event()
        self.log: list[RecordedRequest] = []
        self.by_status: dict[str, int] = {}
        self.set_faults(faults)

    def set_faults(self, faults: Faults) -> None:
        with self.lock:
            self.faults, self.rng, self.fault_index = faults, random.Random(faults.seed), 0

    def reset(self) -> None:
        with self.lock:
            self.log, self.by_status = [], {}
        self.set_faults(Faults())

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {"requests": len(self.log), "by_status": dict(self.by_status)}

    def admit(self, rec: RecordedRequest) -> str | None:
        with self.lock:
            fault = self.faults.pick(self.rng, self.fault_index)
            self.fault_index += 1
            rec["fault"] = fault
            rec["status"] = self.faults.fail_first_status if (fault or "").startswith("fail_first_") \
                else {"429": 429, "500": 500, "400": 400}.get(fault or "", 200)
            self.by_status[str(rec["status"])] = self.by_status.get(str(rec["status"]), 0) + 1
            self.log.append(rec)
            return fault


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a benchmark client reuses its connections
    disable_nagle_algorithm = True
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: tests read srv.log
        pass

    def _send(self, status: int, body: bytes, *, ctype: str = "application/json", extra: str = "",
              cut: int | None = None) -> None:
        head = (f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\n{extra}\r\n")
        self.close_connection = cut is not None  # a truncated body ends the connection
        try:  # one write: headers and body in a single segment
            self.wfile.write(head.encode("latin-1") + (body if cut is None else body[:cut]))
        except OSError:  # the client gave up (timeout) or went away
            self.close_connection = True

    def _json(self, status: int, obj: Any, extra: str = "") -> None:
        self._send(status, json.dumps(obj).encode(), extra=extra)

    def _error(self, status: int, message: str, extra: str = "") -> None:
        self._json(status, {"error": {"message": message, "type": "fake_error", "code": status}}, extra)

    def _drop(self) -> None:
        """Close the connection with no response, as a crashed server would."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _body(self) -> Any:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        return json.loads(raw) if raw.strip() else {}

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        st = self.server.state
        if self.path == "/_log":
            with st.lock:
                self._json(200, list(st.log))
        elif self.path == "/_stats":
            self._json(200, st.stats())
        elif self.path.rstrip("/") == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:  # noqa: N802
        st = self.server.state
        arrived = time.perf_counter()  # latency counts from arrival: parsing and inspection hide inside it
        if st.dead.is_set():  # a request on a connection kept alive from before the kill
            return self._drop()
        try:
            body = self._body()
        except (ValueError, UnicodeDecodeError):
            return self._error(400, "request body is not JSON")
        if self.path == "/_faults":
            try:
                st.set_faults(Faults(**body))
            except TypeError as exc:
                return self._error(400, str(exc))
            return self._json(200, asdict(st.faults))
        if self.path == "/_reset":
            st.reset()
            return self._json(200, {"ok": True})
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._error(404, f"no route {self.path}")
        if not isinstance(body, dict) or not body.get("messages"):
            return self._error(400, "'messages' is required")
        self._chat(st, body, arrived)

    def _chat(self, st: _State, body: dict[str, Any], arrived: float) -> None:
        rec = inspect_request(body, inspect_media=st.inspect_media)
        rec["auth_header_present"] = bool(self.headers.get("Authorization"))  # presence only, never the value
        fault = st.admit(rec)
        wait = st.latency - (time.perf_counter() - arrived)
        if wait > 0:
            st.stopping.wait(wait)
        if st.dead.is_set():
            rec["killed"] = True
            return self._drop()
        if rec["status"] == 429:
            return self._error(429, "rate limited (fake)", f"Retry-After: {st.faults.retry_after:g}\r\n")
        if rec["status"] >= 400:
            return self._error(rec["status"], f"injected fault {fault}")
        if fault == "bad_json":
            return self._send(200, b"<html>upstream error</html>{\"choices\": [")
        if fault == "timeout":
            st.stopping.wait(st.faults.timeout_hold)
        try:
            content = (st.responder or default_responder)(body)
        except Exception as exc:  # noqa: BLE001 - a broken responder is a 500, not a dead server
            return self._error(500, f"responder failed: {type(exc).__name__}")
        payload = self._completion(st, body, rec, content)
        self._send(200, payload, cut=len(payload) // 2 if fault == "truncated" else None)

    def _completion(self, st: _State, body: dict[str, Any], rec: RecordedRequest, content: str) -> bytes:
        choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": content},
                                  "finish_reason": "stop", "logprobs": None}
        if st.first_token is not None:
            alts = st.first_token(body)
            if alts is not None:  # None: a server that returns no logprobs
                content = alts[0][0]
                choice["message"]["content"] = content
                top = alts[: int(body.get("top_logprobs") or 0)] or alts[:1]
                choice["logprobs"] = {"content": [{
                    "token": content, "logprob": alts[0][1], "bytes": list(content.encode()),
                    "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in top]}]}
        elif body.get("logprobs"):
            yes_no = st.yes_no if content in ("Yes", "No") else None
            choice["logprobs"] = _logprobs(content, int(body.get("top_logprobs") or 0), yes_no)
        n_in = len(rec["text"]) // 4 + 100 * (rec["n_video_parts"] + rec["n_image_parts"] + rec["n_audio_parts"])
        n_out = max(1, len(content) // 4)
        return json.dumps({
            "id": f"chatcmpl-fake-{id(rec):x}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model"), "choices": [choice],
            "usage": {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out},
        }).encode()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for a request held by a "timeout" fault
    request_queue_size = 256  # 32+ clients connect at once; a backlog of 5 would stall their SYNs
    state: _State

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client hanging up mid-response is routine here


class FakeOpenAIServer:
    """Serves on 127.0.0.1 (a free port) from construction until ``stop()`` / the end of a ``with``."""

    def __init__(self, latency: float = 0.0, faults: Faults | dict[str, Any] | None = None,
                 responder: Callable[[dict], str] | None = None, inspect_media: bool = True, *,
                 port: int = 0, yes_prob: float = 0.8, no_prob: float = 0.15,
                 first_token: Callable[[dict], list[tuple[str, float]] | None] | None = None) -> None:
        """``first_token(body)`` -> [(token, logprob), ...] best first: the reply is that one token and its
        top_logprobs are the list (a request's own logprobs, e.g. per clip); None = no logprobs at all."""
        faults = faults if isinstance(faults, Faults) else Faults(**(faults or {}))
        self._httpd = _HTTPServer(("127.0.0.1", port), _Handler)
        self._httpd.state = _State(latency, faults, responder, inspect_media, (yes_prob, no_prob), first_token)
        self.port = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name=f"fake-openai-{self.port}")
        self._thread.start()
        self._stopped = False

    @property
    def log(self) -> list[RecordedRequest]:
        with self._httpd.state.lock:
            return list(self._httpd.state.log)

    def stats(self) -> dict[str, Any]:
        return self._httpd.state.stats()

    def set_faults(self, faults: Faults | dict[str, Any] | None = None, **kwargs: Any) -> None:
        """Replace the fault config (and restart its RNG and the fail_first_n count)."""
        if not isinstance(faults, Faults):
            faults = Faults(**{**(faults or {}), **kwargs})
        self._httpd.state.set_faults(faults)

    def reset(self) -> None:
        self._httpd.state.reset()

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._httpd.state.stopping.set()  # release held requests
            self._httpd.shutdown()
            self._httpd.server_close()

    def kill(self) -> None:
        """Die like a crashed node: in-flight and kept-alive requests get no answer, new ones are refused."""
        self._httpd.state.dead.set()
        self.stop()

    def __enter__(self) -> FakeOpenAIServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m mtavg.testing.fake_openai", description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0, help="0 = any free port")
    ap.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    ap.add_argument("--no-inspect", action="store_true", help="skip decoding media (faster)")
    ap.add_argument("--faults", default="{}", help=f"JSON with any of: {', '.join(f.name for f in fields(Faults))}")
    ap.add_argument("--yes-prob", type=float, default=0.8)
    ap.add_argument("--no-prob", type=float, default=0.15)
    a = ap.parse_args(argv)
    srv = FakeOpenAIServer(a.latency, json.loads(a.faults), inspect_media=not a.no_inspect, port=a.port,
                           yes_prob=a.yes_prob, no_prob=a.no_prob)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    print(srv.base_url, flush=True)
    while not done.wait(0.5):  # a timed wait: signals are handled promptly on every platform
        pass
    srv.stop()


if __name__ == "__main__":
    main()
