"""``sampling``: instructions sampled from the open-source generator, no soft prompt.

The generator sees the demonstrations and "The instruction was to" (the same prompt as
InstructZero) and samples at ``temperature`` instead of decoding a soft prompt; each sample
rotates the order of the run's demonstrations. It shows what the soft prompt and the optimiser
add over plain sampling of the same model. (izero called this ``ape`` before 0.2: APE proper
asks an LLM to propose with its own template, see ``ape``.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from izero.config._checks import check, int_at_least, is_number
from izero.methods.base import Candidate, Demos, History, Method

#: Sampling temperature of the generator.
DEFAULT_TEMPERATURE = 1.0
#: Sample seeds of a run: ``seed * SAMPLE_SEED_STRIDE + i``.
SAMPLE_SEED_STRIDE = 100_003


@dataclass(frozen=True)
class SamplingOptions:
    """``temperature`` (> 0) of the generator's sampling; ``samples``: instructions sampled
    (None: the budget's evaluations, ``n_init + n_rounds * q``)."""

    _SECTION: ClassVar[str] = "method_options.sampling."

    temperature: float = DEFAULT_TEMPERATURE
    samples: int | None = None

    def __post_init__(self) -> None:
        s = self._SECTION
        check(
            is_number(self.temperature) and self.temperature > 0,
            f"{s}temperature",
            self.temperature,
            "a number > 0 (0 would decode the same instruction every time)",
        )
        if self.samples is not None:
            int_at_least(s, "samples", self.samples, 1)


class Sampling(Method):
    """One round of ``samples`` sampled instructions."""

    name = "sampling"
    options_class = SamplingOptions

    def _n(self) -> int:
        options = self.options or SamplingOptions()
        return options.samples or self.run.budget.n_evaluations

    def _demos(self, i: int) -> Demos:
        demos = list(self.run.demos)
        k = i % max(1, len(demos))
        return tuple(demos[k:] + demos[:k])

    async def propose(self, history: History, round: int) -> list[Candidate] | None:
        if round > 0:
            return None
        options = self.options or SamplingOptions()
        return [
            Candidate.sampled(
                temperature=options.temperature,
                sample_seed=self.run.seed * SAMPLE_SEED_STRIDE + i,
                demos=self._demos(i),
            )
            for i in range(self._n())
        ]

    def expected_evaluations(self) -> int:
        return self._n()
