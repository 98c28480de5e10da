"""INSTINCT's NeuralUCB (izero.bo.neural_ucb): closed-form gradients, U, training, picks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from izero.bo.neural_ucb import (
    BanditRound,
    DiagonalU,
    GradientFactors,
    NeuralUCBOptions,
    Standardizer,
    gradient_factors,
    init_mlp,
    neural_ucb_picks,
    per_sample_grads,
    rebuild_u,
    train_mlp,
    ucb_sigma,
)
from izero.errors import ConfigError, OptimizerError

F64 = torch.float64


def _autograd_grads(mlp, x: torch.Tensor) -> torch.Tensor:
    """Per-sample gradients by autograd, one input at a time (the reference)."""
    rows = []
    for xi in x:
        params = [t.clone().requires_grad_(True) for t in mlp.tensors()]
        w1, b1, w2, b2 = params
        out = torch.relu(w1 @ xi + b1) @ w2 + b2
        out.sum().backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in params]))
    return torch.stack(rows)


@pytest.mark.parametrize(
    ("n", "d", "hidden", "seed"), [(1, 3, 2, 0), (7, 5, 4, 1), (20, 16, 100, 2)]
)
def test_closed_form_per_sample_gradients_equal_autograd(n, d, hidden, seed):
    mlp = init_mlp(d, hidden, seed=seed)
    g = torch.Generator().manual_seed(100 + seed)
    x = torch.randn(n, d, generator=g, dtype=F64) * 2
    closed = per_sample_grads(mlp, x)
    assert closed.shape == (n, mlp.n_params) == (n, hidden * (d + 2) + 1)
    torch.testing.assert_close(closed, _autograd_grads(mlp, x), rtol=0, atol=1e-12)
    # and the predictions the factors come with are the network's
    mu, _ = gradient_factors(mlp, x)
    torch.testing.assert_close(mu, mlp(x), rtol=0, atol=1e-12)


def test_closed_form_gradients_match_instinct_network_parameter_order():
    """INSTINCT's Network is Linear(D, H), ReLU, Linear(H, 1): its parameters() flatten to
    W1, b1, W2, b2, the order of per_sample_grads and DiagonalU.flat."""
    mlp = init_mlp(6, 4, seed=3)
    net = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 1)).to(F64)
    with torch.no_grad():
        net[0].weight.copy_(mlp.w1)
        net[0].bias.copy_(mlp.b1)
        net[2].weight.copy_(mlp.w2[None, :])
        net[2].bias.copy_(mlp.b2)
    x = torch.randn(5, 6, dtype=F64, generator=torch.Generator().manual_seed(0))
    for i in range(5):
        net.zero_grad()
        net(x[i : i + 1]).sum().backward()
        ref = torch.cat([p.grad.reshape(-1) for p in net.parameters()])
        torch.testing.assert_close(per_sample_grads(mlp, x[i : i + 1])[0], ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(mlp.flat(), torch.cat([p.reshape(-1) for p in net.parameters()]))


def test_diagonal_u_and_sigma_equal_the_dense_formula():
    lam, nu = 0.1, 0.7
    mlp = init_mlp(8, 10, seed=0)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(30, 8, generator=g, dtype=F64)
    u = DiagonalU.initial(lam, d=8, hidden=10)
    dense_u = torch.full((mlp.n_params,), lam, dtype=F64)
    torch.testing.assert_close(u.flat(), dense_u)
    _, f = gradient_factors(mlp, x)
    for rows in (slice(0, 1), slice(3, 6)):  # one chosen arm, then three at once
        u.add(GradientFactors(c=f.c[rows], h=f.h[rows], x=f.x[rows]))
        dense_u += (per_sample_grads(mlp, x[rows]) ** 2).sum(0)
        torch.testing.assert_close(u.flat(), dense_u, rtol=1e-13, atol=0)
        sigma = ucb_sigma(f, u, lam=lam, nu=nu)
        ref = torch.sqrt((lam * nu * per_sample_grads(mlp, x) ** 2 / dense_u).sum(1))
        torch.testing.assert_close(sigma, ref, rtol=1e-12, atol=0)
    # a chosen arm's own bonus shrank; nu = 0 removes exploration
    assert bool((ucb_sigma(f, u, lam=lam, nu=0.0) == 0).all())


def test_training_equals_instinct_network_with_adam():
    """train_mlp is INSTINCT's loop: nn.Linear layers from the same N(0, 1) init, full-batch Adam
    (lr, weight decay lambda/n), MSE, the same number of steps."""
    d, hidden, n, steps = 5, 7, 12, 60
    init = init_mlp(d, hidden, seed=11)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(n, d, generator=g, dtype=F64)
    y = torch.rand(n, generator=g, dtype=F64)
    trained = train_mlp(init, x, y, steps=steps, lr=1e-3, weight_decay=0.1 / n)
    net = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, 1)).to(F64)
    with torch.no_grad():
        net[0].weight.copy_(init.w1)
        net[0].bias.copy_(init.b1)
        net[2].weight.copy_(init.w2[None, :])
        net[2].bias.copy_(init.b2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=0.1 / n)
    for _ in range(steps):
        opt.zero_grad()
        nn.MSELoss()(net(x).view(-1), y).backward()
        opt.step()
    ref = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    torch.testing.assert_close(trained.flat(), ref, rtol=1e-10, atol=1e-12)
    assert not torch.equal(trained.flat(), init.flat())
    # the initial weights are N(0, 1) and a pure function of the seed
    assert torch.equal(init_mlp(d, hidden, seed=11).flat(), init.flat())
    w = init_mlp(200, 100, seed=0).w1
    assert abs(float(w.mean())) < 0.02 and abs(float(w.std()) - 1) < 0.02


def test_standardizer_is_instinct_with_safe_constant_features():
    x = torch.tensor([[1.0, 5.0, 2.0], [3.0, 5.0, 4.0], [5.0, 5.0, 9.0]], dtype=F64)
    st = Standardizer.fit(x)
    torch.testing.assert_close(st.mean, x.mean(0))
    torch.testing.assert_close(st.std, torch.tensor([2.0, 1.0, x[:, 2].std()], dtype=F64))
    out = st(torch.tensor([[3.0, 6.0, 5.0]], dtype=F64))
    assert out[0, 1] == 1.0 and bool(torch.isfinite(out).all())
    one = Standardizer.fit(x[:1])  # one row: no standard deviation, no warning
    assert torch.equal(one.std, torch.ones(3, dtype=F64))


def _round(features, arms, rewards, rounds, picks, subsets, rnd, hidden):
    """A BanditRound whose rows are domain indices (features = the whole domain)."""
    return BanditRound(
        features=features,
        train_rows=torch.tensor(arms, dtype=torch.long),
        train_y=torch.tensor(rewards, dtype=F64),
        train_rounds=torch.tensor(rounds, dtype=torch.long),
        pick_rows=torch.tensor([p[0] for p in picks], dtype=torch.long),
        pick_rounds=torch.tensor([p[1] for p in picks], dtype=torch.long),
        pick_c=torch.stack([p[2] for p in picks]) if picks else torch.zeros(0, hidden, dtype=F64),
        pick_h=torch.stack([p[3] for p in picks]) if picks else torch.zeros(0, hidden, dtype=F64),
        subsets=torch.as_tensor(np.asarray(subsets), dtype=torch.long),
        round=rnd,
    )


def test_rebuilt_u_standardises_each_pick_as_when_it_was_picked():
    lam, hidden, d = 0.1, 3, 4
    g = torch.Generator().manual_seed(9)
    feats = torch.randn(12, d, generator=g, dtype=F64)
    arms, rounds = [0, 1, 2, 3, 4, 5], [0, 0, 0, 1, 1, 2]
    picks = [(3, 1, *torch.randn(2, hidden, generator=g, dtype=F64))]
    picks += [(4, 1, *torch.randn(2, hidden, generator=g, dtype=F64))]
    picks += [(5, 2, *torch.randn(2, hidden, generator=g, dtype=F64))]
    data = _round(feats, arms, [0.1] * 6, rounds, picks, [[0]], 3, hidden)
    u = rebuild_u(data, lam=lam, hidden=hidden)
    dense = torch.full((hidden * (d + 2) + 1,), lam, dtype=F64)
    for arm, rnd, c, h in picks:
        st = Standardizer.fit(feats[[a for a, r in zip(arms, rounds, strict=True) if r < rnd]])
        x = st(feats[arm])
        dense += torch.cat([torch.outer(c, x).reshape(-1), c, h, torch.ones(1, dtype=F64)]) ** 2
    torch.testing.assert_close(u.flat(), dense, rtol=1e-13, atol=0)


def test_sequential_picks_are_distinct_and_the_first_is_the_single_pick():
    g = torch.Generator().manual_seed(4)
    feats = torch.randn(60, 6, generator=g, dtype=F64)
    arms = list(range(8))
    rewards = torch.rand(8, generator=g, dtype=F64).tolist()
    opts = NeuralUCBOptions(hidden_width=16, training_steps=50)
    same = [list(range(8, 60))] * 3  # one subset three times: only the U update and the
    data = _round(feats, arms, rewards, [0] * 8, [], same, 1, 16)  # exclusion separate picks
    three = neural_ucb_picks(data, options=opts, init_seed=0)
    assert len(set(three.rows.tolist())) == 3 and three.c.shape == (3, 16)
    one = neural_ucb_picks(
        _round(feats, arms, rewards, [0] * 8, [], same[:1], 1, 16), options=opts, init_seed=0
    )
    assert one.rows.tolist() == three.rows[:1].tolist()
    # deterministic: the same inputs give the same picks
    again = neural_ucb_picks(data, options=opts, init_seed=0)
    assert torch.equal(again.rows, three.rows) and torch.equal(again.c, three.c)
    # the bonus of the second pick was computed with U holding the first pick
    assert float(three.sigma[0]) > 0


def test_picks_refuse_nan_features_and_rounds_without_training_data():
    feats = torch.randn(10, 3, dtype=F64)
    opts = NeuralUCBOptions(hidden_width=4, training_steps=2)
    bad = feats.clone()
    bad[2, 1] = math.nan
    with pytest.raises(OptimizerError, match="NaN/inf"):
        neural_ucb_picks(
            _round(bad, [0, 1], [0.1, 0.2], [0, 0], [], [[2, 3]], 1, 4), options=opts, init_seed=0
        )
    with pytest.raises(OptimizerError, match="no training features"):
        neural_ucb_picks(
            _round(feats, [0, 1], [0.1, 0.2], [1, 1], [], [[2, 3]], 1, 4), options=opts, init_seed=0
        )


def test_options_are_validated_with_the_field_name():
    assert NeuralUCBOptions() == NeuralUCBOptions(100, 1000, 1e-3, 0.1, 1.0)  # INSTINCT's
    for field, value in (
        ("hidden_width", 0),
        ("training_steps", 1.5),
        ("lr", 0.0),
        ("lam", -1.0),
        ("nu", -0.1),
        ("lam", math.inf),
        ("hidden_width", True),
    ):
        with pytest.raises(ConfigError, match=f"'{field}'"):
            NeuralUCBOptions(**{field: value})
    assert NeuralUCBOptions(nu=0).nu == 0


# -- a synthetic bandit -------------------------------------------------------------------------


def _bandit(seed: int, *, method: str, n_arms=2000, d=4, n_init=8, rounds=12, subset=500):
    """Normalised simple regret ``(max - best found) / (max - mean)`` on a logistic bandit:
    Gaussian features, reward ``sigmoid(theta . x)`` (smooth; the best arms are rare)."""
    g = torch.Generator().manual_seed(1000 + seed)
    feats = torch.randn(n_arms, d, generator=g, dtype=F64)
    theta = torch.randn(d, generator=g, dtype=F64)
    reward = torch.sigmoid(feats @ (theta / theta.norm()))
    rng = np.random.default_rng(seed)
    arms = rng.choice(n_arms, n_init, replace=False).tolist()
    rounds_of, picks = [0] * n_init, []
    opts = NeuralUCBOptions(training_steps=200)
    for rnd in range(1, rounds + 1):
        if method == "random":
            new = rng.choice(n_arms, 1, replace=False).tolist()
        else:
            subsets = [rng.choice(n_arms, subset, replace=False)]
            data = _round(feats, arms, reward[arms].tolist(), rounds_of, picks, subsets, rnd, 100)
            out = neural_ucb_picks(data, options=opts, init_seed=seed)
            new = out.rows.tolist()
            picks += [(a, rnd, out.c[i], out.h[i]) for i, a in enumerate(new)]
        arms += new
        rounds_of += [rnd] * len(new)
    return float((reward.max() - reward[arms].max()) / (reward.max() - reward.mean()))


def test_neural_ucb_finds_better_arms_than_random_picks():
    """Same initial arms, same number of picks, six seeds: NeuralUCB's regret is clearly lower."""
    seeds = range(6)
    ucb = [_bandit(s, method="ucb") for s in seeds]
    rand = [_bandit(s, method="random") for s in seeds]
    wins = sum(u < r for u, r in zip(ucb, rand, strict=True))
    losses = sum(u > r for u, r in zip(ucb, rand, strict=True))
    assert np.mean(ucb) < 0.6 * np.mean(rand), (ucb, rand)
    assert wins >= 4 and losses <= 1, (ucb, rand)
