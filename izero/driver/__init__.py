"""The multi-task driver: runs every (task, method, seed) of a sweep, pipelined on Ray.

The only part of izero that knows all three stages (generator, black box, optimiser); methods
(:mod:`izero.methods`) borrow them through :mod:`izero.driver.services`.
"""

from izero.driver.plan import RunKey, plan_runs
from izero.driver.sweep import SweepOutcome, run_sweep

__all__ = ["RunKey", "SweepOutcome", "plan_runs", "run_sweep"]
