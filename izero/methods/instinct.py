"""``instinct``: INSTINCT, InstructZero's neural-bandit successor (NeuralUCB on LLM features).

Reference: Lin et al., "Use Your INSTINCT: INSTruction optimization for LLMs usIng Neural
bandits Coupled with Transformers", ICML 2024; code github xqlin98/INSTINCT at 10edbb3
(``Induction/experiments/run_neural_bandits.py`` = RNB, ``run_neural_bandits.sh`` = SH,
``LlamaForMLPRegression.py`` = LMFR).

What a run does:

1. Domain: the first ``domain_size`` (10,000, SH ``--n_domain``) points of the run's scrambled
   Sobol sequence in ``[-1, 1]^d`` (RNB:322; ``d`` is the generator's ``intrinsic_dim``, 10 in
   SH), projected by the generator with the run's projection, as for InstructZero.
2. Round 0: ``n_init`` arms drawn at random from the domain without replacement (RNB:327; 40 in
   SH). Meanwhile the generator computes the features of the whole domain (``services.features``:
   the final hidden state of the last token of [soft prompt, "\\n", the demos, "The instruction
   was to"], RNB:79, 145-168, 331), in the generator actors' batches, while round 0 is scored.
3. Every later round: the network is trained from its seeded initial weights on the features and
   dev scores of the answered evaluations, and ``q`` arms are picked by diagonal NeuralUCB, each
   from a fresh random subset of ``subset_size`` (1,000, SH ``--n_eval``) arms (RNB:359-377), in a
   Ray task (``services.run_cpu``; :func:`izero.bo.neural_ucb.neural_ucb_picks`).

INSTINCT's budget is 40 random arms and then 125 single picks (165 queries, SH
``--n_init 40 --total_iter 165``): ``budget: {n_init: 40, n_rounds: 125, q: 1}`` reproduces it.
With ``q > 1`` the picks of a round are sequential with ``U`` updated between them (a deviation:
INSTINCT picks one arm per round). Other deviations are listed in :mod:`izero.bo.neural_ucb`;
here: every random draw is seeded by the run's seed (INSTINCT fixes its Sobol domain and network
initialisation to seed 0 for every run, RNB:322 and LMFR:133, and draws arms from NumPy's global
generator), and the domain lies in ``[-1, 1]^d`` (INSTINCT's Sobol points are in ``[0, 1]^d``).

State (checkpointed after every proposal): the arm of every evaluation so far (domain indices,
in order) and, for each NeuralUCB pick, its round and the gradient factors ``c, h`` (``2 x 100``
numbers) that rebuild ``U``. The domain, the network's initial weights, the subsets and the
features are recomputed on resume (all deterministic); the network is retrained each round
anyway. A resumed run proposes exactly what an uninterrupted one would.

Memory: the domain's features live in the driver process, in this run's method (the only place
that knows the domain), in the narrowest floating type that holds them exactly (bfloat16 or
float16 when the generator runs in half precision, as 7B-13B models do; else float32): 10,000 x
5120 is 102 MB per run for a 13B model in bfloat16. Each round ships only the rows it needs
(the evaluated arms and the round's subsets: about 1,200 rows for ``q = 1``) to the Ray task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from izero.bo.neural_ucb import BanditRound, NeuralUCBOptions, neural_ucb_picks
from izero.errors import ConfigError, GeneratorError, OptimizerError
from izero.methods.base import Candidate, History, Method, MethodServices, RunInfo

logger = logging.getLogger(__name__)

PAPER_DOMAIN_SIZE = 10_000
PAPER_SUBSET_SIZE = 1_000
"""INSTINCT's domain and per-pick subset (SH: ``--n_domain 10000 --n_eval 1000``)."""
STATE_VERSION = 1
"""Layout of :meth:`Instinct.state_dict`."""
_INIT, _SUBSET, _FALLBACK, _NETWORK = 1, 2, 3, 4
"""Streams of the run's random draws (``np.random.SeedSequence([seed, stream, ...])``)."""
_HALF_TYPES = (torch.bfloat16, torch.float16)


@dataclass(frozen=True)
class InstinctOptions(NeuralUCBOptions):
    """``method_options.instinct``: INSTINCT's settings by default.

    Attributes:
        domain_size: soft prompts in the run's domain (Sobol points); their features are computed
            once per run.
        subset_size: arms each pick chooses from (a fresh random subset of the domain; the whole
            domain when it is smaller).
        hidden_width, training_steps, lr, lam, nu: see
            :class:`izero.bo.neural_ucb.NeuralUCBOptions`.
    """

    _SECTION: ClassVar[str] = "method_options.instinct."

    domain_size: int = PAPER_DOMAIN_SIZE
    subset_size: int = PAPER_SUBSET_SIZE

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("domain_size", "subset_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                self._fail(name, "an integer >= 1")

    @property
    def subset(self) -> int:
        """Arms per pick: ``subset_size``, at most the domain."""
        return min(self.subset_size, self.domain_size)


class Instinct(Method):
    """NeuralUCB on generator features over a fixed Sobol domain (see the module docstring).

    Args:
        run: the run's task, seed and budget.
        options: an :class:`InstinctOptions` (None: INSTINCT's settings).
        services: what the driver lends (``sobol``, ``features`` and ``run_cpu`` are used).

    Raises:
        ConfigError: the domain is smaller than ``n_init``, or a subset smaller than ``q``.
    """

    name = "instinct"
    needs_features = True
    options_class = InstinctOptions
    soft_prompt = True

    def __init__(
        self, run: RunInfo, options: InstinctOptions | None, services: MethodServices
    ) -> None:
        opts = options if options is not None else InstinctOptions()
        super().__init__(run, opts, services)
        b = run.budget
        for name, low, why in (
            ("domain_size", b.n_init, "budget n_init: the initial arms are distinct"),
            ("subset_size", b.q, "budget q: the picks of a round are distinct"),
        ):
            if min(getattr(opts, name), opts.domain_size) < low:
                field = f"{opts._SECTION}{name}"
                raise ConfigError(
                    field, getattr(opts, name), f"an integer >= {low} ({why})", f"raise {field}"
                )
        self._arms: list[int] = []
        self._picks: list[dict[str, Any]] = []
        self._domain: torch.Tensor | None = None
        self._features: torch.Tensor | None = None
        self._features_task: asyncio.Future | None = None

    # -- the protocol --------------------------------------------------------------------------

    async def propose(self, history: History, round: int) -> list[Candidate] | None:
        budget = self.run.budget
        if round > budget.n_rounds:
            return None
        domain = self._domain_points()
        self._check_history(history, domain)
        if round == 0:
            arms = self._rng(_INIT).choice(len(domain), budget.n_init, replace=False).tolist()
            if budget.n_rounds > 0:
                self._start_features()  # computed while round 0 is generated and scored
        else:
            arms = await self._pick(history, round)
        self._arms.extend(arms)
        return [Candidate.soft_prompt(domain[a].tolist()) for a in arms]

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "seed": self.run.seed,
            "domain_size": self.options.domain_size,
            "arms": list(self._arms),
            "picks": [dict(p) for p in self._picks],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        expected = (STATE_VERSION, self.run.seed, self.options.domain_size)
        found = (state.get("version"), state.get("seed"), state.get("domain_size"))
        if found != expected:
            raise OptimizerError(
                f"{self.run.id}: instinct checkpoint has (version, seed, domain_size) = {found}; "
                f"expected {expected}. Resume with the sweep's original config"
            )
        self._arms = [int(a) for a in state["arms"]]
        self._picks = [
            {"arm": int(p["arm"]), "round": int(p["round"]), "c": p["c"], "h": p["h"]}
            for p in state["picks"]
        ]

    # -- rounds ----------------------------------------------------------------------------------

    async def _pick(self, history: History, round: int) -> list[int]:
        q = self.run.budget.q
        train = [(self._arms[i], ev) for i, ev in enumerate(history) if ev.answered]
        if not train:
            logger.warning(
                "%s round %d: no answered evaluation to train on; proposing random arms",
                self.run.id,
                round,
            )
            return self._random_arms(round)
        features = await self._domain_features()
        opts: InstinctOptions = self.options
        subsets = [
            self._rng(_SUBSET, round, j).choice(opts.domain_size, opts.subset, replace=False)
            for j in range(q)
        ]
        picks_arms = [p["arm"] for p in self._picks]
        arms = np.unique(np.concatenate([np.asarray(self._arms), *subsets]))
        row_of = {int(a): i for i, a in enumerate(arms)}

        def rows(values: Any) -> torch.Tensor:
            return torch.tensor([row_of[int(a)] for a in values], dtype=torch.long)

        hidden = opts.hidden_width
        data = BanditRound(
            features=features[torch.from_numpy(arms)],
            train_rows=rows(a for a, _ in train),
            train_y=torch.tensor([ev.dev_score for _, ev in train], dtype=torch.float64),
            train_rounds=torch.tensor([ev.round for _, ev in train], dtype=torch.long),
            pick_rows=rows(picks_arms),
            pick_rounds=torch.tensor([p["round"] for p in self._picks], dtype=torch.long),
            pick_c=torch.tensor([p["c"] for p in self._picks], dtype=torch.float64).reshape(
                -1, hidden
            ),
            pick_h=torch.tensor([p["h"] for p in self._picks], dtype=torch.float64).reshape(
                -1, hidden
            ),
            subsets=torch.stack([rows(s) for s in subsets]),
            round=round,
        )
        try:
            picks = await self.services.run_cpu(_picks_in_worker, data, opts, self._network_seed())
        except OptimizerError as err:  # a failed round must not stop the run
            logger.warning("%s round %d: %s; proposing random arms", self.run.id, round, err)
            return self._random_arms(round)
        chosen = [int(arms[r]) for r in picks.rows.tolist()]
        for j, arm in enumerate(chosen):
            self._picks.append(
                {"arm": arm, "round": round, "c": picks.c[j].tolist(), "h": picks.h[j].tolist()}
            )
        logger.debug(
            "%s round %d: picked %s (mu %s, sigma %s)",
            self.run.id,
            round,
            chosen,
            picks.mu.tolist(),
            picks.sigma.tolist(),
        )
        return chosen

    def _random_arms(self, round: int) -> list[int]:
        rng = self._rng(_FALLBACK, round)
        return rng.choice(self.options.domain_size, self.run.budget.q, replace=False).tolist()

    # -- domain and features ---------------------------------------------------------------------

    def _domain_points(self) -> torch.Tensor:
        """``domain_size x d`` soft prompts (float64), the run's Sobol points."""
        if self._domain is None:
            self._domain = self.services.sobol(
                self.options.domain_size, self.run.intrinsic_dim, seed=self.run.seed
            )
        return self._domain

    def _start_features(self) -> None:
        task = self._features_task
        if task is not None and (task.cancelled() or task.get_loop() is not _running_loop()):
            task = self._features_task = None  # its event loop has gone (a new sweep process)
        if task is None and self._features is None:
            zs = self._domain_points().tolist()
            self._features_task = asyncio.ensure_future(self.services.features(zs))
            # a run that stops before round 1 must not leave an unretrieved exception behind
            self._features_task.add_done_callback(
                lambda t: None if t.cancelled() else t.exception()
            )

    async def _domain_features(self) -> torch.Tensor:
        """``domain_size x hidden`` features, computed once (see :func:`compact_features`)."""
        if self._features is None:
            self._start_features()
            assert self._features_task is not None
            raw = await self._features_task
            self._features_task = None
            n = self.options.domain_size
            if not isinstance(raw, torch.Tensor) or raw.dim() != 2 or raw.shape[0] != n:
                shape = tuple(raw.shape) if isinstance(raw, torch.Tensor) else type(raw).__name__
                raise GeneratorError(
                    f"{self.run.id}: generator features have shape {shape}; expected "
                    f"{n} x hidden (one row per domain point)"
                )
            self._features = compact_features(raw)
            logger.info(
                "%s: features of %d soft prompts, %d wide, kept as %s (%.1f MB)",
                self.run.id,
                n,
                raw.shape[1],
                self._features.dtype,
                self._features.numel() * self._features.element_size() / 1e6,
            )
        return self._features

    # -- helpers ----------------------------------------------------------------------------------

    def _rng(self, stream: int, *parts: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.run.seed, stream, *parts]))

    def _network_seed(self) -> int:
        return int(np.random.SeedSequence([self.run.seed, _NETWORK]).generate_state(1)[0])

    def _check_history(self, history: History, domain: torch.Tensor) -> None:
        """The run's evaluations must be this method's arms, in order (a resumed run's too)."""
        ok = len(history) == len(self._arms) and all(
            ev.z == tuple(domain[a].tolist()) for ev, a in zip(history, self._arms, strict=True)
        )
        if not ok:
            raise OptimizerError(
                f"{self.run.id}: the run's {len(history)} evaluations are not the "
                f"{len(self._arms)} soft prompts instinct proposed; expected its own history "
                "(a checkpoint from another config?). Start the sweep again without --resume"
            )


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _picks_in_worker(data: BanditRound, options: NeuralUCBOptions, seed: int) -> Any:
    """Body of the round's Ray task (:func:`neural_ucb_picks`, one thread)."""
    return neural_ucb_picks(data, options=options, init_seed=seed)


def compact_features(features: torch.Tensor) -> torch.Tensor:
    """``features`` (``n x hidden``) in the narrowest floating type that holds every value
    exactly: bfloat16 or float16 when they came from a half-precision model (the generator
    returns float32), else float32. Halves the memory of a run's domain at no loss."""
    f32 = features.to(torch.float32)
    for dtype in _HALF_TYPES:
        half = f32.to(dtype)
        if torch.equal(half.to(torch.float32), f32):
            return half
    return f32
