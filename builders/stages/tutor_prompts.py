"""Tutorship amplification, pure parts: numbered steps, the teacher's prompt, parsing its reply, composing the amplified solution."""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass

from mathforge.verify import equations
from mathforge.verify.grader import answer_of

MAX_CHARS = 100_000       # a reply is read up to this many characters; the rest is ignored
MAX_JSON_STARTS = 4096    # at most this many `{` positions are tried as the start of a JSON object

# Rejection reasons: short, stable strings (counted in build stats and asserted in tests).
EMPTY, TRUNCATED, REFUSAL, MALFORMED = "empty", "truncated", "refusal", "malformed"
MISSING_ANSWER = "missing answer"  # shared by the synthesis methods that need a `#### n` final line
BAD_VERDICT, STEP_OUT_OF_RANGE = "bad verdict", "step out of range"
MISSING_CORRECTION, CORRECTION_WITHOUT_ANSWER = "missing correction", "correction without answer"
REASONS = (EMPTY, TRUNCATED, REFUSAL, MALFORMED, BAD_VERDICT, STEP_OUT_OF_RANGE, MISSING_CORRECTION,
           CORRECTION_WITHOUT_ANSWER)
# Checks of a parsed review against the verifier and of the fix itself (tutor stage statuses `rejected: <reason>`).
FALSE_CRITIQUE, ANSWER_ONLY, CALCULATOR = "false critique", "answer-only fix", "calculator"

CORRECT, WRONG = "correct", "wrong"
_VERDICTS = {"correct": CORRECT, "right": CORRECT, "wrong": WRONG, "incorrect": WRONG}

TEACHER_PROMPT = """You are an experienced math teacher. Review a student's solution to a math problem.

Problem:
{{ question }}

Student's solution ({{ n_steps }} numbered steps):
{{ steps }}
{% if reference is defined and reference %}
A reference solution, for you only (the student has not seen it; do not mention it):
{{ reference }}
{% endif %}
Check every step in order: the reasoning, every calculation and the final answer.
- If the whole solution is correct, the verdict is "correct" and first_wrong_step, explanation and correction are null.
- Otherwise the verdict is "wrong":
  - first_wrong_step is the number (1 to {{ n_steps }}) of the FIRST step that contains an error;
  - explanation says in one or two sentences why that step is wrong;
  - correction is a corrected continuation that REPLACES that step and every step after it. The student's \
steps before it are kept as they are, so do not repeat them. Redo the work from that step on, one step per \
line with every calculation written out (a bare final answer is not a correction). Write the continuation as \
plain lines without "Step" numbers, and end it with a final line "#### <number>" that gives the final numeric answer.

Reply ONLY with a JSON object, no other text:
{"verdict": "correct" or "wrong", "first_wrong_step": integer or null, "explanation": string or null, \
"correction": string or null}
"""

TEACHER_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": [CORRECT, WRONG]},
        "first_wrong_step": {"type": ["integer", "null"]},
        "explanation": {"type": ["string", "null"]},
        "correction": {"type": ["string", "null"]},
    },
    "required": ["verdict", "first_wrong_step", "explanation", "correction"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class TeacherReply:
    verdict: str                    # "correct" or "wrong"
    first_wrong_step: int | None    # 1-based; None when correct
    correction: str | None          # replaces the faulty step and everything after it; None when correct
    explanation: str | None = None  # why the step is wrong, when the teacher said so


@dataclass(frozen=True)
class Rejected:
    reason: str


def never_raises(parse):
    """A reply parser that returns Rejected(malformed) instead of raising: hostile model output never crashes a build."""
    @functools.wraps(parse)
    def safe(*args, **kwargs):
        try:
            return parse(*args, **kwargs)
        except Exception:  # noqa: BLE001
            return Rejected(MALFORMED)
    return safe


def response_format(schema: dict, name: str) -> dict:
    """An OpenAI `response_format` (structured outputs; vLLM accepts it too) for a JSON schema."""
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


# ---------------------------------------------------------------------------------------------- steps

_STEP_LABEL_RE = re.compile(r"(?im)^[ \t]*\**step[ \t]*\d{1,9}[ \t]*\**[ \t]*(?::|[.)](?=\s))[ \t]*\**[ \t]*")


_OPENERS = (re.compile(r"\\\[(?!.*\\\])"), re.compile(r"\\begin\{(\w+\*?)\}(?!.*\\end\{\1\})"))
_DISPLAY_START = re.compile(r"^(\\\[|\$\$|\\begin\{)")


def split_steps(solution: str) -> list[str]:
    """A solution's steps: its non-empty lines, stripped; a display-math block (`\\[ ... \\]`, `$$ ... $$`,
    `\\begin{env} ... \\end{env}`, one line or several) belongs to the step before it; a final `#### n` answer
    becomes its own last step."""
    if not isinstance(solution, str):
        return []
    steps: list[str] = []
    open_block = None
    for raw in solution.splitlines():
        line = raw.strip()
        if not line:
            continue
        if open_block is not None:
            steps[-1] += "\n" + line
            if _closes(line, open_block):
                open_block = None
            continue
        block = _opens(line)
        if steps and _DISPLAY_START.match(line):
            steps[-1] += "\n" + line
        else:
            steps.append(line)
        open_block = block
    if steps:
        last = steps[-1]
        cut = last.rfind("####")
        if cut > 0 and last[:cut].strip() and "\n" not in last[cut:]:
            steps[-1:] = [last[:cut].strip(), last[cut:].strip()]
    return steps


def _opens(line: str) -> str | None:
    """The delimiter a line leaves open: `\\]`, `$$` or `\\end{env}` (None when balanced)."""
    if line.count("$$") % 2:
        return "$$"
    if _OPENERS[0].search(line):
        return "\\]"
    match = _OPENERS[1].search(line)
    return f"\\end{{{match.group(1)}}}" if match else None


def _closes(line: str, delimiter: str) -> bool:
    return (line.count("$$") % 2 == 1) if delimiter == "$$" else delimiter in line


def numbered(steps: list[str]) -> str:
    """`Step 1: ...` per step; the further lines of a multi-line step are indented under it."""
    return "\n".join(f"Step {i}: " + step.replace("\n", "\n    ") for i, step in enumerate(steps, 1))


def prompt_fields(question: str, steps: list[str], reference: str | None = None) -> dict:
    """The fields TEACHER_PROMPT is rendered with (mathforge.builders.prompts.render); `reference` (the gold
    solution) only when the stage shows it, so a template that uses it without `reference: true` fails its check."""
    fields = {"question": question, "steps": numbered(steps), "n_steps": len(steps)}
    if reference is not None:
        fields["reference"] = reference
    return fields


# ------------------------------------------------------------------------------------ shared parsing

_REFUSAL_RE = re.compile(
    r"\bI\s*(?:can\s*not|cannot|can['’]?t|won['’]?t|am\s+(?:not\s+able|unable)"
    r"|['’]?m\s+(?:not\s+able|unable|sorry))"
    r"|\bas\s+an\s+AI\b|\bI\s+apologi[sz]e\b|\bsorry,?\s+(?:but\s+)?I\b", re.IGNORECASE)
_FENCE_RE = re.compile(r"^\s*```[\w-]*[ \t]*\n?(.*?)\n?[ \t]*```\s*$", re.DOTALL)
_NULLS = {"", "null", "none", "n/a", "na", "-", "nil"}


_JSON_LIKE_RE = re.compile(r"\{\s*[\"'][\w -]{1,40}[\"']\s*:")


def looks_like_json(text: str) -> bool:
    """Whether the text tries to hold a JSON object (`{"key":`); if none parsed, it is malformed, not prose."""
    return bool(_JSON_LIKE_RE.search(text))


def is_refusal(text: str) -> bool:
    return bool(_REFUSAL_RE.search(text))


def unfence(text: str) -> str:
    """The text inside a single ``` fence that wraps the whole text; otherwise the text, stripped."""
    match = _FENCE_RE.match(text)
    return (match.group(1) if match else text).strip()


def find_json_object(text: str, keys: tuple[str, ...]) -> dict | None:
    """The first `{...}` in the text that json.loads as an object holding any of `keys` (nested ones count)."""
    decoder = json.JSONDecoder()
    pos = text.find("{")
    for _ in range(MAX_JSON_STARTS):
        if pos < 0:
            break
        try:
            value, _end = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError):
            value = None
        if isinstance(value, dict) and any(key in value for key in keys):
            return value
        pos = text.find("{", pos + 1)
    return None


def check_text(text: object, finish_reason: str | None) -> str | Rejected:
    """The reply text to parse, capped at MAX_CHARS; Rejected when truncated or empty."""
    if finish_reason == "length":
        return Rejected(TRUNCATED)
    if not isinstance(text, str) or not text.strip():
        return Rejected(EMPTY)
    return text[:MAX_CHARS]


def as_text(value: object) -> str | None:
    """A JSON field as stripped text (a list of lines is joined); None for null, empty or 'none'."""
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        value = "\n".join(value)
    if not isinstance(value, str):
        return None
    value = unfence(value)
    return None if value.lower() in _NULLS else value


# --------------------------------------------------------------------------------------- the teacher

_VERDICT_RE = re.compile(r"\bverdict\b\W{0,8}?(?:is\W{1,4})?\b(correct|wrong|incorrect|right)\b", re.IGNORECASE)
_STEP_RES = (
    re.compile(r"\bfirst[\s_-]*(?:wrong|incorrect|faulty|erroneous|bad)?[\s_-]*step\b\W{0,8}?(?:step\W{0,3})?"
               r"(\d{1,9}|null|none)\b", re.IGNORECASE),
    re.compile(r"\bstep\s*#?\s*(\d{1,9})\s+(?:is|was)\s+(?:wrong|incorrect|faulty|erroneous|where)", re.IGNORECASE),
    re.compile(r"\b(?:error|mistake)\s+(?:is\s+|occurs\s+|appears\s+|was\s+made\s+)?in\s+step\s*#?\s*(\d{1,9})\b",
               re.IGNORECASE),
)
_CORRECTION_RE = re.compile(
    r"(?im)^[ \t>#*_-]*correct(?:ion|ed[ \t]+(?:solution|continuation))[ \t*_\"']*[:=][ \t*_]*")
_EXPLANATION_RE = re.compile(r"(?im)^[ \t>#*_-]*(?:explanation|reason|why)[ \t*_\"']*[:=][ \t*_]*")
_LABEL_LINE_RE = re.compile(r"(?im)^[ \t>#*_-]*(?:verdict|first[\s_-]*(?:wrong|incorrect|faulty|erroneous|bad)?"
                            r"[\s_-]*step)\b")


@never_raises
def parse_teacher_reply(text: str | None, n_steps: int, finish_reason: str | None = None) -> TeacherReply | Rejected:
    """The teacher's reply as a TeacherReply, or Rejected(reason); never raises.

    Reads a JSON object (bare, fenced or with prose around it) or a labelled text reply
    ("Verdict: wrong / First wrong step: 2 / Correction: ..."), then validates it against the student's steps."""
    text = check_text(text, finish_reason)
    if isinstance(text, Rejected):
        return text
    obj = find_json_object(text, tuple(TEACHER_SCHEMA["properties"]))
    if obj is not None:
        fields = (obj.get("verdict"), _as_step(obj.get("first_wrong_step")), as_text(obj.get("correction")),
                  as_text(obj.get("explanation")))
    elif looks_like_json(text):
        return Rejected(MALFORMED)
    else:
        fields = _teacher_text_fields(text)
        if fields is None:
            return Rejected(REFUSAL if is_refusal(text) else MALFORMED)
    return _validate(*fields, n_steps=n_steps)


def _as_step(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(?:step\s*)?#?\s*(\d{1,9})\s*", value, re.IGNORECASE)
        return int(match.group(1)) if match else None
    return None


def _teacher_text_fields(text: str) -> tuple | None:
    """(verdict, step, correction, explanation) from a labelled text reply; None when it has no verdict."""
    label = _CORRECTION_RE.search(text)
    head = text[: label.start()] if label else text
    correction = as_text(text[label.end():]) if label else None
    verdict_match = _VERDICT_RE.search(head)
    step = None
    for pattern in _STEP_RES:
        match = pattern.search(head)
        if match:
            step = _as_step(match.group(1))
            break
    if verdict_match:
        verdict = verdict_match.group(1)
    elif step is not None:
        verdict = WRONG  # "Step 2 is wrong." with no verdict label
    else:
        return None
    explanation = _explanation(head)
    return verdict, step, correction, explanation


def _explanation(head: str) -> str | None:
    """The text after an `Explanation:` label, up to the next labelled line."""
    why = _EXPLANATION_RE.search(head)
    if not why:
        return None
    rest = head[why.end():]
    stop = _LABEL_LINE_RE.search(rest)
    return as_text(rest[: stop.start()] if stop else rest)


def _validate(verdict: object, step: int | None, correction: str | None, explanation: str | None,
              n_steps: int) -> TeacherReply | Rejected:
    verdict = _VERDICTS.get(verdict.strip().strip(".!\"'*").lower()) if isinstance(verdict, str) else None
    if verdict is None:
        return Rejected(BAD_VERDICT)
    if verdict == CORRECT:
        return TeacherReply(CORRECT, None, None)
    if step is None or not 1 <= step <= n_steps:
        return Rejected(STEP_OUT_OF_RANGE)
    if correction is None:
        return Rejected(MISSING_CORRECTION)
    if answer_of(correction) is None:
        return Rejected(CORRECTION_WITHOUT_ANSWER)
    return TeacherReply(WRONG, step, correction, explanation)


# -------------------------------------------------------------------------------- the amplified text

_ANSWER_LINE_RE = re.compile(
    r"(?is)\s*(?:####.*"
    r"|(?:so|thus|therefore|hence)?[\s,]*(?:the\s+)?(?:final\s+)?answer\s*(?:is|:|=).*"
    r"|[\s$*(]*\\(?:boxed|fbox)\{.*\}[\s$*).]*"
    r"|[\s$*]*-?\d[\d,]*(?:\.\d+)?[\s$*.]*)")


def continuation(reply: TeacherReply) -> str:
    """The teacher's correction as it enters the solution: stripped, `Step N:` labels copied from the prompt removed."""
    return _STEP_LABEL_RE.sub("", (reply.correction or "").strip()).strip()


def new_steps(text: str) -> list[str]:
    """The steps of a continuation that do some work: not a bare final-answer line (`#### 72`, a lone `\\boxed{}`,
    "The answer is 72", a lone number) and not punctuation only."""
    return [step for step in split_steps(text)
            if not _ANSWER_LINE_RE.fullmatch(step) and any(ch.isalnum() for ch in step)]


def miscomputed(text: str) -> list[str]:
    """What the calculator refutes in a text (`equations.miscomputed`): annotations that do not check out and
    exactly false equalities of its LaTeX or plain-text arithmetic."""
    return equations.miscomputed(text)


def fix_problem(reply: TeacherReply, min_new_steps: int = 1) -> str | None:
    """Why a teacher's fix must not be kept (ANSWER_ONLY, CALCULATOR), or None when it does real, checked work."""
    fix = continuation(reply)
    if len(new_steps(fix)) < min_new_steps:
        return ANSWER_ONLY
    return CALCULATOR if miscomputed(fix) else None


def compose(steps: list[str], reply: TeacherReply) -> str:
    """The amplified solution: the student's steps before the faulty one, verbatim, then the teacher's correction
    (the `continuation`). A correct verdict keeps the steps."""
    if reply.verdict == CORRECT:
        return "\n".join(steps)
    step = reply.first_wrong_step
    if step is None or not 1 <= step <= len(steps):
        raise ValueError(f"first_wrong_step {step} is outside the student's steps 1..{len(steps)}")
    if not reply.correction or not reply.correction.strip():
        raise ValueError("a 'wrong' verdict needs a correction")
    return "\n".join([*steps[: step - 1], continuation(reply)])


def exchange_text(question: str, steps: list[str], reply: TeacherReply) -> str:
    """The tutoring exchange as one continued-pretraining document (the paper's form): the problem, the student's
    attempt up to and including the faulty step, the teacher's identification of the error, then the corrected
    continuation. The kept steps appear once, in the attempt."""
    parts = [f"Problem:\n{question.strip()}"]
    if reply.verdict == CORRECT:
        parts += [f"Student's attempt:\n{numbered(steps)}", "Teacher's review:\nThe solution is correct."]
        return "\n\n".join(parts) + "\n"
    step = reply.first_wrong_step or 0
    review = f"Step {step} is wrong." + (f" {reply.explanation.strip()}" if reply.explanation else "")
    if step > 1:
        kept = "Step 1 is right" if step == 2 else f"Steps 1 to {step - 1} are right"
        review += f"\n{kept}; the solution continues from step {step}."
    parts += [f"Student's attempt:\n{numbered(steps[:step])}", f"Teacher's review:\n{review}",
              f"Corrected solution from step {step}:\n{continuation(reply)}"]
    return "\n\n".join(parts) + "\n"
