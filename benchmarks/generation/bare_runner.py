"""The reference client: datatrove's own InferenceRunner and EndpointServer, no mathforge code, against a server URL.

Same document shape as a mathforge sample pass (one document per problem, k requests per document gathered at once),
same concurrency and documents-in-flight formula, datatrove's JSONL writer; datatrove's own request path (its stdlib
POST helper for a 127.0.0.1 endpoint). Prints one JSON line: requests, inference seconds (datatrove's own timer),
requests per second.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path


async def rollout(document, generate, k: int, max_tokens: int):
    replies = await asyncio.gather(*(generate({"prompt": document.text, "max_tokens": max_tokens, "seed": i,
                                               "temperature": 0.7}) for i in range(k)))
    return [r.text for r in replies]


def main() -> None:
    from datatrove.data import Document
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.inference.run_inference import InferenceConfig, InferenceRunner
    from datatrove.pipeline.writers import JsonlWriter

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--problems", type=int, default=1000)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--checkpoints", action="store_true", help="datatrove's checkpoints and request cache on")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        docs = [Document(id=f"p{i}", text=f"Question {i}: how many apples?\nAnswer:") for i in range(args.problems)]
        config = InferenceConfig(server_type="endpoint", model_name_or_path="fake-model", use_chat=False,
                                 endpoint_url=args.url, max_concurrent_generations=args.concurrency,
                                 max_concurrent_documents=max(2, -(-args.concurrency // args.k) + 1),
                                 metric_interval=600)
        writer = JsonlWriter(str(Path(tmp) / "out"), output_filename="${rank}_${chunk_index}.jsonl", compression=None)
        runner = InferenceRunner(lambda doc, generate: rollout(doc, generate, args.k, args.max_tokens), config, writer,
                                 checkpoints_local_dir=str(Path(tmp) / "checkpoints") if args.checkpoints else None,
                                 records_per_chunk=500)
        LocalPipelineExecutor([docs, runner], tasks=1, logging_dir=str(Path(tmp) / "logs")).run()
        stats = json.loads(next((Path(tmp) / "logs" / "stats").glob("*.json")).read_text())
        found = {k: v for step in stats for k, v in (step.get("stats") or {}).items()}
        seconds = found["inference_time"]["total"] if isinstance(found["inference_time"], dict) else \
            found["inference_time"]
        requests = found["successful_requests"]["total"] if isinstance(found["successful_requests"], dict) else \
            found["successful_requests"]
    print(json.dumps({"client": "datatrove", "checkpoints": args.checkpoints, "requests": requests, "inference_seconds": round(seconds, 3),
                      "requests_per_s": round(requests / seconds, 1)}))


if __name__ == "__main__":
    main()
