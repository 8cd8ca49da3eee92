"""Generation throughput: a sample stage against a local OpenAI-compatible server with fixed latency.

The server (mathforge.testing.fake_openai, its own process) answers every completion after exactly LATENCY seconds, so
concurrency / latency is the best any client can do. The build runs through `mathforge build` (datatrove's
InferenceRunner with mathforge's request path, request cache and checkpoints on), as a user would run it.
Prints one JSON line per run and a summary; record the figures in benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

RECIPE = """name: bench-generation
version: 1.0.0
sources:
  - synthetic: {{problems: {problems}, seed: 0}}
stages:
  - type: sample
    k: {k}
    max_tokens: 64
    concurrency: {concurrency}
    checkpoint_every: 500
    models:
      - name: fixed-latency
        backend: endpoint
        model: fake-model
        base_url: {url}
  - type: collect
output:
  dir: {tmp}/out/{{name}}/{{version}}
  work_dir: {tmp}/work/{{name}}/{{version}}
"""


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    server = subprocess.Popen([sys.executable, "-m", "mathforge.testing.fake_openai", "--latency", str(latency)],
                              stdout=subprocess.PIPE, text=True)
    return server, server.stdout.readline().strip()


def one_run(url: str, problems: int, k: int, concurrency: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        recipe = Path(tmp) / "recipe.yaml"
        recipe.write_text(RECIPE.format(problems=problems, k=k, concurrency=concurrency, url=url, tmp=tmp))
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", "from mathforge.cli import main; main()", "build", str(recipe)],
                                capture_output=True, text=True)
        wall = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(result.stderr)
        work = next((Path(tmp) / "work" / "bench-generation" / "1.0.0" / "samples").iterdir())
        stats = json.loads((work / "run-stats.json").read_text())
        samples = pq.read_table(work / "samples.parquet", columns=["text"]).num_rows
    inference = stats["inference_time"]
    return {"requests": samples, "inference_seconds": round(inference, 3), "build_seconds": round(wall, 3),
            "requests_per_s": round(samples / inference, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--problems", type=int, default=1000)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    server, url = start_server(args.latency)
    try:
        runs = [one_run(url, args.problems, args.k, args.concurrency) for _ in range(args.repeat)]
    finally:
        server.terminate()
    for run in runs:
        print(json.dumps(run))
    bound = args.concurrency / args.latency
    best = max(r["requests_per_s"] for r in runs)
    print(json.dumps({"latency_s": args.latency, "concurrency": args.concurrency, "bound_requests_per_s": bound,
                      "best_requests_per_s": best, "fraction_of_bound": round(best / bound, 3),
                      "median_fraction": round(sorted(r["requests_per_s"] for r in runs)[len(runs) // 2] / bound, 3)}))


if __name__ == "__main__":
    main()
