"""The batched backend's server: per-request seeds independent of the batch, correct sampling, OpenAI wire format."""
from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest

PROMPT = "Ava has 5 apples. A friend gives Ava 3 more."


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    from mathforge.builders.generation.servers import LocalServer

    with LocalServer(str(tiny_model), tmp_path_factory.mktemp("bs") / "server.log", batched=True) as running:
        yield running


def post_many(url: str, payloads: list[dict], path: str = "/v1/completions") -> list[dict]:
    async def go():
        async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=len(payloads))) as client:
            responses = await asyncio.gather(*(client.post(url + path, json=p) for p in payloads))
        return [(r.status_code, r.json()) for r in responses]

    return asyncio.run(go())


def texts(url: str, payloads: list[dict]) -> list[str]:
    out = []
    for status, body in post_many(url, payloads):
        assert status == 200, body
        out.append(body["choices"][0]["text"])
    return out


def request(seed: int, **extra) -> dict:
    return {"prompt": PROMPT, "max_tokens": 12, "temperature": 0.8, "top_p": 1.0, "seed": seed, **extra}


def test_a_seed_gives_the_same_text_alone_and_inside_any_batch(server):
    alone = texts(server.url, [request(7)])[0]
    crowd = texts(server.url, [request(s, prompt=f"{PROMPT} x{s}" if s != 7 else PROMPT) for s in range(40)])
    assert crowd[7] == alone
    assert len(set(texts(server.url, [request(s) for s in range(40)]))) >= 30  # seeds differ -> samples differ


def test_greedy_and_top_p_match_transformers_generate(server, tiny_model):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    ids = tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(ids, do_sample=False, max_new_tokens=12, eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id)
    expected = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    got = texts(server.url, [request(1, temperature=0.0), request(2, temperature=0.0, prompt="Ben has 2"),
                             request(3, top_p=1e-6)])
    assert got[0] == expected and got[2] == expected  # top_p -> 0 keeps only the most likely token


def test_first_token_frequencies_follow_the_model_distribution(server, tiny_model):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    n = 600
    with torch.inference_mode():
        logits = model(**tokenizer(PROMPT, return_tensors="pt")).logits[0, -1]
    ordered = logits.sort(descending=True).values
    temperature = round(float(ordered[0] - ordered[9]) / 4, 4)  # the 10th token is e^-4 as likely as the 1st
    probs = torch.softmax(logits / temperature, -1)
    top = probs.argsort(descending=True)[:3].tolist()
    got = post_many(server.url, [request(s, max_tokens=1, temperature=temperature) for s in range(n)])
    first = Counter(body["choices"][0]["text"] for _, body in got)
    expected = Counter()
    for token, p in enumerate(probs.tolist()):
        expected[tokenizer.decode([token], skip_special_tokens=True)] += p
    assert 0.1 < probs[top[0]] < 0.9  # the check below is not trivial
    for text in {tokenizer.decode([t], skip_special_tokens=True) for t in top}:
        p = expected[text]
        se = (p * (1 - p) / n) ** 0.5
        assert abs(first[text] / n - p) < 4 * se + 0.01, (text, first[text] / n, p)


def test_wire_format_limits_stops_n_and_bad_requests(server):
    [(status, body)] = post_many(server.url, [request(1, max_tokens=5, stop=[])])
    assert status == 200 and body["object"] == "text_completion"
    assert body["choices"][0]["finish_reason"] == "length" and body["usage"]["completion_tokens"] == 5
    full = body["choices"][0]["text"]
    cut = full[len(full) // 2:][:2]
    if cut.strip():
        [(_, stopped)] = post_many(server.url, [request(1, max_tokens=5, stop=[cut])])
        assert stopped["choices"][0]["text"] == full[: full.find(cut)]
        assert stopped["choices"][0]["finish_reason"] == "stop"
    [(_, many)] = post_many(server.url, [request(1, n=3)])
    assert len(many["choices"]) == 3 and len({c["text"] for c in many["choices"]}) >= 2
    [(status, chat)] = post_many(server.url, [{"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 4,
                                               "seed": 1}], "/v1/chat/completions")
    assert status == 200 and chat["choices"][0]["message"]["role"] == "assistant"
    for bad in ({"max_tokens": 3}, request(1, temperature=-1), request(1, top_p=0), request(1, n=10_000)):
        [(status, error)] = post_many(server.url, [bad])
        assert status == 400 and error["error"]["message"]
    assert httpx.get(server.url + "/health").status_code == 200
    assert httpx.get(server.url + "/v1/models").json()["data"][0]["id"]


def test_a_prompt_past_the_context_window_is_a_400_and_the_rest_of_its_batch_is_served(server, tiny_model):
    from transformers import AutoConfig, AutoTokenizer

    window = AutoConfig.from_pretrained(tiny_model).max_position_embeddings
    assert window == 1024  # build_tiny_model's default
    # the reproducer: one 200,000-character question among five, sent together (one batch)
    payloads = [request(s, prompt=f"{PROMPT} x{s}") for s in range(4)]
    payloads.insert(2, request(9, prompt="What is 1 + 1? " * 13_334))
    assert len(payloads[2]["prompt"]) >= 200_000
    replies = post_many(server.url, payloads)
    assert [status for status, _ in replies] == [200, 200, 400, 200, 200]
    error = replies[2][1]["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "context_length_exceeded"
    assert f"maximum context length is {window} tokens" in error["message"]

    # the limit is prompt tokens + max_tokens, counted with the model's own tokenizer
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    prompt = " ".join(f"Ava has {i} apples." for i in range(400))
    while len(tokenizer(prompt)["input_ids"]) > window - 3:
        prompt = prompt.rsplit(" ", 1)[0]
    left = window - len(tokenizer(prompt)["input_ids"])
    fits, over = post_many(server.url, [request(1, prompt=prompt, max_tokens=left),
                                        request(1, prompt=prompt, max_tokens=left + 1)])
    assert fits[0] == 200 and fits[1]["usage"]["prompt_tokens"] == window - left
    assert over[0] == 400
    assert f"and max_tokens asks for {left + 1} more ({window + 1} in all)" in over[1]["error"]["message"]
