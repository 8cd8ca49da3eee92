"""Per-sample verification for collect: final answer against gold, calculator check, equation key."""
from __future__ import annotations

from fractions import Fraction

from mathforge.verify.answers import gsm8k_extract, paper_extract, strict_number
from mathforge.verify.arithmetic import paper_check
from mathforge.verify.equations import all_equations, annotations, checked_key, format_number, paper_key
from mathforge.verify.grader import KINDS, VERIFIER, grade, reference_answer

UNPARSEABLE, WRONG, CALCULATOR, OK = "unparseable", "wrong", "calculator", "ok"


class PaperJudge:
    """The reference rule: float equality of the first `#### x`; every annotation must satisfy the calculator."""

    name = "paper"
    verifier = "mathforge-paper/1 (gsm8k-ScRel rule: float(#### x) == gold; |lhs-rhs| < 1e-3 per <<lhs=rhs>>)"

    def __init__(self, problems: list, offset: int = 0):
        self.offset = offset  # problems[0] is problem `offset` (a partition's judge holds only its problems)
        self.gold = []
        for p in problems:
            answer = paper_extract(p.solution)
            self.gold.append(float(answer) if answer is not None else None)
        self._checked: dict[str, bool] = {}

    def gold_answer(self, index: int) -> str | None:
        value = self.gold[index - self.offset]
        return None if value is None else repr(value)

    def judge(self, index: int, text: str) -> tuple[str, object, str | None]:
        """(status, answer value or None, equation key when status is OK)."""
        answer = paper_extract(text)
        if answer is None:
            return UNPARSEABLE, None, None
        value = float(answer)
        gold = self.gold[index - self.offset]
        if gold is None or value != gold:
            return WRONG, value, None
        bodies = annotations(text)
        checked = self._checked
        for body in bodies:
            ok = checked.get(body)
            if ok is None:
                ok = checked[body] = paper_check(body)
            if not ok:
                return CALCULATOR, value, None
        return OK, value, paper_key(bodies)

    def equations(self, text: str) -> list[str]:
        return annotations(text)


class CanonicalJudge:
    """mathforge's rule: exact answer equivalence (math-verify beyond numbers), exact-rational arithmetic on
    annotations and on the equalities of LaTeX math and plain text (`equations.steps`: an equality it cannot read,
    or that holds a variable, is never a calculator failure), and a key from the normalized equations in order
    (3+4=7 equals 4+3=7; a solution without any: its text, `equations.text_key`)."""

    name = "canonical"
    verifier = f"mathforge-canonical/2 ({VERIFIER})"  # /2: LaTeX and plain-text equations read (issue 24)

    def __init__(self, problems: list, offset: int = 0):
        self.offset = offset  # problems[0] is problem `offset` (a partition's judge holds only its problems)
        self.problems = problems
        self.gold: list[Fraction | None] = []
        for p in problems:
            answer = gsm8k_extract(p.solution)
            self.gold.append(strict_number(answer) if answer is not None else None)
        self._numbers: dict[str, Fraction | None] = {}

    def gold_answer(self, index: int) -> str | None:
        value = self.gold[index - self.offset]
        if value is not None:
            return format_number(value)
        problem = self.problems[index - self.offset]  # a LaTeX (or other non-number) gold answer, as the grader reads it
        return reference_answer(problem.solution, getattr(problem, "answer_kind", "auto"))

    def judge(self, index: int, text: str) -> tuple[str, object, str | None]:
        gold = self.gold[index - self.offset]
        answer = gsm8k_extract(text)
        if gold is not None and answer is None:
            return UNPARSEABLE, None, None
        value = self._numbers.get(answer, False) if answer is not None else None
        if value is False:
            value = self._numbers[answer] = strict_number(answer)
        if gold is not None and value is not None:
            if value != gold:
                return WRONG, value, None
        else:
            problem = self.problems[index - self.offset]
            verdict = grade(problem.solution, text, KINDS[getattr(problem, "answer_kind", "auto")])
            if verdict.verdict != "correct":
                return (WRONG if verdict.verdict == "wrong" else UNPARSEABLE), verdict.pred, None
            value = verdict.pred
        refuted, key = checked_key(text)
        if refuted:
            return CALCULATOR, value, None
        return OK, value if isinstance(value, str) else format_number(value), key

    def equations(self, text: str) -> list[str]:
        return all_equations(text)


JUDGES = {"paper": PaperJudge, "canonical": CanonicalJudge}
