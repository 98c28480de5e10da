"""How well the paper's CMA-ES maximises EI on the instruction-coupled GP, against a dense search.

Setting: synthetic tasks as in ``bo_overhead.py`` (soft prompts in [-1, 1]^d, per-example 0/1
score vectors of length 20 whose probabilities are smooth functions of z), ``n`` Sobol
observations, the GP of ``izero.bo.paper`` (izero's coupled kernel, fitted from scratch), q=25.

- dense reference: log EI on 20k Sobol points, the evaluated points and 20 small perturbations
  of each (EI of this GP peaks next to the data), the best 20 refined by L-BFGS-B;
- each setting runs ``izero.bo.paper.paper_search`` on the same GP: ``paper`` (the original's
  sigma0 0.8, population 50, 10 generations, EI), ``paper_logei`` (the same ranking on log EI,
  so it still orders points where EI underflows to 0) and ``peak_scale`` (sigma0 0.05, 30
  generations: a step of the EI peak's width).

Per setting and d (medians over tasks): ``ei_ratio``, the best winner's EI over the dense
maximum; ``zero_ei_share``, the share of winners whose EI is 0 in float64; ``winner_distance``,
each winner's distance (box units) to its nearest evaluated point; ``seconds``, one round
(fit + search) on one thread. Prints a table; the last line is JSON with those four figures
as ``{name: {setting: {d: value}}}``.
Run: ``PYTHONPATH=$PWD python benchmarks/paper_search.py [--dims 2 5 10] [--tasks 3] [--n 25]``
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
import warnings

import torch
from botorch.acquisition.analytic import LogExpectedImprovement
from botorch.generation.gen import gen_candidates_scipy
from gpytorch.utils.warnings import NumericalWarning

SCORE_LEN = 20
Q = 25
DENSE_POINTS = 20_000
DENSE_NEAR = 20
DENSE_NEAR_SCALE = 0.03
REFINED = 20
SETTINGS = {
    "paper": {},
    "paper_logei": {"acquisition": "logei"},
    "peak_scale": {"sigma0": 0.05, "max_generations": 30},
}


def make_task(n: int, d: int, seed: int):
    """``n`` Sobol soft prompts with Bernoulli score vectors: (z, y, s)."""
    from izero.bo import initial_design

    gen = torch.Generator().manual_seed(seed)
    z = initial_design(n, d, seed=1000 + seed)
    w = torch.randn(d, SCORE_LEN, generator=gen, dtype=torch.float64)
    b = torch.randn(SCORE_LEN, generator=gen, dtype=torch.float64)
    p = torch.sigmoid(torch.sin(2.0 * z) @ w / 1.5 + b)
    s = (torch.rand(n, SCORE_LEN, generator=gen, dtype=torch.float64) < p).double()
    return z, s.mean(-1), s


def dense_max(log_ei, z: torch.Tensor) -> float:
    """The dense search's maximum of ``log_ei`` over [-1, 1]^d."""
    from izero.bo import initial_design

    d = z.shape[1]
    gen = torch.Generator().manual_seed(0)
    near = z.repeat(DENSE_NEAR, 1)
    near = near + DENSE_NEAR_SCALE * torch.randn(near.shape, generator=gen, dtype=z.dtype)
    pool = torch.cat([initial_design(DENSE_POINTS, d, seed=12345), z, near.clamp(-1, 1)])
    with torch.no_grad():
        values = log_ei(pool.unsqueeze(-2))
    start = pool[values.topk(REFINED).indices].unsqueeze(-2)
    _, refined = gen_candidates_scipy(start, log_ei, lower_bounds=-1.0, upper_bounds=1.0)
    return max(float(refined.max()), float(values.max()))


def measure(d: int, n: int, seed: int) -> dict[str, dict[str, float]]:
    from izero.bo.paper import PaperSearchOptions, fit_gp, paper_search
    from izero.bo.posterior import CoupledPosteriorModel

    z, y, s = make_task(n, d, seed)
    gp = fit_gp(z, y, s, fit_maxiter=PaperSearchOptions().fit_maxiter)
    log_ei = LogExpectedImprovement(CoupledPosteriorModel(gp), best_f=float(y.max()))
    reference = dense_max(log_ei, z)
    out = {}
    for name, overrides in SETTINGS.items():
        start = time.perf_counter()
        result = paper_search(z, y, s, q=Q, seed=seed, options=PaperSearchOptions(**overrides))
        seconds = time.perf_counter() - start
        with torch.no_grad():
            found = log_ei(result.points.unsqueeze(-2))
        out[name] = {
            "ei_ratio": math.exp(min(float(found.max()) - reference, 0.0)),
            "zero_ei_share": float((found.exp() == 0).double().mean()),
            "winner_distance": float(torch.cdist(result.points, z).min(-1).values.median()),
            "seconds": seconds,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 5, 10])
    parser.add_argument("--tasks", type=int, default=3, help="synthetic tasks per d")
    parser.add_argument("--n", type=int, default=25, help="observations per task")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", NumericalWarning)
    figures = ("ei_ratio", "zero_ei_share", "winner_distance", "seconds")
    summary: dict[str, dict[str, dict[str, float]]] = {
        f: {name: {} for name in SETTINGS} for f in figures
    }
    for d in args.dims:
        runs = [measure(d, args.n, seed) for seed in range(args.tasks)]
        for name in SETTINGS:
            for f in figures:
                summary[f][name][str(d)] = round(statistics.median(r[name][f] for r in runs), 4)
        print(f"d={d}: done", flush=True)
    print()
    print(f"n={args.n} observations, q={Q}, {args.tasks} tasks per d (medians)")
    header = f"{'setting':<12} {'d':>3} {'EI / dense':>10} {'EI = 0':>7} {'dist':>6} {'s/round':>8}"
    print(header)
    print("-" * len(header))
    for name in SETTINGS:
        for d in args.dims:
            k = str(d)
            print(
                f"{name:<12} {d:>3} {summary['ei_ratio'][name][k]:>10.3f} "
                f"{summary['zero_ei_share'][name][k]:>7.2f} "
                f"{summary['winner_distance'][name][k]:>6.3f} {summary['seconds'][name][k]:>8.2f}"
            )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
