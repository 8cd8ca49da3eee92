"""Recipe schema (pydantic) and YAML loading with errors that name the file, the key path and the line."""
from __future__ import annotations

import copy
import re
import signal
import string
from pathlib import Path
from typing import Annotated, Literal, Union

from mathforge.builders import prompts
from mathforge.builders.hub_vocabulary import license_problem
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from mathforge.errors import InputError, line_map, load_yaml
from mathforge.outputs import check_recipe

REASONING_MAX_TOKENS = 32_768  # max_tokens default of stages whose model is a reasoning one (long traces)
SEMVER_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
INT64_MAX = 2**63 - 1
INDEX_RE = re.compile(r"[0-9]{1,9}")  # a list index in an override path (str.isdigit also takes `²`)
Seed = Annotated[int, Field(ge=0, le=INT64_MAX)]  # seeds are stored as int64 (Parquet, JSON): 0 .. 2**63-1
PATH_FIELDS = ("name", "version")
NAME_MAX = 96  # characters of a name that becomes a file or directory name (and a Hub repository name's limit)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Columns(Strict):
    """Which columns hold the question and the gold solution (defaults: question/query/problem, answer/response/solution)."""

    question: str | None = None
    answer: str | None = None
    difficulty: str | None = None  # default: `difficulty` or `level` when the source has one (eval reports by it)


class Synthetic(Strict):
    """Seeded synthetic GSM8K-style problems (smoke tests, offline runs)."""

    problems: int = Field(ge=1)  # at most limits.problems
    seed: Seed = 0


class Source(Strict):
    """A problem source: a local JSONL/Parquet `path`, a Hub dataset `hub` (+ config, split, revision), or `synthetic`."""

    name: str | None = None
    path: str | None = None
    hub: str | None = None
    synthetic: Synthetic | None = None
    config: str | None = None
    split: str = "train"
    revision: str | None = None
    columns: Columns = Columns()
    answer_kind: Literal["gsm8k", "latex", "auto"] = "auto"  # how gold answers are written (grading mode)

    @model_validator(mode="after")
    def one_location(self) -> "Source":
        if sum(x is not None for x in (self.path, self.hub, self.synthetic)) != 1:
            raise ValueError("give exactly one of `path`, `hub` or `synthetic`")
        return self


# engine flags mathforge sets itself (server_args may not): the flag -> the recipe key that decides it
LAUNCH_FLAGS = {"model": "`model`", "model-path": "`model`", "host": "`host`", "port": "a free port",
                "trust-remote-code": "`trust_remote_code`", "revision": "`revision`"}


class ModelSpec(Strict):
    """One sampling model: where it runs (backend) and how it is reached."""

    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=NAME_MAX)
    backend: Literal["local", "batched", "endpoint", "vllm", "sglang", "scripted"]  # scripted: offline demos
    model: str
    revision: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    tp: int = Field(default=1, ge=1)
    dp: int = Field(default=1, ge=1)
    build_tiny: bool = False  # local/batched backends: build the tiny test model at `model` when it is missing
    reasoning: bool = False   # a reasoning model (R1-style, Qwen3 thinking): max_tokens defaults to 32768
    host: str | None = None           # vllm/sglang: the address the server binds (default 127.0.0.1)
    trust_remote_code: bool = False   # vllm/sglang: run code from the model repository (off unless set here)
    python: str | None = None         # vllm/sglang: the interpreter that runs the server (`make vllm`: .venv-vllm)
    server_args: dict[str, str | int | float | bool] = Field(default_factory=dict)  # vllm/sglang: engine flags

    @field_validator("server_args")
    @classmethod
    def engine_flags(cls, args: dict) -> dict:
        """`gpu_memory_utilization: 0.15` -> `--gpu-memory-utilization=0.15` (true: `--flag`, false: `--no-flag`);
        what mathforge sets from other keys is refused here."""
        flags = {}
        for key, value in args.items():
            flag = key.replace("_", "-")
            if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", flag):
                raise ValueError(f"server_args key {key!r} is not an engine flag name (letters, digits, - or _)")
            if flag in LAUNCH_FLAGS:
                raise ValueError(f"server_args {key!r}: mathforge sets it ({LAUNCH_FLAGS[flag]})")
            flags[flag] = value
        return flags

    @model_validator(mode="after")
    def reachable(self) -> "ModelSpec":
        if self.backend == "endpoint" and not self.base_url:
            raise ValueError("the endpoint backend needs `base_url`")
        if self.backend != "endpoint" and self.base_url:
            raise ValueError(f"`base_url` is for the endpoint backend, not {self.backend}")
        if self.backend not in ("vllm", "sglang") and (self.host is not None or self.trust_remote_code):
            raise ValueError(f"`host` and `trust_remote_code` are for the servers mathforge launches (vllm, sglang), "
                             f"not {self.backend}")
        if self.backend not in ("vllm", "sglang") and (self.python is not None or self.server_args):
            raise ValueError(f"`python` and `server_args` are for the servers mathforge launches (vllm, sglang), "
                             f"not {self.backend}")
        return self

    @property
    def label(self) -> str:
        return self.name or re.sub(r"[^A-Za-z0-9._-]+", "-", self.model.rstrip("/").split("/")[-1])[:NAME_MAX]


class Prompt(Strict):
    """Jinja template over the problem's fields; completion form (Alpaca, the RFT default) or chat form."""

    template: str | None = None
    chat: bool = False
    system: str | None = None


class Quota(Strict):
    """DART-style difficulty-aware sampling: keep sampling a problem until `correct` paths or `max_samples`."""

    correct: int = Field(ge=1)      # both at most limits.quota
    max_samples: int = Field(ge=1)


def reasoning_budget(stage, models: list[ModelSpec]) -> None:
    """A stage's max_tokens, when the recipe does not give it, sized for reasoning traces if any model reasons."""
    if "max_tokens" not in stage.model_fields_set and any(m.reasoning for m in models):
        stage.max_tokens = REASONING_MAX_TOKENS


class Requests(Strict):
    """How a stage's requests are sent: timeouts, retries, tolerated failures, readiness, checkpoints."""

    request_timeout: float = Field(default=600.0, gt=0)
    max_retries: int = Field(default=5, ge=0)
    retry_backoff: float = Field(default=1.0, ge=0)
    max_failure_rate: float = Field(default=0.0, ge=0, le=1)
    ready_timeout: float = Field(default=120.0, gt=0)
    checkpoint_every: int = Field(default=100, ge=1)

    def request_settings(self) -> dict:
        return {name: getattr(self, name) for name in Requests.model_fields}


class SampleStage(Requests):
    """Sample k reasoning paths per problem from each model (defaults: the RFT paper's k=100, T=0.7)."""

    type: Literal["sample"]
    models: list[ModelSpec] = Field(min_length=1)
    k: int = Field(default=100, ge=1)  # at most limits.k
    temperature: float = Field(default=0.7, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_tokens: int = Field(default=512, ge=1)  # 32768 when a model is a reasoning one (see reasoning_budget)
    seed: Seed = 0
    stop: list[str] = Field(default_factory=list)  # the paper stops at end-of-sequence only
    prompt: Prompt = Prompt()
    quota: Quota | None = None
    concurrency: int = Field(default=64, ge=1)  # at most limits.concurrency; requests in flight to one model's server
    # client processes sharing that server (local executor): None derives them from `concurrency` (runner.PER_PROCESS)
    client_processes: int | None = Field(default=None, ge=1, le=64)
    response_format: dict | None = None  # passed as is (e.g. a json_schema for structured output)

    @model_validator(mode="after")
    def distinct_labels(self) -> "SampleStage":
        labels = [m.label for m in self.models]
        if len(set(labels)) != len(labels):
            raise ValueError(f"two models share a name ({', '.join(labels)}): give each a distinct `name`")
        return self

    @model_validator(mode="after")
    def reasoning_max_tokens(self) -> "SampleStage":
        reasoning_budget(self, self.models)
        return self


class TutorStage(Requests):
    """Tutorship amplification: a teacher reviews a student's sampled solutions step by step and corrects them."""

    type: Literal["tutor"]
    student: str                       # the `name` of a model sampled by an earlier sample stage
    teacher: ModelSpec
    attempts: int = Field(default=1, ge=1)  # (at most limits.k) student samples reviewed per problem (lowest sample indices first)
    select: Literal["wrong", "any", "mixed"] = "wrong"  # which attempts: the verifier's wrong ones, any, or a mix
    wrong_ratio: float = Field(default=0.5, ge=0, le=1)  # `mixed`: share of attempts from wrong samples (rounded up)
    allow_false_critique: bool = False  # keep a `wrong` verdict on an attempt the verifier calls correct
    min_new_steps: int = Field(default=1, ge=0)  # real steps a fix needs besides its final-answer line
    reference: bool = False            # show the teacher the gold solution (template field `reference`)
    template: str | None = None        # Jinja over question, steps (numbered), n_steps (+ reference); default: JSON
    chat: bool = True
    structured: bool = True            # send a JSON schema as response_format (servers without it get the text)
    output: Literal["corrected", "exchange"] = "exchange"  # corpus text: corrected solution, or the exchange (CPT)
    grounded: bool = False             # reject a fix using a number from nowhere (`equations.ungrounded`)
    temperature: float = Field(default=0.0, ge=0)
    max_tokens: int = Field(default=1024, ge=1)  # 32768 when the teacher is a reasoning model
    seed: Seed = 0
    concurrency: int = Field(default=32, ge=1)

    @model_validator(mode="after")
    def reasoning_max_tokens(self) -> "TutorStage":
        reasoning_budget(self, [self.teacher])
        return self


class SynthesisStage(Requests):
    """Shared settings of the MathGPT sibling methods: one model, k requests per seed problem."""

    model: ModelSpec
    template: str | None = None   # Jinja over question, solution (the seed problem's gold solution)
    chat: bool = True
    k: int = Field(default=4, ge=1)
    temperature: float = Field(default=0.7, ge=0)
    max_tokens: int = Field(default=1024, ge=1)  # 32768 when the model is a reasoning one
    seed: Seed = 0
    concurrency: int = Field(default=32, ge=1)
    grounded: bool = False        # reject a row using a number from nowhere (`equations.ungrounded`)

    @model_validator(mode="after")
    def reasoning_max_tokens(self) -> "SynthesisStage":
        reasoning_budget(self, [self.model])
        return self


class DiversifyStage(SynthesisStage):
    """Response diversification: independent correct solutions per problem, kept when new and far enough."""

    type: Literal["diversify"]
    show_reference: bool = False  # default prompt shows the gold solution (a rewrite, not an independent solution)
    min_distance: float = Field(default=0.0, ge=0, le=1)  # normalized Levenshtein to every kept solution of the problem


class ExpandStage(SynthesisStage):
    """Query expansion: a new problem + solution per sample; kept only when `agree` of `solutions` answers agree."""

    type: Literal["expand"]
    solutions: int = Field(default=4, ge=1)
    agree: int = Field(default=3, ge=1)
    solver: ModelSpec | None = None  # solves the new problems (default: `model`)
    max_seed_similarity: float = Field(default=0.6, ge=0, le=1)  # character 5-gram Jaccard with the seed problem

    @model_validator(mode="after")
    def reachable_agreement(self) -> "ExpandStage":
        if self.agree > self.solutions:
            raise ValueError("`agree` cannot exceed `solutions`")
        return self

    @model_validator(mode="after")
    def solver_max_tokens(self) -> "ExpandStage":
        reasoning_budget(self, [self.solver or self.model])
        return self


class RetrospectStage(SynthesisStage):
    """Retrospective enhancement: a real (calculator-proven) error, a [back] to it, the fix, the gold answer."""

    type: Literal["retrospect"]


class MixGroup(Strict):
    """A general corpus for the mix: a JSONL/Parquet file, or a Hub dataset read streaming, with a text column."""

    name: str
    path: str | None = None
    hub: str | None = None     # streamed (datasets, streaming=True) only as far as the mix can use it
    config: str | None = None
    split: str = "train"
    revision: str | None = None
    column: str = "text"

    @model_validator(mode="after")
    def one_location(self) -> "MixGroup":
        if (self.path is None) == (self.hub is None):
            raise ValueError("give exactly one of `path` or `hub`")
        return self


class MixStage(Strict):
    """Combine methods' CPT texts and general corpora by token ratio and/or budget (the `mix` config)."""

    type: Literal["mix"]
    name: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_-]*$",
                             max_length=NAME_MAX)  # config `mix-<name>` (an arm); else `mix`
    tokenizer: str                      # counts tokens: a local path, a Hub tokenizer id, or `whitespace`
    ratio: dict[str, float]             # group -> weight; groups: methods (gold, rft, tutor, ...) and general names
    general: list[MixGroup] = Field(default_factory=list)
    token_budget: int | None = Field(default=None, ge=1)
    max_repeat: int = Field(default=4, ge=1)  # passes over a group short of its budget share (Muennighoff et al. 2023)
    seed: Seed = 0


class CollectStage(Strict):
    """Verify, calculator-check, dedup (paper or canonical) and pool samples from several models."""

    type: Literal["collect"]
    samples: list[str] = Field(default_factory=list)  # empty: the samples of the sample stage(s) before it
    dedup: Literal["paper", "canonical"] = "paper"
    include_gold: bool = True
    max_sample_chars: int = Field(default=32_768, ge=1)  # a longer sample text is rejected as `too long`
    grounded: bool = False  # reject a correct sample using a number from nowhere (`equations.ungrounded`)
    workers: int | None = Field(default=None, ge=1)     # tasks run at once (default: as many as tasks)
    tasks: int | None = Field(default=None, ge=1)       # datatrove tasks on the recipe's executor (default: cores)
    partitions: int | None = Field(default=None, ge=1)  # problem ranges, fixed: the output does not depend on tasks


Stage = Annotated[Union[SampleStage, TutorStage, DiversifyStage, ExpandStage, RetrospectStage, MixStage,
                        CollectStage], Field(discriminator="type")]
STAGE_TYPES = ("sample", "tutor", "diversify", "expand", "retrospect", "mix", "collect")


class Executor(Strict):
    """datatrove executor for sampling: local (default), slurm or ray; `options` go to its constructor."""

    type: Literal["local", "slurm", "ray"] = "local"
    tasks: int = Field(default=1, ge=1)
    workers: int = Field(default=1, ge=1)
    options: dict = Field(default_factory=dict)
    ray_init: dict | None = None  # merged into a local Ray on 127.0.0.1 without dashboard, unless it has `address`


class Templates(Strict):
    """Jinja templates over a corpus row (question, solution, final_answer, method, model, ...) for the configs."""

    prompt: str | None = None      # sft prompt; default: the RFT paper's Alpaca prompt
    completion: str | None = None  # sft completion; default: " {{ solution }}"
    text: str | None = None        # cpt text; default: question, blank line, solution
    system: str | None = None      # optional system message for the `messages` config


class EvalSet(Strict):
    """A benchmark whose questions must not leak into the corpus."""

    name: str
    path: str | None = None
    hub: str | None = None
    config: str | None = None
    split: str = "test"
    revision: str | None = None
    column: str | None = None  # the question column (default: question / query / problem)

    @model_validator(mode="after")
    def one_location(self) -> "EvalSet":
        if (self.path is None) == (self.hub is None):
            raise ValueError("give exactly one of `path` or `hub`")
        return self


class Decontaminate(Strict):
    """n-gram overlap (default 13 words) of corpus questions and solutions with these evaluation sets."""

    eval_sets: list[EvalSet] = Field(min_length=1)
    n: int = Field(default=13, ge=1)
    action: Literal["drop", "flag"] = "drop"


class Publish(Strict):
    """Dataset-card metadata and how rows become training text (configs default, cpt, sft, messages)."""

    license: str = "mit"          # a Hub license identifier (https://huggingface.co/docs/hub/repositories-licenses)
    pretty_name: str | None = None
    tags: list[str] = Field(default_factory=list)
    methods: list[str] = Field(default_factory=lambda: ["gold", "rft", "tutor"])  # rows in cpt/sft/messages
    templates: Templates = Templates()
    reasoning: Literal["none", "think"] = "none"  # think: `<think>\n{reasoning}\n</think>\n\n` before the solution

    @field_validator("license")
    @classmethod
    def hub_license(cls, value: str) -> str:
        problem = license_problem(value)
        if problem:
            raise ValueError(problem)
        return value


def fill_path(template: str, **values: str) -> str:
    """A path template with its `{name}`/`{version}` fields filled in (`{{`/`}}`: literal braces).

    Only those bare fields: no positional field, attribute, index, conversion or format spec (str.format would
    let `{name.__class__.__mro__}` or `{name:>999999999}` through)."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"{template!r} is not a path template: {exc} (use `{{{{`/`}}}}` for a literal brace)") \
            from None
    out = []
    for literal, field, spec, conversion in parts:
        out.append(literal)
        if field is None:
            continue
        if field not in values or spec or conversion:
            shown = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ValueError(f"{shown} is not a path field: only {{name}} and {{version}} are filled in "
                             f"(no attribute, index, conversion or format spec)")
        out.append(values[field])
    return "".join(out)


class Output(Strict):
    """Where the corpus goes (`{name}` and `{version}` are filled in, nothing else) and how it is sharded."""

    dir: str = "builds/{name}/{version}"
    work_dir: str = "builds/{name}/.work/{version}"  # samples, request cache, checkpoints, logs
    shard_rows: int = Field(default=100_000, ge=1)
    overwrite: bool = False

    @field_validator("dir", "work_dir")
    @classmethod
    def path_template(cls, value: str) -> str:
        fill_path(value, **{name: name for name in PATH_FIELDS})
        return value


class Limits(Strict):
    """Upper bounds on the values that size a build: past one, a value is refused as a likely typo (`k: 10**23`
    would allocate before the first request). Raise a limit deliberately here, in the recipe itself
    (`limits: {k: 50000}`), so that the larger build is a reviewed decision. Seeds are not limits: they are
    always 0 .. 2**63-1 (int64)."""

    k: int = Field(default=10_000, ge=1, le=INT64_MAX)          # samples per problem: k, solutions, attempts
    max_tokens: int = Field(default=262_144, ge=1, le=INT64_MAX)  # tokens per request (max_tokens)
    quota: int = Field(default=10_000, ge=1, le=INT64_MAX)      # quota.correct and quota.max_samples
    concurrency: int = Field(default=4_096, ge=1, le=INT64_MAX)  # requests in flight; executor and collect workers
    problems: int = Field(default=10_000_000, ge=1, le=INT64_MAX)  # synthetic problems per source


class Recipe(Strict):
    """The whole truth of a build."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=NAME_MAX)
    version: str = Field(max_length=NAME_MAX)
    description: str = ""
    sources: list[Source] = Field(min_length=1)
    stages: list[Stage] = Field(min_length=1)
    executor: Executor = Executor()
    decontaminate: Decontaminate | None = None
    publish: Publish = Publish()
    output: Output = Output()
    limits: Limits = Limits()  # raise one to allow a larger value (see Limits)
    _file: str = PrivateAttr(default="")
    _lines: dict = PrivateAttr(default_factory=dict)
    _overrides: dict = PrivateAttr(default_factory=dict)

    @field_validator("version")
    @classmethod
    def semver(cls, value: str) -> str:
        if not SEMVER_RE.match(value):
            raise ValueError(f"{value!r} is not a semantic version (MAJOR.MINOR.PATCH)")
        return value

    def output_dir(self) -> Path:
        return Path(fill_path(self.output.dir, name=self.name, version=self.version))

    def work_dir(self) -> Path:
        return Path(fill_path(self.output.work_dir, name=self.name, version=self.version))

    def where(self, *key) -> tuple[str, int | None, str]:
        """(file, line, dotted key) of a key path, for errors found after validation."""
        probe = tuple(key)
        by = next((label for path, label in self._overrides.items() if probe[:len(path)] == path), None)
        while probe and probe not in self._lines:
            probe = probe[:-1]
        dotted = ".".join(str(k) for k in key)
        return self._file, self._lines.get(probe), f"{dotted} (from {by})" if by else dotted


def load_recipe(source: str | Path | dict, overrides: list[str] | dict | None = None) -> Recipe:
    """Parse and validate a recipe (a YAML file or a mapping), with `--set`-style overrides applied first.

    Every problem is reported as `file:line: key.path: message`; a problem in an overridden value names the
    override. `overrides`: "dotted.path=YAML value" strings (the command line's `--set`), or a mapping of dotted
    paths to Python values (the Python API). Paths cross lists by index: `stages.0.models.0.model=path`.
    """
    if isinstance(source, dict):
        data, lines, file = copy.deepcopy(source), {}, "<recipe>"
    else:
        path = Path(source)
        file = str(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise InputError(f"cannot read recipe: {exc.strerror}", file) from None
        data, node = load_yaml(text, file)  # bounded: no alias bomb, recursive alias or duplicate key
        if not isinstance(data, dict):
            raise InputError("a recipe is a YAML mapping", file, 1)
        lines = line_map(node)
    overridden = apply_overrides(data, overrides or [], file)
    lines = {k: v for k, v in lines.items() if not any(k[:len(o)] == o for o in overridden)}
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        raise _recipe_error(exc, lines, file, overridden) from None
    recipe._file, recipe._lines, recipe._overrides = file, lines, overridden
    check_limits(recipe)
    check_executor(recipe)
    for path, text in recipe_templates(recipe):
        prompts.screen_template(text, *recipe.where(*path))
    check_recipe(recipe)  # output.dir clear of the inputs, `.`, `..`, `/` and home
    return recipe


STAGE_LIMITS = {"k": "k", "solutions": "k", "attempts": "k", "max_tokens": "max_tokens",
                "concurrency": "concurrency", "workers": "concurrency"}


def bounded_values(recipe: Recipe) -> list[tuple[tuple, int, str]]:
    """(key path, value, name in `limits`) of every value that a Limits bound applies to."""
    found = [(("executor", "workers"), recipe.executor.workers, "concurrency")]
    for s, source in enumerate(recipe.sources):
        if source.synthetic is not None:
            found.append((("sources", s, "synthetic", "problems"), source.synthetic.problems, "problems"))
    for i, stage in enumerate(recipe.stages):
        for name, limit in STAGE_LIMITS.items():
            value = getattr(stage, name, None)
            if isinstance(value, int):
                found.append((("stages", i, name), value, limit))
        quota = getattr(stage, "quota", None)
        if quota is not None:
            found += [(("stages", i, "quota", "correct"), quota.correct, "quota"),
                      (("stages", i, "quota", "max_samples"), quota.max_samples, "quota")]
    return found


def check_limits(recipe: Recipe) -> None:
    """Every bounded value within its limit (Limits), else an InputError at the value's recipe line."""
    for path, value, name in bounded_values(recipe):
        limit = getattr(recipe.limits, name)
        if value > limit:
            shown = f"{value:,}" if value < 10**30 else f"a {len(str(value))}-digit number"
            raise InputError(f"{shown} is above the limit of {limit:,} (to allow it deliberately, raise the limit "
                             f"in the recipe: `limits: {{{name}: {value}}}`)", *recipe.where(*path))


SLURM_SET_BY_MATHFORGE = {"self", "pipeline", "tasks", "workers", "logging_dir", "depends", "depends_job_id",
                          "job_id_retriever"}
SLURM_TIME_RE = re.compile(r"(\d+-)?\d+(:\d{1,2}){0,2}|UNLIMITED|INFINITE", re.IGNORECASE)
SLURM_COUNTS = {"cpus_per_task": 1, "mem_per_cpu_gb": 1, "nodes_per_task": 1, "tasks_per_job": 1, "gpus_per_task": 0,
                "randomize_start_duration": 0, "stagger_max_array_jobs": 0, "max_array_size": -1}
SLURM_FLAGS = {"skip_completed", "max_array_launch_parallel", "run_on_dependency_fail", "requeue", "with_srun"}
SBATCH_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


def check_executor(recipe: Recipe) -> None:
    """A Slurm executor's `options`: only what datatrove's SlurmPipelineExecutor takes (not what mathforge sets per
    job), counts as counts, a Slurm time limit, and every text on one line (each becomes a line of the job script).
    Whether the cluster accepts them (partition, limits) is asked at build time (generation.slurm.check_submission)."""
    if recipe.executor.type != "slurm":
        return
    import inspect

    from datatrove.executor import SlurmPipelineExecutor

    known = set(inspect.signature(SlurmPipelineExecutor.__init__).parameters) - SLURM_SET_BY_MATHFORGE
    for name, value in recipe.executor.options.items():
        where = recipe.where("executor", "options", name)
        if name in SLURM_SET_BY_MATHFORGE:
            raise InputError("set by mathforge for each job (use executor.tasks / executor.workers)", *where)
        if name not in known:
            raise InputError(f"not an option of datatrove's SlurmPipelineExecutor (it takes: "
                             f"{', '.join(sorted(known))})", *where)
        if name in SLURM_COUNTS:
            if isinstance(value, bool) or not isinstance(value, int) or value < SLURM_COUNTS[name]:
                raise InputError(f"must be a whole number >= {SLURM_COUNTS[name]}", *where)
        elif name in SLURM_FLAGS:
            if not isinstance(value, bool):
                raise InputError("must be true or false", *where)
        elif name in ("sbatch_args", "srun_args"):
            if not isinstance(value, dict):
                raise InputError("must be a mapping of option names to values, e.g. {account: myproject}", *where)
            for key, item in value.items():
                inner = recipe.where("executor", "options", name, key)
                if not isinstance(key, str) or not SBATCH_NAME_RE.fullmatch(key):
                    raise InputError("not an option name (letters, digits, - and _)", *inner)
                _one_line(item, inner, allow=(int, float), empty=True)  # "": a bare flag (`--exclusive`)
        elif name == "requeue_signals":
            if value is not None and (not isinstance(value, list) or not all(
                    isinstance(v, str) and v in signal.Signals.__members__ for v in value)):
                raise InputError("must be a list of signal names, e.g. [SIGUSR1], or null", *where)
        else:
            _one_line(value, where, allow=(int,) if name in ("time", "job_id_position") else ())
            if name == "time" and value is not None and not SLURM_TIME_RE.fullmatch(str(value)):
                raise InputError("not a Slurm time limit (minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM:SS or "
                                 "UNLIMITED)", *where)


def _one_line(value, where: tuple, allow: tuple = (), empty: bool = False) -> None:
    if value is None or isinstance(value, allow) and not isinstance(value, bool):
        return
    if not isinstance(value, str) or not (value.strip() or empty and not value):
        raise InputError("must be a non-empty text", *where)
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InputError("must be one line without control characters (it becomes a line of the job script)",
                         *where)


def recipe_templates(recipe: Recipe) -> list[tuple[tuple, str]]:
    """(key path, text) of every Jinja template the recipe gives (prompts, teacher/synthesis, publish)."""
    found = []
    for i, stage in enumerate(recipe.stages):
        prompt = getattr(stage, "prompt", None)
        if prompt is not None:
            found += [(("stages", i, "prompt", name), getattr(prompt, name)) for name in ("template", "system")]
        found.append((("stages", i, "template"), getattr(stage, "template", None)))
    found += [(("publish", "templates", name), text) for name, text in recipe.publish.templates]
    return [(path, text) for path, text in found if isinstance(text, str)]


def parse_override(text: str) -> tuple[str, object]:
    """`stages.0.k=4` -> ("stages.0.k", 4): the value is read as YAML (numbers, booleans, lists, mappings)."""
    dotted, sep, raw = text.partition("=")
    if not sep or not dotted.strip():
        raise InputError(f"an override is KEY.PATH=VALUE, got {text!r}", key="--set")
    try:
        value = load_yaml(raw, "--set")[0] if raw.strip() else ""
    except InputError as exc:
        raise InputError(f"the value is not valid YAML: {exc.message.removeprefix('malformed YAML: ')}",
                         key=f"--set {text}") from None
    return dotted.strip(), value


def apply_overrides(data: dict, overrides: list[str] | dict, file: str) -> dict[tuple, str]:
    """Set each dotted path in the raw recipe data (in order); returns key path -> how it was set, for errors.

    A path must lead through existing mappings and list items; only its last key may be new (validation then
    says whether the schema knows it)."""
    items = [parse_override(o) + (f"--set {o}",) for o in overrides] if not isinstance(overrides, dict) else \
        [(k.replace("__", "."), v, f"override {k}={v!r}") for k, v in overrides.items()]
    overridden: dict[tuple, str] = {}
    for dotted, value, label in items:
        node, path = data, []
        parts = dotted.split(".")
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if isinstance(node, list):
                if not INDEX_RE.fullmatch(part) or int(part) >= len(node):
                    raise InputError(f"{'.'.join(path) or '(root)'} has {len(node)} item(s): no index {part!r}",
                                     file, key=label)
                key = int(part)
            elif isinstance(node, dict):
                if not last and part not in node:
                    raise InputError(f"no key {part!r} at {'.'.join(path) or '(root)'}"
                                     f"{' (keys: ' + ', '.join(map(str, node)) + ')' if node else ''}", file, key=label)
                key = part
            else:
                raise InputError(f"{'.'.join(path)} is a value, not a mapping or list", file, key=label)
            path.append(part)
            if last:
                node[key] = copy.deepcopy(value)
            else:
                node = node[key]
        overridden[tuple(int(p) if INDEX_RE.fullmatch(p) else p for p in parts)] = label
    return overridden


def _recipe_error(exc: ValidationError, lines: dict[tuple, int], file: str,
                  overridden: dict[tuple, str] | None = None) -> InputError:
    found = []
    for error in exc.errors():
        loc = error["loc"]
        if len(loc) > 2 and loc[0] == "stages" and loc[2] in STAGE_TYPES:
            loc = loc[:2] + loc[3:]  # drop the discriminator tag pydantic puts in the path
        probe = loc
        while probe and probe not in lines:
            probe = probe[:-1]
        key = ".".join(str(p) for p in loc) or "(root)"
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        by = next((label for path, label in (overridden or {}).items() if loc[:len(path)] == path), None)
        found.append((lines.get(probe), key, f"{message} (from {by})" if by else message))
    line, key, message = found[0]
    more = "".join(f"\n{InputError(m, file, ln, k).render()}" for ln, k, m in found[1:])
    return InputError(message + more, file, line, key)
