"""The `batched` backend: an OpenAI-compatible server on 127.0.0.1 that answers concurrent requests with one `generate`."""
import argparse
import asyncio
import contextlib
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

MAX_BATCH = 256
CONTEXT_FIELDS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")


@dataclass
class Job:
    """One completion to produce: the prompt's token ids and its sampling settings (per-request seed included)."""

    ids: list[int]
    max_tokens: int
    temperature: float
    top_p: float
    seed: int
    stop: list[str] = field(default_factory=list)
    future: "asyncio.Future | None" = None


class RowSampler:
    """Per-row sampling inside a greedy `generate`: temperature, top-p, then Gumbel noise drawn from the row's own
    seeded generator, so argmax is a sample whose randomness depends on the request's seed, not on the batch."""

    def __init__(self, jobs: list[Job]):
        import torch

        self.temperature = torch.tensor([j.temperature for j in jobs], dtype=torch.float32)
        self.top_p = torch.tensor([j.top_p for j in jobs], dtype=torch.float32)
        self.rows = [i for i, j in enumerate(jobs) if j.temperature > 0]
        self.generators = [torch.Generator().manual_seed(jobs[i].seed) for i in self.rows]

    def __call__(self, input_ids, scores):
        import torch

        if not self.rows:
            return scores
        rows = torch.tensor(self.rows, device=scores.device)
        logits = scores[rows].float() / self.temperature[self.rows, None].to(scores.device)
        ordered, index = logits.sort(dim=-1, descending=True)
        probs = ordered.softmax(dim=-1)
        drop = probs.cumsum(dim=-1) - probs > self.top_p[self.rows, None].to(scores.device)
        logits = torch.full_like(logits, float("-inf")).scatter(-1, index, ordered.masked_fill(drop, float("-inf")))
        uniform = torch.stack([torch.rand(logits.shape[-1], generator=g) for g in self.generators])
        gumbel = -torch.log(-torch.log(uniform.clamp(1e-12, 1 - 1e-7))).to(scores.device)
        scores = scores.float().clone()
        scores[rows] = logits + gumbel
        return scores


class RowStop:
    """Stop a row at its own max_tokens or once its text contains one of its stop strings."""

    def __init__(self, jobs: list[Job], prompt_len: int, tokenizer):
        self.jobs, self.prompt_len, self.tokenizer = jobs, prompt_len, tokenizer

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        made = input_ids.shape[1] - self.prompt_len
        done = [made >= j.max_tokens for j in self.jobs]
        for i, job in enumerate(self.jobs):
            if job.stop and not done[i]:
                tail = self.tokenizer.decode(input_ids[i, self.prompt_len:], skip_special_tokens=True)
                done[i] = any(s in tail for s in job.stop)
        return torch.tensor(done, device=input_ids.device)


class Engine:
    """A causal LM and its tokenizer; `run(jobs)` produces one (text, finish_reason, tokens) per job in one batch."""

    def __init__(self, model: str, device: str = "cpu", dtype: str = "auto"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = model
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=dtype).to(device).eval()
        self.device = device
        self.eos = {self.tokenizer.eos_token_id, *(_as_list(self.model.generation_config.eos_token_id))} - {None}
        self.context = context_window(self.model.config, self.tokenizer)
        self.torch = torch

    def encode(self, payload: dict) -> list[int]:
        if payload.get("messages") is not None:
            return list(self.tokenizer.apply_chat_template(payload["messages"], add_generation_prompt=True,
                                                           tokenize=True, return_dict=False))
        return self.tokenizer(str(payload["prompt"]))["input_ids"]

    def run(self, jobs: list[Job]) -> list[tuple[str, str, int]]:
        from transformers import LogitsProcessorList, StoppingCriteriaList

        width = max(len(j.ids) for j in jobs)
        pad = self.tokenizer.pad_token_id
        ids = self.torch.tensor([[pad] * (width - len(j.ids)) + j.ids for j in jobs], device=self.device)
        mask = self.torch.tensor([[0] * (width - len(j.ids)) + [1] * len(j.ids) for j in jobs], device=self.device)
        with self.torch.inference_mode():
            out = self.model.generate(
                input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=max(j.max_tokens for j in jobs),
                logits_processor=LogitsProcessorList([RowSampler(jobs)]),
                stopping_criteria=StoppingCriteriaList([RowStop(jobs, width, self.tokenizer)]),
                eos_token_id=sorted(self.eos), pad_token_id=pad, temperature=None, top_p=None, top_k=None)
        return [self.finish(job, out[i, width:].tolist()) for i, job in enumerate(jobs)]

    def finish(self, job: Job, tokens: list[int]) -> tuple[str, str, int]:
        reason = "length"
        for n, token in enumerate(tokens[: job.max_tokens]):
            if token in self.eos:
                tokens, reason = tokens[:n], "stop"
                break
        else:
            tokens = tokens[: job.max_tokens]
        from mathforge.builders.generation.runner import cut_at_stop

        text, stopped = cut_at_stop(self.tokenizer.decode(tokens, skip_special_tokens=True), job.stop)
        return text, "stop" if stopped else reason, len(tokens)


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def context_window(config, tokenizer) -> int | None:
    """Tokens the model attends over: its config's position limit, else the tokenizer's model_max_length when that
    is a real limit (transformers writes 1e30 there when none was saved); None when neither says."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    for name in CONTEXT_FIELDS:
        value = getattr(text, name, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < 10**8 else None


class TooLong(ValueError):
    """A request past the model's context window: a 400 of its own, before it can join (and sink) a batch."""

    code = "context_length_exceeded"


def parse_job(payload: dict, engine: Engine) -> Job:
    """Validate an OpenAI request body; raises ValueError with the offending field."""
    if payload.get("prompt") is None and payload.get("messages") is None:
        raise ValueError("give `prompt` or `messages`")
    stop = payload.get("stop") or []
    stop = [stop] if isinstance(stop, str) else list(stop)
    temperature = float(payload["temperature"]) if payload.get("temperature") is not None else 1.0
    top_p = float(payload.get("top_p") if payload.get("top_p") is not None else 1.0)
    max_tokens = int(payload.get("max_tokens") or payload.get("max_completion_tokens") or 256)
    if temperature < 0 or not 0 < top_p <= 1 or max_tokens < 1:
        raise ValueError("need temperature >= 0, 0 < top_p <= 1, max_tokens >= 1")
    seed = payload.get("seed")
    seed = int(seed) if seed is not None else uuid.uuid4().int & 0x7FFFFFFF
    ids = engine.encode(payload)
    if engine.context and len(ids) + max_tokens > engine.context:
        raise TooLong(f"This model's maximum context length is {engine.context} tokens; the "
                      f"{'messages' if payload.get('messages') is not None else 'prompt'} take {len(ids)} tokens "
                      f"and max_tokens asks for {max_tokens} more ({len(ids) + max_tokens} in all)")
    return Job(ids, max_tokens, temperature, top_p, seed, [str(s) for s in stop])


class Batcher:
    """Queue jobs; one worker thread runs them in batches of up to `max_batch`. A batch closes when it is full,
    when no request arrived for `gap` seconds (a burst of client requests is over) or after `max_wait`."""

    def __init__(self, engine: Engine, max_batch: int = MAX_BATCH, gap: float = 0.01, max_wait: float = 0.2):
        self.engine, self.max_batch, self.gap, self.max_wait = engine, max_batch, gap, max_wait
        self.queue: asyncio.Queue | None = None
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="generate")

    async def submit(self, job: Job) -> tuple[str, str, int]:
        job.future = asyncio.get_running_loop().create_future()
        await self.queue.put(job)
        return await job.future

    async def loop(self) -> None:
        self.queue = asyncio.Queue()
        while True:
            batch = [await self.queue.get()]
            started = last = time.monotonic()
            while len(batch) < self.max_batch:
                try:
                    batch.append(self.queue.get_nowait())
                    last = time.monotonic()
                except asyncio.QueueEmpty:
                    now = time.monotonic()
                    if now - last >= self.gap or now - started >= self.max_wait:
                        break
                    await asyncio.sleep(0.001)
            await self._run(batch)

    async def _run(self, batch: list[Job]) -> None:
        try:
            results = await asyncio.get_running_loop().run_in_executor(self.pool, self.engine.run, batch)
        except Exception as exc:  # every waiting request gets the error as a 500
            for job in batch:
                job.future.set_exception(exc)
            return
        for job, result in zip(batch, results):
            job.future.set_result(result)


def make_app(engine: Engine, batcher: Batcher):
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    @contextlib.asynccontextmanager
    async def lifespan(app):
        task = asyncio.create_task(batcher.loop())
        yield
        task.cancel()

    app = FastAPI(lifespan=lifespan)

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": engine.name, "object": "model", "owned_by": "mathforge"}]}

    async def complete(request: Request, chat: bool):
        try:
            payload = await request.json()
            n = int(payload.get("n") or 1)
            if not 1 <= n <= MAX_BATCH:
                raise ValueError(f"n must be between 1 and {MAX_BATCH}")
            jobs = [parse_job(payload, engine) for _ in range(n)]
        except (ValueError, TypeError, KeyError) as exc:
            return JSONResponse({"error": {"message": str(exc), "type": "invalid_request_error",
                                           "code": getattr(exc, "code", None)}}, status_code=400)
        for i, job in enumerate(jobs[1:], 1):
            job.seed += i
        try:
            results = await asyncio.gather(*(batcher.submit(job) for job in jobs))
        except Exception as exc:
            return JSONResponse({"error": {"message": f"generation failed: {exc}"}}, status_code=500)
        choices = [{"index": i, "finish_reason": reason, "logprobs": None,
                    **({"message": {"role": "assistant", "content": text}} if chat else {"text": text})}
                   for i, (text, reason, _) in enumerate(results)]
        completion = sum(n for _, _, n in results)
        return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "chat.completion" if chat else "text_completion",
                "created": int(time.time()), "model": engine.name, "choices": choices,
                "usage": {"prompt_tokens": len(jobs[0].ids), "completion_tokens": completion,
                          "total_tokens": len(jobs[0].ids) + completion}}

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await complete(request, chat=False)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        return await complete(request, chat=True)

    return app


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                        help="torch CPU threads (default: all cores but one, which serves HTTP)")
    parser.add_argument("--max-batch", type=int, default=MAX_BATCH)
    parser.add_argument("--gap-ms", type=float, default=10.0, help="close a batch after this long without a request")
    parser.add_argument("--max-wait-ms", type=float, default=200.0, help="close a batch after this long in any case")
    args = parser.parse_args(argv)
    if args.device == "cpu":
        import torch

        torch.set_num_threads(args.threads)
    engine = Engine(args.model, args.device, args.dtype)
    app = make_app(engine, Batcher(engine, args.max_batch, args.gap_ms / 1000, args.max_wait_ms / 1000))
    # clients keep connections open across batches: a short keep-alive closes them under a request in flight
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", timeout_keep_alive=600)


if __name__ == "__main__":
    main()
