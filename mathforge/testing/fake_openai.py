"""A scripted OpenAI-compatible HTTP server on 127.0.0.1 with fixed latency and fault injection (tests, benchmarks, smoke runs)."""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import threading
import time
from collections import Counter
from typing import Callable

FAULTS = ("500", "timeout", "drop", "malformed")
Reply = Callable[[dict], "str | dict | tuple"]  # text, {"content", "reasoning_content"}, or (either, finish_reason)


def echo_reply(payload: dict) -> str:
    """Default reply: a short deterministic text that depends on the prompt and the seed."""
    prompt = payload.get("prompt") or json.dumps(payload.get("messages"))
    digest = hashlib.sha256(f"{prompt}|{payload.get('seed')}".encode()).hexdigest()[:12]
    return f"sample {digest}"


def padded_reply(chars: int) -> Reply:
    """The echo reply followed by distinct calculator-annotated steps up to `chars` characters (no two replies alike)."""

    def reply(payload: dict) -> str:
        head = echo_reply(payload)
        digest = int(head.split()[-1], 16)
        steps, n = [head], 0
        while sum(len(step) + 1 for step in steps) < chars:
            a, b = digest % 97 + n, digest % 89 + 2 * n
            steps.append(f"Step {n}: {a} + {b} = <<{a}+{b}={a + b}>>{a + b}.")
            n += 1
        return "\n".join(steps)[:chars] if chars > len(head) else head

    return reply


INSTRUCTION_RE = re.compile(r"### Instruction:\n(.*?)\n\n### Response:", re.S)


def prompt_text(payload: dict) -> str:
    if payload.get("prompt") is not None:
        return str(payload["prompt"])
    messages = payload.get("messages") or [{}]
    return str(messages[-1].get("content", ""))


def solver_reply(rows: list[dict], wrong_every: int = 3) -> Reply:
    """Answer synthetic problems ({question, solutions}): seed picks a solution order, every n-th seed is wrong."""
    by_question = {row["question"]: row for row in rows}

    def reply(payload: dict) -> str:
        text = prompt_text(payload)
        match = INSTRUCTION_RE.search(text)
        row = by_question.get(match.group(1) if match else text.strip())
        if row is None:
            return "I cannot solve this."
        seed = int(payload.get("seed") or 0)
        solution = row["solutions"][seed % len(row["solutions"])]
        if wrong_every and seed % wrong_every == 0:
            head, _, answer = solution.rpartition("#### ")
            return f"{head}#### {int(answer) + 1}"
        return solution

    return reply


def request_key(payload: dict) -> str:
    body = {k: v for k, v in payload.items() if k != "model"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class FaultPlan:
    """Which attempt of which request fails, and how: a seeded `rate` of requests fail their first `attempts` tries."""

    def __init__(self, rate: float = 0.0, kinds: tuple[str, ...] = FAULTS, attempts: int = 1, seed: int = 0,
                 permanent: Callable[[dict], bool] | None = None):
        self.rate, self.kinds, self.attempts, self.seed, self.permanent = rate, kinds, attempts, seed, permanent

    def fault(self, payload: dict, key: str, attempt: int) -> str | None:
        if self.permanent is not None and self.permanent(payload):
            return "400"
        if self.rate <= 0 or attempt >= self.attempts:
            return None
        value = int(hashlib.sha256(f"{self.seed}|{key}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        if value >= self.rate:
            return None
        return self.kinds[int(value / self.rate * len(self.kinds)) % len(self.kinds)]


class FakeOpenAI:
    """Serve /health, /v1/models, /v1/completions and /v1/chat/completions; count everything it does."""

    def __init__(self, reply: Reply = echo_reply, latency: float | Callable[[dict], float] = 0.0,
                 faults: FaultPlan | None = None,
                 hang_seconds: float = 30.0, model: str = "fake-model", healthy: bool = True):
        self.reply, self.latency, self.faults = reply, latency, faults or FaultPlan()
        self.hang_seconds, self.model, self.healthy = hang_seconds, model, healthy
        self.counts: Counter = Counter()
        self.attempts: Counter = Counter()
        self.served: Counter = Counter()  # request key -> successful replies sent
        self.payloads: list[dict] = []
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------
    def start(self, port: int = 0) -> "FakeOpenAI":
        """Start on 127.0.0.1 in a background thread; returns once the socket is listening."""
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._connection, "127.0.0.1", port, backlog=1024))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True, name="fake-openai")
        self._thread.start()
        ready.wait(10)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- HTTP ------------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request_line = await reader.readline()
                if not request_line.strip():
                    break
                method, path, _ = request_line.decode("latin-1").split(" ", 2)
                headers = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", 0) or 0))
                keep = await self._handle(method, path.split("?")[0], headers, body, writer)
                if not keep or headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            writer.close()

    async def _send(self, writer, status: int, body: bytes, content_type: str = "application/json") -> bool:
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error",
                  503: "Service Unavailable"}.get(status, "Error")
        writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n".encode() + body)
        await writer.drain()
        return True

    async def _handle(self, method: str, path: str, headers: dict, body: bytes, writer) -> bool:
        self.counts[f"{method} {path}"] += 1
        if method == "GET" and path in ("/health", "/v1/models"):
            if not self.healthy:
                return await self._send(writer, 503, b'{"error": "not ready"}')
            data = {"status": "ok"} if path == "/health" else {"object": "list", "data": [{"id": self.model}]}
            return await self._send(writer, 200, json.dumps(data).encode())
        if method != "POST" or path not in ("/v1/completions", "/v1/chat/completions"):
            return await self._send(writer, 404, b'{"error": "not found"}')
        try:
            payload = json.loads(body)
        except ValueError:
            return await self._send(writer, 400, b'{"error": "body is not JSON"}')
        self.payloads.append(payload)
        key = request_key(payload)
        attempt = self.attempts[key]
        self.attempts[key] += 1
        fault = self.faults.fault(payload, key, attempt)
        if fault is not None:
            self.counts[f"fault:{fault}"] += 1
        delay = self.latency(payload) if callable(self.latency) else self.latency
        if delay:
            await asyncio.sleep(delay)
        if fault == "400":
            return await self._send(writer, 400, b'{"error": {"message": "scripted permanent failure"}}')
        if fault == "500":
            return await self._send(writer, 500, b'{"error": "scripted internal error"}')
        if fault == "timeout":
            await asyncio.sleep(self.hang_seconds)
            return False
        if fault == "drop":
            return False
        if fault == "malformed":
            return await self._send(writer, 200, b'{"choices": [{"text": "trunc')
        text = self.reply(payload)
        finish = "stop"
        if isinstance(text, tuple):  # a reply may script its finish reason too, e.g. ("...", "length")
            text, finish = text
        if not isinstance(text, dict):  # a dict scripts a reasoning model: content (may be None) + reasoning_content
            text = {"content": text}
        self.served[key] += 1
        self.counts["ok"] += 1
        return await self._send(writer, 200, json.dumps(self._completion(path, payload, text, finish)).encode())

    def _completion(self, path: str, payload: dict, reply: dict, finish: str = "stop") -> dict:
        """A chat reply carries `reasoning_content` when the script gives one; a plain completion has no such field,
        so there the reasoning comes inline in `<think>` tags, as a reasoning model writes it."""
        content, reasoning = reply.get("content"), reply.get("reasoning_content")
        usage = {"prompt_tokens": len(str(payload.get("prompt") or payload.get("messages")).split()),
                 "completion_tokens": len(f"{reasoning or ''} {content or ''}".split())}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if path.endswith("chat/completions"):
            message = {"role": "assistant", "content": content}
            if reasoning is not None:
                message["reasoning_content"] = reasoning
            choice = {"index": 0, "finish_reason": finish, "message": message}
            kind = "chat.completion"
        else:
            text = content if reasoning is None else f"<think>\n{reasoning}\n</think>\n\n{content or ''}"
            choice = {"index": 0, "finish_reason": finish, "text": text}
            kind = "text_completion"
        return {"id": f"cmpl-{self.counts['ok']}", "object": kind, "created": int(time.time()),
                "model": payload.get("model", self.model), "choices": [choice], "usage": usage}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per completion request")
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--reply-chars", type=int, default=0,
                        help="pad every reply to this many characters (a GSM8K solution is ~300, a long trace 10,000+)")
    args = parser.parse_args()
    reply = echo_reply if not args.reply_chars else padded_reply(args.reply_chars)
    server = FakeOpenAI(reply=reply, latency=args.latency, faults=FaultPlan(rate=args.fault_rate)).start(args.port)
    print(server.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
