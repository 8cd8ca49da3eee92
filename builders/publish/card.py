"""The dataset card: Hub YAML metadata with the configs, lineage, statistics tables and PNG plots."""
from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path

from huggingface_hub import DatasetCardData
from mathforge.builders.hub_vocabulary import TASK_CATEGORIES, size_category

CONFIGS = {"default": "data", "cpt": "cpt", "sft": "sft", "messages": "messages", "mix": "mix"}
PLOTS = {"distinct_paths": "Distinct reasoning paths per problem", "pass_at_k": "pass@k against k",
         "pass_rate": "Problems by pass rate"}


def card_data(recipe, rows: dict[str, int]) -> DatasetCardData:
    """The card's YAML metadata as huggingface_hub's DatasetCardData: license, size and task categories from the
    Hub's vocabularies, and one `configs` entry per config (default: the corpus with provenance)."""
    publish = recipe.publish
    names = [name for name in CONFIGS if name in rows] + sorted(n for n in rows if n.startswith("mix-"))
    configs = [{"config_name": name, "data_files": [{"split": "train", "path": f"{CONFIGS.get(name, name)}/*.parquet"}],
                **({"default": True} if name == "default" else {})} for name in names]
    return DatasetCardData(license=publish.license, pretty_name=publish.pretty_name or recipe.name, language=["en"],
                           task_categories=list(TASK_CATEGORIES), size_categories=[size_category(rows["default"])],
                           tags=sorted({"math", "mathforge", "synthetic", *publish.tags}), configs=configs)


CITATIONS = {
    "rft": ("Rejection-sampling fine-tuning and equation-level dedup", """@article{yuan2023scaling,
  title   = {Scaling Relationship on Learning Mathematical Reasoning with Large Language Models},
  author  = {Yuan, Zheng and Yuan, Hongyi and Li, Chengpeng and Dong, Guanting and Lu, Keming and Tan, Chuanqi and
             Zhou, Chang and Zhou, Jingren},
  journal = {arXiv preprint arXiv:2308.01825},
  year    = {2023}
}"""),
    "synthesis": ("Tutorship amplification, response diversification, query expansion, retrospective enhancement, "
                  "problem-solving data in continued pre-training", """@inproceedings{chen2025advancing,
  title     = {Advancing Mathematical Reasoning in Language Models: The Impact of Problem-Solving Data, Data
               Synthesis Methods, and Training Stages},
  author    = {Chen, Zui and Liu, Tianqiao and Tian, Mi and Tong, Qing and Luo, Weiqi and Liu, Zitao},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2025},
  note      = {arXiv:2501.14002}
}"""),
}
SYNTHESIS_STAGES = {"tutor", "diversify", "expand", "retrospect", "mix"}


def citations(recipe) -> list[tuple[str, str]]:
    """(what, BibTeX) for each paper whose method the recipe uses."""
    types = {stage.type for stage in recipe.stages}
    used = ["rft"] if types & {"sample", "collect"} else []
    return [CITATIONS[key] for key in used + (["synthesis"] if types & SYNTHESIS_STAGES else [])]


def homepage() -> str | None:
    """The project's homepage from its installed metadata (pyproject's [project.urls]), when it declares one."""
    from importlib.metadata import PackageNotFoundError, metadata

    try:
        meta = metadata("mathforge")
    except PackageNotFoundError:
        return None
    for entry in meta.get_all("Project-URL") or []:
        label, _, url = entry.partition(",")
        if label.strip().lower() in ("homepage", "repository", "source"):
            return url.strip()
    return meta.get("Home-page") or None


def write_plots(root: Path, stats: dict) -> list[str]:
    """Three PNGs under plots/, deterministic bytes (no timestamps, fixed size and DPI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (root / "plots").mkdir(exist_ok=True)
    written = []
    distinct = {int(k): v for k, v in stats.get("distinct_per_problem", {}).items()}
    pass_at = {int(k): v for k, v in stats.get("pass_at_k", {}).items()}
    rates = stats.get("pass_rate_histogram", {})
    panels = {
        "distinct_paths": (list(distinct), list(distinct.values()), "bar", "distinct correct paths kept",
                           "problems"),
        "pass_at_k": (list(pass_at), list(pass_at.values()), "line", "k (samples, in order)", "pass@k"),
        "pass_rate": (list(rates), list(rates.values()), "bar", "fraction of samples correct", "problems"),
    }
    for name, (xs, ys, kind, xlabel, ylabel) in panels.items():
        fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
        if kind == "bar":
            ax.bar([str(x) for x in xs], ys, color="#4C72B0")
            if len(xs) > 12 or name == "pass_rate":
                ax.tick_params(axis="x", labelrotation=45 if name == "pass_rate" else 90, labelsize=7)
        else:
            ax.plot(xs, ys, marker="o", color="#4C72B0")
            if xs and max(xs) > 8:
                ax.set_xscale("log", base=2)
            ax.set_ylim(0, 1)
        ax.set_title(PLOTS[name])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        fig.tight_layout()
        fig.savefig(root / "plots" / f"{name}.png", metadata={"Software": None})
        plt.close(fig)
        written.append(f"plots/{name}.png")
    return written


def counted_spread(counts: Counter) -> dict:
    """mean (one decimal), median, p90 (the value at rank int(0.9 * (n - 1)) in sorted order) and max of values
    given as value -> how often: the same figures as over the expanded list, without building it."""
    n, values = sum(counts.values()), sorted(counts)

    def at(rank: int) -> int:
        for value in values:
            rank -= counts[value]
            if rank < 0:
                return value
        raise IndexError(rank)

    median = at(n // 2) if n % 2 else (at(n // 2 - 1) + at(n // 2)) / 2
    return {"n": n, "mean": round(statistics.fmean(values, weights=[counts[v] for v in values]), 1),
            "median": median, "p90": at(int(0.9 * (n - 1))), "max": values[-1]}


class RowCounts:
    """What the card says about the rows, gathered one chunk of the corpus at a time: rows per (method, model)
    and solution lengths in words per method (as counts of each length)."""

    def __init__(self) -> None:
        self.by_model: Counter = Counter()
        self.words: dict[str, Counter] = {}

    def add(self, columns: dict[str, list]) -> None:
        for method, model, solution in zip(columns["method"], columns["model"], columns["solution"]):
            self.by_model[(method, model or "—")] += 1
            self.words.setdefault(method, Counter())[len(solution.split())] += 1

    def length_stats(self) -> dict[str, dict]:
        out = {}
        for method, counts in sorted(self.words.items()):
            s = counted_spread(counts)
            out[method] = {"rows": s["n"], "mean_words": s["mean"], "median_words": s["median"],
                           "p90_words": s["p90"], "max_words": s["max"]}
        return out


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_card(recipe, recipe_yaml: str, stats: dict, counts: RowCounts, rows: dict[str, int],
                lineage: dict, fingerprint: str, verifier: str, repo_id: str | None = None) -> str:
    """README.md of a build; `repo_id` (known at push time) replaces the `<org>/<name>` placeholder."""
    repo = repo_id or f"<org>/{recipe.name}"
    meta = card_data(recipe, rows).to_yaml() + "\n"
    tag = f"v{recipe.version}"
    samples, correct = stats["samples"], stats["correct"]
    distinct_problems = sum(v for k, v in stats.get("distinct_per_problem", {}).items() if k != "0")
    by_model = counts.by_model
    parts = [
        f"---\n{meta}---\n",
        f"# {recipe.publish.pretty_name or recipe.name} {tag}\n",
        (recipe.description or "A problem-solving corpus built with mathforge.") + "\n",
        "```python\nfrom datasets import load_dataset\n\n"
        f'ds = load_dataset("{repo}", "sft", revision="{tag}", split="train")  '
        "# or: default, cpt, messages\n```\n",
        f"Fingerprint `{fingerprint}` · verifier `{verifier}` · every file's sha256 is in `manifest.json` "
        f"(`mathforge pull {repo}@{tag}` checks them).\n",
        "## Configs\n",
        _table(["config", "rows", "columns"], [
            ["default", rows["default"], "all columns with provenance (problem_id, method, model, seed, …)"],
            ["cpt", rows["cpt"], "`text` for continued pre-training"],
            ["sft", rows["sft"], "`prompt` / `completion`"],
            ["messages", rows["messages"], "`messages` (chat form)"],
            *[[name, rows[name], f"`text`, `group`: CPT mix by token ratio (see stats.json `{name}`)"]
              for name in sorted(rows) if name == "mix" or name.startswith("mix-")]]) + "\n",
        "## How it was built\n",
        _stages_text(recipe) + "\n",
        "## Lineage\n",
        _table(["source", "where", "revision", "problems", "content sha256"],
               [[s["name"], s["where"], s.get("revision") or "—", s["problems"], s["sha256"][:16]]
                for s in lineage["sources"]]) + "\n",
    ]
    if lineage.get("models"):
        parts.append(_table(["model", "backend", "model id", "revision", "samples", "samples sha256"],
                            [[m["name"], m["backend"], m["model_id"], m.get("revision") or "—", m["samples"],
                              m["sha256"][:16]] for m in lineage["models"]]) + "\n")
    if lineage.get("sample_inputs"):
        parts.append(_table(["sample input", "sha256"], [[i["path"], i["sha256"][:16]]
                                                         for i in lineage["sample_inputs"]]) + "\n")
    rate = f"{correct / samples:.1%}" if samples else "—"
    parts += [
        "## Statistics\n",
        _table(["problems", "samples", "correct", "pass rate", "distinct RFT paths", "problems with >= 1 path",
                "mean paths / problem"],
               [[stats["problems"], samples, correct, rate, stats["distinct"], distinct_problems,
                 f"{stats['distinct'] / max(stats['problems'], 1):.2f}"]]) + "\n",
        "Rejected samples by reason: " + (", ".join(f"{k} {v}" for k, v in stats["rejected"].items()) or "none")
        + ".\n",
        *_grounding_lines(stats.get("grounding"), stats.get("distinct", 0)),
        *_decontamination_lines(stats.get("decontamination")),
        "### Per model\n",
        _table(["model", "samples", "correct", "kept", "only solver"],
               [[name, m["samples"], m["correct"], m["kept"], m["only_solver"]]
                for name, m in stats["models"].items()] or [["—", 0, 0, 0, 0]]) + "\n",
        "### Per method and model (rows)\n",
        _table(["method", "model", "rows"], [[k[0], k[1], v] for k, v in sorted(by_model.items())]) + "\n",
        "### Solution length (whitespace words)\n",
        _table(["method", "rows", "mean", "median", "p90", "max"],
               [[m, s["rows"], s["mean_words"], s["median_words"], s["p90_words"], s["max_words"]]
                for m, s in counts.length_stats().items()]) + "\n",
        *_reasoning_section(stats, recipe.publish.reasoning),
        *_tutor_section(stats.get("tutor")),
        *_synthesis_section(stats),
        "### Plots\n",
        "\n".join(f"![{title}](plots/{name}.png)" for name, title in PLOTS.items()) + "\n",
        "## Recipe\n",
        f"```yaml\n{recipe_yaml}```\n",
        *_uses_and_limitations(recipe),
        *_citation_section(recipe),
    ]
    return "\n".join(parts)


def _grounding_lines(grounding: dict | None, kept: int) -> list[str]:
    """Kept RFT paths whose checked equations use a number neither in the question nor computed before them."""
    if not grounding:
        return []
    return [f"Numbers from nowhere: {grounding['kept_with_ungrounded']} of {kept} kept RFT paths use "
            f"{grounding['ungrounded_operands']} operand(s) that are neither in the question, nor computed earlier, "
            f"nor a small constant (the `ungrounded` column); {grounding['rejected']} sample(s) rejected for it "
            "(collect `grounded: true`).\n"]


def _uses_and_limitations(recipe) -> list[str]:
    """The Hub dataset-card template's uses and limitations, as they hold for every mathforge build."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("mathforge")
    except PackageNotFoundError:
        release = "(not installed)"
    link = homepage()
    built = f"[mathforge]({link}) {release}" if link else f"mathforge {release}"
    return [
        "## Uses\n",
        "Continued pre-training (`cpt`), supervised fine-tuning (`sft`, `messages`) and analysis (`default`, with "
        "every row's provenance) of math problem-solving models. Every generated row was checked by the verifier "
        "named above against the source's gold answer; rows it could not check are not in the corpus, and the "
        "reasons for every rejection are counted in the statistics.\n",
        "## Limitations\n",
        "- Correct final answers and calculator-checked equations do not prove every step of a solution right: a "
        "path can reach the gold answer through a flawed argument.\n"
        "- Gold answers are the sources' own; the gold audit above lists problems whose samples mostly disagree "
        "with them.\n"
        "- Decontamination is word n-gram overlap with the declared evaluation sets only (see the recipe); "
        "benchmarks not declared there were not checked.\n"
        "- The problems' language, topics and difficulty are those of the sources in the lineage table.\n",
        f"Built with {built}.\n",
    ]


def _citation_section(recipe) -> list[str]:
    cited = citations(recipe)
    if not cited:
        return []
    out = ["## Citation\n", "This corpus implements methods from these papers; please cite them:\n"]
    for what, bibtex in cited:
        out += [f"{what}:\n", f"```bibtex\n{bibtex}\n```\n"]
    return out


def _reasoning_section(stats: dict, mode: str) -> list[str]:
    """Reasoning traces: how many samples had one, their length, and whether the training configs show them."""
    traces = stats.get("reasoning")
    if not traces:
        return []
    shown = ("before each solution in `<think>` tags" if mode == "think" else
             "not in the training configs (`publish.reasoning: think` puts them there)")
    return [
        "### Reasoning traces\n",
        f"{traces['samples']} of {stats['samples']} samples came with a reasoning trace, kept apart from the "
        f"solution in the `reasoning` column; cpt / sft / messages: {shown}.\n",
        _table(["length", "mean", "median", "p90"],
               [[unit, traces[key]["mean"], traces[key]["median"], traces[key]["p90"]]
                for unit, key in (("characters", "chars"), ("whitespace tokens", "tokens"))]) + "\n",
    ]


def _tutor_section(tutor: dict | None) -> list[str]:
    """Tutorship: teacher-vs-verifier agreement, fixes accepted, faulty steps, by difficulty."""
    if not tutor:
        return []
    agreement = tutor["teacher_verifier_agreement"]
    return [
        "### Tutorship\n",
        _table(["attempts reviewed", "replies parsed", "verdict correct", "verdict wrong",
                "teacher agrees with verifier", "fixes proposed", "fixes accepted"],
               [[tutor["attempts"], tutor["judged"], tutor["verdict_correct"], tutor["verdict_wrong"],
                 f"{agreement:.1%}" if agreement is not None else "—", tutor["fixes_proposed"],
                 tutor["fixes_accepted"]]]) + "\n",
        "Outcomes: " + ", ".join(f"{k} {v}" for k, v in tutor["statuses"].items()) + ".\n",
        "First faulty step (teacher's verdict wrong): " + (", ".join(f"step {k}: {v}" for k, v in
                                                                     tutor["faulty_step"].items()) or "none") + ".\n",
        _table(["difficulty (student pass rate)", "attempts", "judged", "agreement", "fixes proposed",
                "fixes accepted"],
               [[name, d["attempts"], d["judged"], f"{d['agreement']:.1%}" if d["agreement"] is not None else "—",
                 d["fixes_proposed"], d["fixes_accepted"]] for name, d in tutor["by_difficulty"].items()]) + "\n",
    ]


def _synthesis_section(stats: dict) -> list[str]:
    rows = [[m, stats[m]["seed_problems"], stats[m]["requests"], stats[m]["accepted"],
             ", ".join(f"{k} {v}" for k, v in stats[m]["outcomes"].items())]
            for m in ("diversify", "expand", "retrospect") if m in stats]
    out = []
    if rows:
        out += ["### Synthesis methods\n", _table(["method", "seed problems", "requests", "rows kept", "outcomes"],
                                                  rows) + "\n"]
    return out + [line for name in sorted(stats) if name == "mix" or name.startswith("mix-")
                  for line in _mix_section(stats[name], name)]


def _decontamination_lines(decontamination: dict | None) -> list[str]:
    """How many rows overlapped the declared evaluation sets, and where they went."""
    if not decontamination:
        return []
    fate = ("dropped" if decontamination["action"] == "drop" else
            "flagged (`contaminated: true`, kept in the default config, left out of cpt / sft / messages / mix)")
    return [(f"Decontamination ({decontamination['n']}-gram overlap with "
             f"{', '.join(decontamination['by_eval_set'])}): {decontamination['rows_flagged']} row(s) {fate}.\n")]


def _mix_section(mix: dict | None, name: str = "mix") -> list[str]:
    """The CPT mix: tokens per group, target and achieved ratios, repeats, contaminated documents dropped."""
    if not mix:
        return []
    groups = mix["groups"]
    notes = [f"group {g} repeated {r['repeats']}x, ratio achieved {r['achieved_ratio']:.3f} (target "
             f"{r['target_ratio']:.3f})" for g, r in groups.items() if r.get("repeats", 0) > 1]
    if mix.get("limited_by") and mix.get("token_budget"):
        notes.append(f"the mix is {mix['total_tokens']:,} tokens, short of the budget: group {mix['limited_by']} "
                     f"ran out after {mix.get('max_repeat', 1)} pass(es)")
    notes += [f"{n} document(s) of {g} dropped for overlap with the evaluation sets"
              for g, n in mix.get("decontaminated", {}).items() if n]
    return [f"### CPT mix{'' if name == 'mix' else ' `' + name + '`'}\n", (f"Tokens counted with `{mix['tokenizer']}`; a group short of its budget share is "
                               f"repeated up to {mix.get('max_repeat', 1)}x.\n"),
            _table(["group", "documents", "tokens", "repeats", "target ratio", "achieved ratio"],
                   [[g, r["documents"], r["tokens"], r.get("repeats", 1), r["target_ratio"], r["achieved_ratio"]]
                    for g, r in groups.items()]) + "\n",
            *([" · ".join(notes) + ".\n"] if notes else [])]


def _stages_text(recipe) -> str:
    lines = []
    for stage in recipe.stages:
        if stage.type == "sample":
            models = ", ".join(f"`{m.label}` ({m.backend})" for m in stage.models)
            lines.append(f"- **sample**: k={stage.k} per problem per model, temperature {stage.temperature:g}, "
                         f"top_p {stage.top_p:g}, max_tokens {stage.max_tokens}, seed {stage.seed}"
                         f"{', chat' if stage.prompt.chat else ''}; models: {models}.")
        elif stage.type == "tutor":
            lines.append(f"- **tutor**: teacher `{stage.teacher.label}` ({stage.teacher.backend}) reviews "
                         f"{stage.attempts} sample(s) per problem of student `{stage.student}` step by step; a wrong "
                         "verdict comes with the first faulty step and a corrected continuation; the student's steps "
                         "before it + the continuation are kept only if the final answer matches the gold"
                         f"{' and it uses no number from nowhere' if stage.grounded else ''} "
                         f"(corpus form: {stage.output}).")
        elif stage.type in ("diversify", "expand", "retrospect"):
            lines.append(f"- **{stage.type}**: model `{stage.model.label}`, {stage.k} request(s) per seed problem, "
                         f"temperature {stage.temperature:g}; replies parsed and verified"
                         f"{', rows using a number from nowhere rejected' if stage.grounded else ''} "
                         "(see Synthesis methods).")
        elif stage.type == "mix":
            budget = (f", budget {stage.token_budget:,}, groups repeated up to {stage.max_repeat}x"
                      if stage.token_budget else "")
            lines.append(f"- **mix**: {', '.join(f'{k} {v:g}' for k, v in stage.ratio.items())} by tokens "
                         f"(`{stage.tokenizer}`){budget}.")
        elif stage.type == "collect":
            grounded = "; samples using a number from nowhere rejected" if stage.grounded else ""
            checks = "annotations" if stage.dedup == "paper" else "annotations and LaTeX / plain-text equalities"
            lines.append(f"- **collect**: keep samples whose final answer matches the gold and whose calculator "
                         f"checks ({checks}) pass{grounded}; dedup per problem by equation list "
                         f"(`{stage.dedup}` mode, "
                         f"farthest rule); union across models; gold rows {'included' if stage.include_gold else 'not included'}.")
    return "\n".join(lines)
