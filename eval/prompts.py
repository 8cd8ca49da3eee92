"""Few-shot prompts for `mathforge eval`: the 8-shot GSM8K chain-of-thought and the 4-shot Minerva MATH exemplars."""
from __future__ import annotations

from dataclasses import dataclass

from mathforge.builders.prompts import ALPACA

from mathforge.errors import InputError

# The eight GSM8K chain-of-thought exemplars of Wei et al. 2022, "Chain-of-Thought Prompting Elicits Reasoning in
# Large Language Models" (Table 20), the 8-shot prompt the RFT paper (Yuan et al. 2023, "Scaling Relationship on
# Learning Mathematical Reasoning with Large Language Models") evaluates in-context learning with. The reasoning is
# Wei et al.'s word for word; only the closing "The answer is N." is written in GSM8K's `#### N` form, the form
# the project's models are trained on and the GSM8K grader reads.
GSM8K_SHOTS: tuple[tuple[str, str], ...] = (
    ("There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they are done, "
     "there will be 21 trees. How many trees did the grove workers plant today?",
     "There are 15 trees originally. Then there were 21 trees after some more were planted. So there must have "
     "been 21 - 15 = 6.\n#### 6"),
    ("If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the parking lot?",
     "There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5.\n#### 5"),
    ("Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they have left in total?",
     "Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = 74. After eating 35, "
     "they had 74 - 35 = 39.\n#### 39"),
    ("Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 lollipops. How many lollipops did "
     "Jason give to Denny?",
     "Jason started with 20 lollipops. Then he had 12 after giving some to Denny. So he gave Denny 20 - 12 = 8."
     "\n#### 8"),
    ("Shawn has five toys. For Christmas, he got two toys each from his mom and dad. How many toys does he have "
     "now?",
     "Shawn started with 5 toys. If he got 2 toys each from his mom and dad, then that is 4 more toys. 5 + 4 = 9."
     "\n#### 9"),
    ("There were nine computers in the server room. Five more computers were installed each day, from monday to "
     "thursday. How many computers are now in the server room?",
     "There were originally 9 computers. For each of 4 days, 5 more computers were added. So 5 * 4 = 20 computers "
     "were added. 9 + 20 is 29.\n#### 29"),
    ("Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 more. How many golf "
     "balls did he have at the end of wednesday?",
     "Michael started with 58 golf balls. After losing 23 on tuesday, he had 58 - 23 = 35. After losing 2 more, "
     "he had 35 - 2 = 33 golf balls.\n#### 33"),
    ("Olivia has $23. She bought five bagels for $3 each. How much money does she have left?",
     "Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has 23 - 15 dollars "
     "left. 23 - 15 is 8.\n#### 8"),
)

# The 4-shot MATH prompt of Minerva: Lewkowycz et al. 2022, "Solving Quantitative Reasoning Problems with Language
# Models" (Appendix D.2), character for character as the community reproduces it (EleutherAI lm-evaluation-harness,
# task minerva_math), including the stray `}` closing the first problem. Each solution ends with the line the
# grader's "final answer is" rule reads.
MINERVA_SHOTS: tuple[tuple[str, str], ...] = (
    (r"Find the domain of the expression  $\frac{\sqrt{x-2}}{\sqrt{5-x}}$.}",
     r"The expressions inside each square root must be non-negative. Therefore, $x-2 \ge 0$, so $x\ge2$, and "
     r"$5 - x \ge 0$, so $x \le 5$. Also, the denominator cannot be equal to zero, so $5-x>0$, which gives $x<5$. "
     r"Therefore, the domain of the expression is $\boxed{[2,5)}$."
     "\nFinal Answer: The final answer is $[2,5)$. I hope it is correct."),
    (r"If $\det \mathbf{A} = 2$ and $\det \mathbf{B} = 12,$ then find $\det (\mathbf{A} \mathbf{B}).$",
     r"We have that $\det (\mathbf{A} \mathbf{B}) = (\det \mathbf{A})(\det \mathbf{B}) = (2)(12) = \boxed{24}.$"
     "\nFinal Answer: The final answer is $24$. I hope it is correct."),
    ("Terrell usually lifts two 20-pound weights 12 times. If he uses two 15-pound weights instead, how many times "
     "must Terrell lift them in order to lift the same total weight?",
     r"If Terrell lifts two 20-pound weights 12 times, he lifts a total of $2\cdot 12\cdot20=480$ pounds of weight."
     r"  If he lifts two 15-pound weights instead for $n$ times, he will lift a total of $2\cdot15\cdot n=30n$ "
     r"pounds of weight.  Equating this to 480 pounds, we can solve for $n$:"
     "\n\\begin{align*}\n30n&=480\\\\\n\\Rightarrow\\qquad n&=480/30=\\boxed{16}\n\\end{align*}"
     "\nFinal Answer: The final answer is $16$. I hope it is correct."),
    ("If the system of equations\n\n\\begin{align*}\n6x-4y&=a,\\\\\n6y-9x &=b.\n\\end{align*}has a solution "
     "$(x, y)$ where $x$ and $y$ are both nonzero,\nfind $\\frac{a}{b},$ assuming $b$ is nonzero.",
     "If we multiply the first equation by $-\\frac{3}{2}$, we obtain\n\n$$6y-9x=-\\frac{3}{2}a.$$Since we also "
     "know that $6y-9x=b$, we have\n\n$$-\\frac{3}{2}a=b\\Rightarrow\\frac{a}{b}=\\boxed{-\\frac{2}{3}}.$$"
     "\nFinal Answer: The final answer is $-\\frac{2}{3}$. I hope it is correct."),
)


@dataclass(frozen=True)
class FewShot:
    """A few-shot prompt family: exemplars, how one (question, solution) pair is framed, and where to stop."""

    name: str
    shots: tuple[tuple[str, str], ...]
    head: str        # text before the first exemplar
    turn: str        # one exemplar or the asked question: `{q}` and `{a}` filled in (the question's `{a}` is empty)
    stop: tuple[str, ...]  # the model would go on with a new exemplar: cut there


_INSTRUCTION = ALPACA.split("### Instruction:")[0]  # the Alpaca header, exactly as the zero-shot prompt opens
FEW_SHOT = {
    # completion form, as the RFT paper's Alpaca prompt: header once, then instruction/response turns
    "gsm8k": FewShot("RFT 8-shot GSM8K (Wei et al. 2022 exemplars)", GSM8K_SHOTS, _INSTRUCTION,
                     "### Instruction:\n{q}\n\n### Response:{a}", ("### Instruction:",)),
    # Minerva's own framing; its stop string as in lm-evaluation-harness
    "latex": FewShot("Minerva 4-shot MATH (Lewkowycz et al. 2022)", MINERVA_SHOTS, "",
                     "Problem:\n{q}\n\nSolution:{a}", ("Problem:",)),
}
FEW_SHOT["auto"] = FEW_SHOT["gsm8k"]  # a local file of unknown kind: the project's GSM8K-style default


def few_shot(kind: str, shots: int) -> tuple[str, list[str]]:
    """(Jinja template, stop strings) of the `shots`-shot prompt for a benchmark whose answers are of `kind`: the
    GSM8K exemplars for gsm8k and auto, Minerva's for latex. The exemplars are raw text to Jinja (braces stay)."""
    family = FEW_SHOT[kind]
    if not 1 <= shots <= len(family.shots):
        raise InputError(f"{family.name} has {len(family.shots)} exemplars; use --shots 0..{len(family.shots)}",
                         key="--shots")
    turns = [family.turn.format(q=q, a="\n" + a) for q, a in family.shots[:shots]]
    examples = family.head + "\n\n".join(turns) + "\n\n"
    question = family.turn.format(q="{{ question }}", a="")
    return "{% raw %}" + examples + "{% endraw %}" + question, list(family.stop)
