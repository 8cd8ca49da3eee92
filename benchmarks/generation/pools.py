"""The pool-layout sweep behind client.POOL_SIZE: a bare httpx client (mathforge's request path without datatrove)
with its connections split into pools of N, against the fixed-latency server, at each concurrency.

httpcore scans every connection of a pool on each request, so one large pool costs CPU per request that grows with
its size; the sweep shows where that stops mattering. Prints one JSON line per (concurrency, pool size) and a table.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time


async def one_layout(url: str, concurrency: int, pool: int, requests: int) -> float:
    import httpx

    sizes = [min(pool, concurrency - start) for start in range(0, concurrency, pool)]
    clients = [httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=n, max_keepalive_connections=n))
               for n in sizes]
    gate, turn = asyncio.Semaphore(concurrency), [0]

    async def one(i: int) -> None:
        async with gate:
            turn[0] += 1
            response = await clients[turn[0] % len(clients)].post(
                f"{url}/v1/completions", json={"model": "m", "prompt": f"Question {i}", "max_tokens": 64, "seed": i})
            json.loads(response.content)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(requests)))
    seconds = time.perf_counter() - started
    for client in clients:
        await client.aclose()
    return requests / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--pools", type=int, nargs="+", default=[256, 64, 32, 16, 8, 4, 1])
    parser.add_argument("--requests", type=int, default=25, help="requests per layout, in units of concurrency")
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-m", "mathforge.testing.fake_openai", "--latency", str(args.latency)],
                              stdout=subprocess.PIPE, text=True)
    url = server.stdout.readline().strip()
    rows = []
    try:
        for concurrency in args.concurrency:
            for pool in sorted({min(p, concurrency) for p in args.pools}, reverse=True):
                rate = asyncio.run(one_layout(url, concurrency, pool, args.requests * concurrency))
                rows.append({"concurrency": concurrency, "pool": pool, "requests_per_s": round(rate, 1),
                             "fraction": round(rate * args.latency / concurrency, 3)})
                print(json.dumps(rows[-1]), flush=True)
    finally:
        server.terminate()
    print("\n| concurrency | pool size | pools | requests/s | of ceiling |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['concurrency']} | {r['pool']} | {-(-r['concurrency'] // r['pool'])} | {r['requests_per_s']:,.1f} "
              f"| {r['fraction']:.3f} |")


if __name__ == "__main__":
    main()
