"""The `mathforge` command line: validate, build, collect, grade."""
from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from mathforge.errors import InputError
from mathforge.builders.publish.overwrite import check_replace
from mathforge.outputs import check_place

app = typer.Typer(help="Build versioned problem-solving corpora for math language models.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
console = Console(stderr=True)
out_console = Console(width=max(Console().width, 120))  # tables stay readable when stdout is not a terminal
MULTI_VALUE_OPTIONS = ("--samples",)
SET_HELP = "Override a recipe value: dotted.path=YAML value (e.g. stages.0.k=4); repeatable."


def _version(value: bool) -> None:
    if value:
        from mathforge import __version__

        print(f"mathforge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Build versioned problem-solving corpora for math language models."""


def _fail(exc: BaseException) -> None:
    if isinstance(exc, InputError):
        sys.stderr.write(f"error: {exc.render()}\n")  # unwrapped, so file:line: key stays on one line
        raise typer.Exit(2)
    sys.stderr.write(f"failed: {type(exc).__name__}: {exc}\n")
    if os.environ.get("MATHFORGE_DEBUG"):
        console.print_exception()
    raise typer.Exit(1)


def _check_out(path: Path, file: str | None = None, line: int | None = None, key: str | None = None) -> None:
    """An output directory that cannot be made (it, or a folder above it, is a file) is an InputError naming where
    it was set: raised before anything is written."""
    for part in (path, *path.parents):
        if part.is_dir():
            return
        if part.exists() or part.is_symlink():
            raise InputError(f"cannot create the output directory: {part} is a file, not a directory",
                             file or str(path), line, key)


def _check_gold(gold: Path) -> None:
    if gold.is_dir():
        raise InputError("is a directory: --gold takes a JSONL or Parquet file of gold problems (model directories "
                         "go to --samples)", str(gold), key="--gold")


def _check_samples(paths: List[str]) -> None:
    """Every --samples input is recognisable and no table is empty. An empty samples table is an error, not a
    warning: it is almost always a generation run that wrote nothing, and a corpus built without it would look
    complete (remove it from --samples to collect without it)."""
    from mathforge.builders.samples import discover
    from mathforge.tables import is_empty

    for path in paths:
        source = discover(path)
        if source.is_table and is_empty(source.path):
            raise InputError("the samples table has no rows (a run that wrote nothing? drop it from --samples to "
                             "collect without it)", source.path, key="--samples")


def _summary(stats: dict, out_dir: Path, seconds: float) -> None:
    table = Table(title=f"corpus written to {out_dir}")
    for column in ("problems", "samples", "correct", "distinct", "rejected", "samples/s"):
        table.add_column(column, justify="right")
    rejected = ", ".join(f"{k} {v}" for k, v in stats["rejected"].items())
    table.add_row(str(stats["problems"]), str(stats["samples"]), str(stats["correct"]), str(stats["distinct"]),
                  rejected or "0", f"{stats['samples'] / max(seconds, 1e-9):,.0f}")
    out_console.print(table)
    models = Table(title="models in the union")
    for column in ("model", "samples", "correct", "kept", "only solver"):
        models.add_column(column, justify="right")
    for name, row in stats["models"].items():
        models.add_row(name, str(row["samples"]), str(row["correct"]), str(row["kept"]), str(row["only_solver"]))
    out_console.print(models)
    if stats["gold_audit"]["count"]:
        console.print(f"gold audit: {stats['gold_audit']['count']} problems where most samples disagree with the gold")


@app.command()
def validate(recipe: Path = typer.Argument(..., help="Recipe YAML file."),
             set_: List[str] = typer.Option([], "--set", help=SET_HELP)) -> None:
    """Check a recipe against the schema; errors name the file, line and key."""
    from mathforge.builders.recipe import load_recipe

    try:
        parsed = load_recipe(recipe, set_)
        if parsed.output.overwrite:  # what the build would replace: a mathforge output, or nothing
            check_replace(parsed.output_dir(), True, ("build", "collect"), *parsed.where("output", "dir"))
    except Exception as exc:
        _fail(exc)
    stages = ", ".join(stage.type for stage in parsed.stages)
    Console().print(f"{recipe}: ok — {parsed.name} {parsed.version}, {len(parsed.sources)} source(s), "
                    f"stages: {stages}, output: {parsed.output_dir()}")
    _gold_report(parsed)


def _gold_report(recipe) -> None:
    """How many gold answers of each source the shared grader reads (an unreadable one can never be matched)."""
    from mathforge.builders.sources import load_sources_split
    from mathforge.verify.grader import reference_answer

    try:
        parts = load_sources_split(recipe.sources)
    except InputError as exc:  # e.g. a Hub source while offline, or data not made yet: `build` fails on it
        console.print(f"[yellow]gold answers not checked: {exc.render()}[/yellow]")
        return
    for source, problems in zip(recipe.sources, parts):
        read = sum(reference_answer(p.solution, source.answer_kind) is not None for p in problems)
        name = source.name or source.path or source.hub or "synthetic"
        style = "" if read == len(problems) else "[yellow]"
        Console().print(f"{style}  {name}: {read} of {len(problems)} gold answers parse "
                        f"(answer_kind {source.answer_kind})")


@app.command()
def build(recipe: Path = typer.Argument(..., help="Recipe YAML file."),
          out: Optional[Path] = typer.Option(None, help="Output directory (default: the recipe's output.dir)."),
          overwrite: Optional[bool] = typer.Option(None, "--overwrite/--no-overwrite", help="Replace an existing output."),
          workers: Optional[int] = typer.Option(None, min=1, help="Worker processes (default: all cores)."),
          dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and exit."),
          set_: List[str] = typer.Option([], "--set", help=SET_HELP)) -> None:
    """Run a recipe: sources -> stages -> corpus."""
    from mathforge.builders.build import run_recipe
    from mathforge.builders.recipe import load_recipe

    try:
        parsed = load_recipe(recipe, set_)
        if dry_run:
            _plan(parsed, out)
            return
        if out is not None:
            _check_out(out, key="--out")
        else:
            _check_out(parsed.output_dir(), *parsed.where("output", "dir"))
        _check_out(parsed.work_dir(), *parsed.where("output", "work_dir"))
        result = run_recipe(parsed, out, overwrite, workers, console, out_key="--out")
    except Exception as exc:
        _fail(exc)
    if result.passes:
        _passes(result.passes)
    _summary(result.stats, result.out_dir, result.seconds)


def _plan(recipe, out: Optional[Path]) -> None:
    """The --dry-run plan: each step's own account (requests per sample stage, where everything goes)."""
    from mathforge.builders.sources import load_sources_split
    from mathforge.builders.stages import BuildState, steps_of

    state = BuildState(recipe, Path(out or recipe.output_dir()))
    try:
        state.problems_by_source = load_sources_split(recipe.sources)
    except InputError as exc:  # e.g. a Hub source while offline: the plan is still worth printing
        console.print(f"[yellow]sources not loaded ({exc.render()}); N = number of problems[/yellow]")
    out_console.print(f"{recipe.name} {recipe.version}: {state.count} problems from {len(recipe.sources)} source(s)")
    for step in steps_of(recipe):
        for line in step.plan(state):
            out_console.print(line)


def _passes(passes: list) -> None:
    table = Table(title="sampling")
    for column in ("model", "problems", "requests", "ok", "failed", "retries", "cached", "1-text", "tokens",
                   "req/s", "tok/s"):
        table.add_column(column, justify="right")
    for p in passes:
        rate = (lambda n: f"{n / p.seconds:,.1f}") if p.seconds else (lambda n: "reused")
        table.add_row(p.label, str(p.problems), str(p.requests), str(p.ok), str(p.failed), str(p.retries),
                      str(p.cache_hits), str(p.single_text_problems), f"{p.completion_tokens:,}",
                      rate(p.requests), rate(p.completion_tokens))
    out_console.print(table)
    for p in passes:
        if p.failed:
            console.print(f"[yellow]{p.label}: {p.failed} permanent failures {dict(p.errors)} — listed in "
                          f"{p.samples_path.parent / 'failures.parquet'}[/yellow]", soft_wrap=True)


@app.command()
def collect(gold: Path = typer.Option(..., help="Gold JSONL/Parquet (GSM8K question/answer or ScRel query/response)."),
            samples: List[str] = typer.Option(..., help="Model directories (gsm8k-ScRel layout) or sample files "
                                              "(an empty sample file is an error, exit 2)."),
            out: Path = typer.Option(..., help="Output directory for Parquet shards and stats.json."),
            dedup: str = typer.Option("paper", help="paper (reference .v2.farest) or canonical."),
            gold_rows: bool = typer.Option(True, "--gold-rows/--no-gold-rows", help="Write gold solutions first."),
            source_name: Optional[str] = typer.Option(None, help="Source identity for problem ids (default: gold file stem)."),
            workers: Optional[int] = typer.Option(None, min=1, help="Tasks run at once (default: as many as tasks)."),
            tasks: Optional[int] = typer.Option(None, min=1, help="datatrove tasks (default: one per core)."),
            executor: str = typer.Option("local", help="datatrove executor: local, ray (127.0.0.1) or slurm."),
            partitions: Optional[int] = typer.Option(None, min=1, help="Problem ranges, one shard each "
                                                     "(default: one per 1,000 problems); fixed, so the output does "
                                                     "not depend on --tasks."),
            max_sample_chars: int = typer.Option(32_768, min=1, help="A longer sample text is rejected as "
                                                 "`too long` (counted in stats), not judged."),
            task_report: Optional[Path] = typer.Option(None, help="Write seconds, samples and peak RSS per "
                                                        "partition to this JSON file (not part of the output)."),
            overwrite: bool = typer.Option(False, help="Replace an existing output directory.")) -> None:
    """RFT collect for users who already have samples: verify, calculator-check, dedup, union."""
    from mathforge.builders.build import run_collect
    from mathforge.builders.recipe import Executor
    from mathforge.builders.sources import load_local

    try:
        if dedup not in ("paper", "canonical"):
            raise InputError("must be paper or canonical", key="--dedup")
        if executor not in ("local", "ray", "slurm"):
            raise InputError("must be local, ray or slurm", key="--executor")
        _check_gold(gold)
        _check_out(out, key="--out")
        check_place(out, [("--gold", gold), *(("--samples", path) for path in samples)], key="--out")
        _check_samples(samples)
        problems = load_local(gold, source_name)
        result = run_collect(problems, samples, out, dedup, gold_rows, workers, overwrite,
                             executor=Executor(type=executor), tasks=tasks, partitions=partitions,
                             max_sample_chars=max_sample_chars)
    except Exception as exc:
        _fail(exc)
    if executor == "slurm":
        console.print(f"submitted to Slurm: the last job writes {out}")
        return
    if task_report is not None:
        task_report.write_text(json.dumps({"seconds": round(result.seconds, 3), "partitions": result.tasks}, indent=1))
    _summary(result.stats, result.out_dir, result.seconds)


@app.command()
def synth(out: Path = typer.Option(..., help="Directory for gold.jsonl and model<i>/ sample directories."),
          problems: int = typer.Option(200, min=1, help="Synthetic GSM8K-style problems."),
          models: int = typer.Option(4, min=1, help="Pseudo-models (strong to weak)."),
          seeds: int = typer.Option(10, min=1, help="Samples per problem per model (one seed file each)."),
          seed: int = typer.Option(0, help="Random seed for the problems.")) -> None:
    """Write seeded synthetic problems and pseudo-samples (gsm8k-ScRel layout) for smoke tests."""
    from mathforge.testing import synthetic

    try:
        _check_out(out, key="--out")
        rows = synthetic.problems(problems, seed)
        out.mkdir(parents=True, exist_ok=True)
        synthetic.write_gold(rows, out / "gold.jsonl")
        for model in range(models):
            synthetic.write_model_dir(rows, out / f"model{model}", model, seeds)
    except Exception as exc:
        _fail(exc)
    Console().print(f"wrote {problems} problems and {models} x {seeds} samples each to {out}")


@app.command()
def push(build: Path = typer.Argument(..., help="A build directory (with manifest.json)."),
         repo: str = typer.Option(..., help="Hub dataset repo, org/name (created if missing)."),
         private: bool = typer.Option(False, "--private", help="Create the repo private.")) -> None:
    """Upload a build in one commit and tag it v<version> (same fingerprint: no-op; other content: refused)."""
    from mathforge.builders.publish.hub import push as push_build

    try:
        result = push_build(build, repo, private)
    except Exception as exc:
        _fail(_hub_error(exc))
    if result.unchanged:
        out_console.print(f"{repo}@{result.tag} already holds this build (fingerprint {result.fingerprint[:16]}): "
                          "nothing to do")
    else:
        out_console.print(f"pushed {build} to {repo}@{result.tag} (commit {result.commit[:12]}, "
                          f"fingerprint {result.fingerprint[:16]})")


@app.command()
def pull(ref: str = typer.Argument(..., help="org/name@v1.2.0 (or org/name for main), or a build directory."),
         out: Optional[Path] = typer.Option(None, help="Where to put it (default: the mathforge cache).")) -> None:
    """Download a version and check every file's sha256 against its manifest (a local build is checked in place)."""
    from mathforge.builders.publish.hub import resolve
    from mathforge.builders.publish.manifest import read_manifest

    try:
        path = resolve(ref, out)
        manifest = read_manifest(path)
    except Exception as exc:
        _fail(_hub_error(exc))
    out_console.print(f"{ref}: {manifest['name']} {manifest['version']}, fingerprint {manifest['fingerprint'][:16]}, "
                      f"{len(manifest['files'])} files verified -> {path}")


@app.command()
def diff(a: str = typer.Argument(..., help="Build directory or org/name@version."),
         b: str = typer.Argument(..., help="Build directory or org/name@version."),
         as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables.")) -> None:
    """Problems added/removed, solutions added/removed per method and model, stats deltas."""
    import json as json_

    from mathforge.builders.publish.diff import diff_builds
    from mathforge.builders.publish.hub import resolve

    try:
        report = diff_builds(resolve(a), resolve(b))
    except Exception as exc:
        _fail(_hub_error(exc))
    if as_json:
        print(json_.dumps(report, indent=1))
        return
    out_console.print(f"A = {report['a']['name']} {report['a']['version']} ({report['a']['fingerprint'][:12]})   "
                      f"B = {report['b']['name']} {report['b']['version']} ({report['b']['fingerprint'][:12]})")
    out_console.print(f"problems: +{report['problems_added']} -{report['problems_removed']} "
                      f"({report['problems_common']} in both)")
    table = Table(title="solutions")
    for column in ("method", "model", "added", "removed"):
        table.add_column(column, justify="right")
    for row in report["solutions"]:
        table.add_row(row["method"], row["model"] or "—", f"+{row['added']}", f"-{row['removed']}")
    out_console.print(table)
    stats = Table(title="stats")
    for column in ("stat", "A", "B", "delta"):
        stats.add_column(column, justify="right")
    for key, row in report["stats"].items():
        stats.add_row(key, str(row["a"]), str(row["b"]), f"{row['delta']:+}")
    out_console.print(stats)


@app.command("list")
def list_builds(root: Path = typer.Option(Path("builds"), help="Where builds live (<name>/<version>/).")) -> None:
    """Local builds: name, version, fingerprint, rows, where they were pushed."""
    from mathforge.builders.publish.hub import local_builds

    table = Table(title=f"builds under {root}")
    for column in ("name", "version", "fingerprint", "rows", "pushed to", "path"):
        table.add_column(column)
    for row in local_builds(root):
        table.add_row(row["name"], row["version"], row["fingerprint"][:16], str(row["rows"]),
                      ", ".join(row["pushed"]) or "—", row["path"])
    out_console.print(table)


def _hub_error(exc: BaseException) -> BaseException:
    """Hub client errors, without request headers (tokens) and with a one-line reason."""
    from mathforge.errors import InputError as Bad

    name = type(exc).__name__
    if name in ("RepositoryNotFoundError", "RevisionNotFoundError", "EntryNotFoundError", "GatedRepoError"):
        return Bad(str(exc).splitlines()[0])
    return exc


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(ctx: typer.Context, kind: str = typer.Argument(..., help="cpt (continued pre-training) or sft."),
          config: Path = typer.Argument(..., help="TRL-format YAML (SFTConfig/ModelConfig/ScriptArguments keys) "
                                                  "+ mathforge keys (preset, mix_dataset, mix_ratio, ...)."))\
        -> None:
    """Train on a built corpus with TRL's SFTTrainer; extra `--key value` pairs override the YAML."""
    from mathforge.trainers.cli import entry

    if kind not in ("cpt", "sft"):
        _fail(InputError(f"unknown training kind {kind!r}: use cpt or sft"))
    entry(kind, [str(config), *ctx.args])


@app.command("eval")
def evaluate(model: str = typer.Argument(..., help="A model directory or Hub id (transformers, vllm) or a served name."),
             benchmark: List[str] = typer.Option(..., help="gsm8k, math, or a JSONL/Parquet with question/answer; "
                                                          "repeat for several (one report each under --out)."),
             split: str = typer.Option("test"), n: int = typer.Option(1, min=1, help="Samples per question."),
             temperature: float = typer.Option(0.0, min=0.0), max_tokens: int = typer.Option(512, min=1),
             backend: str = typer.Option("transformers", help="transformers (mathforge's batch server on the CPU), local (transformers serve), vllm, sglang, endpoint."),
             base_url: Optional[str] = typer.Option(None, help="endpoint backend: server URL without /v1."),
             api_key_env: Optional[str] = typer.Option(None, help="Name of the variable holding the API key."),
             limit: Optional[int] = typer.Option(None, min=1, help="Only the first N questions."),
             chat: bool = typer.Option(False, help="Chat form (default: the RFT Alpaca completion prompt)."),
             shots: int = typer.Option(0, min=0, help="Few-shot exemplars: GSM8K-style benchmarks the RFT 8-shot "
                                                      "(Wei et al.), math/latex Minerva's 4-shot; 0: zero-shot."),
             answer_kind: str = typer.Option("auto", help="How a file benchmark's gold answers are written: gsm8k "
                                                          "(`#### n`), latex or auto (gsm8k and math know theirs)."),
             python: Optional[str] = typer.Option(None, help="vllm/sglang: the interpreter that runs the server "
                                                             "(`make vllm`: .venv-vllm/bin/python)."),
             server_arg: List[str] = typer.Option([], help="vllm/sglang: an engine flag KEY=VALUE, repeatable "
                                                           "(e.g. gpu-memory-utilization=0.15; true/false: a switch)."),
             out: Path = typer.Option(Path("evals/latest"), help="Report directory.")) -> None:
    """Accuracy (maj1@1), maj1@k, unbiased pass@k (± standard errors) and distinct reasoning paths, graded by
    mathforge's shared grader; every graded sample in samples.jsonl."""
    from mathforge.eval.run import evaluate_benchmarks

    if backend not in ("transformers", "local", "vllm", "sglang", "endpoint"):
        _fail(InputError(f"unknown backend {backend!r}", key="--backend"))
    try:
        _check_out(out, key="--out")
        reports = evaluate_benchmarks(model, benchmark, out, split=split, n=n, temperature=temperature,
                                      backend=backend, base_url=base_url, api_key_env=api_key_env, limit=limit,
                                      max_tokens=max_tokens, chat=chat, shots=shots, answer_kind=answer_kind,
                                      console=console, python=python, server_args=_server_args(server_arg))
    except Exception as exc:
        _fail(_hub_error(exc))
    for name, report in reports.items():
        _eval_table(report, out / name if len(reports) > 1 else out)
    if len(reports) > 1:
        _eval_summary(reports, out)


def _server_args(items: list[str]) -> dict:
    """`--server-arg KEY=VALUE`s as a recipe's server_args (`true` / `false`: a switch on or off)."""
    args = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"{item!r} is not KEY=VALUE", key="--server-arg")
        args[key] = {"true": True, "false": False}.get(value.lower(), value)
    return args


def _eval_table(report: dict, where: Path) -> None:
    """One benchmark: maj1@k and pass@k for each k, then the accuracy, each ± 1 standard error."""
    from mathforge.eval.run import pm

    table = Table(title=f"{report['model']} on {report['benchmark']} ({report['questions']} questions, "
                        f"n={report['n']}, T={report['temperature']:g}, {report['shots']}-shot; ± 1 standard error)")
    for column in ("k", "maj1@k", "pass@k"):
        table.add_column(column, justify="right")
    for k in report["pass_at_k"]:
        table.add_row(k, pm(report["maj_at_k"][k], report["maj_at_k_se"][k]),
                      pm(report["pass_at_k"][k], report["pass_at_k_se"][k]))
    out_console.print(table)
    out_console.print(f"accuracy (maj1@1) {pm(report['accuracy'], report['accuracy_se'])}; distinct paths "
                      f"per question {report['distinct_paths_mean']}; report: {where / 'report.md'}, samples: "
                      f"{where / 'samples.jsonl'}", soft_wrap=True)
    if report.get("failed_requests"):
        console.print(f"[yellow]{report['failed_requests']} of {report['requests']} requests were refused by the "
                      f"server (counted as misses; verdict `failed` with the reason in samples.jsonl)[/yellow]",
                      soft_wrap=True)


def _eval_summary(reports: dict, out: Path) -> None:
    """Several benchmarks: one row each (accuracy, maj1@n, pass@n ± 1 standard error)."""
    from mathforge.eval.run import pm, summary_rows

    table = Table(title=f"{len(reports)} benchmarks (± 1 standard error); summary: {out / 'report.md'}")
    for column in ("benchmark", "questions", "accuracy", "maj1@n", "pass@n", "distinct paths"):
        table.add_column(column, justify="left" if column == "benchmark" else "right")
    for row in summary_rows(reports):
        table.add_row(row["name"], str(row["questions"]), pm(row["accuracy"], row["accuracy_se"]),
                      pm(row["maj_at_n"], row["maj_at_n_se"]), pm(row["pass_at_n"], row["pass_at_n_se"]),
                      str(row["distinct_paths_mean"]))
    out_console.print(table)


@app.command()
def quickstart(out: Path = typer.Option(Path("build/quickstart"), help="Directory for everything the run makes."),
               quick: bool = typer.Option(False, "--quick", help="The shortened CI form (tiny sizes; ~1 minute)."),
               seed: int = typer.Option(0, help="Seed of problems, initial weights, training order and sampling."),
               steps: Optional[int] = typer.Option(None, min=1, help="Training steps of each model."),
               rft_steps: Optional[int] = typer.Option(None, min=1, help="Steps of the RFT model (default: --steps)."),
               k: Optional[int] = typer.Option(None, min=1, help="RFT samples per training problem."),
               gold_order: Optional[str] = typer.Option(None, help="random (default) or first: the gold solution's "
                                                         "step order; `first` leaves the other orders to RFT."),
               train_problems: Optional[int] = typer.Option(None, min=10),
               heldout: Optional[int] = typer.Option(None, min=10),
               backend: str = typer.Option("batched", help="The RFT sampling's backend: batched or vllm."),
               python: Optional[str] = typer.Option(None, help="--backend vllm: the interpreter that runs vLLM "
                                                               "(`make vllm`: .venv-vllm/bin/python)."),
               overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out directory.")) -> None:
    """Offline on a CPU: train a tiny SFT model, build an RFT corpus from its samples, train on gold + RFT, compare."""
    from mathforge.quickstart import Settings
    from mathforge.quickstart import run as run_quickstart

    changes = {key: value for key, value in dict(seed=seed, steps=steps, rft_steps=rft_steps, k=k, gold_order=gold_order, train_problems=train_problems,
                                                  heldout=heldout, backend=backend, python=python).items() if value is not None}
    if backend not in ("batched", "vllm"):
        _fail(InputError(f"the RFT sampling backend is batched or vllm, not {backend!r}", key="--backend"))
    if python is not None and backend != "vllm":
        _fail(InputError("--python names vLLM's interpreter: only with --backend vllm", key="--python"))
    if gold_order not in (None, "random", "first"):
        _fail(InputError(f"the gold step order is random or first, not {gold_order!r}", key="--gold-order"))
    settings = Settings.quick(**changes) if quick else Settings(**changes)
    try:
        _check_out(out, key="--out")
        summary = run_quickstart(out, settings, overwrite, console)
    except Exception as exc:
        _fail(exc)
    _quickstart_table(summary)


def _quickstart_table(summary: dict) -> None:
    s = summary["settings"]
    k = s["eval_samples"]
    table = Table(title=f"held-out: {summary['models'][0]['questions']} problems, greedy accuracy ± 1 standard error; "
                        f"{k} samples at T={s['temperature']:g}")
    for column in ("model", "training rows", "steps", "accuracy", f"pass@{k}", f"maj1@{k}", "distinct correct paths"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in summary["models"]:
        table.add_row(row["model"], f"{row['training_rows']:,}", str(row["steps"]), f"{row['accuracy']:.1%} ± {row['se']:.1%}",
                      f"{row['pass_at_k']:.1%}", f"{row['maj_at_k']:.1%}", f"{row['distinct_paths']:.2f}")
    out_console.print(table)
    c = summary["rft_corpus_stats"]
    out_console.print(f"RFT corpus {summary['corpus']}: {c['samples']:,} samples, {c['correct']:,} correct, "
                      f"{c['distinct']:,} distinct reasoning paths kept beside {c['gold_rows']:,} gold rows "
                      "(card: README.md, plots: plots/)")
    out_console.print(f"whole run {summary['seconds']:.0f} s; " +
                      ", ".join(f"{name} {sec:.0f} s" for name, sec in summary["timings"].items()))


@app.command("tiny-model")
def tiny_model(out: Path = typer.Argument(..., help="Directory for the model and tokenizer."),
               hidden: int = typer.Option(64, min=8), layers: int = typer.Option(2, min=1),
               heads: int = typer.Option(2, min=1, help="Attention heads; head size hidden/heads (default 32: vLLM's "
                                                        "CPU build serves 32, 64, 80, 96, 112, 128, ..., not 16)."),
               seed: int = typer.Option(0)) -> None:
    """Build a tiny Llama + BPE tokenizer (trained on synthetic problems) for offline smoke tests."""
    from mathforge.testing.tinymodel import build_tiny_model

    if hidden % heads:
        _fail(InputError(f"--hidden {hidden} is not a multiple of --heads {heads}", key="--heads"))
    try:
        _check_out(out, key="OUT")
        path = build_tiny_model(out, hidden=hidden, layers=layers, heads=heads, seed=seed)
    except Exception as exc:
        _fail(exc)
    Console().print(f"tiny model written to {path}: {(path / 'mathforge-tiny.json').read_text()}")


@app.command()
def grade(pairs: Path = typer.Argument(..., help="JSONL rows with `gold` and `pred` (an answer or a solution)."),
          out: Path = typer.Option(..., help="Output JSONL: the rows with `verdict` (and `pred_answer`) added."),
          mode: str = typer.Option("auto", help="gsm8k, math or auto."),
          workers: Optional[int] = typer.Option(None, min=1, help="Worker processes (default: all cores).")) -> None:
    """Grade predictions against gold answers on all cores."""
    from mathforge.verify.pairs import grade_file

    try:
        if mode not in ("gsm8k", "math", "auto"):
            raise InputError("must be gsm8k, math or auto", key="--mode")
        if out.is_dir():
            raise InputError("is a directory: --out takes the output JSONL file", str(out), key="--out")
        _check_out(out.parent, key="--out")
        paths = Counter()
        counts = grade_file(pairs, out, mode, workers, paths)
    except Exception as exc:
        _fail(exc)
    Console().print(f"graded {sum(counts.values())} rows -> {out}: " +
                    ", ".join(f"{k} {n}" for k, n in sorted(counts.items())))
    if paths:
        Console().print("comparisons by path: " + ", ".join(f"{k} {n}" for k, n in sorted(paths.items())))


def expand_multi_values(argv: list[str]) -> list[str]:
    """Let `--samples A B C` mean `--samples A --samples B --samples C` (click takes one value per flag)."""
    out, current = [], None
    for arg in argv:
        if arg in MULTI_VALUE_OPTIONS:
            current = arg
            continue
        if current and not arg.startswith("-"):
            out.extend([current, arg])
            continue
        current = None
        out.append(arg)
    return out


def main() -> None:
    """Console-script entry point."""
    sys.argv[1:] = expand_multi_values(sys.argv[1:])
    app()
