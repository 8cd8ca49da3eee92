"""Prompt templates: sandboxed, budgeted Jinja, strict about undefined fields (default: the RFT paper's Alpaca prompt)."""
from __future__ import annotations

import math
import re
import string
import time
from contextvars import ContextVar
from functools import lru_cache, update_wrapper, wraps

from jinja2 import (
    ChainableUndefined,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateSyntaxError,
    Undefined,
    UndefinedError,
    nodes,
    pass_environment,
    pass_eval_context,
)
from jinja2.exceptions import SecurityError
from jinja2.filters import (
    do_batch,
    do_center,
    do_format,
    do_indent,
    do_replace,
    do_wordwrap,
    sync_do_join,
    sync_do_slice,
    sync_do_sum,
)
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace
from jinja2.visitor import NodeTransformer

from mathforge.errors import InputError

# The RFT paper's (gsm8k-ScRel) Alpaca prompt; the model continues after "### Response:".
ALPACA = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
          "request.\n\n### Instruction:\n{{ question }}\n\n### Response:")
CHAT_USER = "{{ question }}"
FIELDS = ("question", "problem_id", "index", "solution")
SAMPLE_FIELDS = {"question": "Q?", "problem_id": "0" * 16, "index": 0, "solution": "S"}

# The render budget of one template render. A prompt is a few kilobytes rendered in microseconds: these bounds
# only stop templates that would hang a build or exhaust its memory (`{{ 9**(9**9) }}`, nested `range` loops,
# `'a' * 10**9`). Past any of them the render stops with a BudgetExceeded naming the bound.
RENDER_SECONDS = 2.0           # wall-clock seconds per render
RENDER_MAX_CHARS = 2_000_000   # characters of text produced by a render, and of any one string or list in it
RENDER_MAX_STEPS = 100_000     # loop iterations per render, all loops together
RENDER_MAX_INT_BITS = 4_096    # bits of any integer a template computes
# No `include`, `import`, `extends` (a prompt is one self-contained template), no macros, blocks, call blocks or
# recursive loops (the only ways to recurse).
FORBIDDEN = {nodes.Include: "include", nodes.Import: "import", nodes.FromImport: "from ... import",
             nodes.Extends: "extends", nodes.Macro: "macro", nodes.CallBlock: "call", nodes.Block: "block"}


class BudgetExceeded(SecurityError):
    """A template went past its render budget (time, text size, loop steps or integer size)."""


class Budget:
    """What one render may still spend; every guarded operation charges it and checks the clock."""

    def __init__(self):
        self.deadline = time.monotonic() + RENDER_SECONDS
        self.steps = 0
        self.chars = 0

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise BudgetExceeded(f"rendering takes more than {RENDER_SECONDS:g} s (the render budget)")

    def step(self, chars: int) -> None:
        self.steps += 1
        if self.steps > RENDER_MAX_STEPS:
            raise BudgetExceeded(f"loops run more than {RENDER_MAX_STEPS:,} iterations (the render budget)")
        self.charge(chars)

    def charge(self, chars: int) -> None:
        self.chars += chars
        if self.chars > RENDER_MAX_CHARS:
            raise BudgetExceeded(f"renders more than {RENDER_MAX_CHARS:,} characters (the render budget)")
        self.tick()


_BUDGET: ContextVar[Budget | None] = ContextVar("mathforge_template_budget", default=None)


def _tick() -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.tick()


def _size(value, limit: int = RENDER_MAX_CHARS) -> int:
    """About how many characters `str(value)` has, at least; stops counting past `limit` (never expands)."""
    total, stack = 0, [value]
    while stack and total <= limit:
        v = stack.pop()
        kind = type(v)
        if kind is str:  # the common case first
            total += len(v)
        elif isinstance(v, (str, bytes, bytearray)):
            total += len(v)
        elif isinstance(v, bool) or v is None:
            total += 5
        elif isinstance(v, int):
            total += v.bit_length() // 3 + 2
        elif isinstance(v, float):
            total += 24
        elif isinstance(v, (list, tuple, set, frozenset)):
            total += 2 + 2 * len(v)
            if total <= limit:
                stack.extend(v)
        elif isinstance(v, dict):
            total += 2 + 4 * len(v)
            if total <= limit:
                stack.extend(v.keys())
                stack.extend(v.values())
        elif kind is Namespace:
            stack.append(object.__getattribute__(v, "_Namespace__attrs"))
            total += 64
        elif isinstance(v, Undefined):
            continue
        else:  # loop, cycler, range, generator, method: a short repr
            total += 16
    return total


def _check_chars(chars: int, what: str) -> None:
    if chars > RENDER_MAX_CHARS:
        raise BudgetExceeded(f"{what} would be {chars:,} characters (a template value is at most "
                             f"{RENDER_MAX_CHARS:,})")
    _tick()


def _check_count(count, what: str) -> None:
    if isinstance(count, int) and count > RENDER_MAX_STEPS:
        raise BudgetExceeded(f"{what} asks for {count:,} items (at most {RENDER_MAX_STEPS:,})")


def _take(iterable, what: str):
    """A sequence of the iterable's items (strings, lists and tuples as they are), refused past the size budget."""
    if isinstance(iterable, (str, bytes, list, tuple)):
        return iterable
    items = []
    for item in iterable:
        items.append(item)
        if len(items) > RENDER_MAX_CHARS:
            raise BudgetExceeded(f"{what} reads more than {RENDER_MAX_CHARS:,} items")
    return items


def _check_power(base, exponent) -> None:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        bits = exponent * math.log2(abs(base))
        if bits > RENDER_MAX_INT_BITS:
            raise BudgetExceeded(f"{base} ** {exponent} has about {bits:,.0f} bits (a template integer has at "
                                 f"most {RENDER_MAX_INT_BITS:,})")


def _check_product(left, right) -> None:
    if isinstance(left, int) and isinstance(right, int):
        bits = left.bit_length() + right.bit_length()
        if bits > RENDER_MAX_INT_BITS:
            raise BudgetExceeded(f"a product of about {bits:,} bits (a template integer has at most "
                                 f"{RENDER_MAX_INT_BITS:,})")
    elif isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return  # a float product: it overflows to inf, it does not grow
    elif isinstance(right, int) and right > 1:
        _check_chars(_size(left) * right, "a repetition (`*`)")
    elif isinstance(left, int) and left > 1:
        _check_chars(_size(right) * left, "a repetition (`*`)")


PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")


def _check_percent(fmt: str, args) -> None:
    """`fmt % args` (and the `format` filter): no `*` widths, widths within the budget, result size bounded."""
    widths, conversions = 0, 0
    for match in PERCENT_SPEC.finditer(fmt):
        conversions += 1
        for number in match.groups():
            if number == "*":
                raise BudgetExceeded("`*` widths in a %-format are not allowed in a template")
            widths += int(number or 0)
    _check_chars(len(fmt) + widths + conversions * _size(args), "a %-format result")


def _check_format(fmt: str, args, kwargs) -> None:
    """`str.format` / `format_map`: plain format specs within the budget, result size bounded."""
    widths, fields = 0, 0
    for _literal, field, spec, _conversion in string.Formatter().parse(fmt):
        if field is None:
            continue
        fields += 1
        if spec and "{" in spec:
            raise BudgetExceeded("nested fields in a format spec are not allowed in a template")
        for number in re.findall(r"\d+", spec or ""):
            widths += int(number) if len(number) < 10 else RENDER_MAX_CHARS + 1
    _check_chars(len(fmt) + widths + fields * (_size(args) + _size(kwargs)), "a str.format result")


def _arg(args: tuple, kwargs: dict, index: int, name: str, default=None):
    return args[index] if len(args) > index else kwargs.get(name, default)


def _replaced_size(s, old, new, count) -> int:
    if not (isinstance(s, (str, bytes)) and type(old) is type(s) and type(new) is type(s)):
        return 0  # the call itself fails
    n = s.count(old) if old else len(s) + 1
    if isinstance(count, int) and count >= 0:
        n = min(n, count)
    return len(s) + n * (len(new) - len(old))


def _check_method(owner, name: str, args: tuple, kwargs: dict) -> tuple:
    """Calls of str/bytes/int methods that can amplify: checked against the budget before they run."""
    if name in ("center", "ljust", "rjust", "zfill"):
        width = _arg(args, kwargs, 0, "width", 0)
        if isinstance(width, int):
            _check_chars(width, f"{name}()")
    elif name == "expandtabs" and isinstance(owner, (str, bytes)):
        size = _arg(args, kwargs, 0, "tabsize", 8)
        if isinstance(size, int):
            _check_chars(len(owner) + owner.count("\t" if isinstance(owner, str) else b"\t") * size, "expandtabs()")
    elif name == "replace":
        _check_chars(_replaced_size(owner, _arg(args, kwargs, 0, "old"), _arg(args, kwargs, 1, "new"),
                                    _arg(args, kwargs, 2, "count", -1)), "replace()")
    elif name == "join" and isinstance(owner, (str, bytes)) and args:
        items = _take(args[0], "join()")
        _check_chars(_size(items) + len(owner) * len(items), "join()")
        args = (items, *args[1:])
    elif name == "translate" and isinstance(owner, str):
        table = _arg(args, kwargs, 0, "table")
        if isinstance(table, dict):
            longest = max((len(v) for v in table.values() if isinstance(v, str)), default=1)
            _check_chars(len(owner) * longest, "translate()")
    elif name == "to_bytes" and isinstance(owner, int):
        length = _arg(args, kwargs, 0, "length", 1)
        if isinstance(length, int):
            _check_chars(length, "to_bytes()")
    return args


# ------------------------------------------------------------------------------------------ guarded filters
def _guarded(func, precheck=None):
    """The filter, refusing an input whose text would pass the budget (every filter may call str() on it)."""
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0

    @wraps(func)
    def guarded(*args, **kwargs):
        for value in (*args[skip:], *kwargs.values()):
            _check_chars(_size(value), "a filter's input")
        if precheck is not None:
            precheck(*args[skip:], **kwargs)
        return func(*args, **kwargs)

    return guarded


def _pre_center(value, width=80):
    _check_chars(width if isinstance(width, int) else 0, "center()")


def _pre_indent(s, width=4, first=False, blank=False):
    pad = width if isinstance(width, int) else len(str(width))
    _check_chars(_size(s) + (str(s).count("\n") + 1) * pad, "indent()")


def _pre_format(value, *args, **kwargs):
    _check_percent(str(value), kwargs or args)


def _pre_replace(s, old, new, count=None):
    _check_chars(_replaced_size(str(s), str(old), str(new), count), "replace()")


def _pre_wordwrap(s, width=79, break_long_words=True, wrapstring=None, break_on_hyphens=True):
    s = str(s)
    lines = len(s) // max(width if isinstance(width, int) else 1, 1) + s.count("\n") + 1
    _check_chars(len(s) + lines * len(str(wrapstring or "\n")), "wordwrap()")


def _pre_batch(value, linecount, fill_with=None):
    _check_count(linecount, "batch()")


def _pre_slice(value, slices, fill_with=None):
    _check_count(slices, "slice()")


@pass_eval_context
def _join(eval_ctx, value, d="", attribute=None):
    items = _take(value, "join")
    _check_chars(_size(items) + len(str(d)) * len(items), "join")
    return sync_do_join(eval_ctx, items, d, attribute)


@pass_environment
def _sum(environment, iterable, attribute=None, start=0):
    items = _take(iterable, "sum")
    if not all(isinstance(x, (int, float)) for x in (*items, start)):
        _check_chars(_size(items) + _size(start), "sum")
    return sync_do_sum(environment, items, attribute, start)


def _steps(iterable, text_chars=0):
    """A loop's iterable, charging the budget one step (and the loop body's own text) per iteration."""
    budget = _BUDGET.get()
    for item in iterable:
        if budget is not None:
            budget.step(text_chars)
        yield item


def _concat(items) -> str:
    """The `~` operator, refusing a result past the budget before it is built."""
    _check_chars(_size(items), "a `~` concatenation")
    return "".join(map(str, items))


def _finalize(value):
    """Every `{{ ... }}` output (set blocks included) is charged to the render's text budget."""
    budget = _BUDGET.get()
    size = _size(value)
    if budget is not None:
        budget.charge(size)
    else:
        _check_chars(size, "an output")
    return value


class _Guard(NodeTransformer):
    """Loops charge the budget per iteration; `~` concatenations are size-checked."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        text = sum(len(data.data) for child in node.body for data in child.find_all(nodes.TemplateData))
        node = self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, "_steps", [nodes.Const(text + 1)], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        node = self.generic_visit(node)
        return nodes.Filter(nodes.List(node.nodes, lineno=node.lineno), "_concat", [], [], None, None,
                            lineno=node.lineno)


class BudgetedTemplate(Template):
    """A template whose every render runs under a fresh Budget."""

    def render(self, *args, **kwargs) -> str:
        token = _BUDGET.set(Budget())
        try:
            return super().render(*args, **kwargs)
        finally:
            _BUDGET.reset(token)


class PromptEnvironment(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox plus the render budget: guarded operators, method calls, formats and filters."""

    intercepted_binops = frozenset({"**", "*", "+", "%"})
    template_class = BudgetedTemplate

    def __init__(self, undefined):
        super().__init__(undefined=undefined, keep_trailing_newline=True, autoescape=False, finalize=_finalize,
                         optimized=False)  # no constant folding: every operation goes through the guards
        self.globals.pop("lipsum", None)  # lipsum(n=10**9)
        prechecks = {"center": (do_center, _pre_center), "indent": (do_indent, _pre_indent),
                     "format": (do_format, _pre_format), "replace": (do_replace, _pre_replace),
                     "wordwrap": (do_wordwrap, _pre_wordwrap), "batch": (do_batch, _pre_batch),
                     "slice": (sync_do_slice, _pre_slice), "join": (_join, None), "sum": (_sum, None)}
        for name, func in list(self.filters.items()):
            self.filters[name] = _guarded(*prechecks.get(name, (func, None)))
        self.filters["_steps"] = _steps
        self.filters["_concat"] = _concat

    def call_binop(self, context, operator, left, right):
        if operator == "**":
            _check_power(left, right)
        elif operator == "*":
            _check_product(left, right)
        elif operator == "+" and not (isinstance(left, (int, float)) and isinstance(right, (int, float))):
            _check_chars(_size(left) + _size(right), "a `+` result")
        elif operator == "%" and isinstance(left, str):
            _check_percent(left, right)
        _tick()
        return super().call_binop(context, operator, left, right)

    def call(self, context, obj, /, *args, **kwargs):
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, (str, bytes, bytearray, int)):
            args = _check_method(owner, getattr(obj, "__name__", ""), args, kwargs)
        _tick()
        return super().call(context, obj, *args, **kwargs)

    def wrap_str_format(self, value):
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        fmt = value.__self__

        def checked(*args, **kwargs):
            _check_format(fmt, args, kwargs)
            return wrapper(*args, **kwargs)

        return update_wrapper(checked, value)


_STRICT = PromptEnvironment(StrictUndefined)
_LENIENT = PromptEnvironment(ChainableUndefined)  # screening a template whose fields are not known yet


@lru_cache(maxsize=64)
def compile_template(text: str, strict: bool = True):
    """A sandboxed, budgeted template where any undefined field is an error, never an empty string.

    Raises TemplateSyntaxError for a syntax error and for the constructs a prompt may not use (FORBIDDEN)."""
    env = _STRICT if strict else _LENIENT
    tree = env.parse(text)
    for kind, keyword in FORBIDDEN.items():
        for node in tree.find_all(kind):
            raise TemplateSyntaxError(f"`{{% {keyword} %}}` is not allowed in a prompt template", node.lineno)
    for node in tree.find_all(nodes.For):
        if node.recursive:
            raise TemplateSyntaxError("recursive loops are not allowed in a prompt template", node.lineno)
    tree = _Guard().visit(tree)
    tree.set_environment(env)
    return env.from_string(tree)


def render(text: str, fields: dict, where: tuple | None = None) -> str:
    """The template rendered with the fields, under the render budget.

    Jinja's errors (an undefined field, a syntax error) pass through; a render past its budget is an InputError,
    at `where` ((file, line, key), as Recipe.where gives it) when given."""
    try:
        return compile_template(text).render(**fields)
    except BudgetExceeded as exc:
        file, line, key = where or (None, None, None)
        raise InputError(_described(exc, "exceeds its render budget"), file, line, key) from None


def check_template(text: str, where: str, key: str, fields: dict | None = None, line: int | None = None) -> None:
    """Render once against a problem's fields; any failure (syntax, undefined field, budget) is an InputError.

    `where` is the recipe file and `line` the recipe line holding the template (the error's position); a line
    inside the template is named in the message."""
    fields = fields or dict(SAMPLE_FIELDS)
    try:
        compile_template(text).render(**fields)
    except UndefinedError as exc:
        raise InputError(_described(exc, f"uses an undefined field: {exc.message} "
                                          f"(available: {', '.join(fields)})", message=False),
                         where, line, key) from None
    except Exception as exc:  # noqa: BLE001 - whatever a template does wrong, it is the recipe's error
        raise InputError(_problem(exc), where, line, key) from None


def screen_template(text: str, file: str, line: int | None, key: str) -> None:
    """A recipe template checked where it is written, before its fields are known: it must compile, use no
    forbidden construct and stay within the render budget (other errors wait for the stage's check)."""
    try:
        compile_template(text)
        compile_template(text, strict=False).render(**SAMPLE_FIELDS)
    except (TemplateSyntaxError, BudgetExceeded, RecursionError, MemoryError) as exc:
        raise InputError(_problem(exc), file, line, key) from None
    except Exception:  # noqa: BLE001 - an undefined field or a type error: the stage's check names it
        pass


def _problem(exc: BaseException) -> str:
    if isinstance(exc, BudgetExceeded):
        return _described(exc, "exceeds its render budget")
    if isinstance(exc, TemplateSyntaxError):
        return _described(exc, "does not compile")
    if isinstance(exc, TemplateError):
        return _described(exc, "fails to render")
    return _described(exc, f"fails to render: {type(exc).__name__}")


def _described(exc: BaseException, what: str, message: bool = True) -> str:
    line = _template_line(exc)
    detail = getattr(exc, "message", None) or str(exc) if message else ""
    return f"prompt template {what}{f' (template line {line})' if line else ''}{': ' + detail if detail else ''}"


def _template_line(exc: BaseException) -> int | None:
    """The line inside the template: a syntax error's own, else the innermost template frame's."""
    if isinstance(exc, TemplateSyntaxError):
        return exc.lineno
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def problem_fields(problem) -> dict:
    return {"question": problem.question, "problem_id": problem.problem_id, "index": problem.index,
            "solution": problem.solution}
