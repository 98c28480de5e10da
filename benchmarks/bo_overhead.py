"""Overhead of the BO proposal step: izero's BatchProposer vs BoTorch defaults in a loop.

Setting (issue 5): 24 tasks, soft prompts d=10 in [-1, 1]^d, per-example score vectors of length
20 (Bernoulli scores whose probabilities are smooth functions of z), n observations per task,
q=25 proposals per task.

- izero: one ``BatchProposer`` (default options) proposing for all tasks at once. "warm" is the
  steady state of a run: the proposer first proposes at n-25 (the previous round, untimed) and
  the timed call at n starts from those hyper-parameters. "cold" is a fresh proposer.
- reference: per task, one ``SingleTaskGP`` with the same instruction-coupled kernel (all
  hyper-parameters fitted with ``fit_gpytorch_mll``) and BoTorch's default ``optimize_acqf``
  for qLogEI (joint q, num_restarts=10, raw_samples=512). It is timed on ``--ref-tasks`` tasks
  and extrapolated linearly to all tasks (stated in the table).
- acquisition value: q-EI (4096 fixed QMC samples) of izero's proposals divided by that of the
  reference's proposals, both on the reference's fitted model of the task (mean over the
  reference tasks).

- isolation (``--isolation``): izero's warm proposal time with every task fitted and optimised
  alone (``isolate_tasks=True``, the default: a run's proposals do not depend on which runs
  share its batch) against one batched model for all tasks (``isolate_tasks=False``), timed
  alternately ``--repeats`` times in one process (best of each); the JSON line then adds
  ``"isolated_over_batched"`` (time ratio, warm, at the headline n).

Prints a table; the last line is JSON with the figures at n=150 (or the largest n run).
Run: ``PYTHONPATH=$PWD python benchmarks/bo_overhead.py [--n 150] [--ref-tasks 3]``
(``--options JSON`` overrides ProposerOptions).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import torch
from gpytorch.utils.warnings import NumericalWarning

NUM_TASKS = 24
DIM = 10
SCORE_LEN = 20
Q = 25
ROUND = 25
REF_RESTARTS = 10
REF_RAW_SAMPLES = 512
EVAL_MC_SAMPLES = 4096
EVAL_SEED = 12345


def make_tasks(n: int, num_tasks: int, seed: int = 0):
    """``num_tasks`` synthetic tasks with ``n`` observations: (z, y, s) tensors."""
    from izero.bo import initial_design

    gen = torch.Generator().manual_seed(seed)
    tasks = []
    for t in range(num_tasks):
        z = initial_design(n, DIM, seed=1000 + t)
        w = torch.randn(DIM, SCORE_LEN, generator=gen, dtype=torch.float64)
        b = torch.randn(SCORE_LEN, generator=gen, dtype=torch.float64)
        p = torch.sigmoid(torch.sin(2.0 * z) @ w / 1.5 + b)
        s = (torch.rand(n, SCORE_LEN, generator=gen, dtype=torch.float64) < p).double()
        tasks.append((z, s.mean(-1), s))
    return tasks


def run_izero(tasks, *, warm: bool, options: dict):
    """Seconds for one ``propose`` over all tasks, and the proposals."""
    from izero.bo import BatchProposer, ProposerOptions, TaskObservations

    proposer = BatchProposer(ProposerOptions(**options))
    keys = [f"task{t}" for t in range(len(tasks))]
    seeds = list(range(len(tasks)))
    if warm:
        n_prev = tasks[0][0].shape[0] - ROUND
        if n_prev >= 2:
            prev = [TaskObservations(z=z[:n_prev], y=y[:n_prev], s=s[:n_prev]) for z, y, s in tasks]
            proposer.propose(prev, q=Q, seeds=seeds, keys=keys)
    obs = [TaskObservations(z=z, y=y, s=s) for z, y, s in tasks]
    start = time.perf_counter()
    out = proposer.propose(obs, q=Q, seeds=seeds, keys=keys)
    return time.perf_counter() - start, out


def isolation_timings(tasks, options: dict, repeats: int) -> tuple[float, float]:
    """Best warm proposal seconds with tasks fitted alone and in one batch, timed alternately
    (so that both see the same load)."""
    best = {True: float("inf"), False: float("inf")}
    for _ in range(repeats):
        for isolate in (True, False):
            seconds, _ = run_izero(tasks, warm=True, options={**options, "isolate_tasks": isolate})
            best[isolate] = min(best[isolate], seconds)
    return best[True], best[False]


def reference_model(z, y, s):
    from botorch.models import SingleTaskGP
    from botorch.models.transforms.outcome import Standardize

    from izero.bo import make_covar_module

    covar = make_covar_module("instruction_coupled", train_z=z, train_s=s, learn_z_lengthscale=True)
    return SingleTaskGP(
        train_X=z, train_Y=y.unsqueeze(-1), covar_module=covar, outcome_transform=Standardize(m=1)
    )


def run_reference(task, seed: int):
    """BoTorch defaults for one task: (seconds, fitted model, proposals q x d)."""
    from botorch.acquisition.logei import qLogExpectedImprovement
    from botorch.fit import fit_gpytorch_mll
    from botorch.optim import optimize_acqf
    from gpytorch.mlls import ExactMarginalLogLikelihood

    z, y, s = task
    torch.manual_seed(seed)
    start = time.perf_counter()
    model = reference_model(z, y, s)
    fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    acq = qLogExpectedImprovement(model=model, best_f=y.max())
    bounds = torch.tensor([[-1.0] * DIM, [1.0] * DIM], dtype=torch.float64)
    x, _ = optimize_acqf(
        acq, bounds=bounds, q=Q, num_restarts=REF_RESTARTS, raw_samples=REF_RAW_SAMPLES
    )
    return time.perf_counter() - start, model, x


def q_ei(model, x, best_f) -> float:
    """q-EI of the q x d batch ``x`` (fixed QMC samples), not log: ratios are meaningful."""
    import warnings

    from botorch.acquisition.monte_carlo import qExpectedImprovement
    from botorch.sampling import SobolQMCNormalSampler

    sampler = SobolQMCNormalSampler(torch.Size([EVAL_MC_SAMPLES]), seed=EVAL_SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BoTorch recommends qLogEI for optimising, not here
        acq = qExpectedImprovement(model=model, best_f=best_f, sampler=sampler)
    with torch.no_grad():
        return float(acq(x.unsqueeze(0)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[25, 100, 150, 250])
    parser.add_argument("--tasks", type=int, default=NUM_TASKS)
    parser.add_argument("--ref-tasks", type=int, default=3, help="reference tasks timed")
    parser.add_argument(
        "--options", default="{}", help="JSON overrides of izero.bo.ProposerOptions"
    )
    parser.add_argument("--no-cold", action="store_true", help="skip the cold izero timing")
    parser.add_argument(
        "--isolation",
        action="store_true",
        help="also time isolated (default) against batched fits, side by side",
    )
    parser.add_argument("--repeats", type=int, default=2, help="timings per mode (--isolation)")
    args = parser.parse_args()
    options = json.loads(args.options)
    warnings.filterwarnings("ignore", category=NumericalWarning)  # jitter notes, both sides
    torch.set_num_threads(1)  # ../shared/FACTS.md: 1 thread is 3-150x faster here

    rows = []
    for n in args.n:
        tasks = make_tasks(n, args.tasks)
        warm_s, proposals = run_izero(tasks, warm=True, options=options)
        cold_s = float("nan") if args.no_cold else run_izero(tasks, warm=False, options=options)[0]
        k = min(args.ref_tasks, args.tasks)
        ref_times, ratios = [], []
        for t in range(k):
            seconds, model, x_ref = run_reference(tasks[t], seed=t)
            ref_times.append(seconds)
            best = tasks[t][1].max()
            ei_ref = q_ei(model, x_ref, best)
            ei_izero = q_ei(model, proposals[t].to(torch.float64), best)
            ratios.append(ei_izero / ei_ref if ei_ref > 0 else float("nan"))
        ref_all = sum(ref_times) / k * args.tasks
        iso = isolation_timings(tasks, options, args.repeats) if args.isolation else (None, None)
        rows.append(
            {
                "isolated_s": iso[0],
                "batched_s": iso[1],
                "n": n,
                "izero_warm_s": warm_s,
                "izero_cold_s": cold_s,
                "ref_s_per_task": sum(ref_times) / k,
                "ref_all_tasks_s": ref_all,
                "ref_tasks_timed": k,
                "speedup_warm": ref_all / warm_s,
                "speedup_cold": ref_all / cold_s,
                "acq_ratio_mean": sum(ratios) / len(ratios),
                "acq_ratio_min": min(ratios),
            }
        )
        print(f"n={n}: done", flush=True)

    print()
    print(
        f"{args.tasks} tasks, d={DIM}, m={SCORE_LEN}, q={Q}; reference timed on "
        f"{rows[0]['ref_tasks_timed']} task(s) and extrapolated linearly to {args.tasks}"
    )
    header = (
        f"{'n':>5} {'izero warm s':>13} {'izero cold s':>13} {'ref s/task':>11} "
        f"{'ref all s*':>11} {'speedup warm':>13} {'speedup cold':>13} {'acq ratio':>10} "
        f"{'min':>6}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['n']:>5} {r['izero_warm_s']:>13.2f} {r['izero_cold_s']:>13.2f} "
            f"{r['ref_s_per_task']:>11.2f} {r['ref_all_tasks_s']:>11.1f} "
            f"{r['speedup_warm']:>13.1f} {r['speedup_cold']:>13.1f} "
            f"{r['acq_ratio_mean']:>10.3f} {r['acq_ratio_min']:>6.3f}"
        )
    print("* extrapolated: reference seconds per task x number of tasks")
    if args.isolation:
        print()
        print(f"{'n':>5} {'isolated s':>11} {'batched s':>10} {'isolated/batched':>17}")
        for r in rows:
            ratio = r["isolated_s"] / r["batched_s"]
            print(f"{r['n']:>5} {r['isolated_s']:>11.2f} {r['batched_s']:>10.2f} {ratio:>17.2f}")
    head = next((r for r in rows if r["n"] == 150), rows[-1])
    extra = (
        {"isolated_over_batched": round(head["isolated_s"] / head["batched_s"], 3)}
        if args.isolation
        else {}
    )
    print(
        json.dumps(
            {
                **extra,
                "n": head["n"],
                "speedup_vs_reference": round(head["speedup_warm"], 2),
                "speedup_vs_reference_cold": round(head["speedup_cold"], 2),
                "acq_value_ratio": round(head["acq_ratio_mean"], 4),
                "seconds_all_tasks": round(head["izero_warm_s"], 3),
                "seconds_all_tasks_cold": round(head["izero_cold_s"], 3),
                "reference_extrapolated_from_tasks": head["ref_tasks_timed"],
            }
        )
    )


if __name__ == "__main__":
    main()
