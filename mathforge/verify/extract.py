"""Final-answer extraction from model output: reasoning blocks, boxed answers, standard answer phrases."""
from __future__ import annotations

import re

from mathforge.verify.answers import GSM8K_ANSWER_RE, strict_number

MAX_ANSWER_CHARS = 1_000          # an "answer" longer than this is a solution, not an answer
PHRASE_WINDOW = 4_000           # "final answer is" / "the answer is" are looked for in the last this many characters
MAX_LINE_CHARS = 400            # the end of a line that the sentence rules read
MAX_BARE_ANSWER_CHARS = 200       # a whole text this short without prose is itself the answer
# three words in a row: prose. Entered only at a word's first letter, and possessive: linear on any text (the
# plain `[A-Za-z]{2,}\s+...` rescans a 40,000-letter word from each of its letters)
PROSE_RE = re.compile(r"(?<![A-Za-z])[A-Za-z]{2,}+\s++[A-Za-z]{2,}+\s++[A-Za-z]{2}")
THINK_OPEN_RE = re.compile(r"<(think|thinking|reasoning)>", re.IGNORECASE)
THINK_CLOSE_RE = re.compile(r"</(think|thinking|reasoning)>", re.IGNORECASE)
# `\\boxed{...}`, or TeX's one-token argument without braces (`\\boxed 9`, as some MATH solutions write it): one
# digit, letter or command not followed by another (`\\boxed 23` boxes only the 2 in TeX: no box is read)
BOX_RE = re.compile(r"\\(?:boxed|fbox)(?:\s*\{|\s+([0-9A-Za-z]|\\[A-Za-z]+)(?![0-9A-Za-z]))")
# what may stand between two boxed answers of one group: commas, "and", "or", spaces, math delimiters
BOX_JOINER_RE = re.compile(r"^(?:\s|,|;|\$|[A-Za-z](?:_\{?\w+\}?)?\s*=|\\[()\[\]]|\\quad|\\qquad|\\,|\\;|\\text\{\s*(?:and|or|,)\s*\}|\band\b|\bor\b)*$")
# answers are read up to 300 characters on their line: bounded, so no pattern can scan a hostile text twice over
MINERVA_RE = re.compile(r"final answer is:?[ \t]*([^\n]{1,300}?)[ \t]*(?:\.[ \t]*I hope it is correct|\n|$)", re.IGNORECASE)
ANSWER_IS_RE = re.compile(r"\b(?:the )?(?:final )?answer(?: is|:)[ \t]*:?[ \t]*([^\n]{1,300}?)[ \t]*"
                          r"(?:\.[ \t]*(?:\n|$)|\.[ \t]+[A-Z]|\n|$)", re.IGNORECASE)
NUMBER_WITH_WORDS_RE = re.compile(r"^\$?(-?[0-9][0-9,]*(?:\.[0-9]+)?)\s+[A-Za-z][A-Za-z\s.]*$")
NUMBER_IN_TEXT_RE = re.compile(r"(?<![\w.])-?[0-9][0-9,]*(?:\.[0-9]+)?(?![\w.])")
DISPLAY_RE = re.compile(r"\$\$(.{1,2000}?)\$\$|\\\[(.{1,2000}?)\\\]", re.DOTALL)
HOPE_RE = re.compile(r"(?<=[.!?\n])([^.!?\n]{1,300})[.!][ \t]*I hope it is correct", re.IGNORECASE)
CHAT_END_RE = re.compile(r"<\|(?:im_start|im_end|endoftext|eot_id|end_of_text|end)\|>|</s>")
MATH_REGION_RE = re.compile(r"\$\$(.{1,2000}?)\$\$|\\\[(.{1,2000}?)\\\]|\\\(([^\n]{1,2000}?)\\\)|\$([^$\n]{1,2000}?)\$",
                            re.DOTALL)
ONE_REGION_RE = re.compile(r"^(?:\$\$(.+)\$\$|\\\[(.+)\\\]|\\\((.+)\\\)|\$([^$]+)\$)\.?$", re.DOTALL)
TEXT_CMD_RE = re.compile(r"\\(?:text|textbf|mathrm|mbox)\s*\{[^{}]*\}")
BOLD_RE = re.compile(r"\*\*([^*\n]{1,80})\*\*")
LAST_EQUALS_RE = re.compile(r"(?<![<>!])=\s*\$?([^=$]{1,80}?)\$?\s*\.?\s*$")
IS_END_RE = re.compile(r"\b(?:is|are|was|were|equals|gives|get|makes|costs?|totals?|by)\s+(?:\\?\$)?([^\s$][^=$]{0,60}?)\$?\s*\.?\s*$", re.IGNORECASE)
WORD_RE = re.compile(r"[A-Za-z]{2,}")
ASSIGNMENT_RE = re.compile(r"^\s*[A-Za-z](?:_\{?\w+\}?)?\s*=[^=]+$")  # `x = 3`
LIST_SPLIT_RE = re.compile(r",|\\text\{\s*(?:and|or)\s*\}|\b(?:and|or)\b")
LABEL_RE = re.compile(r"^\W*[A-Za-z]+(?:\s[A-Za-z]+){0,2}\W*:\W*(.+)$")  # "Total: 1,024", "**Answer:** 17"
TEXT_OR_CMD_RE = re.compile(r"\\[A-Za-z]+")
MATHLIKE_RE = re.compile(r"^[^A-Za-z]*[0-9\\]")  # a standalone answer found in prose must start like math

# The priority order, first match wins (README "Verification"):
PRIORITY = ("reasoning", "boxed", "####", "final answer is", "the answer is", "bold", "standalone")


def split_reasoning(text: str) -> tuple[str | None, str | None]:
    """(reasoning, final text): the text after the last `</think>` is the final text; an unclosed `<think>` is a
    reasoning trace cut off before its answer (no final text). Text without a reasoning block is all final."""
    if "<" not in text:  # no tag at all (most texts): skip both scans
        return None, text
    closes = list(THINK_CLOSE_RE.finditer(text))
    if closes:
        head, tail = text[:closes[-1].start()], text[closes[-1].end():]
        opened = THINK_OPEN_RE.search(head)
        return (head[opened.end():] if opened else head).strip(), tail
    opened = THINK_OPEN_RE.search(text)
    if opened:
        return text[opened.end():].strip(), None
    return None, text


def boxed_all(text: str) -> list[tuple[int, int, str]]:
    """Every `\\boxed{...}` / `\\fbox{...}` with balanced braces, and `\\boxed 9`: (start, end, content), in order."""
    found, pos = [], 0
    while (match := BOX_RE.search(text, pos)) is not None:
        if match.group(1) is not None:  # `\\boxed 9`
            found.append((match.start(), match.end(), match.group(1)))
            pos = match.end()
            continue
        depth, i = 0, match.end() - 1
        for i in range(match.end() - 1, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    break
        if depth != 0:
            break  # unclosed: nothing after it is a complete box
        found.append((match.start(), i + 1, text[match.end():i].strip()))
        pos = i + 1
    return found


def last_box_group(text: str) -> str | None:
    """The last boxed answer, or the last group of boxes joined only by `,` / `and` / spaces, as `a, b`."""
    boxes = boxed_all(text)
    if not boxes:
        return None
    group = [boxes[-1]]
    for box in reversed(boxes[:-1]):
        if not BOX_JOINER_RE.match(text[box[1]:group[0][0]]):
            break
        group.insert(0, box)
    return ", ".join(content for _, _, content in group)


def answer_like(text: str) -> bool:
    """A whole text that is an answer, not a sentence: math (`\\frac{1}{2}`, `x = 3`, `(1, 2]`), a number with a
    unit of up to two words (`12 square feet`), or a single word (`Monday`)."""
    words = WORD_RE.findall(TEXT_OR_CMD_RE.sub(" ", text))
    if LABEL_RE.match(text) and not text.lstrip().startswith("\\"):
        return False  # "Total: 1,024" is a label and its answer (the last-line rule reads it)
    if "=" in text and not all(ASSIGNMENT_RE.match(piece) for piece in LIST_SPLIT_RE.split(text) if piece.strip()):
        return False  # a calculation ("3+6=9") is read by the last-line rule instead
    if "=" in text:
        return True  # `x = 3`, `x = -2 or x = 3`
    return len(words) <= 1 or (len(words) <= 3 and bool(MATHLIKE_RE.match(text)))


def _clean(answer: str) -> str | None:
    answer = answer.strip().strip("*").strip().strip("$").strip()
    if answer.endswith("."):  # a sentence's full stop, never part of an answer
        answer = answer[:-1].rstrip().strip("$").strip()
    return answer if answer and len(answer) <= MAX_ANSWER_CHARS else None


def final_answer(text: str, mode: str = "auto") -> tuple[str | None, str]:
    """(the final answer of a model's output or None, how it was found), in the documented priority order.

    gsm8k mode is the exact GSM8K rule (`#### n`, or a bare number). math/auto read the text after any reasoning
    block (and before any chat-template end token): the last boxed group, the first `####`, Minerva's "final
    answer is", "the answer is", a text that is itself an answer or one math region, the last bold answer, then
    the last line: `Label: X`, "... is X", "... = X", or its last math region."""
    if mode == "gsm8k":
        if "####" not in text and strict_number(text) is not None:
            return text.strip(), "standalone"
        match = GSM8K_ANSWER_RE.search(text.split("\x00", 1)[0])
        return (match.group(1).replace(",", ""), "####") if match else (None, "none")
    text = text.split("\x00", 1)[0]  # a NUL ends the text, as in the GSM8K reference's reading
    _, final = split_reasoning(CHAT_END_RE.split(text, 1)[0])
    if final is None:
        return None, "reasoning not finished"
    tail_at = max(0, len(final) - PHRASE_WINDOW)  # answer phrases are read near the end only: bounded work
    tail = final[tail_at:].lower() if final.isascii() else None  # an ASCII text's phrase patterns run only where their
    minerva = list(MINERVA_RE.finditer(final, _at(tail, tail_at, "final answer is"))) \
        if _has(tail, "final answer is") else []  # words are
    boxes = boxed_all(final)
    if boxes and not (minerva and minerva[-1].start() > boxes[-1][1]):  # a box, unless a later "final answer is"
        return (_clean(last_box_group(final)) or None), "boxed"
    if "####" in final:  # the first `#### answer`, as GSM8K's reference reads it (a model may run on)
        answer = next(filter(None, map(_after_marker, final.split("####")[1:])), None)
        return answer, "####"
    for name, pattern in (("final answer is", MINERVA_RE), ("the answer is", ANSWER_IS_RE)):
        words = "final answer is" if pattern is MINERVA_RE else "answer"
        matches = list(pattern.finditer(final, _at(tail, tail_at, words))) if _has(tail, words) else []
        if matches:
            return answer_in(matches[-1].group(1).split("\n", 1)[0].strip()), name
    stripped = final.strip().strip("*").strip()
    if stripped and len(stripped) <= MAX_ANSWER_CHARS and (region := ONE_REGION_RE.match(stripped)):
        return _clean(next(g for g in region.groups() if g is not None)), "math"
    if stripped and len(stripped) <= MAX_BARE_ANSWER_CHARS and "\n" not in stripped and answer_like(stripped):
        return _clean(stripped), "standalone"
    bold = [b for b in BOLD_RE.findall(final) if not b.rstrip().endswith(":")]  # not a "**Step 1:**" heading
    if bold:
        return _clean(bold[-1]), "bold"
    ends_displayed = final.rstrip(" .\n").endswith(("$$", "\\]"))  # else no region can end the text: skip the scan
    regions = list(DISPLAY_RE.finditer(final, tail_at)) if ends_displayed else []
    if regions and not final[regions[-1].end():].strip(" .\n"):  # the text ends with a displayed answer
        return _clean(next(g for g in regions[-1].groups() if g is not None)), "math"
    hoped = list(HOPE_RE.finditer("\n" + final[tail_at:])) if _has(tail, "i hope it is correct") else []
    if hoped:  # Minerva's closing line without its "final answer is": the sentence before it is the answer
        return answer_in(hoped[-1].group(1)), "final answer is"
    last_line = next((line for line in reversed(final.strip().splitlines()) if line.strip()), "")
    found = sentence_answer(last_line)
    return (found, "last line") if found is not None else (None, "none")


def _has(tail: str | None, words: str) -> bool:
    """Whether an answer phrase's pattern may match: its words are in the lower-cased ASCII tail (None: a text with
    other characters, where case-insensitive matching can fold a non-ASCII letter into these words)."""
    return tail is None or words in tail


def _at(tail: str | None, tail_at: int, words: str) -> int:
    """Where a phrase pattern's search starts: its words' first place in the ASCII tail (no match starts before it;
    lower-casing ASCII keeps every offset), else the tail's start."""
    return tail_at + tail.find(words) if tail is not None else tail_at


def _after_marker(part: str) -> str | None:
    """The answer on the line after a `####`: a number (`1,234` is 1234; `18 dollars` is 18) or math; None for
    words only, so `#### see below` is passed over."""
    line = _clean(part.strip().split("\n", 1)[0])
    if line is None:
        return None
    if strict_number(line) is not None:
        return line.replace(",", "").lstrip("$").strip()
    if (match := NUMBER_WITH_WORDS_RE.match(line)) is not None:
        return match.group(1).replace(",", "")
    return line if MATHLIKE_RE.match(line) or "\\" in line else None


def answer_in(phrase: str) -> str | None:
    """What an answer phrase gives: itself when it is an answer, else the answer its sentence ends with."""
    cleaned = _clean(phrase)
    if cleaned is None or answer_like(cleaned) or ONE_REGION_RE.match(phrase.strip()):
        return cleaned
    found = sentence_answer(phrase)
    if found is None and len(numbers := NUMBER_IN_TEXT_RE.findall(phrase)) == 1:
        found = numbers[0]  # "Final Answer: Jane started growing Sphere 3 hours ago": the one number in it
    return found or cleaned


def sentence_answer(line: str) -> str | None:
    """The answer a sentence ends with: `Label: X`, "... is X", "... = X" (math-like X), or its last math region."""
    line = line if len(line) <= MAX_LINE_CHARS else line[-MAX_LINE_CHARS:]  # an answer ends its line
    for pattern in (LABEL_RE, IS_END_RE, LAST_EQUALS_RE):
        match = pattern.search(line)
        if match and MATHLIKE_RE.match(match.group(1)):
            return _clean(match.group(1))
    regions = list(MATH_REGION_RE.finditer(line))
    if regions:
        return _clean(next(g for g in regions[-1].groups() if g is not None))
    return None


def gold_answer(text: str, mode: str = "auto") -> str | None:
    """The answer in a gold solution or gold answer, read literally: its boxed group, `####`, or the whole text
    (datasets give bare answers such as `x \\geq 5` or `f(y) = y`, which the model-output heuristics would cut)."""
    if mode == "gsm8k" or "####" in text or last_box_group(text) is not None:
        return final_answer(text, mode)[0]
    stripped = text.strip()
    if len(stripped) <= MAX_ANSWER_CHARS and not PROSE_RE.search(TEXT_CMD_RE.sub("", stripped)):
        region = ONE_REGION_RE.match(stripped)
        return _clean(next(g for g in region.groups() if g is not None)) if region else _clean(stripped)
    return final_answer(text, mode)[0]
