"""NeuralUCB on generator features: INSTINCT's surrogate and acquisition. Pure torch.

INSTINCT (Lin et al., ICML 2024) replaces InstructZero's GP with a small network on the open
LLM's own representation of each candidate soft prompt, and picks the next candidate with
diagonal NeuralUCB (Zhou et al., ICML 2020). What its code does (github xqlin98/INSTINCT at
10edbb3, ``Induction/experiments/``; LMFR = ``LlamaForMLPRegression.py``, RNB =
``run_neural_bandits.py``, SH = ``run_neural_bandits.sh``), and what is reproduced here:

- surrogate: ``Network(input_dim, hidden_size=100, depth=1)``, i.e. ``Linear(D, 100)``, ReLU,
  ``Linear(100, 1)`` (LMFR:99-126), every weight and bias drawn from N(0, 1) (LMFR:110-114), in
  float64 (LMFR:14-17, 135);
- training, after every evaluation (``NeuralTSDiag.train``, LMFR:222-254): reload the initial
  weights (LMFR:223-224), standardise features with the mean and unbiased standard deviation of
  the training features (LMFR:240-242; the same transform is applied when selecting,
  LMFR:165-166), raw rewards (LMFR:244), full-batch Adam with lr 1e-3 and weight decay
  ``lambda / n`` (LMFR:234) on the mean squared error, 1000 steps (``--local_training_iter 1000``,
  SH);
- selection (``NeuralTSDiag.select``, LMFR:164-219): per-arm gradients ``g`` of the output with
  respect to every parameter, ``sigma = sqrt(sum(lambda * nu * g^2 / U))`` (LMFR:199), score
  ``mu + sigma`` (LMFR:209), argmax, then ``U += g_arm^2`` (LMFR:214); ``U`` starts at ``lambda``
  (LMFR:152); ``lambda = 0.1``, ``nu = 1`` (SH); each pick from a fresh random subset of 1000 arms
  (``--n_eval 1000``, RNB:363-365).

Per-sample gradients in closed form. For ``f(x) = w2 . relu(W1 x + b1) + b2`` with
``a = W1 x + b1``, ``h = relu(a)`` and ``c = w2 * [a > 0]``::

    df/dW1 = c x^T,   df/db1 = c,   df/dw2 = h,   df/db2 = 1

so ``sum(g^2 / U)`` needs no ``n x P`` gradient matrix (``P = H (D + 2) + 1``, half a million
for a 13B model's ``D = 5120``): its ``W1`` block is ``sum_j c_j^2 ((x^2) (1 / U_W1)^T)_j``, one
``n x D`` by ``D x H`` product. INSTINCT used BackPACK's ``BatchGrad`` for the same numbers.

Where this differs from INSTINCT's code (named in the README):

- the surrogate is trained before every pick, the first one included: INSTINCT builds
  ``NeuralTSDiag`` with the initial data but calls ``train`` only after each pick (RNB:355-377),
  so its first pick scores raw features with the untrained network;
- a feature whose training standard deviation is exactly 0 is divided by 1, not by
  ``0 + 1e-30`` (LMFR:240), which would blow the other arms' values up to 1e30;
- with ``q > 1`` picks per round, the picks are made one after another with ``U`` updated
  between them, each from its own random subset, and an arm picked earlier in the round is not
  picked again (INSTINCT picks one arm per round);
- ``U`` is not carried from round to round but rebuilt from the log of picks (arm, the
  round it was picked in, and the ``c`` and ``h`` of its gradient), so that a run's state is a few
  hundred numbers per pick instead of ``P``; the arm's standardised features are recomputed from
  the training features of that round, so the rebuilt ``U`` is the same sum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from izero.bo.paper import one_thread
from izero.errors import ConfigError, OptimizerError

DTYPE = torch.float64
"""INSTINCT trains and selects in double precision (LMFR:14-17)."""
PAPER_HIDDEN_WIDTH = 100
PAPER_TRAINING_STEPS = 1000
PAPER_LR = 1e-3
PAPER_LAMBDA = 0.1
PAPER_NU = 1.0
"""INSTINCT's settings (LMFR:100, 234; SH: ``--local_training_iter 1000 --lamdba 0.1 --nu 1``)."""


@dataclass(frozen=True)
class NeuralUCBOptions:
    """Settings of :func:`neural_ucb_picks`; the defaults are INSTINCT's.

    Attributes:
        hidden_width: units of the network's hidden layer.
        training_steps: full-batch Adam steps of each training (from the initial weights).
        lr: Adam's learning rate.
        lam: lambda, the regularisation: Adam's weight decay is ``lam / n`` for ``n`` training
            points, and ``U`` starts at ``lam``.
        nu: the exploration scale of ``sigma`` (0: pick by the predicted mean alone).
    """

    _SECTION: ClassVar[str] = ""

    hidden_width: int = PAPER_HIDDEN_WIDTH
    training_steps: int = PAPER_TRAINING_STEPS
    lr: float = PAPER_LR
    lam: float = PAPER_LAMBDA
    nu: float = PAPER_NU

    def __post_init__(self) -> None:
        for name in ("hidden_width", "training_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                self._fail(name, "an integer >= 1")
        for name, low, allowed in (
            ("lr", 0.0, "a number > 0"),
            ("lam", 0.0, "a number > 0 (INSTINCT: 0.1)"),
        ):
            value = getattr(self, name)
            if not _number(value) or value <= low:
                self._fail(name, allowed)
        if not _number(self.nu) or self.nu < 0:
            self._fail("nu", "a number >= 0 (INSTINCT: 1)")

    def _fail(self, name: str, allowed: str) -> None:
        field = f"{self._SECTION}{name}"
        raise ConfigError(field, getattr(self, name), allowed, f"set {field} to {allowed}")


def _number(value: object) -> bool:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return ok and math.isfinite(value)


# -- the network ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MLP:
    """``f(x) = w2 . relu(W1 x + b1) + b2``: ``W1: H x D``, ``b1: H``, ``w2: H``, ``b2: 1``.

    Parameters flatten (:meth:`flat`, :func:`per_sample_grads`) in the order of INSTINCT's
    ``Network.parameters()``: ``W1`` row-major, ``b1``, ``w2``, ``b2``.
    """

    w1: Tensor
    b1: Tensor
    w2: Tensor
    b2: Tensor

    def tensors(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.w1, self.b1, self.w2, self.b2

    @property
    def n_params(self) -> int:
        return sum(t.numel() for t in self.tensors())

    def flat(self) -> Tensor:
        """``P`` parameters in INSTINCT's order."""
        return torch.cat([t.reshape(-1) for t in self.tensors()])

    def pre_activation(self, x: Tensor) -> Tensor:
        """``a = x W1^T + b1``: ``n x H`` for ``x: n x D``."""
        return torch.addmm(self.b1, x, self.w1.T)

    def __call__(self, x: Tensor) -> Tensor:
        """``mu``: ``n`` predictions for ``x: n x D``."""
        return _forward(self.tensors(), x)


def _forward(params: tuple[Tensor, ...], x: Tensor) -> Tensor:
    w1, b1, w2, b2 = params
    return torch.relu(torch.addmm(b1, x, w1.T)) @ w2 + b2


def init_mlp(d: int, hidden: int, *, seed: int, dtype: torch.dtype = DTYPE) -> MLP:
    """INSTINCT's initial network: every weight and bias N(0, 1) (LMFR:110-114), drawn from a
    generator seeded by ``seed`` (``W1: hidden x d``, then ``b1``, ``w2``, ``b2``)."""
    g = torch.Generator().manual_seed(int(seed))
    shapes = ((hidden, d), (hidden,), (hidden,), (1,))
    w1, b1, w2, b2 = (torch.randn(s, generator=g, dtype=dtype) for s in shapes)
    return MLP(w1, b1, w2, b2)


def train_mlp(
    init: MLP, x: Tensor, y: Tensor, *, steps: int, lr: float, weight_decay: float
) -> MLP:
    """The network trained from ``init`` on ``x: n x D`` (standardised), ``y: n``: full-batch
    Adam (``weight_decay`` is Adam's L2 term, as INSTINCT's ``torch.optim.Adam``) on the mean
    squared error, ``steps`` steps (LMFR:234-252)."""
    params = [t.detach().clone().requires_grad_(True) for t in init.tensors()]
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = torch.mean((_forward(tuple(params), x) - y) ** 2)
        loss.backward()
        optimizer.step()
    return MLP(*(p.detach() for p in params))


@dataclass(frozen=True)
class GradientFactors:
    """What the per-sample gradients of ``n`` inputs are made of: ``g = (c x^T, c, h, 1)``.

    ``c: n x H`` (``w2`` where the unit is active, else 0), ``h: n x H`` (hidden activations),
    ``x: n x D`` (the inputs).
    """

    c: Tensor
    h: Tensor
    x: Tensor


def gradient_factors(mlp: MLP, x: Tensor) -> tuple[Tensor, GradientFactors]:
    """``mu: n`` and the gradient factors of ``x: n x D`` (closed form, no autograd)."""
    a = mlp.pre_activation(x)
    h = torch.relu(a)
    c = mlp.w2 * (a > 0).to(a.dtype)
    return h @ mlp.w2 + mlp.b2, GradientFactors(c=c, h=h, x=x)


def per_sample_grads(mlp: MLP, x: Tensor) -> Tensor:
    """``n x P`` gradients of each prediction with respect to every parameter, in closed form
    and in INSTINCT's parameter order. Materialises ``n x P``: for tests and small networks;
    :func:`ucb_sigma` gets the same sums without it."""
    _, f = gradient_factors(mlp, x)
    n = x.shape[0]
    w1 = (f.c[:, :, None] * f.x[:, None, :]).reshape(n, -1)
    return torch.cat([w1, f.c, f.h, torch.ones(n, 1, dtype=x.dtype)], dim=1)


# -- the diagonal U ---------------------------------------------------------------------------


@dataclass
class DiagonalU:
    """The diagonal of NeuralUCB's ``U`` in the blocks of the parameters (float64).

    ``w1: H x D``, ``b1: H``, ``w2: H``, ``b2: 1``; starts at ``lam`` everywhere (LMFR:152).
    """

    w1: Tensor
    b1: Tensor
    w2: Tensor
    b2: Tensor

    @classmethod
    def initial(cls, lam: float, *, d: int, hidden: int) -> DiagonalU:
        def full(*shape: int) -> Tensor:
            return torch.full(shape, float(lam), dtype=DTYPE)

        return cls(full(hidden, d), full(hidden), full(hidden), full(1))

    def add(self, f: GradientFactors) -> None:
        """``U += sum over rows of g^2`` (the gradients of the chosen arms, LMFR:214)."""
        c2, x2 = f.c**2, f.x**2
        self.w1 += c2.T @ x2
        self.b1 += c2.sum(0)
        self.w2 += (f.h**2).sum(0)
        self.b2 += f.c.shape[0]

    def flat(self) -> Tensor:
        """``P`` diagonal entries in INSTINCT's parameter order."""
        return torch.cat([t.reshape(-1) for t in (self.w1, self.b1, self.w2, self.b2)])


def ucb_sigma(f: GradientFactors, u: DiagonalU, *, lam: float, nu: float) -> Tensor:
    """``n`` exploration bonuses ``sqrt(sum(lam * nu * g^2 / U))`` (LMFR:199), in closed form."""
    c2 = f.c**2
    w1 = (c2 * ((f.x**2) @ (1.0 / u.w1).T)).sum(1)
    rest = c2 @ (1.0 / u.b1) + (f.h**2) @ (1.0 / u.w2) + 1.0 / u.b2
    return torch.sqrt(lam * nu * (w1 + rest))


# -- standardisation --------------------------------------------------------------------------


@dataclass(frozen=True)
class Standardizer:
    """``(x - mean) / std`` with the mean and unbiased standard deviation of training features
    (LMFR:240-242); a feature with standard deviation 0 (or one row) is divided by 1."""

    mean: Tensor
    std: Tensor

    @classmethod
    def fit(cls, x: Tensor) -> Standardizer:
        """From ``x: n x D`` (``n >= 1``)."""
        mean = x.mean(0)
        if x.shape[0] < 2:
            return cls(mean, torch.ones_like(mean))
        std = x.std(0)
        return cls(mean, torch.where(std > 0, std, torch.ones_like(std)))

    def __call__(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


# -- one round of picks -----------------------------------------------------------------------


@dataclass(frozen=True)
class BanditRound:
    """Everything one round of NeuralUCB picks needs. Row indices refer to ``features``.

    Attributes:
        features: ``k x D`` features of the arms involved (any float dtype; float64 inside).
        train_rows: ``n`` rows of the evaluated arms with a reward, in evaluation order.
        train_y: ``n`` their rewards (dev scores).
        train_rounds: ``n`` the round each was proposed in.
        pick_rows: ``m`` rows of the arms picked by NeuralUCB in earlier rounds, in order.
        pick_rounds: ``m`` the round each was picked in.
        pick_c, pick_h: ``m x H`` the gradient factors of each pick when it was picked.
        subsets: ``q x s`` rows of each pick's random subset of arms.
        round: this round; the training features of round ``r`` are those of ``train_rounds < r``.
    """

    features: Tensor
    train_rows: Tensor
    train_y: Tensor
    train_rounds: Tensor
    pick_rows: Tensor
    pick_rounds: Tensor
    pick_c: Tensor
    pick_h: Tensor
    subsets: Tensor
    round: int


@dataclass(frozen=True)
class Picks:
    """What one round picked: ``rows: q`` (into ``features``), their gradient factors
    ``c, h: q x H`` (the round's log entries), and ``mu, sigma: q`` at the time of each pick."""

    rows: Tensor
    c: Tensor
    h: Tensor
    mu: Tensor
    sigma: Tensor


def rebuild_u(data: BanditRound, *, lam: float, hidden: int) -> DiagonalU:
    """``U`` after the logged picks: ``lam`` plus each pick's ``g^2``, its features standardised
    as they were when it was picked (with the training features of the rounds before it)."""
    features = data.features.to(DTYPE)
    u = DiagonalU.initial(lam, d=features.shape[1], hidden=hidden)
    if data.pick_rows.numel() == 0:
        return u
    x = torch.empty(data.pick_rows.shape[0], features.shape[1], dtype=DTYPE)
    for r in torch.unique(data.pick_rounds).tolist():
        at = data.pick_rounds == r
        x[at] = _standardizer(data, features, int(r))(features[data.pick_rows[at]])
    u.add(GradientFactors(c=data.pick_c.to(DTYPE), h=data.pick_h.to(DTYPE), x=x))
    return u


def _standardizer(data: BanditRound, features: Tensor, round: int) -> Standardizer:
    rows = data.train_rows[data.train_rounds < round]
    if rows.numel() == 0:
        raise OptimizerError(
            f"NeuralUCB round {round} has no training features; expected at least one "
            "evaluated arm with a reward from an earlier round"
        )
    return Standardizer.fit(features[rows])


def neural_ucb_picks(data: BanditRound, *, options: NeuralUCBOptions, init_seed: int) -> Picks:
    """One round of INSTINCT's NeuralUCB: train the network from its seeded initial weights on
    the training arms, then pick ``q = len(data.subsets)`` arms one after another, each the
    highest ``mu + sigma`` of its subset, with ``U`` updated after each pick.

    Runs torch on one thread (the network is small; see FACTS.md on 2-core machines).

    Raises:
        OptimizerError: no training arm, or NaN/inf in the features or the scores.
    """
    with one_thread():
        return _picks(data, options, init_seed)


def _picks(data: BanditRound, options: NeuralUCBOptions, init_seed: int) -> Picks:
    features = data.features.to(DTYPE)
    if not bool(torch.isfinite(features).all()):
        raise OptimizerError("NeuralUCB features have NaN/inf; expected finite hidden states")
    standardize = _standardizer(data, features, data.round)
    train_x = standardize(features[data.train_rows])
    train_y = data.train_y.to(DTYPE)
    n, d = train_x.shape
    init = init_mlp(d, options.hidden_width, seed=init_seed)
    mlp = train_mlp(
        init,
        train_x,
        train_y,
        steps=options.training_steps,
        lr=options.lr,
        weight_decay=options.lam / n,
    )
    u = rebuild_u(data, lam=options.lam, hidden=options.hidden_width)
    chosen: list[int] = []
    cs, hs, mus, sigmas = [], [], [], []
    for subset in data.subsets:
        mu, f = gradient_factors(mlp, standardize(features[subset]))
        sigma = ucb_sigma(f, u, lam=options.lam, nu=options.nu)
        score = mu + sigma
        if not bool(torch.isfinite(score).all()):
            raise OptimizerError(
                f"NeuralUCB scores have NaN/inf in round {data.round}; expected finite "
                "(check the features and lam > 0)"
            )
        taken = torch.isin(subset, torch.tensor(chosen, dtype=subset.dtype))
        score = score.masked_fill(taken, -math.inf)
        best = int(torch.argmax(score))
        pick = GradientFactors(
            c=f.c[best : best + 1], h=f.h[best : best + 1], x=f.x[best : best + 1]
        )
        u.add(pick)
        chosen.append(int(subset[best]))
        cs.append(pick.c[0])
        hs.append(pick.h[0])
        mus.append(mu[best])
        sigmas.append(sigma[best])
    return Picks(
        rows=torch.tensor(chosen, dtype=torch.long),
        c=torch.stack(cs),
        h=torch.stack(hs),
        mu=torch.stack(mus),
        sigma=torch.stack(sigmas),
    )
