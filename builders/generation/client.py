"""datatrove's InferenceRunner with an httpx request path, every failure classified, and a batched request cache."""
from __future__ import annotations

import json
import os

from datatrove.pipeline.inference.checkpointing import RequestCache
from datatrove.pipeline.inference.run_inference import InferenceRunner
from datatrove.pipeline.inference.servers import EndpointServer, SGLangServer, VLLMServer
from datatrove.pipeline.inference.types import InferenceError
from loguru import logger

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
REASONING_FIELDS = ("reasoning_content", "reasoning")  # DeepSeek / vLLM / SGLang name it one way, others the other


class RequestFailed(InferenceError):
    """One failed HTTP attempt, with a short reason and whether another attempt may succeed."""

    def __init__(self, reason: str, retryable: bool, payload: dict | None = None):
        self.reason, self.retryable = reason, retryable
        super().__init__(None, reason, payload=payload)


POOL_SIZE = 8  # httpcore scans every pooled connection per request: many small pools beat one large one


class HttpxRequests:
    """Request path shared by the server kinds: pooled httpx clients (round robin), a timeout, a Bearer key."""

    _clients: list | None = None
    _turn = 0

    def _headers(self) -> dict:
        """The key is read from the named environment variable here, so no config or log ever holds it."""
        name = (self.config.model_kwargs or {}).get("api_key_env")
        key = os.environ.get(name) if name else None
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _http(self):
        import httpx

        if self._clients is None:
            total = self.config.max_concurrent_generations
            sizes = [min(POOL_SIZE, total - start) for start in range(0, total, POOL_SIZE)]
            self._clients = [httpx.AsyncClient(timeout=self.config.request_timeout, headers=self._headers(),
                                               limits=httpx.Limits(max_connections=n, max_keepalive_connections=n))
                             for n in sizes]
        self._turn += 1
        return self._clients[self._turn % len(self._clients)]

    async def is_ready(self) -> bool:
        return await probe_ready(self.get_base_url(), self._headers())

    async def _make_request(self, payload: dict) -> dict:
        import httpx

        endpoint = "/v1/chat/completions" if self.config.use_chat else "/v1/completions"
        try:
            response = await self._http().post(f"{self.get_base_url()}{endpoint}", json=payload)
        except httpx.TimeoutException:
            raise RequestFailed("timeout", True) from None
        except httpx.TransportError as exc:
            raise RequestFailed(f"connection: {type(exc).__name__}", True) from None
        if response.status_code != 200:
            raise RequestFailed(f"http {response.status_code}: {error_message(response)}",
                                response.status_code in RETRYABLE_STATUS)
        try:
            data = json.loads(response.content)
            choice = data["choices"][0]
            check_reply(choice["message"] if self.config.use_chat else {"content": choice["text"]})
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise RequestFailed(f"malformed response: {type(exc).__name__}", True) from None
        data.setdefault("usage", {})
        return data

    async def server_cleanup(self) -> None:
        for client in self._clients or []:
            await client.aclose()
        self._clients = None
        await super().server_cleanup()


def error_message(response, limit: int = 300) -> str:
    """The reason an HTTP error gives: an OpenAI error body's `error.message`, else the start of the body."""
    try:
        message = json.loads(response.content)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = None
    return (message if isinstance(message, str) else response.text)[:limit]


def check_reply(message: dict) -> None:
    """A reply holds text, reasoning (`reasoning_content` or `reasoning`, as reasoning servers name it) or both;
    content may be null only beside reasoning (a trace cut off before its answer). datatrove reads both fields."""
    reasoning = [message.get(name) for name in REASONING_FIELDS]
    if any(r is not None and not isinstance(r, str) for r in reasoning):
        raise TypeError("reasoning is not a string")
    content = message.get("content")
    if not isinstance(content, str) and not (content is None and any(reasoning)):
        raise TypeError("text is not a string")


async def probe_ready(base_url: str, headers: dict | None = None, timeout: float = 5.0) -> bool:
    """`GET /health`, else `GET /v1/models` (with the key): either answering 200 means ready."""
    import httpx

    async with httpx.AsyncClient(timeout=timeout, headers=headers or {}) as client:
        for path in ("/health", "/v1/models"):
            try:
                if (await client.get(f"{base_url.rstrip('/')}{path}")).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
    return False


class Endpoint(HttpxRequests, EndpointServer):
    """Any OpenAI-compatible endpoint (hosted API, a vLLM/SGLang server, `transformers serve`)."""

    def __init__(self, config, rank: int):
        super().__init__(config, rank)
        self.client = None  # requests go through httpx, never through the openai client


class Vllm(HttpxRequests, VLLMServer):
    """vLLM launched by datatrove on this node."""


class Sglang(HttpxRequests, SGLangServer):
    """SGLang launched by datatrove on this node."""


SERVERS = {"endpoint": Endpoint, "vllm": Vllm, "sglang": Sglang}


class BatchedRequestCache(RequestCache):
    """datatrove's request cache, but one SQLite transaction for whatever replies are queued, not one per reply.

    datatrove commits every cached reply on its own; each commit waits for the disk (2-20 ms here), and the run
    closes by draining that queue, so commits per second capped a pass (c256 with the cache on: 97 requests/s, off:
    1,172). Write-ahead logging with `synchronous=NORMAL` survives a kill -9 of the process (what resume is for);
    a power cut may lose the last replies, which are then asked again, never half-read."""

    BATCH = 4096

    async def initialize(self, rank: int) -> None:
        await super().initialize(rank)
        if self._conn is not None:
            await self._conn.execute("PRAGMA journal_mode=WAL")
            await self._conn.execute("PRAGMA synchronous=NORMAL")

    async def _writer_loop(self) -> None:
        import orjson

        while True:
            items = [await self._queue.get()]
            while len(items) < self.BATCH and not self._queue.empty():
                items.append(self._queue.get_nowait())
            stop = items[-1] is None  # the close sentinel is the last thing ever queued
            try:
                rows = [(*data[:4], orjson.dumps(data[4]), None) if kind == "result" else (*data[:4], None, data[4])
                        for kind, data in (item for item in items if item is not None)]
                if rows and self._conn is not None:
                    await self._conn.executemany(
                        "INSERT OR REPLACE INTO request_cache (chunk_index, doc_id, rollout_idx, payload_hash, result,"
                        " error_message) VALUES (?, ?, ?, ?, ?, ?)", rows)
                    await self._conn.commit()
            except Exception as exc:  # as datatrove: a reply not cached is asked again on resume, nothing worse
                logger.error(f"Failed to write {len(items)} request cache entries: {exc}")
            finally:
                for _ in items:
                    self._queue.task_done()
            if stop:
                break


class Runner(InferenceRunner):
    """InferenceRunner whose servers use the httpx request path, whose request cache commits in batches and whose
    stats count request-cache hits."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.request_cache = BatchedRequestCache(self.request_cache.base_dir)
        self.checkpoint_manager.request_cache = self.request_cache

    def _init_server(self, rank: int):
        return SERVERS[self.config.server_type](self.config, rank)

    async def _cached_request(self, payload, semaphore, server, doc_id, rollout_idx, chunk_index,
                              request_counters=None):
        if self.request_cache.enabled:
            payload_hash = self.request_cache.prepare_payload(payload)
            hit, _ = await self.request_cache.get_cached_response(doc_id, rollout_idx, payload_hash=payload_hash)
            self.stat_update("cache_hits" if hit is not None else "cache_misses", unit="request")
        return await super()._cached_request(payload, semaphore, server, doc_id, rollout_idx, chunk_index,
                                             request_counters)
