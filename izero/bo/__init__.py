"""Bayesian optimisation over soft prompts: instruction-coupled kernel, batch q-EI, baselines.

Pure torch/BoTorch/GPyTorch; no Ray, no HTTP. The driver calls :class:`BatchProposer` (or a
baseline) with one :class:`TaskObservations` per task and gets ``q x d`` soft prompts back;
``state_dict()`` / ``load_state_dict()`` carry the per-task warm starts between rounds (plain
tensors, picklable, so the proposer can run in a Ray task).

How a call works (see ``proposer.py``): tasks with equal ``(n, d, m)`` form one batched
``SingleTaskGP`` (batch shape ``[tasks]``, standardised outcomes); hyper-parameters are MAP-fitted
with BoTorch's batched independent L-BFGS-B, warm-started per task key and refitted from a second
start so that a stale likelihood mode is left (``models.fit_two_starts``). With the coupled
kernel the soft-prompt lengthscales sit at their prior mode (their MAP: the training covariance
is ``K_S`` up to jitter), so ``K_Z`` is factorised once. q-LogEI / q-LogNEI with per-task QMC
base samples is evaluated through a precomputed posterior (``posterior.CoupledPosteriorModel``)
and maximised for all tasks at once by projected Adam from batches built around each task's
best points (``acquisition.py``); duplicates are replaced by Sobol points (``dedup.py``).

The paper's own procedure (analytic EI maximised by one CMA-ES run from each of the best
points) is :func:`propose_paper` (``paper.py``), one task per call.
"""

from izero.bo.baselines import SobolProposer, UniformProposer, initial_design
from izero.bo.kernels import InstructionCoupledKernel, make_covar_module
from izero.bo.observations import TaskObservations
from izero.bo.options import ProposerOptions
from izero.bo.paper import PaperSearchOptions, propose_paper
from izero.bo.proposer import BatchProposer

__all__ = [
    "BatchProposer",
    "InstructionCoupledKernel",
    "PaperSearchOptions",
    "ProposerOptions",
    "SobolProposer",
    "TaskObservations",
    "UniformProposer",
    "initial_design",
    "make_covar_module",
    "propose_paper",
]
