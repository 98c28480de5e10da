"""Bayesian optimisation over soft prompts: instruction-coupled kernel, batch q-EI, baselines.

Pure torch/BoTorch/GPyTorch; no Ray, no HTTP. The driver calls :class:`BatchProposer` (or a
baseline) with one :class:`TaskObservations` per task and gets ``q x d`` soft prompts back.
"""

from izero.bo.baselines import SobolProposer, UniformProposer, initial_design
from izero.bo.kernels import InstructionCoupledKernel, make_covar_module
from izero.bo.observations import TaskObservations
from izero.bo.options import ProposerOptions
from izero.bo.proposer import BatchProposer

__all__ = [
    "BatchProposer",
    "InstructionCoupledKernel",
    "ProposerOptions",
    "SobolProposer",
    "TaskObservations",
    "UniformProposer",
    "initial_design",
    "make_covar_module",
]
