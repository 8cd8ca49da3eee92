"""Shared entry for `mathforge train` and `python -m trainers.{cpt,sft}`: exit codes and the summary."""
from __future__ import annotations

import json
import sys


def entry(kind: str, argv: list[str] | None = None) -> None:
    """CONFIG.yaml [--key value ...]: exit 2 on bad input (before any model loads), 1 on a failed run."""
    from mathforge.trainers.run import prepare, train

    from mathforge.errors import InputError

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--config"]:
        argv = argv[1:]
    if not argv:
        sys.stderr.write(f"usage: mathforge train {kind} CONFIG.yaml [--key value ...]\n")
        raise SystemExit(2)
    try:
        plan = prepare(kind, argv[0], argv[1:])
    except InputError as exc:
        sys.stderr.write(f"error: {exc.render()}\n")
        raise SystemExit(2) from None
    summary = train(plan)
    print_summary(summary)


def print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"train {summary['kind']}: {summary['dataset']} ({summary['dataset_config']}, "
                        f"v{summary['dataset_version']})")
    for column in ("steps", "tokens seen", "tokens/s", "first loss", "final loss", "packing", "packing efficiency"):
        table.add_column(column, justify="right")
    efficiency = summary["packing_efficiency"]
    table.add_row(str(summary["steps"]), f"{summary['tokens_seen']:,}", str(summary["tokens_per_second"]),
                  _fmt(summary["first_loss"]), _fmt(summary["final_loss"]), summary["packing"],
                  f"{efficiency:.2%}" if efficiency is not None else "—")
    Console(width=max(Console().width, 120)).print(table)
    for note in summary["notes"]:
        print(note)
    print("summary: " + json.dumps(summary))


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "—"
