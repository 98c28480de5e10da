"""``ape``: Automatic Prompt Engineer (Zhou et al., ICLR 2023), forward generation.

An LLM proposes instructions from demonstrations; every distinct proposal is scored on the dev
examples like any other candidate, and the best is tested. As in APE's instruction-induction
experiments (github keirp/automatic_prompt_engineer): ``n_subsets`` subsets of ``n_demos``
demonstrations each are drawn from the training examples (those not used for scoring), each
is put in APE's forward template (:mod:`izero.blackbox.proposal_prompts`: "I gave a friend an
instruction and five inputs. ... The instruction was"), and the LLM samples completions at
``temperature`` / ``top_p`` with at most ``max_tokens`` tokens. The proposals, cleaned of the
template's echo, de-duplicated, are the run's one round of candidates.

The proposing LLM is the sweep's ``proposer`` endpoint, by default the black box itself (the
APE paper proposes and scores with the same InstructGPT; InstructZero's APE baseline proposes
with its black box, gpt-3.5-turbo). Its calls are rate limited, cached, accounted and capped
like scoring calls, and recorded as ``propose`` calls.

Deviations from APE's code (each named in the README):

- ``candidates`` proposals in all (default: the budget's evaluations, so every method has the
  same budget), spread evenly over the subsets; APE's run samples 30 per subset.
- One request per proposal (each with its own ``seed``) instead of one request with ``n=30``:
  each sample is a separately cached, rate-limited and accounted call (the prompt is paid once
  per proposal, not once per subset).
- A chat endpoint completes the template as a user message; APE used a completion model.
- Proposals are cleaned (first line, echo "The instruction was to" and quotes removed, first
  letter capitalised); APE scores the raw completion.
- No iterative Monte Carlo resampling (APE's optional step that asks for variations of the best
  proposals) and no bandit-based evaluation: every distinct proposal is scored on the same dev
  examples.
"""

from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass
from typing import ClassVar

from izero.blackbox.proposal_prompts import build_forward_prompt
from izero.config._checks import check, int_at_least, is_number
from izero.methods.base import Candidate, Demos, History, Method

logger = logging.getLogger(__name__)

#: APE's instruction-induction run: 3 demo subsets (experiments/run_instruction_induction.py:41).
DEFAULT_N_SUBSETS = 3
#: 5 demonstrations per subset (run_instruction_induction.py:42).
DEFAULT_N_DEMOS = 5
#: Sampling of the proposing LLM (experiments/configs/instruction_induction.yaml:10-12).
DEFAULT_TEMPERATURE = 0.9
DEFAULT_MAX_TOKENS = 50
DEFAULT_TOP_P = 0.9
#: Request seeds of a run: ``seed * SEED_STRIDE + i`` for its ``i``-th proposal.
SEED_STRIDE = 1_000_003

_ECHO_RE = re.compile(r"^(?:the\s+instruction\s+was\s*)?(?:to\b\s*)?[:\-]?\s*", re.IGNORECASE)
_QUOTES = "\"'`\u201c\u201d\u2018\u2019"


@dataclass(frozen=True)
class ApeOptions:
    """Settings of ``ape`` (``method_options.ape``), APE's instruction-induction values.

    ``n_subsets``: demo subsets, one prompt each; ``n_demos``: demonstrations per subset;
    ``candidates``: proposals in all, spread evenly over the subsets (None: the budget's
    evaluations, ``n_init + n_rounds * q``); ``temperature`` (in [0, 2]), ``top_p`` (in (0, 1],
    None: the endpoint's default) and ``max_tokens`` (tokens per proposal) of the proposing LLM.
    """

    _SECTION: ClassVar[str] = "method_options.ape."

    n_subsets: int = DEFAULT_N_SUBSETS
    n_demos: int = DEFAULT_N_DEMOS
    candidates: int | None = None
    temperature: float = DEFAULT_TEMPERATURE
    max_tokens: int = DEFAULT_MAX_TOKENS
    top_p: float | None = DEFAULT_TOP_P

    def __post_init__(self) -> None:
        s = self._SECTION
        int_at_least(s, "n_subsets", self.n_subsets, 1)
        int_at_least(s, "n_demos", self.n_demos, 1)
        if self.candidates is not None:
            int_at_least(s, "candidates", self.candidates, 1)
        check(
            is_number(self.temperature) and 0 <= self.temperature <= 2,
            f"{s}temperature",
            self.temperature,
            "a number in [0, 2] (0 proposes one instruction per subset)",
        )
        int_at_least(s, "max_tokens", self.max_tokens, 1)
        check(
            self.top_p is None or (is_number(self.top_p) and 0 < self.top_p <= 1),
            f"{s}top_p",
            self.top_p,
            "a number in (0, 1], or null for the endpoint's default",
        )


def clean_proposal(text: str | None) -> str | None:
    """An LLM's completion of the forward template as an instruction, or None if empty.

    Keeps the first non-empty line (a model may run on into another "Input: ..." pair), drops
    an echo of "The instruction was" and a leading "to", surrounding quotes, and capitalises
    the first letter: ``'to "add the numbers".' -> "Add the numbers."``.
    """
    if text is None:
        return None
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = _ECHO_RE.sub("", line, count=1).strip()
    if len(line) >= 2 and line[0] in _QUOTES:
        end = max(line.rfind(q) for q in _QUOTES)
        if end > 0:
            line = line[1:end].strip() + line[end + 1 :].strip()
    if not line or line.lower().startswith(("input:", "output:")):
        return None
    return line[0].upper() + line[1:]


class Ape(Method):
    """One round: the distinct instructions an LLM proposes from demo subsets."""

    name = "ape"
    options_class = ApeOptions
    llm_proposer = True
    uses_generator = False

    @property
    def _options(self) -> ApeOptions:
        return self.options or ApeOptions()

    def _n(self) -> int:
        return self._options.candidates or self.run.budget.n_evaluations

    def subsets(self) -> list[Demos]:
        """The run's ``n_subsets`` demo subsets, drawn (seeded by the run) from its training
        examples, each demo with one of its accepted answers picked at random (as APE does)."""
        o = self._options
        pool = self.run.splits.train or self.run.splits.demos
        k = min(o.n_demos, len(pool))
        if k < o.n_demos:
            logger.warning(
                "%s: only %d training examples for demo subsets of %d", self.run.id, k, o.n_demos
            )
        rng = random.Random(f"ape:{self.run.task}:{self.run.seed}")
        answers = [rng.choice([a for a in ex.answers if a.strip()] or [ex.output]) for ex in pool]
        return [
            tuple((pool[i].input, answers[i]) for i in rng.sample(range(len(pool)), k))
            for _ in range(o.n_subsets)
        ]

    def requests(self) -> tuple[list[str], list[int]]:
        """The proposal prompts and their seeds: proposal ``i`` uses subset ``i % n_subsets``."""
        prompts = [build_forward_prompt(demos) for demos in self.subsets()]
        n = self._n()
        return (
            [prompts[i % len(prompts)] for i in range(n)],
            [self.run.seed * SEED_STRIDE + i for i in range(n)],
        )

    async def propose(self, history: History, round: int) -> list[Candidate] | None:
        if round > 0:
            return None
        o = self._options
        prompts, seeds = self.requests()
        texts = await self.services.llm_complete(
            prompts, temperature=o.temperature, max_tokens=o.max_tokens, seeds=seeds, top_p=o.top_p
        )
        proposals = list(dict.fromkeys(filter(None, map(clean_proposal, texts))))
        failed = sum(t is None for t in texts)
        logger.info(
            "%s: %d proposals, %d distinct instructions, %d failed calls",
            self.run.id,
            len(texts),
            len(proposals),
            failed,
        )
        if not proposals:
            logger.warning("%s: the proposer returned no usable instruction", self.run.id)
            return None
        return [Candidate.instruction(text) for text in proposals]

    def expected_evaluations(self) -> int:
        return self._n()
