"""izero: Ray-parallel batch InstructZero.

Finds the best instruction for a black-box LLM: an open-source LLM turns a low-dimensional
soft prompt into an instruction, the black box is scored zero-shot under it, and batch
Bayesian optimisation proposes the next soft prompts.

Stages live in their own sub-packages: ``tasks`` (data, splits, metrics), ``generator``
(soft prompt -> instruction), ``blackbox`` (scoring), ``bo`` (proposals), ``results``
(Parquet); ``driver`` is the only module that knows all of them.
"""

__version__ = "0.1.0"
