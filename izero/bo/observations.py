"""Validated observations of one task: soft prompts, dev scores and per-example score vectors."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from izero.errors import OptimizerError


@dataclass(frozen=True, eq=False)
class TaskObservations:
    """What one task has evaluated so far.

    Attributes:
        z: ``n x d`` soft prompts, inside the proposer's box (default ``[-1, 1]^d``).
        y: ``n`` dev mean scores (higher is better), one per soft prompt.
        s: ``n x m`` per-example score vectors of the evaluated instructions (``y`` is usually
            their mean). Used by the instruction-coupled kernel.

    Rows with NaN/inf are rejected (never silently dropped): a failed evaluation must be left
    out by the caller, not recorded as a score.
    """

    z: Tensor
    y: Tensor
    s: Tensor

    def __post_init__(self) -> None:
        for name in ("z", "y", "s"):
            if not isinstance(getattr(self, name), Tensor):
                raise OptimizerError(
                    f"TaskObservations.{name} must be a torch.Tensor, got "
                    f"{type(getattr(self, name)).__name__}; wrap it with torch.as_tensor"
                )
        z, y, s = self.z, self.y, self.s
        if z.dim() != 2 or z.shape[0] < 1 or z.shape[1] < 1:
            raise OptimizerError(f"z must have shape n x d with n, d >= 1; got {tuple(z.shape)}")
        n = z.shape[0]
        if y.shape != (n,):
            raise OptimizerError(
                f"y must have shape (n,) = ({n},) to match z; got {tuple(y.shape)}"
            )
        if s.dim() != 2 or s.shape[0] != n or s.shape[1] < 1:
            raise OptimizerError(f"s must have shape n x m = {n} x m; got {tuple(s.shape)}")
        for name, value in (("z", z), ("y", y), ("s", s)):
            if not value.is_floating_point():
                raise OptimizerError(f"{name} must be a floating-point tensor, got {value.dtype}")
            bad = ~torch.isfinite(value.reshape(n, -1)).all(dim=-1)
            if bad.any():
                rows = bad.nonzero().flatten().tolist()[:10]
                raise OptimizerError(
                    f"{name} holds NaN/inf in rows {rows}: drop failed evaluations (they are "
                    "not scores) before proposing"
                )

    @property
    def n(self) -> int:
        """Number of evaluated soft prompts."""
        return self.z.shape[0]

    @property
    def d(self) -> int:
        """Soft-prompt dimension."""
        return self.z.shape[1]

    @property
    def m(self) -> int:
        """Length of the per-example score vectors."""
        return self.s.shape[1]
