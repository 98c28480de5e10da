"""Top-level presets (``preset:`` in a sweep config): several sections' values at once.

``instructzero-original`` reproduces what the original InstructZero code does beyond its
budget (github Lichang-Chen/InstructZero at 911f019; see ``../shared/FIDELITY.md``): its prompt
strings (``prompts.preset: instructzero-original``), 128 new generator tokens (RI:159),
word_in_context answers ``output`` only (``load_data.py:42``) and a fresh random dev subset for
every evaluated instruction (``exec_accuracy.py:29-30``). Explicit fields of any section
override the preset, as they override ``budget.preset``.

It leaves the budget alone (``budget.preset: paper`` gives the paper's 25 + 5 x 25; the original
code at HEAD shows 10 demonstrations, ``misc.py:62``, where the paper and the code before commit
7c5f5ac show 5: set ``budget.n_demos: 10`` for HEAD) and the initial design, which belongs to the
methods (the original draws 25 Sobol points in [0, 1]^10 with seed 0 whatever the run's seed,
RI:260; izero's soft-prompt methods share one Sobol design in [-1, 1]^10 seeded by the run).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Top-level presets: section -> fields, merged under the config's own values.
SWEEP_PRESETS: Mapping[str, Mapping[str, Mapping[str, Any]]] = {
    "izero": {},
    "instructzero-original": {
        "prompts": {"preset": "instructzero-original"},
        "generator": {"max_new_tokens": 128},
        "data": {"word_in_context_answers": "output", "dev_sampling": "per_evaluation"},
    },
}


def apply_sweep_preset(raw: Mapping[str, Any], preset: str) -> dict[str, Any]:
    """``raw`` with preset ``preset``'s section values filled in where ``raw`` has none."""
    out = dict(raw)
    for section, fields in SWEEP_PRESETS[preset].items():
        given = out.get(section)
        if given is None:
            out[section] = dict(fields)
        elif isinstance(given, Mapping):
            out[section] = {**fields, **given}
        # anything else is refused, naming the section, when the config is built
    return out
