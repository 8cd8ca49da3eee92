"""The equation reader: relations of LaTeX / plain-text solutions parsed whole, closed equalities checked exactly."""

# Read by a tokenizer and a recursive-descent parser; each relation gets a canonical key; model text is never run.
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import lru_cache

from mathforge.verify.arithmetic import MAX_DEPTH, MAX_INT_BITS, MAX_NODES, MAX_RATIONAL_BITS, Refused

# Verdicts of one adjacent pair of a relation chain (`a = b = c` has two pairs).
TRUE, FALSE, ROUNDED, UNCHECKED = "true", "false", "rounded", "unchecked"
MAX_TERMS = 32          # terms of an exact value (rational * sqrt(squarefree) * pi^k)
MAX_PI_POWER = 12
MAX_RADICAND = 10**12   # square parts are found exactly below this, by trial division up to 10**4
MAX_FACTORIAL = 2_000   # 2000! has about 19,000 bits: inside MAX_INT_BITS
MAX_SIDES = 64          # sides of one relation chain that are read; the rest count as unreadable

# ---- tokens --------------------------------------------------------------------------------------------------------
# A token is (kind, value, start, end); start/end are offsets in the text. Kinds: num var op open close lb rb bar rel
# sep row frac sqrt binom pi func bigop text sym overline ellipsis boxed cur mod bad.

_MATH_TOKEN = re.compile(r"""
 (?P<ws>\s+|~|&|\\[,;:!>\ ])
|(?P<num>\d{1,3}(?:(?:\{,\}|,\\!|\\,|,)\d{3}(?!\d))+(?:\.\d+)?|\d+\.\d+|\d+\.(?=\\overline)|\d+|\.\d+)
|(?P<row>\\\\(?:\[[^\]\n]{0,20}\])?)
|(?P<cmd>\\[A-Za-z]+)
|(?P<esc>\\.)
|(?P<ch>.)""", re.X | re.S)

_REL_CMDS = {"le": "<=", "leq": "<=", "leqslant": "<=", "ge": ">=", "geq": ">=", "geqslant": ">=", "lt": "<",
             "gt": ">", "ne": "!=", "neq": "!=", "approx": "~=", "thickapprox": "~=", "simeq": "~=", "doteq": "~=",
             "equiv": "===", "sim": "~", "cong": "cong", "propto": "propto", "in": "in", "notin": "notin",
             "subset": "subset", "subseteq": "subseteq", "supset": "supset", "mid": "mid", "nmid": "nmid",
             "parallel": "parallel", "perp": "perp", "ll": "<<", "gg": ">>", "leftarrow": "<-", "coloneqq": ":="}
_SEP_CMDS = {"Rightarrow", "implies", "Longrightarrow", "iff", "Leftrightarrow", "Longleftrightarrow", "quad",
             "qquad", "therefore", "because", "rightarrow", "longrightarrow", "to", "mapsto", "intertext",
             "Leftarrow", "impliedby", "wedge", "vee", "land", "lor"}
_FUNCS = {"sin", "cos", "tan", "cot", "sec", "csc", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "log",
          "ln", "lg", "exp", "det", "deg", "dim", "arg", "ker", "Pr", "gcd", "lcm", "max", "min", "sgn", "Re", "Im"}
_BIGOPS = {"sum", "prod", "int", "iint", "oint", "lim", "limsup", "liminf", "bigcup", "bigcap", "coprod", "sup", "inf"}
_TEXTS = {"text", "textbf", "textit", "textrm", "textnormal", "mbox", "mathrm", "emph", "textsf", "texttt", "hbox",
          "textup", "mathit", "mathsf", "mathtt"}
_DECOS = {"mathbf", "mathcal", "mathbb", "mathfrak", "mathscr", "boldsymbol", "bm", "vec", "hat", "bar", "tilde",
          "widehat", "widetilde", "overrightarrow", "overleftarrow", "overleftrightarrow", "dot", "ddot", "bold",
          "underline", "overarc", "arc", "check", "breve", "acute", "grave", "cancelto", "not"}
_DROP_ARG = {"phantom", "hphantom", "vphantom", "hspace", "vspace", "label", "tag", "color", "textcolor",
             "hskip", "kern", "mkern"}
_IGNORED = {"displaystyle", "textstyle", "scriptstyle", "scriptscriptstyle", "limits", "nolimits", "tiny", "small",
            "large", "Large", "LARGE", "huge", "normalsize", "footnotesize", "scriptsize", "rm", "bf", "it", "cal",
            "sf", "nonumber", "notag", "allowbreak", "hline", "mathstrut", "noindent", "hfill", "strut",
            "smallskip", "medskip", "bigskip", "left", "right", "big", "Big", "bigg", "Bigg", "bigl", "bigr",
            "Bigl", "Bigr", "biggl", "biggr", "Biggl", "Biggr", "middle", "nobreak", "cancel", "bcancel", "xcancel",
            "enspace", "thinspace", "negthinspace", "space", "relax", "displaylimits", "centering", "raggedright",
            "newline", "linebreak"}
_ELLIPSES = {"dots", "ldots", "cdots", "dotsb", "dotsm", "dotsc", "dotsi", "vdots", "ddots", "cdotp"}
_TRANSPARENT_ENVS = {"aligned", "split", "gathered", "alignedat", "align", "align*", "eqnarray", "eqnarray*",
                     "equation", "equation*", "gather", "gather*", "multline", "multline*", "flalign", "flalign*",
                     "alignat", "alignat*", "displaymath", "math"}
_UNICODE = {"×": ("op", "*"), "÷": ("op", "/"), "−": ("op", "-"), "·": ("op", "*"), "≤": ("rel", "<="),
            "≥": ("rel", ">="), "≠": ("rel", "!="), "≈": ("rel", "~="), "π": ("pi", "pi"), "–": ("op", "-")}
_CHARS = {"+": ("op", "+"), "-": ("op", "-"), "*": ("op", "star"), "/": ("op", "/"), "^": ("op", "^"),
          "_": ("op", "_"), "!": ("op", "!"), "'": ("op", "'"), "(": ("open", "("), ")": ("close", ")"),
          "[": ("open", "["), "]": ("close", "]"), "{": ("lb", "{"), "}": ("rb", "}"), "|": ("bar", "|"),
          "=": ("rel", "="), "<": ("rel", "<"), ">": ("rel", ">"), ",": ("sep", ","), ";": ("sep", ";"),
          ".": ("sep", "."), "%": ("op", "%")}  # a bare %: a percent sign in model text (rarely a TeX comment)
_CONNECTIVES = {"and", "or", "so", "thus", "hence", "then", "if", "since", "because", "which", "where", "when",
                "whence", "therefore", "gives", "giving", "implies", "yields", "for", "but", "with", "as", "is",
                "are", "we", "get", "by", "from", "to", "of", "the", "a", "an", "in", "on", "this", "that", "it",
                "not", "all", "also", "means", "such", "let", "else", "otherwise", "be", "has", "have", "was",
                "were", "while", "each", "every", "only", "at", "than", "into", "per", "plus", "minus", "times",
                "divided", "equals", "same", "after", "before", "mod", "modulo", "i.e.", "e.g.", "ie", "eg"}
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z.]*")
_COMMAND_RE = re.compile(r"\\(?:[A-Za-z]+|.)")
_SQUASH_RE = re.compile(r"\\(?:left|right|[,;:! ]|displaystyle|boxed|fbox)(?![A-Za-z])|[{}\s]+")
_PLAIN_COMMA_RE = re.compile(r"(?<!\{),(?!\\!|\})")
_LIST_BEFORE_RE = re.compile(r"(?:[(\[,]|(?<!\\boxed)(?<!\\fbox)\{)\s*$")
_SEPARATORS_RE = re.compile(r"\{,\}|,\\!|,|\\,")
_DIGITS_RE = re.compile(r"\d+")
_DECIMAL_RE = re.compile(r"\d+(?:\.\d+)?")
_UNIT_RE = re.compile(r"[A-Za-z][A-Za-z.\-/^ ]{0,23}")


def group_end(text: str, i: int, n: int | None = None) -> int:
    """Offset just past the balanced `{...}` that opens at text[i] (n, default len(text), when unbalanced before)."""
    depth = 0
    n = len(text) if n is None else n
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n


def _raw_arg(text: str, i: int, n: int) -> tuple[str, int]:
    """The argument of a command at text[i:n]: a braced group's content, or one character / command."""
    while i < n and text[i] in " \t\n":
        i += 1
    if i >= n:
        return "", i
    if text[i] == "{":
        end = group_end(text, i, n)
        return text[i + 1:end - 1], end
    if text[i] == "\\":
        m = _COMMAND_RE.match(text, i, n)
        if m:
            return m.group(), m.end()
    return text[i], i + 1


def _squash(raw: str) -> str:
    """A raw LaTeX fragment as a key: whitespace, braces, boxes and spacing commands gone, synonyms folded."""
    raw = _SQUASH_RE.sub("", raw)
    return raw.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\cdot", "\\times")


_ENV_RE = re.compile(r"\\(begin|end)\s*\{([A-Za-z*]+)\}")


def math_tokens(text: str, start: int = 0, end: int | None = None) -> list[tuple]:
    """Tokens of a LaTeX math region text[start:end] (`\\boxed{...}` is transparent: its braces give no token)."""
    end = len(text) if end is None else end
    out: list[tuple] = []
    box_closes: set[int] = set()
    i = start
    while i < end:
        m = _MATH_TOKEN.match(text, i, end)
        kind, i0, i = m.lastgroup, m.start(), m.end()
        value = m.group()
        if kind == "ws" or (kind == "ch" and i0 in box_closes):
            continue
        if kind == "num":
            if "," in value and _PLAIN_COMMA_RE.search(value) and \
                    _LIST_BEFORE_RE.search(text, max(start, i0 - 8), i0):
                value = _DIGITS_RE.match(value).group()  # gcd(15,105), 9,15,105: a list, not 15,105
                i = i0 + len(value)
            if not value.isdigit():
                value = _SEPARATORS_RE.sub("", value)
            out.append(("num", "0" + value if value[0] == "." else value, i0, i))
        elif kind == "row":
            out.append(("row", "\\\\", i0, i))
        elif kind == "esc":
            ch = value[1]
            if ch == "{":
                out.append(("open", "{", i0, i))
            elif ch == "}":
                out.append(("close", "}", i0, i))
            elif ch == "%":
                out.append(("op", "%", i0, i))
            elif ch == "$":
                out.append(("cur", "$", i0, i))
            elif ch == "|":
                out.append(("bar", "||", i0, i))
            else:
                out.append(("bad", value, i0, i))
        elif kind == "ch":
            tok = _CHARS.get(value) or _UNICODE.get(value)
            if tok is None and value.isascii() and value.isalpha():
                out.append(("var", value, i0, i))
            elif tok is None:
                out.append(("bad", value, i0, i))
            else:
                out.append((tok[0], tok[1], i0, i))
        else:
            name = value[1:]
            if name in ("begin", "end"):
                env = _ENV_RE.match(text, i0, end)
                if env is None:
                    out.append(("bad", value, i0, i))
                    continue
                i = env.end()
                if env.group(2) in _TRANSPARENT_ENVS:
                    continue
                if name == "end":
                    out.append(("bad", value, i0, i))
                    continue
                stop = _env_end(text, i, env.group(2), end)
                out.append(("sym", f"{env.group(2)}[{_squash(text[i:stop[0]])}]", i0, stop[1]))
                i = stop[1]
            elif name in ("left", "right", "bigl", "bigr", "Bigl", "Bigr", "biggl", "biggr", "big", "Big",
                          "bigg", "Bigg", "middle"):
                if i < end and text[i] == ".":
                    i += 1
            elif name in _IGNORED:
                continue
            elif name in _DROP_ARG:
                _, i = _raw_arg(text, i, end)  # \textcolor{red}{x}: the colour goes, the group stays
            elif name in ("frac", "dfrac", "tfrac", "cfrac"):
                out.append(("frac", "frac", i0, i))
            elif name in ("boxed", "fbox"):
                while i < end and text[i] in " \t\n":
                    i += 1
                if i < end and text[i] == "{":
                    box_closes.add(group_end(text, i, end) - 1)
                    i += 1
            elif name in ("sqrt", "binom", "dbinom", "tbinom", "pi", "overline", "pmod", "bmod", "mod"):
                kind = {"dbinom": "binom", "tbinom": "binom", "pmod": "mod", "bmod": "mod"}.get(
                    name, name)
                out.append((kind, name, i0, i))
            elif name in ("cdot", "times", "div"):
                out.append(("op", "/" if name == "div" else "*", i0, i))
            elif name in ("pm", "mp"):
                out.append(("op", "pm", i0, i))
            elif name in ("choose", "over"):
                out.append(("op", name, i0, i))
            elif name in ("lfloor", "lceil", "langle", "lvert", "lVert"):
                out.append(("open", name[1:], i0, i) if name[1] != "v" and name[1] != "V" else ("bar", "|", i0, i))
            elif name in ("rfloor", "rceil", "rangle", "rvert", "rVert"):
                out.append(("close", name[1:], i0, i) if name[1] != "v" and name[1] != "V" else ("bar", "|", i0, i))
            elif name in ("vert", "Vert"):
                out.append(("bar", "|", i0, i))
            elif name in _REL_CMDS:
                out.append(("rel", _REL_CMDS[name], i0, i))
            elif name in _SEP_CMDS:
                out.append(("sep", name, i0, i))
            elif name in ("stackrel", "overset", "underset"):
                over, i = _raw_arg(text, i, end)
                base, i = _raw_arg(text, i, end)
                if base.strip() in ("=", "<", ">", "\\le", "\\ge", "\\leq", "\\geq", "\\approx", "\\equiv"):
                    out.append(("rel", f"{_squash(base)}[{_squash(over)}]", i0, i))
                else:
                    out.append(("sym", f"{name}{{{_squash(over)}}}{{{_squash(base)}}}", i0, i))
            elif name in _FUNCS:
                out.append(("func", name, i0, i))
            elif name in ("operatorname", "mathop"):
                arg, i = _raw_arg(text, i, end)
                word = re.sub(r"\\[A-Za-z]+|[{}\s*]", "", arg)
                out.append(("func", word, i0, i))
            elif name in _BIGOPS:
                out.append(("bigop", name, i0, i))
            elif name in _TEXTS:
                arg, i = _raw_arg(text, i, end)
                tok = _text_token(arg, i0, i)
                if tok[0] != "ws":
                    out.append(tok)
            elif name in _DECOS:
                arg, i = _raw_arg(text, i, end)
                if name == "cancelto":
                    arg2, i = _raw_arg(text, i, end)
                    arg = arg + "|" + arg2
                out.append(("sym", f"{name}{{{_squash(arg)}}}", i0, i))
            elif name in _ELLIPSES:
                out.append(("ellipsis", "...", i0, i))
            elif name == "circ":
                out.append(("circ", "circ", i0, i))
            elif name == "prime":
                out.append(("op", "'", i0, i))
            elif name == "underbrace" or name == "overbrace":
                continue  # the braced part follows as a group; its `_{note}` is dropped by the parser
            else:
                out.append(("sym", "\\" + name, i0, i))  # Greek letters, \infty, \angle, ...: symbols, never numbers
    return out


def _env_end(text: str, i: int, env: str, end: int) -> tuple[int, int]:
    """(start, end) of the `\\end{env}` that closes an environment opened before text[i] (nesting counted)."""
    depth = 1
    for m in _ENV_RE.finditer(text, i, end):
        if m.group(2) == env:
            depth += 1 if m.group(1) == "begin" else -1
            if depth == 0:
                return m.start(), m.end()
    return end, end


def _text_token(arg: str, start: int, end: int) -> tuple:
    """`\\text{...}` in math: a connective ("and", "so") separates statements; a short word is a unit (after a
    number) or a named quantity; anything else separates too."""
    words = arg.strip()
    if not words:
        return ("ws", "", start, end)
    lower = words.lower()
    if lower in ("lcm", "gcd"):
        return ("func", lower, start, end)
    if words.isdigit():
        return ("num", words, start, end)
    if _UNIT_RE.fullmatch(words) and not any(w.lower() in _CONNECTIVES for w in _WORD_RE.findall(words)):
        return ("text", " ".join(words.split()), start, end)
    return ("sep", "text:" + " ".join(words.split()), start, end)


# ---- plain text (outside math regions) ------------------------------------------------------------------------------

_PROSE_TOKEN = re.compile(r"""
 (?P<ws>[ \t]+|\$)
|(?P<mixed>(?<![\d.,/])\d+\ \d+/\d+(?![\d/.]))
|(?P<num>\d{1,3}(?:,\d{3}(?!\d))+(?:\.\d+)?|\d+\.\d+|\d+|(?<![\d.])\.\d+)
|(?P<op>[-+*/^()=%×÷·−–]|(?<=[\d) ])[xX](?=\s*[\d($]))
|(?P<brk>[A-Za-z]+|.)""", re.X | re.S)
_PROSE_KIND = {"*": ("op", "*"), "(": ("open", "("), ")": ("close", ")"), "=": ("rel", "="), "%": ("op", "%"),
               "x": ("op", "*"), "X": ("op", "*"), "^": ("op", "^")}
_ENDS_PROSE = frozenset(" \t\n.,;:!?)\"'")
# A number right after one of these words labels something ("Week 2", "day 1", "Remaining 10"): not an operand.
_LABEL_WORDS = frozenset("week day month year step page chapter group class team round level grade part row question "
                         "problem game lap test quiz batch section period stage phase case option remaining no "
                         "number item floor room".split())
# After a number (or %), these words carry the expression on: "12 x 1 and 1/4", "10% of 150".
_CONTINUING_WORDS = frozenset("and of plus minus times by over".split())
_WORD_BEFORE = re.compile(r"([A-Za-z]+)[ \t$]*$")


def prose_segments(text: str, start: int, end: int) -> list[list[tuple]]:
    """Runs of arithmetic tokens in plain text[start:end] that hold an `=` (words and punctuation end a run; a mixed
    number `1 1/2` is read as `(1+1/2)`)."""
    runs, run, has_eq = [], [], False
    i = start
    while i < end:
        m = _PROSE_TOKEN.match(text, i, end)
        kind, i0, i = m.lastgroup, m.start(), m.end()
        value = m.group()
        if kind == "ws":
            continue
        if kind == "mixed":
            whole, _, fraction = value.partition(" ")
            top, _, bottom = fraction.partition("/")
            if int(top) < int(bottom):
                run += [("open", "(", i0, i0), ("num", whole, i0, i0 + len(whole)), ("op", "+", i0, i0),
                        ("num", top, i - len(fraction), i - len(bottom) - 1), ("op", "/", i, i),
                        ("num", bottom, i - len(bottom), i), ("close", ")", i, i)]
            else:  # `2 3/4` with an improper fraction: two numbers side by side, not read
                run += [("num", whole, i0, i0 + len(whole)), ("num", fraction, i - len(fraction), i)]
        elif kind == "num":
            run.append(("num", value.replace(",", "") if value[0] != "." else "0" + value, i0, i))
        elif kind == "op":
            tok = _PROSE_KIND.get(value) or _UNICODE.get(value) or _CHARS[value]
            run.append((tok[0], tok[1], i0, i))
            has_eq = has_eq or value == "="
        else:
            if has_eq:
                runs.append(run)
            run, has_eq = [], False
    if has_eq:
        runs.append(run)
    return runs


def _cut_before(text: str, start: int) -> bool:
    """Whether the words just before a plain-text run make its first number part of something else: a label
    (`Week 2`), a continuing word after a number (`1 and 1/4`, `10% of 150`), a number broken by a stray `,` / `.`."""
    head = text[max(0, start - 40):start]
    word = _WORD_BEFORE.search(head)
    if word:
        name = word.group(1).lower()
        if name in _LABEL_WORDS or name.rstrip("s") in _LABEL_WORDS:
            return True
        before = head[:word.start()].rstrip(" \t$")
        return name in _CONTINUING_WORDS and bool(before) and (before[-1].isdigit() or before[-1] in "%)")
    stripped = head.rstrip(" \t$")
    if stripped[-1:] in (",", "."):
        rest = stripped[:-1].rstrip()
        return bool(rest) and (rest[-1].isdigit() or rest[-1] in "+-*/")
    return False


def _prose_ends(text: str, groups: list[list[tuple]]) -> list[list[tuple]]:
    """Plain text around a run decides its ends: a first side cut from something before it (`S + 143`, `X - 40`,
    `16,0000`, a letter or sign touching it) and a last side that runs on (`5A/5`, `1/3 * Class C`, `26=5+3x`) are
    incomplete: dropped, never read as if whole."""
    first = groups[0]
    if first:
        head = first[0]
        j = head[2] - 1
        while j >= 0 and text[j] == "$":
            j -= 1
        cut = j >= 0 and not text[j].isspace() and text[j] not in "(\"'"
        if not cut:
            cut = _cut_before(text, head[2])
        if head[0] == "op" and (head[1] != "-" or head[3] >= len(text) or text[head[3]].isspace()):
            cut = True
        if cut:
            groups = [[]] + groups[1:]
    last = groups[-1]
    if last:
        tail = last[-1]
        after = text[tail[3]] if tail[3] < len(text) else " "
        if tail[0] == "op" and tail[1] != "%" or tail[0] == "open" or after not in _ENDS_PROSE:
            groups = groups[:-1] + [[]]
    return groups


# ---- exact values: sums of rational * sqrt(squarefree) * pi^k ------------------------------------------------------

Value = dict  # {(radicand, pi_power): Fraction}; {} is zero


def _guard(q: Fraction) -> Fraction:
    bits = max(q.numerator.bit_length(), q.denominator.bit_length())
    if bits > MAX_INT_BITS or (q.denominator != 1 and bits > MAX_RATIONAL_BITS):
        raise Refused("number too large")
    return q


def _const(q) -> Value:
    if not isinstance(q, Fraction):
        q = Fraction(q)
    return {(1, 0): _guard(q)} if q else {}


@lru_cache(maxsize=4096)
def _literal(digits: str) -> Fraction:
    return Fraction(int(digits)) if digits.isdigit() else Fraction(digits)


def rational(v: Value) -> Fraction | None:
    """The value as a Fraction when it is rational."""
    if not v:
        return Fraction(0)
    if len(v) == 1 and (1, 0) in v:
        return v[(1, 0)]
    return None


def _add(a: Value, b: Value) -> Value:
    out = dict(a)
    for key, c in b.items():
        s = out.get(key, 0) + c
        if s:
            out[key] = _guard(s)
        else:
            out.pop(key, None)
    if len(out) > MAX_TERMS:
        raise Refused("too many terms")
    return out


def _neg(a: Value) -> Value:
    return {k: -c for k, c in a.items()}


def _mul(a: Value, b: Value) -> Value:
    out: Value = {}
    for (r1, k1), c1 in a.items():
        for (r2, k2), c2 in b.items():
            g = math.gcd(r1, r2)
            r, k = (r1 // g) * (r2 // g), k1 + k2
            if r > MAX_RADICAND or abs(k) > MAX_PI_POWER:
                raise Refused("radical too large")
            if c1.numerator.bit_length() + c2.numerator.bit_length() > MAX_INT_BITS:
                raise Refused("product too large")
            out = _add(out, {(r, k): _guard(c1 * c2 * g)})
    return out


def _inv(a: Value) -> Value:
    if not a:
        raise Refused("division by zero")
    if len(a) == 1:
        (r, k), c = next(iter(a.items()))
        return {(r, -k): _guard(1 / (c * r))}
    if len(a) == 2:  # p*pi^k + q*sqrt(r)*pi^k: times its conjugate
        (ka, ca), (kb, cb) = sorted(a.items())
        if ka[0] == 1 and ka[1] == kb[1]:
            norm = ca * ca - cb * cb * kb[0]
            if norm:
                return {(1, -ka[1]): _guard(ca / norm), (kb[0], -ka[1]): _guard(-cb / norm)}
    raise Refused("cannot rationalize")


def _square_split(n: int) -> tuple[int, int]:
    """n = s*s*r with r squarefree: (s, r), exactly, for 0 < n <= MAX_RADICAND."""
    if n > MAX_RADICAND:
        raise Refused("radicand too large")
    s, r, d = 1, 1, 2
    while d * d <= n and d <= 10_000:
        while n % (d * d) == 0:
            n //= d * d
            s *= d
        if n % d == 0:
            n //= d
            r *= d
        d += 1
    root = math.isqrt(n)
    if root * root == n:
        return s * root, r
    return s, r * n  # what is left has no square factor below 10**4, and is below 10**8 * ...: squarefree


def _sqrt(a: Value) -> Value:
    q = rational(a)
    if q is None:
        if len(a) == 1:
            (r, k), c = next(iter(a.items()))
            if r == 1 and k % 2 == 0:
                return _mul(_sqrt(_const(c)), {(1, k // 2): Fraction(1)})
        raise Refused("nested radical")
    if q < 0:
        raise Refused("square root of a negative")
    if not q:
        return {}
    s, r = _square_split(q.numerator * q.denominator)
    return {(r, 0): _guard(Fraction(s, q.denominator))}


def _int_root(n: int, k: int) -> int | None:
    if n < 0:
        return None
    x = round(n ** (1.0 / k)) if n.bit_length() < 1000 else None
    if x is None:
        return None
    for y in (x - 1, x, x + 1):
        if y >= 0 and y ** k == n:
            return y
    return None


def _root(a: Value, k: int) -> Value:
    if k == 2:
        return _sqrt(a)
    q = rational(a)
    if q is None or k < 2 or k > 64:
        raise Refused("root")
    sign = -1 if q < 0 else 1
    if sign < 0 and k % 2 == 0:
        raise Refused("even root of a negative")
    top, bottom = _int_root(abs(q.numerator), k), _int_root(q.denominator, k)
    if top is None or bottom is None:
        raise Refused("irrational root")
    return _const(sign * Fraction(top, bottom))


def _pow(a: Value, e: Value) -> Value:
    ex = rational(e)
    if ex is None:
        raise Refused("irrational exponent")
    if ex.denominator != 1:
        if ex.denominator > 64:
            raise Refused("root")
        return _pow(_root(a, ex.denominator), _const(ex.numerator))
    n = ex.numerator
    q = rational(a)
    if q is not None:
        if q == 0 and n < 0:
            raise Refused("division by zero")
        bits = max(q.numerator.bit_length(), q.denominator.bit_length())
        if bits > 1 and abs(n) * bits > MAX_INT_BITS:
            raise Refused("power too large")
        return _const(q ** n)
    if abs(n) > 64:
        raise Refused("power too large")
    base = _inv(a) if n < 0 else a
    out: Value = _const(1)
    for _ in range(abs(n)):
        out = _mul(out, base)
    return out


def _integer(v: Value) -> int | None:
    q = rational(v)
    return q.numerator if q is not None and q.denominator == 1 else None


# ---- the parser ----------------------------------------------------------------------------------------------------

_END = ("end", "", -1, -1)
_PRIMARY_START = {"num", "var", "pi", "frac", "sqrt", "binom", "func", "bigop", "open", "lb", "bar", "sym",
                  "overline", "ellipsis", "cur", "text"}


class _Parser:
    """One side of a relation: tokens -> a syntax tree of tuples. Anything it cannot read whole raises Refused."""

    def __init__(self, tokens: list[tuple]):
        if len(tokens) > MAX_NODES:
            raise Refused("too many terms")
        self.t, self.i, self.depth, self.bars = tokens, 0, 0, 0
        self.units: list[str] = []

    def peek(self, ahead: int = 0) -> tuple:
        j = self.i + ahead
        return self.t[j] if j < len(self.t) else _END

    def take(self) -> tuple:
        tok = self.peek()
        self.i += 1
        return tok

    def expect(self, kind: str, value: str | None = None) -> None:
        tok = self.take()
        if tok[0] != kind or (value is not None and tok[1] != value):
            raise Refused(f"expected {value or kind}")

    def side(self):
        node = self.expr()
        if self.i != len(self.t):
            raise Refused(f"unexpected {self.peek()[1]!r}")
        return node

    def expr(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise Refused("nesting too deep")
        terms = [("+", self.term())]
        while self.peek()[0] == "op" and self.peek()[1] in ("+", "-", "pm"):
            op = self.take()[1]
            terms.append((op, self.term()))
        self.depth -= 1
        return terms[0][1] if len(terms) == 1 else ("add", terms)

    def term(self):
        node = self.unary()
        divisions = 0
        while self.peek()[0] == "op" and self.peek()[1] in ("*", "/", "star"):
            op = self.take()[1]
            right = self.unary()
            if op == "/" and right[0] == "jux":
                raise Refused("ambiguous a/bc")
            divisions += op == "/"
            if divisions > 1:
                raise Refused("ambiguous a/b/c")  # `25 / 1/3` means 25 / (1/3) in prose
            node = ("mul", [node, right]) if op == "*" else ("div", node, right) if op == "/" else \
                ("func", "star", [node, right])  # `*` in LaTeX math: mostly an operation the problem defines
        return node

    def unary(self):
        tok = self.peek()
        if tok[0] == "op" and tok[1] in ("-", "+", "pm"):
            self.take()
            inner = self.unary()
            return ("neg", inner) if tok[1] == "-" else inner if tok[1] == "+" else ("pm", inner)
        return self.juxt()

    def juxt(self):
        factors = [self.postfix()]
        while True:
            kind = self.peek()[0]
            if kind not in _PRIMARY_START or (kind == "bar" and self.bars):
                break
            if kind == "text":  # a unit after a product: `3 \text{ cm} \cdot 2`
                self.units.append(self.take()[1])
                continue
            j = self.i
            while self.t[j][0] == "lb" and j + 1 < len(self.t):
                j += 1
            if self.t[j][0] == "num" and factors[-1][0] not in ("group", "fact"):
                raise Refused("number after a factor")  # 2 3, 355\boxed{680}: not a product
            factors.append(self.postfix())
        return factors[0] if len(factors) == 1 else ("jux", factors)

    def postfix(self):
        node = self.power()
        while True:
            tok = self.peek()
            if tok[0] == "op" and tok[1] == "!":
                self.take()
                if self.peek()[0] == "op" and self.peek()[1] == "!":
                    raise Refused("double factorial")
                node = ("fact", node)
            elif tok[0] == "op" and tok[1] == "%":
                self.take()
                node = ("pct", node)
            elif tok[0] == "op" and tok[1] == "'":
                self.take()
                node = ("sym", _canon(node) + "'")
            elif tok[0] == "text":
                self.units.append(self.take()[1])
            elif tok[0] == "mod":  # 7 \pmod{5}, 17 \bmod 5: modular, never a number
                self.take()
                node = ("func", "mod", [node, self.arg()])
            elif tok[0] == "op" and tok[1] == "^" and self.peek(1)[0] == "circ":
                self.take(), self.take()
                self.units.append("deg")
            else:
                return node

    def power(self):
        base = self.primary()
        tok = self.peek()
        if tok[0] == "op" and tok[1] == "_" and base[0] in ("group",):  # (1011)_2 and the like: not read
            raise Refused("subscript on a group")
        if tok[0] == "op" and tok[1] == "^":
            nxt = self.peek(1)
            if nxt[0] == "circ" or (nxt[0] == "lb" and self.peek(2)[0] == "circ" and self.peek(3)[0] == "rb"):
                if nxt[0] == "lb":
                    self.take(), self.take(), self.take(), self.take()
                else:
                    self.take(), self.take()
                self.units.append("deg")
                return base
            self.take()
            exponent = self.arg()
            if self.peek()[0] == "op" and self.peek()[1] == "^":
                raise Refused("double superscript")
            return ("pow", base, exponent)
        return base

    def arg(self):
        """A command's argument: a braced group, or one token (one digit of a number)."""
        tok = self.peek()
        if tok[0] == "lb":
            return self.primary()
        if tok[0] == "num":
            self.take()
            digits = tok[1]
            if len(digits) > 1:
                if not digits[1:].isdigit():
                    raise Refused("ambiguous argument")
                self.t = self.t[:self.i] + [("num", digits[1:], tok[2] + 1, tok[3])] + self.t[self.i:]
            return ("n", Fraction(digits[0]), digits[0])
        if tok[0] in ("var", "pi", "sym", "frac", "sqrt", "cur"):
            return self.primary()
        if tok[0] == "op" and tok[1] == "-":
            raise Refused("unbraced negative argument")
        raise Refused("missing argument")

    def group(self, close_kind: str, close_value: str | None):
        """Contents up to the matching close: one expression, or a comma tuple."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise Refused("nesting too deep")
        items = [self.expr()]
        while self.peek()[0] == "op" and self.peek()[1] in ("choose", "over"):
            op = self.take()[1]
            right = self.expr()
            items[-1] = ("binom", items[-1], right) if op == "choose" else ("div", items[-1], right)
        while self.peek()[0] == "sep" and self.peek()[1] == ",":
            self.take()
            items.append(self.expr())
        tok = self.take()
        if tok[0] != close_kind or (close_value is not None and tok[1] != close_value):
            raise Refused("unbalanced brackets")
        self.depth -= 1
        return items

    def primary(self):
        tok = self.take()
        kind, value = tok[0], tok[1]
        if kind == "num":
            return self.number(value)
        if kind == "pi":
            return ("pi",)
        if kind == "var":
            return self.symbol(value)
        if kind == "sym":
            return self.symbol(value)
        if kind == "open":
            close = {"(": ")", "[": "]", "{": "}", "floor": "floor", "ceil": "ceil", "angle": "angle"}[value]
            items = self.group("close", close)
            if value in ("floor", "ceil") and len(items) == 1:
                return (value, items[0])
            if value == "angle" or len(items) > 1:
                return ("tuple", value, items)
            if value == "{":
                return ("tuple", value, items)  # \{x\}: a set, or a fractional part: not a number here
            return ("group", items[0])
        if kind == "lb":
            items = self.group("rb", None)
            if len(items) > 1:
                return ("tuple", "{", items)
            return items[0]
        if kind == "bar":
            self.bars += 1
            inner = self.expr()
            self.expect("bar")
            self.bars -= 1
            return ("abs", inner)
        if kind == "frac":
            top = self.arg()
            return ("div", top, self.arg())
        if kind == "sqrt":
            index = None
            if self.peek()[0] == "open" and self.peek()[1] == "[":
                self.take()
                index = self.expr()
                self.expect("close", "]")
            return ("root", self.arg(), index)
        if kind == "binom":
            top = self.arg()
            return ("binom", top, self.arg())
        if kind == "func":
            return self.function(value)
        if kind == "bigop":
            parts = [value]
            while self.peek()[0] == "op" and self.peek()[1] in ("_", "^"):
                parts.append(self.take()[1] + _canon(self.arg()))
            return ("sym", "".join(parts) + "[" + _canon(self.juxt()) + "]")
        if kind == "text":
            return ("sym", "\\text{" + value + "}")
        if kind == "overline":
            return ("sym", "overline:" + _canon(self.arg()))
        if kind == "ellipsis":
            return ("sym", "...")
        if kind == "cur":
            self.units.append("$")
            return self.primary()
        raise Refused(f"unexpected {value!r}")

    def symbol(self, name: str):
        while self.peek()[0] == "op" and self.peek()[1] == "_":
            self.take()
            name += "_" + _canon(self.arg())
        return ("sym", name)

    def number(self, digits: str):
        if len(digits) > 6_000:
            raise Refused("number too large")
        if len(digits) > 1 and digits[0] == "0" and digits[1].isdigit():
            raise Refused("leading zero")  # 0900 - 0130: clock times, not numbers
        tok = self.peek()
        if tok[0] == "op" and tok[1] == "_":  # 1011_2: a numeral in base 2
            self.take()
            base = _integer(_value(self.arg()) or {})
            if base is None or not 2 <= base <= 36 or "." in digits:
                raise Refused("base")
            try:
                return ("n", Fraction(int(digits, base)), f"{digits}_{base}")
            except ValueError:
                raise Refused("digit outside the base") from None
        if digits.endswith(".") or ("." in digits and tok[0] == "overline"):
            if tok[0] != "overline":
                raise Refused("dangling point")
            self.take()
            braced = self.peek()[0] == "lb"
            if braced:
                self.take()
            rep = self.take()
            if rep[0] != "num" or not rep[1].isdigit() or (braced and self.take()[0] != "rb") or \
                    (not braced and len(rep[1]) != 1):
                raise Refused("repeating part")
            whole, _, fixed = digits.partition(".")
            rep = rep[1]
            value = (Fraction(int(whole or "0")) + (Fraction(int(fixed), 10**len(fixed)) if fixed else 0)
                     + Fraction(int(rep), (10**len(rep) - 1) * 10**len(fixed)))
            return ("n", value, f"{digits}({rep})")
        if tok[0] == "frac" and "." not in digits:  # 2\frac{1}{2}: a mixed number when both parts are literals
            save_t, save_i = self.t, self.i
            self.take()
            top, bottom = self.arg(), self.arg()
            if top[0] == "n" and bottom[0] == "n" and top[2].isdigit() and bottom[2].isdigit() and bottom[1]:
                return ("n", Fraction(int(digits)) + top[1] / bottom[1], f"{digits}+{top[2]}/{bottom[2]}")
            self.t, self.i = save_t, save_i
        return ("n", _literal(digits), digits)

    def function(self, name: str):
        parts = [name]
        while self.peek()[0] == "op" and self.peek()[1] in ("_", "^"):
            parts.append(self.take()[1] + _canon(self.arg()))
        if self.peek()[0] == "open" and self.peek()[1] == "(":
            self.take()
            args = self.group("close", ")")
        else:
            args = [self.postfix()]
        return ("func", "".join(parts), args)


# ---- values and keys of syntax trees ---------------------------------------------------------------------------------

def _value(node, percent: bool = True) -> Value | None:
    """The exact value of a closed numeric tree; None when it holds a symbol (a variable, a function, a set).
    `percent=False` reads `x\\%` as x (the other reading of `100 - 38 - 35 = 27\\%`)."""
    kind = node[0]
    if kind == "n":
        return _const(node[1])
    if kind == "pi":
        return {(1, 1): Fraction(1)}
    if kind == "group":
        return _value(node[1], percent)
    if kind == "add":
        total: Value = {}
        for sign, child in node[1]:
            v = _value(child, percent)
            if v is None or sign == "pm":
                return None
            total = _add(total, _neg(v) if sign == "-" else v)
        return total
    if kind in ("mul", "jux"):
        values = [_value(child, percent) for child in node[1]]
        if any(v is None for v in values):
            return None
        out = _const(1)
        for v in values:
            out = _mul(out, v)
        return out
    if kind == "neg":
        v = _value(node[1], percent)
        return None if v is None else _neg(v)
    if kind in ("div", "pow", "binom"):
        a, b = _value(node[1], percent), _value(node[2], percent)
        if a is None or b is None:
            return None
        if kind == "div":
            return _mul(a, _inv(b))
        if kind == "pow":
            return _pow(a, b)
        n, k = _integer(a), _integer(b)
        if n is None or k is None or n < 0:
            raise Refused("binomial")
        if k < 0 or k > n:
            return {}
        if min(k, n - k) * max(1, n.bit_length()) > MAX_INT_BITS:
            raise Refused("binomial too large")
        return _const(math.comb(n, k))
    if kind == "root":
        a = _value(node[1], percent)
        index = _value(node[2], percent) if node[2] is not None else _const(2)
        if a is None or index is None:
            return None
        k = _integer(index)
        if k is None:
            raise Refused("root index")
        return _root(a, k)
    if kind == "fact":
        n = _value(node[1], percent)
        if n is None:
            return None
        m = _integer(n)
        if m is None or m < 0 or m > MAX_FACTORIAL:
            raise Refused("factorial")
        return _const(math.factorial(m))
    if kind == "pct":
        v = _value(node[1], percent)
        return v if v is None or not percent else _mul(v, _const(Fraction(1, 100)))
    if kind in ("floor", "ceil", "abs"):
        v = _value(node[1], percent)
        if v is None:
            return None
        q = rational(v)
        if q is None:
            raise Refused("irrational floor")
        return _const(abs(q) if kind == "abs" else math.floor(q) if kind == "floor" else math.ceil(q))
    if kind == "func" and node[1] in ("gcd", "lcm", "max", "min") and len(node[2]) > 1:
        values = [_value(child, percent) for child in node[2]]
        if any(v is None for v in values):
            return None
        qs = [rational(v) for v in values]
        if any(q is None for q in qs):
            raise Refused("irrational argument")
        if node[1] in ("max", "min"):
            return _const(max(qs) if node[1] == "max" else min(qs))
        if any(q.denominator != 1 for q in qs):
            raise Refused("gcd of fractions")
        ints = [q.numerator for q in qs]
        return _const(math.gcd(*ints) if node[1] == "gcd" else math.lcm(*ints))
    return None  # symbols, functions, tuples, pm


def format_number(value: Fraction) -> str:
    """A canonical spelling: integers plain, terminating decimals without trailing zeros, else p/q."""
    if value.denominator == 1:
        return str(value.numerator)
    den, twos, fives = value.denominator, 0, 0
    while den % 2 == 0:
        den //= 2
        twos += 1
    while den % 5 == 0:
        den //= 5
        fives += 1
    if den == 1:
        places = max(twos, fives)
        scaled = abs(value.numerator) * 10**places // value.denominator
        whole, frac = divmod(scaled, 10**places)
        return f"{'-' if value < 0 else ''}{whole}.{str(frac).rjust(places, '0').rstrip('0')}"
    return f"{value.numerator}/{value.denominator}"


def _canon(node) -> str:
    """The key of a tree: numbers normalized, sums and products flattened with their operands sorted."""
    kind = node[0]
    if kind == "n":
        return format_number(node[1])
    if kind == "pi":
        return "pi"
    if kind == "sym":
        return node[1]
    if kind == "group":
        return _canon(node[1])
    if kind == "neg":
        inner = node[1][1] if node[1][0] == "group" else node[1]
        return format_number(-inner[1]) if inner[0] == "n" else f"-({_canon(inner)})"
    if kind == "add":
        terms: list[str] = []
        _terms(node, "+", terms)
        return "(" + "".join(sorted(terms)) + ")"
    if kind in ("mul", "jux"):
        negative, body = _product(node)
        return "-" + body if negative else body
    if kind == "div":
        return f"({_canon(node[1])}/{_canon(node[2])})"
    if kind == "pow":
        return f"({_canon(node[1])}^{_canon(node[2])})"
    if kind == "root":
        return f"sqrt({_canon(node[1])})" if node[2] is None else f"root[{_canon(node[2])}]({_canon(node[1])})"
    if kind in ("fact", "pct"):
        return f"({_canon(node[1])}){'!' if kind == 'fact' else '%'}"
    if kind in ("floor", "ceil", "abs"):
        return f"{kind}({_canon(node[1])})"
    if kind == "binom":
        return f"binom({_canon(node[1])},{_canon(node[2])})"
    if kind == "func":
        return f"{node[1]}({','.join(_canon(a) for a in node[2])})"
    if kind == "tuple":
        return f"{node[1]}{','.join(_canon(a) for a in node[2])}"
    if kind == "pm":
        return f"pm({_canon(node[1])})"
    raise Refused(f"unknown node {kind}")


def _terms(node, sign: str, out: list[str]) -> None:
    while node[0] == "group":
        node = node[1]
    flip = "-" if sign == "+" else "+"
    if node[0] == "add":
        for op, child in node[1]:
            if op == "pm":
                out.append("pm" + _canon(child))
            else:
                _terms(child, sign if op == "+" else flip, out)
    elif node[0] == "neg":
        _terms(node[1], flip, out)
    elif node[0] in ("mul", "jux"):
        negative, body = _product(node)
        out.append((flip if negative else sign) + body)
    else:
        out.append(sign + _canon(node))


def _product(node) -> tuple[bool, str]:
    """(negative, key) of a product: signs of its factors pulled out (`-2 \\cdot 5` = `-5 \\cdot 2` = -(2*5))."""
    factors: list[str] = []
    negative = _factors(node, factors)
    return negative, "(" + "*".join(sorted(factors)) + ")"


def _factors(node, out: list[str]) -> bool:
    """Collect a product's factors, unsigned; returns whether an odd number of them was negated."""
    while node[0] == "group":
        node = node[1]
    if node[0] in ("mul", "jux"):
        negative = False
        for child in node[1]:
            negative ^= _factors(child, out)
        return negative
    if node[0] == "neg":
        return not _factors(node[1], out)
    out.append(_canon(node))
    return False


def _literals(node, out: list[Fraction]) -> None:
    """The number literals of a tree, in order (the operands, for groundedness)."""
    kind = node[0]
    if kind == "n":
        out.append(node[1])
    elif kind == "add":
        for _, child in node[1]:
            _literals(child, out)
    elif kind in ("mul", "jux"):
        for child in node[1]:
            _literals(child, out)
    elif kind in ("func", "tuple"):
        for child in node[2]:
            _literals(child, out)
    else:
        for child in node[1:]:
            if isinstance(child, tuple):
                _literals(child, out)


# ---- relations -----------------------------------------------------------------------------------------------------

@dataclass
class Side:
    """One side of a relation as written (its span in the text) and as read."""

    start: int
    end: int
    source: str
    key: str                      # canonical; `?` + the squashed source when unreadable
    value: Value | None = None    # exact value when closed numeric
    readable: bool = True
    units: tuple = ()
    literals: list = field(default_factory=list)
    stated: int | None = None     # decimal places when the side is a bare number (a stated result), else None
    has_decimal: bool = False
    alt: Value | None = None      # the other reading of a percentage (`27\\%` as 27; `60` before "percent" as 0.6)


@dataclass
class Relation:
    """A relation chain `a op b op c ...` found in the text, with a verdict per adjacent pair."""

    start: int
    sides: list[Side]
    ops: list[str]
    verdicts: list[str]

    @property
    def key(self) -> str:
        out = self.sides[0].key
        for op, side in zip(self.ops, self.sides[1:]):
            out += op + side.key
        return out

    def pair(self, i: int) -> str:
        """The i-th pair as written, `lhs=rhs` (each side's whitespace folded)."""
        return f"{self.sides[i].source}{self.ops[i]}{self.sides[i + 1].source}"

    @property
    def wrong(self) -> list[str]:
        return [self.pair(i) for i, v in enumerate(self.verdicts) if v == FALSE]


@dataclass
class Reading:
    """Everything the reader found in one text."""

    relations: list[Relation]
    unreadable: int = 0     # sides of relations it could not read whole (never checked, never wrong)

    @property
    def checked(self) -> int:
        return sum(v in (TRUE, FALSE) for r in self.relations for v in r.verdicts)

    @property
    def wrong(self) -> list[str]:
        return [w for r in self.relations for w in r.wrong]


def _stated(node) -> int | None:
    """Decimal places when the tree is a bare number literal (possibly negated or a percentage), else None."""
    percent = node[0] == "pct"
    if percent:
        node = node[1]
    if node[0] == "neg":
        node = node[1]
    if node[0] == "n" and _DECIMAL_RE.fullmatch(node[2]):
        return len(node[2].partition(".")[2]) + (2 if percent else 0)
    return None


def _name_like(tokens: list[tuple]) -> bool:
    """`6-8-10`, `30-60-90`: three or more non-decreasing whole numbers joined by `-` name a triangle."""
    if len(tokens) < 5 or len(tokens) % 2 == 0:
        return False
    numbers = tokens[0::2]
    if any(t[0] != "num" or not t[1].isdigit() for t in numbers):
        return False
    if any(t[0] != "op" or t[1] != "-" for t in tokens[1::2]):
        return False
    values = [int(t[1]) for t in numbers]
    return all(x <= y for x, y in zip(values, values[1:]))


MEMO_SIZE = 1 << 16  # sides and math regions remembered per process (each memo is cleared when full)
_sides: dict[tuple, Side] = {}
_regions: dict[str, tuple[list[Relation], int]] = {}
MEMO_HITS: dict[str, int] = {"sides": 0, "side misses": 0, "regions": 0, "region misses": 0}


def _read_side(text: str, tokens: list[tuple]) -> Side:
    """One side read, a copy of the side parsed once per token sequence (its tokens' kinds and values: a side's
    reading depends on nothing else) in this process."""
    start, end = tokens[0][2], tokens[-1][3]
    source = " ".join(text[start:end].split())
    signature = tuple((t[0], t[1]) for t in tokens)
    known = _sides.get(signature)
    if known is None:
        MEMO_HITS["side misses"] += 1
        known = _parse_side(tokens, start, end, source)
        if len(_sides) >= MEMO_SIZE:
            _sides.clear()
        _sides[signature] = known
    else:
        MEMO_HITS["sides"] += 1
    return replace(known, start=start, end=end, source=source,
                   key=known.key if known.readable else "?" + _squash(source))


def _math_region(text: str, start: int, end: int) -> tuple[list[Relation], int]:
    """The relations of the math region text[start:end] and its unreadable sides: read once per distinct region
    text in this process (a region's tokens and relations depend on its text alone), then copied to its offset."""
    found, unreadable = _region_reading(text[start:end])
    return [Relation(r.start + start, [_moved(s, start) for s in r.sides], list(r.ops), list(r.verdicts))
            for r in found], unreadable


def _region_reading(body: str) -> tuple[list[Relation], int]:
    """The relations of a math region's text at offset 0 and its unreadable sides, read once per distinct text."""
    known = _regions.get(body)
    if known is None:
        MEMO_HITS["region misses"] += 1
        known = _relations_of(body, math_tokens(body), False)
        if len(_regions) >= MEMO_SIZE:
            _regions.clear()
        _regions[body] = known
    else:
        MEMO_HITS["regions"] += 1
    return known


def _moved(side: Side, offset: int) -> Side:
    """A copy of a side, `offset` characters later (`dataclasses.replace` costs 5x more: this runs per side read)."""
    copy = object.__new__(Side)
    copy.__dict__.update(side.__dict__)
    copy.start, copy.end = side.start + offset, side.end + offset
    return copy


def _parse_side(tokens: list[tuple], start: int, end: int, source: str) -> Side:
    if _name_like(tokens):
        return Side(start, end, source, "name:" + "-".join(t[1] for t in tokens[0::2]))
    try:
        parser = _Parser(tokens)
        tree = parser.side()
        key = _canon(tree)
        literals: list[Fraction] = []
        _literals(tree, literals)
    except (Refused, ZeroDivisionError, ValueError, OverflowError, RecursionError, KeyError, IndexError):
        return Side(start, end, source, "?" + _squash(source), readable=False)
    try:  # read whole; its value may still be out of reach (an irrational cube root, a budget): then not checked
        value = _value(tree)
        alt = _value(tree, percent=False) if value is not None and "%" in key else None
    except (Refused, ZeroDivisionError, ValueError, OverflowError, RecursionError):
        value = alt = None
    has_decimal = any(t[0] == "num" and "." in t[1] for t in tokens)
    return Side(start, end, source, key, value, True, tuple(sorted(set(parser.units))), literals, _stated(tree),
                has_decimal, alt)


def _has_pi(v: Value) -> bool:
    return any(k for _, k in v)


def _near(a: Value, b: Value) -> bool:
    """Within 1 % of each other as floats (a pi approximation such as 22/7 or 3)."""
    try:
        x, y = (sum(float(c) * math.sqrt(r) * math.pi ** k for (r, k), c in v.items()) for v in (a, b))
    except OverflowError:
        return True
    return abs(x - y) <= 0.01 * max(abs(x), abs(y))


def _verdict(op: str, a: Side, b: Side) -> str:
    """TRUE / FALSE only for `=` between closed numeric sides with the same units, at least one of them computed
    (`0 = 8` between two bare numbers states a contradiction, it computes nothing). A stated decimal (or whole)
    result within one unit of its last place is ROUNDED; a radical or pi against a side with a decimal, or pi against
    a rational within 1 %, is an approximation: UNCHECKED. A percentage equal under either reading (`27\\%` as 0.27 or
    as 27) is TRUE. Radicals and pi are otherwise compared exactly."""
    if op != "=" or a.value is None or b.value is None or a.units != b.units:
        return UNCHECKED
    if a.value == b.value:
        return TRUE
    if (a.alt is not None or b.alt is not None) and any(
            x == y for x in (a.value, a.alt) for y in (b.value, b.alt) if x is not None and y is not None):
        return TRUE
    if a.stated is not None and b.stated is not None:
        return UNCHECKED
    qa, qb = rational(a.value), rational(b.value)
    if qa is None or qb is None:
        if a.has_decimal or b.has_decimal or (qa is None) != (qb is None) and (
                _has_pi(a.value) or _has_pi(b.value)) and _near(a.value, b.value):
            return UNCHECKED  # sqrt 2 = 1.41, pi = 22/7: approximations, not computations
        return FALSE
    for stated, other, places in ((qb, qa, b.stated), (qa, qb, a.stated)):
        if places is not None and abs(other - stated) < Fraction(1, 10**places):
            if places > 0 or other.denominator != 1:
                return ROUNDED
    return FALSE


def _split_depth0(tokens: list[tuple], kinds: tuple[str, ...]) -> list[tuple[list[tuple], tuple | None]]:
    """Split a token list at tokens of the given kinds that are outside any brackets: [(part, separator)]."""
    parts, current, depth = [], [], 0
    for tok in tokens:
        kind = tok[0]
        if kind in ("open", "lb"):
            depth += 1
        elif kind in ("close", "rb"):
            depth = max(0, depth - 1)
        if depth == 0 and kind in kinds:
            parts.append((current, tok))
            current = []
        else:
            current.append(tok)
    parts.append((current, None))
    return parts


def _lines(tokens: list[tuple]) -> list[list[tuple]]:
    """Rows of an aligned display joined into logical lines: a row that starts with a relation (`&= ...`), with `+`,
    `\\cdot` or `\\div`, or with `-` and holds no relation, continues the previous one; so does any row after one
    that ends with an operator."""
    rows = [part for part, _ in _split_depth0(tokens, ("row",))]
    lines: list[list[tuple]] = []
    for row in rows:
        while row and row[0][0] == "sep" and row[0][1] in ("quad", "qquad"):
            row = row[1:]  # `&\\qquad + ...`: indentation
        if not row:
            continue
        has_rel = any(t[0] == "rel" for t in row)
        starts_rel = row[0][0] == "rel"
        starts_op = row[0][0] == "op" and row[0][1] in ("+", "*", "/", "pm")
        starts_minus = row[0][0] == "op" and row[0][1] == "-"
        ends_op = bool(lines) and lines[-1] and lines[-1][-1][0] == "op" and lines[-1][-1][1] in "+-*/"
        if lines and (starts_rel or ends_op or starts_op or (starts_minus and not has_rel)):
            lines[-1] = lines[-1] + row
        else:
            lines.append(list(row))
    return lines


def _relations_of(text: str, tokens: list[tuple], prose: bool) -> tuple[list[Relation], int]:
    relations, unreadable = [], 0
    for line in (_lines(tokens) if not prose else [tokens]):
        statements = _split_depth0(line, ("sep",))
        for k, (statement, _) in enumerate(statements):
            if not any(t[0] == "rel" for t in statement):
                continue
            pieces = _split_depth0(statement, ("rel",))
            groups, ops = [p for p, _ in pieces], [s[1] for _, s in pieces if s is not None]
            if prose:
                groups = _prose_ends(text, groups)
            keep = [i for i, g in enumerate(groups) if g]
            if len(keep) < 2 or any(not groups[i] for i in range(keep[0], keep[-1] + 1)):
                continue  # `x =` with its result in an annotation, `= 5` with nothing before: no relation
            groups, ops = groups[keep[0]:keep[-1] + 1], ops[keep[0]:keep[-1]]
            if len(groups) > MAX_SIDES:
                unreadable += len(groups) - MAX_SIDES
                groups, ops = groups[:MAX_SIDES], ops[:MAX_SIDES - 1]
            sides = [_read_side(text, g) for g in groups]
            unreadable += sum(not s.readable for s in sides)
            if any(t[0] == "mod" or (t[0] == "rel" and t[1] == "===") for t in statement) or \
                    _in_list(statements, k):
                verdicts = [UNCHECKED] * len(ops)  # modular arithmetic; `2/6, 2/8 = 1/3, 1/4` pairs two lists
            else:
                verdicts = [_verdict(op, a, b) for op, a, b in zip(ops, sides, sides[1:])]
            relations.append(Relation(sides[0].start, sides, ops, verdicts))
    return relations, unreadable


def _in_list(statements: list[tuple[list[tuple], tuple | None]], k: int) -> bool:
    """Statement k sits between two comma-separated items that hold no relation: `a, b = c, d`."""
    if k == 0 or k + 1 >= len(statements):
        return False
    before, comma_before = statements[k - 1]
    after, comma_after = statements[k + 1][0], statements[k][1]
    return (comma_before is not None and comma_before[1] == "," and comma_after is not None
            and comma_after[1] == "," and bool(before) and bool(after)
            and not any(t[0] == "rel" for t in before) and not any(t[0] == "rel" for t in after))


# ---- regions of a text -------------------------------------------------------------------------------------------

_OPENER = re.compile(r"\\\$|\$\$|\$|\\\(|\\\[|\\begin\{(align|eqnarray|equation|gather|multline|flalign|alignat|"
                     r"displaymath|math)(\*?)\}|\[asy\]")
_DOLLAR = re.compile(r"(?<!\\)\$")
_MATH_DOLLAR = re.compile(r"(?<!\\)\$(?! ?\.?\d)")  # a `$` not followed by a digit: the text uses `$` for math
_PROSE_WORDS = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}[ \t]+[A-Za-z]{2,}(?![A-Za-z])")
_FINAL_LINE = re.compile(r"Final Answer: The final answer is ")
_HOPE = "I hope it is correct"
MASK = "#"


def mask(text: str, skip: list[tuple[int, int]] | None = None) -> str:
    """The text with the spans in `skip` (calculator annotations) and a Minerva closing line ("Final Answer: The
    final answer is $X$. I hope it is correct.") overwritten by `#`: neither is read, offsets stay the same."""
    spans = list(skip or [])
    for m in _FINAL_LINE.finditer(text):
        hope = text.find(_HOPE, m.end(), m.end() + 2_000)
        stop = text.find("\n", m.end())
        end = hope + len(_HOPE) + (text.startswith(".", hope + len(_HOPE))) if hope >= 0 else \
            stop if stop >= 0 else len(text)
        spans.append((m.start(), end))
    if not spans:
        return text
    pieces, last = [], 0
    for start, end in sorted(spans):
        start = max(start, last)
        if end > start:
            pieces += [text[last:start], MASK * (end - start)]
            last = end
    return "".join(pieces) + text[last:]


def regions(text: str) -> list[tuple[str, int, int]]:
    """`_regions_of(text)`, remembered for the last text (collect reads a text's regions for its key, then again for
    its fallback key or its groundedness)."""
    if _last_cut[0] == text:
        return _last_cut[1]
    found = _regions_of(text)
    _last_cut[:] = [text, found]
    return found


_last_cut: list = [None, None]


def _regions_of(text: str) -> list[tuple[str, int, int]]:
    """The text cut into ("math", start, end), ("prose", start, end) and ("skip", start, end) pieces, in order:
    `$...$`, `$$...$$`, `\\(...\\)`, `\\[...\\]` and align/eqnarray/equation/gather environments are math (when
    every `$` of the text is followed by a digit they are dollar signs, and a `$...$` pair holding running words is
    prose); `[asy]` pictures are skipped."""
    dollars = "$" in text and _MATH_DOLLAR.search(text.replace(MASK, "") if MASK in text else text) is not None
    out: list[tuple[str, int, int]] = []
    pos = search = 0
    never: set[str] = set()  # closers known to be absent from here on
    while (m := _OPENER.search(text, search)) is not None:
        opener, search = m.group(), m.end()
        if opener == "\\$" or (opener in ("$", "$$") and not dollars):
            continue
        closer = f"\\end{{{m.group(1)}{m.group(2)}}}" if m.group(1) else \
            {"$": "$", "$$": "$$", "\\(": "\\)", "\\[": "\\]", "[asy]": "[/asy]"}[opener]
        if closer in never:
            continue
        if opener == "$":
            found = _DOLLAR.search(text, m.end())
            close_at = found.start() if found else -1
        else:
            close_at = text.find(closer, m.end())
        if close_at < 0:
            never.add(closer)
            continue
        body_start, body_end, after = m.end(), close_at, close_at + len(closer)
        if m.group(1):
            body_start, body_end = m.start(), after  # the environment's own \\begin / \\end are transparent
        if opener == "$":
            body = text[body_start:body_end]
            if "\n\n" in body or _PROSE_WORDS.search(_strip_text_args(body)):
                continue  # a dollar sign, not math: its partner may open the next region
        if m.start() > pos:
            out.append(("prose", pos, m.start()))
        out.append(("skip" if opener == "[asy]" else "math", body_start, body_end))
        pos = search = after
    if pos < len(text):
        out.append(("prose", pos, len(text)))
    return out


_TEXT_ARG = re.compile(r"\\(?:text|mbox|textbf|textit|mathrm|operatorname|textrm|emph)\s*\{[^{}]*\}")


def _strip_text_args(body: str) -> str:
    return _TEXT_ARG.sub(" ", body) if "\\" in body else body


_PERCENT_AFTER = re.compile(r"(?:\$\$|\$|\\\)|\\\]|\s){0,4}(?:\\?%|percent)")
_SENTENCE_END = re.compile(r"[.!?:](?:\$\$|\$|\\\]|\\\))?\s|\n\s*\n")
_MODULAR = re.compile(r"(?i)\bmod(?:ulo|ular)?\b|\\[pb]?mod|units? digit|ones digit|last (?:two |three )?digit"
                      r"|residue|\\equiv|\bin base\b|\bbase[- ]?\d|\bparity\b")
_REFUTED = re.compile(r"(?i)\bnot\s+(?:a\s+)?(?:valid|true|correct|possible|help)\b|\bwould\s+not\b|\bcontradict\w*"
                      r"|\bno\s+(?:real\s+)?solutions?\b|\bextraneous\b|\babsurd\b|\bis\s+false\b|\\neq?\b")
CONTEXT_CHARS = 250


# Two sides that differ by one of these factors, with its unit named around them, are a unit conversion written as an
# equality (`$1/2 = 50` cents, `5 * 3 = 15,000` after "5 thousand dollars"), not a computation.
_CONVERSIONS = {100: r"cents?|percent|%", 1000: r"thousands?|\d\s?k\b|kilo|grams?|met(?:er|re)s?|liters?|ml\b",
                10**6: r"millions?", 10**9: r"billions?", 60: r"minutes?|seconds?|hours?|mins?\b|secs?\b",
                3600: r"seconds?|hours?", 12: r"inch|inches|f(?:oo|ee)t|months?|dozens?", 24: r"hours?|days?",
                16: r"ounces?|oz\b|pounds?|lbs?\b"}


def _converts(text: str, relation: Relation, i: int) -> bool:
    """Pair i is refuted only by a unit conversion factor whose unit the words around the relation name."""
    a, b = rational(relation.sides[i].value or {}), rational(relation.sides[i + 1].value or {})
    if not a or not b:
        return False
    ratio = abs(a / b) if abs(a) > abs(b) else abs(b / a)
    unit = _CONVERSIONS.get(ratio) if ratio.denominator == 1 else None
    if unit is None:
        return False
    start, end = relation.sides[0].start, relation.sides[-1].end
    around = text[max(0, start - CONTEXT_CHARS):end + CONTEXT_CHARS]
    return re.search(rf"(?i)(?:{unit})", around) is not None


def _context_excuses(text: str, relation: Relation) -> bool:
    """Whether the words around an equality the calculator refutes say it is not a computation: modular talk in its
    sentence ("units digit", "mod 7", "residue", "in base 6", "parity"), or a refutation in the rest of its sentence or
    the next ("this is not a valid statement", "would not help", "a contradiction", "no solutions")."""
    start, end = relation.sides[0].start, relation.sides[-1].end
    before = text[max(0, start - CONTEXT_CHARS):start]
    cut = None
    for cut in _SENTENCE_END.finditer(before):
        pass
    if _MODULAR.search(before[cut.end():] if cut else before) or _MODULAR.search(text[start:end]):
        return True
    after = text[end:end + CONTEXT_CHARS]
    stops = [m.end() for m in _SENTENCE_END.finditer(after)][:2]
    if _MODULAR.search(after[:stops[0]] if stops else after):
        return True
    return bool(_REFUTED.search(after[:stops[-1]] if len(stops) == 2 else after))


def read(text: str, skip: list[tuple[int, int]] | None = None) -> Reading:
    """Every relation of a text (math regions and plain-text arithmetic), in reading order, each pair checked; the
    spans in `skip` (calculator annotations) and a Minerva closing line are not read."""
    text = mask(text, skip)
    relations: list[Relation] = []
    unreadable = 0
    for kind, start, end in regions(text):
        if kind == "math":
            found, bad = _math_region(text, start, end)
            last = found[-1].sides[-1] if found else None
            if last is not None and last.value is not None and _PERCENT_AFTER.match(text, end):
                last.alt = _mul(last.value, _const(Fraction(1, 100)))  # `$\\frac{15}{25} = 60$ percent`
                rel = found[-1]
                rel.verdicts[-1] = _verdict(rel.ops[-1], rel.sides[-2], last)
        elif kind == "prose" and "=" in text[start:end]:
            found, bad = [], 0
            for run in prose_segments(text, start, end):
                got, b = _relations_of(text, run, True)
                found += got
                bad += b
        else:
            continue
        relations += found
        unreadable += bad
    for relation in relations:
        if FALSE not in relation.verdicts:
            continue
        if _context_excuses(text, relation):
            relation.verdicts = [UNCHECKED if v == FALSE else v for v in relation.verdicts]
        else:
            relation.verdicts = [UNCHECKED if v == FALSE and _converts(text, relation, i) else v
                                 for i, v in enumerate(relation.verdicts)]
    return Reading(relations, unreadable)


def keys(text: str) -> list[str] | None:
    """The keys of a text's relations in reading order, as `read` gives them, when the calculator refutes none of
    them, without building the relations (a math region's keys and verdicts are remembered per region text). None
    where `read` is needed: a pair the region alone refutes (the words around it may excuse it) or a value followed
    by a percent sign (read as a percentage)."""
    text = mask(text)
    out: list[str] = []
    for kind, start, end in regions(text):
        if kind == "math":
            body = text[start:end]
            known = _summaries.get(body)
            if known is None:  # keys and verdicts do not depend on the region's offset: no copies moved
                found, _ = _region_reading(body)
                known = (tuple(r.key for r in found), any(FALSE in r.verdicts for r in found),
                         bool(found) and found[-1].sides[-1].value is not None)
                if len(_summaries) >= MEMO_SIZE:
                    _summaries.clear()
                _summaries[body] = known
            else:
                MEMO_HITS["regions"] += 1
            found_keys, refuted, last_value = known
            if refuted or (last_value and _PERCENT_AFTER.match(text, end)):
                return None
            out += found_keys
        elif kind == "prose" and "=" in text[start:end]:
            for run in prose_segments(text, start, end):
                found, _ = _relations_of(text, run, True)
                if any(FALSE in r.verdicts for r in found):
                    return None
                out += [r.key for r in found]
    return out


_summaries: dict[str, tuple[tuple[str, ...], bool, bool]] = {}  # math region text -> (keys, refuted, ends in a value)


def fingerprint(text: str) -> str:
    """The text with its math spelled canonically: each statement of a math region by its key when it reads whole
    (`(3+4)(5)` = `5(4+3)`), else squashed; plain text squashed; a Minerva closing line dropped. The fallback key of
    a solution without relations."""
    text = mask(text)
    out = []
    for kind, start, end in regions(text):
        if kind == "math":
            for line in _lines(math_tokens(text, start, end)):
                for statement, separator in _split_depth0(line, ("sep",)):
                    if statement:
                        side = _parse_side(statement, statement[0][2], statement[-1][3],
                                           text[statement[0][2]:statement[-1][3]])
                        out.append(side.key if side.readable else "?" + _squash(side.source))
                    if separator is not None and separator[1].startswith("text:"):
                        out.append(_squash(separator[1]))
        elif kind == "prose":
            out.append(_squash(text[start:end].replace(MASK, "")))
    return "|".join(piece for piece in out if piece)
