"""The method protocol: a run's history and state in, the next candidates out.

A *method* decides what a run evaluates next. It never knows how calls are paid, where models
live or how runs are batched together: the driver hands it a :class:`RunInfo` (task splits,
seed, budget) and a :class:`MethodServices` (Sobol points, the batched GP proposer, CPU work
off the event loop, an LLM proposer endpoint, generator features), and asks it round after
round for :class:`Candidate` s. Everything shared (generation, de-duplication, scoring,
recording, checkpoints, resume) stays in the driver.

Determinism: a method's proposals depend only on the run's history, seed and the method's own
state (``state_dict``), never on timing or on which other runs share a batch. The driver
checkpoints each round's candidates together with the method's state right after
:meth:`Method.propose`; a resumed run replays stored rounds without asking the method again,
and restores the state saved after the last stored proposal.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch

from izero.tasks.types import TaskSplits

Demos = tuple[tuple[str, str], ...]
"""Demonstrations ``((input, output), ...)`` shown to an instruction generator."""


@dataclass(frozen=True)
class Candidate:
    """One instruction to evaluate, in one of three forms.

    - a soft prompt ``z`` (``d`` numbers in ``[-1, 1]``): the generator decodes it greedily
      after the run's demonstrations, projected with the run's seed;
    - a sampled decode (``temperature > 0``, no ``z``): the generator samples an instruction
      without a soft prompt from ``demos`` (None: the run's), seeded by ``sample_seed``;
    - a ready ``text``: scored as it is (human annotations, instructions an LLM proposed).
    """

    z: tuple[float, ...] | None = None
    text: str | None = None
    temperature: float = 0.0
    sample_seed: int = 0
    demos: Demos | None = None

    def __post_init__(self) -> None:
        if self.z is not None:
            z = tuple(float(v) for v in self.z)
            if not all(math.isfinite(v) for v in z):
                raise ValueError(f"Candidate.z has NaN/inf: {z}")
            object.__setattr__(self, "z", z)
        if self.demos is not None:
            object.__setattr__(self, "demos", tuple((str(i), str(o)) for i, o in self.demos))
        kinds = (self.z is not None) + (self.text is not None) + (self.temperature > 0)
        if kinds != 1:
            raise ValueError(
                "a Candidate is exactly one of: a soft prompt z, a text, or a sampled decode "
                f"(temperature > 0); got z={self.z is not None}, text={self.text is not None}, "
                f"temperature={self.temperature}"
            )

    @classmethod
    def soft_prompt(cls, z: Sequence[float]) -> Candidate:
        return cls(z=tuple(z))

    @classmethod
    def instruction(cls, text: str) -> Candidate:
        return cls(text=text)

    @classmethod
    def sampled(cls, *, temperature: float, sample_seed: int, demos: Demos | None = None):
        return cls(temperature=temperature, sample_seed=sample_seed, demos=demos)

    @property
    def kind(self) -> str:
        """``"soft_prompt"``, ``"text"`` or ``"sampled"``."""
        if self.z is not None:
            return "soft_prompt"
        return "text" if self.text is not None else "sampled"

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form (floats as exact reprs) for checkpoints."""
        if self.z is not None:
            return {"z": list(self.z)}
        if self.text is not None:
            return {"text": self.text}
        out: dict[str, Any] = {"temperature": self.temperature, "sample_seed": self.sample_seed}
        if self.demos is not None:
            out["demos"] = [list(d) for d in self.demos]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | Sequence[float]) -> Candidate:
        if not isinstance(data, Mapping):  # checkpoints of izero <= 0.1 stored bare z lists
            return cls(z=tuple(float(v) for v in data))
        demos = data.get("demos")
        return cls(
            z=tuple(data["z"]) if data.get("z") is not None else None,
            text=data.get("text"),
            temperature=float(data.get("temperature", 0.0)),
            sample_seed=int(data.get("sample_seed", 0)),
            demos=tuple((i, o) for i, o in demos) if demos is not None else None,
        )


@dataclass
class Evaluation:
    """One evaluated instruction of a run (a row of the evaluations table).

    ``scores``: per dev example, ``None`` where the call failed (never counted as wrong);
    ``dev_score``: their mean over answered examples (``None``: none answered);
    ``duplicate_of``: the ``eval_index`` whose scores this identical instruction reuses.
    """

    eval_index: int
    round: int
    instruction: str
    z: tuple[float, ...] | None
    scores: tuple[float | None, ...]
    dev_score: float | None
    duplicate_of: int | None = None

    @property
    def answered(self) -> bool:
        """Whether at least one dev example was answered (failed calls never count as wrong)."""
        return self.dev_score is not None


class History(Sequence[Evaluation]):
    """A run's evaluations in order, with the views methods need.

    Args:
        evaluations: the run's evaluations so far (the list is read, not copied).
    """

    def __init__(self, evaluations: Sequence[Evaluation]):
        self._evals = evaluations

    def __getitem__(self, i):  # type: ignore[override]
        return self._evals[i]

    def __len__(self) -> int:
        return len(self._evals)

    def answered(self) -> list[Evaluation]:
        return [ev for ev in self._evals if ev.answered]

    def best(self) -> Evaluation | None:
        """The evaluation with the highest dev score (the first one wins ties)."""
        answered = self.answered()
        if not answered:
            return None
        return max(answered, key=lambda ev: (ev.dev_score, -ev.eval_index))

    def observations(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """``(z: n x d, y: n, s: n x m)`` of the answered soft-prompt evaluations, float64.

        A failed example in a score vector (``None``) is filled with that instruction's mean
        over its answered examples, so the score kernel sees no holes. ``None`` when no
        soft-prompt evaluation was answered.
        """
        rows = [ev for ev in self._evals if ev.answered and ev.z is not None]
        if not rows:
            return None
        z = torch.tensor([ev.z for ev in rows], dtype=torch.float64)
        y = torch.tensor([ev.dev_score for ev in rows], dtype=torch.float64)
        s = torch.tensor(
            [[ev.dev_score if v is None else v for v in ev.scores] for ev in rows],
            dtype=torch.float64,
        )
        return z, y, s


@dataclass(frozen=True)
class Budget:
    """A run's evaluation budget: ``n_init`` first, then ``n_rounds`` rounds of ``q``."""

    n_init: int
    n_rounds: int
    q: int

    @property
    def n_evaluations(self) -> int:
        return self.n_init + self.n_rounds * self.q


@dataclass(frozen=True)
class RunInfo:
    """What a method knows about its run.

    ``task``, ``method``, ``seed``: the run's key; ``splits``: its demos, dev and test examples
    and metric; ``budget``: evaluations allowed; ``intrinsic_dim``: length of a soft prompt
    ``z``; ``annotations``: human-written instructions of the task (may be empty).
    """

    task: str
    method: str
    seed: int
    splits: TaskSplits
    budget: Budget
    intrinsic_dim: int
    annotations: tuple[str, ...] = ()

    @property
    def demos(self) -> Demos:
        return tuple((ex.input, ex.output) for ex in self.splits.demos)

    @property
    def id(self) -> str:
        return f"{self.task}__{self.method}__{self.seed}"


class MethodServices(Protocol):
    """What the driver lends a method. Each call is awaited; none blocks the event loop."""

    def sobol(self, n: int, d: int, *, seed: int) -> torch.Tensor:
        """The first ``n`` points (``n x d``, float64, in ``[-1, 1]``) of a scrambled Sobol
        sequence seeded by ``seed``."""
        ...

    async def bo_propose(
        self,
        *,
        z: torch.Tensor,
        y: torch.Tensor,
        s: torch.Tensor,
        q: int,
        seed: int,
        warm_start: dict[str, Any] | None,
    ) -> tuple[torch.Tensor, dict[str, Any] | None]:
        """``q x d`` soft prompts from batch q-EI on the instruction-coupled GP (the sweep's
        optimizer settings), batched with other runs' requests in a Ray task, and the GP's new
        JSON-safe warm-start state. Raises :class:`izero.errors.OptimizerError` on failure."""
        ...

    async def run_cpu(self, fn: Any, /, *args: Any) -> Any:
        """``fn(*args)`` in a Ray task with one CPU thread (pure, picklable work)."""
        ...

    async def llm_complete(
        self,
        prompts: Sequence[str],
        *,
        temperature: float,
        max_tokens: int,
        seeds: Sequence[int],
        top_p: float | None = None,
    ) -> list[str | None]:
        """Completions of ``prompts`` (one user message each) from the proposer endpoint,
        through its rate limit, retries, response cache, accounting and budget caps, recorded
        as ``propose`` calls. ``seeds[i]`` makes repeated prompts distinct requests;
        ``temperature``, ``max_tokens`` (tokens per completion), the seed and ``top_p`` (None:
        the endpoint's default) are sent with each call and are part of its cache key. ``None``
        where a call finally failed. Only for methods with ``llm_proposer = True``."""
        ...

    async def features(self, zs: Sequence[Sequence[float]]) -> torch.Tensor:
        """``n x hidden`` generator features of soft prompts (the final hidden state of the
        prompt's last token), computed in the generator actors' batches."""
        ...


class Method(ABC):
    """One instruction optimiser. Subclasses live one per module in :mod:`izero.methods`.

    Class attributes:
        name: the name used in configs and results.
        options_class: the frozen dataclass of its settings (``method_options.<name>`` in a
            sweep config), or ``None`` when it has none.
        soft_prompt: whether its candidates are soft prompts (rows carry ``z``).
        llm_proposer: whether it asks an LLM endpoint to propose instructions
            (``services.llm_complete``); its rows then name the proposer's model.
        uses_generator: whether its candidates need the open-source generator (soft prompts,
            sampled decodes, features); a sweep whose methods all say no starts no generator.
        needs_features: whether it asks for generator features (``services.features``); the
            config then refuses a generator engine that cannot compute them.

    Args:
        run: the run's task, seed and budget.
        options: an instance of ``options_class`` (or ``None``).
        services: what the driver lends (see :class:`MethodServices`).
    """

    name: ClassVar[str]
    options_class: ClassVar[type | None] = None
    soft_prompt: ClassVar[bool] = False
    llm_proposer: ClassVar[bool] = False
    uses_generator: ClassVar[bool] = True
    needs_features: ClassVar[bool] = False

    def __init__(self, run: RunInfo, options: Any, services: MethodServices):
        self.run = run
        self.options = options
        self.services = services

    @abstractmethod
    async def propose(self, history: History, round: int) -> list[Candidate] | None:
        """Candidates of round ``round`` given the run's ``history``; ``None`` when done."""

    def expected_evaluations(self) -> int:
        """Instructions this run will evaluate in all (for progress and ETA)."""
        return self.run.budget.n_evaluations

    def state_dict(self) -> dict[str, Any]:
        """JSON-safe state to checkpoint with each round's candidates (default: none)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (default: nothing to restore)."""
        del state
