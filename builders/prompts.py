"""Prompt templates (sandboxed Jinja, strict about undefined fields): the RFT paper's Alpaca prompt by default."""
from __future__ import annotations

from functools import lru_cache

from jinja2 import StrictUndefined, TemplateError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from mathforge.errors import InputError

# The RFT paper's (gsm8k-ScRel) Alpaca prompt; the model continues after "### Response:".
ALPACA = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
          "request.\n\n### Instruction:\n{{ question }}\n\n### Response:")
CHAT_USER = "{{ question }}"
FIELDS = ("question", "problem_id", "index", "solution")


@lru_cache(maxsize=64)
def compile_template(text: str):
    """A sandboxed template where any undefined field is an error, never an empty string."""
    env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
    return env.from_string(text)


def render(text: str, fields: dict) -> str:
    return compile_template(text).render(**fields)


def check_template(text: str, where: str, key: str, fields: dict | None = None) -> None:
    """Render once against a problem's fields; a syntax error or an undefined field is an InputError."""
    fields = fields or {"question": "Q?", "problem_id": "0" * 16, "index": 0, "solution": "S"}
    try:
        render(text, fields)
    except UndefinedError as exc:
        raise InputError(f"prompt template uses an undefined field: {exc.message} "
                         f"(available: {', '.join(FIELDS)})", where, key=key) from None
    except TemplateError as exc:
        raise InputError(f"prompt template does not compile: {exc}", where, getattr(exc, "lineno", None),
                         key) from None


def problem_fields(problem) -> dict:
    return {"question": problem.question, "problem_id": problem.problem_id, "index": problem.index,
            "solution": problem.solution}
