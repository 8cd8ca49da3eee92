"""Pooled pseudo-samples from GSM8K train in the gsm8k-ScRel layout: models x seeds x problems."""
from __future__ import annotations

import argparse
import multiprocessing as mp
from pathlib import Path

import orjson

from mathforge.testing.synthetic import write_gold, write_model_dir


def _write(args) -> None:
    write_model_dir(*args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", default="../shared/data/gsm8k/train.jsonl")
    parser.add_argument("--out", default="benchmarks/collect/data")
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=25)
    parser.add_argument("--problems", type=int, default=None)
    args = parser.parse_args()
    rows = [orjson.loads(line) for line in open(args.train, "rb")][: args.problems]
    Path(args.out).mkdir(parents=True, exist_ok=True)
    write_gold(rows, Path(args.out) / "gold.jsonl")
    with mp.Pool(2) as pool:
        pool.map(_write, [(rows, Path(args.out) / f"model{m}", m, args.seeds) for m in range(args.models)])
    print(f"wrote {args.models} models x {args.seeds} seeds x {len(rows)} problems = "
          f"{args.models * args.seeds * len(rows)} samples to {args.out}")


if __name__ == "__main__":
    main()
