"""Generation throughput: mathforge's sample stage against datatrove's bare InferenceRunner, same server, same run.

The server (mathforge.testing.fake_openai, its own process on 127.0.0.1) answers every completion after exactly
LATENCY seconds, so concurrency / latency is the best any client can do. For each latency x concurrency the runs
alternate: datatrove's own InferenceRunner + EndpointServer (benchmarks/generation/bare_runner.py: no mathforge code,
no checkpoints) and `mathforge build` on a sample recipe (request cache and checkpoints on, the defaults; client
processes derived from `concurrency` unless --processes says otherwise). requests/s = requests / the runner's own
`inference_time` (for several client processes: the slowest one's); the machine's speed (a pure-Python loop of 1e7
additions) and the server's CPU use are printed beside the figures. Record them in benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
RECIPE = """name: bench-generation
version: 1.0.0
sources:
  - synthetic: {{problems: {problems}, seed: 0}}
stages:
  - type: sample
    k: {k}
    max_tokens: 64
    concurrency: {concurrency}
{processes}    checkpoint_every: 500
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


LOOP = compile("total = 0\nfor i in range(10_000_000):\n    total += i\n", "loop", "exec")


def loop_seconds() -> float:
    """The machine's pure-Python speed: seconds for 1e7 additions in a top-level loop (best of 3), the yardstick
    the figures in RESULTS.md are quoted with."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        exec(LOOP, {})  # our own constant code: a module-level loop, as `python -c` runs it
        best = min(best, time.perf_counter() - started)
    return round(best, 3)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(latency: float, reply_chars: int = 0) -> tuple[subprocess.Popen, str]:
    server = subprocess.Popen([sys.executable, "-m", "mathforge.testing.fake_openai", "--latency", str(latency),
                               "--reply-chars", str(reply_chars)], stdout=subprocess.PIPE, text=True)
    return server, server.stdout.readline().strip()


def mathforge_run(url: str, problems: int, k: int, concurrency: int, processes: int | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        recipe = Path(tmp) / "recipe.yaml"
        recipe.write_text(RECIPE.format(problems=problems, k=k, concurrency=concurrency, url=url, tmp=tmp,
                                        processes=f"    client_processes: {processes}\n" if processes else ""))
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", "from mathforge.cli import main; main()", "build", str(recipe)],
                                capture_output=True, text=True)
        wall = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(result.stderr)
        work = next((Path(tmp) / "work" / "bench-generation" / "1.0.0" / "samples").iterdir())
        stats = json.loads((work / "run-stats.json").read_text())
        samples = pq.read_table(work / "samples.parquet", columns=["text"]).num_rows
    inference = stats["inference_time_slowest_task"]
    return {"client": "mathforge", "processes": stats["client_processes"], "requests": samples,
            "inference_seconds": round(inference, 3), "build_seconds": round(wall, 3),
            "requests_per_s": round(samples / inference, 1)}


def bare_run(url: str, problems: int, k: int, concurrency: int) -> dict:
    result = subprocess.run([sys.executable, str(HERE / "bare_runner.py"), "--url", url, "--problems", str(problems),
                             "--k", str(k), "--concurrency", str(concurrency)], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "processes": 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, nargs="+", default=[0.2, 0.05])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--requests", type=int, default=30, help="requests per run, in units of concurrency")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--processes", type=int, nargs="*", default=[],
                        help="also run mathforge with these client process counts (default: derived only)")
    parser.add_argument("--no-bare", action="store_true", help="skip datatrove's bare runner")
    parser.add_argument("--reply-chars", type=int, default=0,
                        help="replies of this many characters (default: a few words; a GSM8K solution is ~300)")
    parser.add_argument("--out", type=Path, help="write every run as JSON here")
    args = parser.parse_args()
    machine = {"loop_1e7_seconds": loop_seconds(), "cpus": os.cpu_count()}
    print(json.dumps(machine), flush=True)
    runs = []
    for latency in args.latency:
        server, url = start_server(latency, args.reply_chars)
        try:
            for concurrency in args.concurrency:
                problems = args.requests * concurrency // args.k
                clients = ([] if args.no_bare else [("datatrove", None)]) + [("mathforge", None)] + \
                    [("mathforge", p) for p in args.processes]
                for repeat in range(args.repeat):
                    for client, processes in clients:
                        before, started = cpu_seconds(server.pid), time.perf_counter()
                        run = bare_run(url, problems, args.k, concurrency) if client == "datatrove" else \
                            mathforge_run(url, problems, args.k, concurrency, processes)
                        server_cpu = (cpu_seconds(server.pid) - before) / (time.perf_counter() - started)
                        run.update(latency_s=latency, concurrency=concurrency, ceiling=round(concurrency / latency),
                                   fraction=round(run["requests_per_s"] * latency / concurrency, 3),
                                   server_cpu_share=round(server_cpu, 2), repeat=repeat)
                        print(json.dumps(run), flush=True)
                        runs.append(run)
        finally:
            server.terminate()
    if args.out:
        args.out.write_text(json.dumps({"machine": machine, "runs": runs}, indent=1) + "\n")
    print("\n| latency | concurrency | client | processes | requests/s (runs) | best / ceiling | server CPU |")
    print("|---|---|---|---|---|---|---|")
    groups: dict = {}
    for run in runs:
        groups.setdefault((run["latency_s"], run["concurrency"], run["client"], run["processes"]), []).append(run)
    for (latency, concurrency, client, processes), group in groups.items():
        rates = [r["requests_per_s"] for r in group]
        print(f"| {latency * 1000:.0f} ms | {concurrency} | {client} | {processes} | "
              f"{', '.join(f'{r:,.1f}' for r in rates)} | {max(rates) * latency / concurrency:.3f} | "
              f"{max(r['server_cpu_share'] for r in group):.2f} |")


if __name__ == "__main__":
    main()
