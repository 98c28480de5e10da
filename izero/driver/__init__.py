"""The multi-task driver: runs every (task, method, seed) of a sweep, pipelined on Ray.

The only part of izero that knows all three stages (generator, black box, optimiser).
"""

from izero.driver.plan import METHODS, RunKey, plan_runs
from izero.driver.sweep import SweepOutcome, run_sweep

__all__ = ["METHODS", "RunKey", "SweepOutcome", "plan_runs", "run_sweep"]
