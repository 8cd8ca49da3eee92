"""vLLM's CPU build against the batched backend: the same tiny model and problems, the whole sample stage through each.

Per engine, each run a fresh process running the sample stage as a build does (runner.run_sample_stage):
- **stage**: through the engine's own backend (`batched`; `vllm` with the recipe's `python` and `server_args`): the
  server's start, every request, the server's stop, the samples written; requests/s and tokens/s over that wall time;
- **sampling**: the same requests through the `endpoint` backend to a server of that engine that this script started
  and saw ready first: requests/s and tokens/s over datatrove's `inference_time`, and the server's start time.
Tokens are completion tokens as the server counts them (a random-weight model rarely stops early: ~max_tokens each).
The model is the quickstart's shape (d=128, 4 layers, 4 heads of 32, random weights); vLLM runs on `--vllm-python`
(`make vllm`: .venv-vllm) with a 0.15 memory share, float32 (as the batched server) and no chunked prefill (which
crashes vLLM 0.32.0's CPU build on seeded requests), with torch.compile (vLLM's default: its compile cache is keyed
by the model's path, so a new model compiles once) and with --enforce-eager.
Prints the machine's 1e7-loop time and a Markdown table; record them in benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from run import loop_seconds  # noqa: E402  (benchmarks/generation/run.py: the yardstick RESULTS.md quotes)

# --no-enable-chunked-prefill: vLLM 0.32.0 on the CPU crashes when it splits the prefill of a seeded request
# ("CPU Generator does not use offset"), which a few hundred requests at once do
VLLM_ARGS = {"gpu-memory-utilization": 0.15, "max-model-len": 1024, "dtype": "float32",
             "enable-chunked-prefill": False}


def recipe(tmp: Path, gold: Path, model_entry: dict, k: int, max_tokens: int, concurrency: int) -> Path:
    import yaml

    body = {"name": "bench-engines", "version": "1.0.0", "sources": [{"path": str(gold)}],
            "stages": [{"type": "sample", "k": k, "temperature": 0.7, "max_tokens": max_tokens, "seed": 0,
                        "concurrency": concurrency, "checkpoint_every": 1000, "request_timeout": 1800,
                        "prompt": {"template": "Question: {{ question }}\nAnswer:"}, "models": [model_entry]}],
            "output": {"dir": str(tmp / "out" / "{name}"), "work_dir": str(tmp / "work")}}
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def stage_in_child(path: Path) -> None:
    """Run the recipe's sample stage in this process; print what it measured as one JSON line."""
    from mathforge.builders.generation.runner import run_sample_stage
    from mathforge.builders.recipe import load_recipe
    from mathforge.builders.sources import load_sources

    loaded = load_recipe(path)
    problems = load_sources(loaded.sources)
    started = time.perf_counter()
    [result] = run_sample_stage(0, loaded.stages[0], problems, loaded)
    wall = time.perf_counter() - started
    stats = json.loads((result.samples_path.parent / "run-stats.json").read_text())
    print(json.dumps({"requests": result.ok, "failed": result.failed, "tokens": result.completion_tokens,
                      "stage_seconds": round(wall, 2),
                      "inference_seconds": round(stats["inference_time_slowest_task"], 2),
                      "client_processes": stats["client_processes"]}))


def run_stage(tmp: Path, gold: Path, entry: dict, args) -> dict:
    work = Path(tempfile.mkdtemp(dir=tmp, prefix=f"{entry['name']}-{entry['backend']}-"))
    try:
        path = recipe(work, gold, entry, args.k, args.max_tokens, args.concurrency)
        env = {**os.environ, "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1"}
        result = subprocess.run([sys.executable, __file__, "--stage", str(path)], capture_output=True, text=True,
                                env=env)
        if result.returncode != 0:
            raise SystemExit(result.stderr[-4000:])
        return json.loads(result.stdout.strip().splitlines()[-1])
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


def start_server(command: list[str], port: int, log: Path) -> tuple[subprocess.Popen, float]:
    env = {**os.environ, "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    with open(log, "wb") as handle:
        server = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    while True:
        if server.poll() is not None:
            raise SystemExit(f"{command[:4]} exited:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                if response.status == 200:
                    return server, time.perf_counter() - started
        except OSError:
            time.sleep(0.25)


def stop_server(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(60)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(server.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    server.wait()


def rates(run: dict, seconds: float) -> dict:
    return {**run, "requests_per_s": round(run["requests"] / seconds, 1), "tokens_per_s": round(run["tokens"] / seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--problems", type=int, default=512)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--vllm-python", default=str(ROOT / ".venv-vllm" / "bin" / "python"))
    parser.add_argument("--engines", nargs="+", default=["batched", "vllm", "vllm-eager"])
    parser.add_argument("--out", type=Path, help="write every run as JSON here")
    parser.add_argument("--work", type=Path, help="keep the runs' files (server logs, samples) here")
    args = parser.parse_args()
    if args.stage:
        return stage_in_child(args.stage)

    from datatrove.pipeline.inference.run_inference import InferenceConfig

    from mathforge.builders.generation.servers import batched_command, free_port, vllm_command
    from mathforge.testing import synthetic
    from mathforge.testing.tinymodel import build_tiny_model

    machine = {"loop_1e7_seconds": loop_seconds(), "cpus": os.cpu_count(), "load_1min": os.getloadavg()[0]}
    print(json.dumps(machine), flush=True)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = args.work or Path(tmp)
        tmp.mkdir(parents=True, exist_ok=True)
        model = build_tiny_model(tmp / "model", hidden=128, layers=4, heads=4)
        gold = tmp / "gold.jsonl"
        synthetic.write_gold(synthetic.problems(args.problems, seed=0), gold)
        for engine in args.engines:
            server_args = {**VLLM_ARGS, **({"enforce-eager": True} if engine == "vllm-eager" else {})}
            entry = ({"name": engine, "backend": "batched", "model": str(model)} if engine == "batched" else
                     {"name": engine, "backend": "vllm", "model": str(model), "python": args.vllm_python,
                      "server_args": server_args})
            run = run_stage(tmp, gold, entry, args)
            runs.append({"engine": engine, "mode": "stage", **rates(run, run["stage_seconds"])})
            print(json.dumps(runs[-1]), flush=True)
            port = free_port()
            if engine == "batched":
                command = batched_command(str(model), port)
            else:
                config = InferenceConfig(server_type="vllm", model_name_or_path=str(model), model_kwargs=server_args)
                command = vllm_command(config, port, python=args.vllm_python)
            server, start = start_server(command, port, tmp / f"{engine}.log")
            try:
                entry = {"name": engine, "backend": "endpoint", "model": str(model),
                         "base_url": f"http://127.0.0.1:{port}"}
                run = run_stage(tmp, gold, entry, args)
            finally:
                stop_server(server)
            runs.append({"engine": engine, "mode": "sampling", "server_start_seconds": round(start, 1),
                         **rates(run, run["inference_seconds"])})
            print(json.dumps(runs[-1]), flush=True)
    if args.out:
        args.out.write_text(json.dumps({"machine": machine, "settings": vars(args) | {"out": str(args.out)},
                                        "runs": runs}, indent=1, default=str) + "\n")
    print(f"\n{args.problems} problems x k={args.k}, max_tokens {args.max_tokens}, concurrency {args.concurrency}\n")
    print("| engine | mode | seconds | server start | requests/s | tokens/s |")
    print("|---|---|---|---|---|---|")
    for run in runs:
        seconds = run["stage_seconds"] if run["mode"] == "stage" else run["inference_seconds"]
        start = f"{run['server_start_seconds']:.0f} s" if "server_start_seconds" in run else "(inside)"
        print(f"| {run['engine']} | {run['mode']} | {seconds:.1f} | {start} | {run['requests_per_s']:,.1f} | "
              f"{run['tokens_per_s']:,} |")


if __name__ == "__main__":
    main()
