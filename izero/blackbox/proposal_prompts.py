"""APE's forward template: the prompt that asks an LLM to propose an instruction.

One place, because the simulated server parses it. The text is the instruction-induction
prompt of Honovich et al. (2022), which APE (Zhou et al., ICLR 2023) uses as its forward
generation template ("Forward Generation Template" in the paper; the exact strings are APE's
``experiments/data/instruction_induction/induction_input/<task>.json``)::

    I gave a friend an instruction and five inputs. The friend read the instruction and wrote
    an output for every one of the inputs.
    Here are the input-output pairs:

    Input: <x1>
    Output: <y1>

    ...

    The instruction was

(the first two sentences are one line). The LLM completes the last line. With ``n`` demos other
than five the number word follows ``n``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

HEADER = (
    "I gave a friend an instruction and {n} inputs. The friend read the instruction and wrote "
    "an output for every one of the inputs.\nHere are the input-output pairs:"
)
DEMO = "Input: {input}\nOutput: {output}"
SEPARATOR = "\n\n"
ENDING = "The instruction was"
NUMBER_WORDS = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
)

_PROMPT_RE = re.compile(
    r"\AI gave a friend an instruction and (?P<n>\w+) inputs\. The friend read the instruction "
    r"and wrote an output for every one of the inputs\.\nHere are the input-output pairs:\n\n"
    r"(?P<demos>.*)\n\nThe instruction was\Z",
    re.DOTALL,
)
_DEMO_RE = re.compile(
    r"Input: (?P<input>.*?)\nOutput: (?P<output>.*?)(?=\n\nInput: |\Z)", re.DOTALL
)


def number_word(n: int) -> str:
    """``5 -> "five"`` (digits above ten)."""
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else str(n)


def build_forward_prompt(demos: Sequence[tuple[str, str]]) -> str:
    """APE's forward prompt for ``demos`` (``(input, output)`` pairs, at least one)."""
    if not demos:
        raise ValueError("build_forward_prompt needs at least one (input, output) demo")
    pairs = SEPARATOR.join(DEMO.format(input=i, output=o) for i, o in demos)
    return HEADER.format(n=number_word(len(demos))) + SEPARATOR + pairs + SEPARATOR + ENDING


def parse_forward_prompt(text: str) -> list[tuple[str, str]] | None:
    """Inverse of :func:`build_forward_prompt`: the demos, or ``None`` if ``text`` is not one.

    Inputs may span lines (even blank ones); an output that itself holds "\\n\\nInput: " would
    be cut there (the simulated server then just sees a demo it does not know).
    """
    match = _PROMPT_RE.match(text)
    if match is None:
        return None
    demos = [(m.group("input"), m.group("output")) for m in _DEMO_RE.finditer(match["demos"])]
    return demos or None
