"""The best instruction of a sweep, per task and method (or per run), ready to paste elsewhere.

:func:`best_instructions` reads a sweep's results and returns one plain dict per (task,
method), or per (task, method, seed) with ``per_seed=True``. Each holds at least ``task``,
``method``, ``instruction``, ``dev_score`` and ``test_score``, plus what the scores mean: the
black-box model, the query template the instruction was scored under (with ``{instruction}``
and ``{input}``), the metric, and the sweep's provenance.

How the winner of a (task, method) is chosen: every run (seed) ends with its best instruction
by dev score. Each of these candidates gets the mean of its dev scores over the seeds whose
runs evaluated it (each seed has its own dev examples; the same ``manual`` instruction, for
instance, is scored under every seed), and the candidate with the highest mean wins (ties: more
seeds, then the lowest seed). Its ``test_score`` is the mean test score of the runs it won.
``seeds`` lists the seeds behind ``dev_score``; ``runs``, ``mean_best_dev_score`` and
``mean_test_score`` describe the method over all its runs.

:func:`format_best` writes the rows as JSON (a list of objects), YAML or a Markdown table.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from izero.errors import ResultsError
from izero.results.provenance import Provenance
from izero.results.store import ResultsStore

#: Output formats of :func:`format_best`.
FORMATS = ("json", "yaml", "md")
#: Provenance config paths searched, in order, for the query template the best instruction's
#: test score was measured under (a string with ``{instruction}`` and ``{input}``; the config's
#: ``prompts`` section): the test template where the sweep sets one, else the dev template;
#: sweeps written before templates were configurable fall back to
#: :data:`izero.blackbox.prompts.QUERY_TEMPLATE`, the one template izero had then.
TEMPLATE_CONFIG_PATHS: tuple[tuple[str, ...], ...] = (
    ("prompts", "test_query_template"),
    ("prompts", "query_template"),
)


def _lookup(config: Mapping[str, Any], path: Sequence[str]) -> Any:
    node: Any = config
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def scoring_template(config: Mapping[str, Any] | None) -> str:
    """The query template of a sweep's (provenance) config; see :data:`TEMPLATE_CONFIG_PATHS`."""
    for path in TEMPLATE_CONFIG_PATHS:
        value = _lookup(config or {}, path)
        if isinstance(value, Mapping):
            value = value.get("template") or value.get("query")
        if isinstance(value, str) and value:
            return value
    from izero.blackbox.prompts import QUERY_TEMPLATE

    return QUERY_TEMPLATE


def task_metric(config: Mapping[str, Any] | None, task: str) -> str:
    """The metric of ``task`` as the sweep's config gave it (with its answer extraction)."""
    from izero.tasks.metrics import metric_for_task

    config = config or {}
    for entry in config.get("tasks") or ():
        if isinstance(entry, Mapping) and entry.get("name") == task:
            metric = str(entry.get("metric") or "exact_match")
            extract = entry.get("extract")
            return f"{metric} (extract {extract})" if extract else metric
    overrides = config.get("metric_overrides") or {}
    return str(overrides.get(task) or metric_for_task(task))


def _task_file(config: Mapping[str, Any] | None, task: str) -> dict[str, Any] | None:
    for entry in (config or {}).get("tasks") or ():
        if isinstance(entry, Mapping) and entry.get("name") == task:
            return {"path": entry.get("path"), "sha256": entry.get("sha256")}
    return None


def _provenance_fields(store: ResultsStore, provenance: Provenance | None) -> dict[str, Any]:
    if provenance is None:
        return {"results": store.uri, "finished": store.is_finished()}
    return {
        "sweep": provenance.sweep,
        "results": store.uri,
        "finished": store.is_finished(),
        "created_at": provenance.created_at,
        "git_commit": provenance.git_commit,
        "izero_version": provenance.versions.get("izero"),
    }


def _clean(value: Any) -> Any:
    """NaN and missing scores as None (JSON null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None and math.isfinite(v)]
    return sum(kept) / len(kept) if kept else None


def _dev_by_instruction(evaluations: pa.Table) -> dict[tuple[str, str, int, str], float]:
    """(task, method, seed, instruction) -> its dev score in that run (first scored row)."""
    cols = evaluations.select(["task", "method", "seed", "instruction", "dev_score"])
    out: dict[tuple[str, str, int, str], float] = {}
    for row in cols.to_pylist():  # sorted by eval_index within a run
        key = (row["task"], row["method"], row["seed"], row["instruction"])
        if row["dev_score"] is not None and key not in out:
            out[key] = row["dev_score"]
    return out


def _latest(summaries: pa.Table) -> list[dict[str, Any]]:
    """One summary per (task, method, seed): the latest, sorted by task, method, seed."""
    out: dict[tuple[str, str, int], dict[str, Any]] = {}
    for row in summaries.to_pylist():
        key = (row["task"], row["method"], row["seed"])
        if key not in out or row["finished_at"] >= out[key]["finished_at"]:
            out[key] = row
    return [out[k] for k in sorted(out)]


def best_instructions(
    uri: str | Path,
    *,
    task: str | None = None,
    method: str | None = None,
    per_seed: bool = False,
) -> list[dict[str, Any]]:
    """The best instruction of each (task, method) of the sweep at ``uri`` (see module doc).

    Args:
        uri: the sweep's results (local folder or ``pyarrow.fs`` URI).
        task, method: keep only this task / method (None = all).
        per_seed: one row per (task, method, seed) run instead of per (task, method).

    Returns:
        Rows sorted by task, method (and seed), each a JSON-safe dict.

    Raises:
        ResultsError: no sweep at ``uri``, or no finished run matches.
    """
    store = ResultsStore(uri)
    if not store.exists():
        raise ResultsError(f"no sweep results at {store.uri}. Fix: pass a sweep's output.path")
    provenance = store.read_provenance()
    config = provenance.config if provenance is not None else {}
    tasks = [task] if task is not None else None
    methods = [method] if method is not None else None
    summaries = _latest(store.read_summaries(tasks=tasks, methods=methods))
    summaries = [s for s in summaries if s["best_instruction"] is not None]
    if not summaries:
        what = ", ".join(
            f"{k} {v!r}" for k, v in (("task", task), ("method", method)) if v is not None
        )
        everything = store.read_summaries(columns=["task", "method"])
        if what and everything.num_rows:
            found = {
                col: ", ".join(sorted(set(everything.column(col).to_pylist())))
                for col in ("task", "method")
            }
            fix = f"choose a task of {found['task']} and a method of {found['method']}"
        else:
            fix = "let the sweep finish (`izero sweep --resume`), or check the path"
        raise ResultsError(
            f"no finished run with a best instruction at {store.uri}"
            + (f" for {what}" if what else "")
            + f". Fix: {fix}"
        )
    common = _provenance_fields(store, provenance)
    template = scoring_template(config)

    def context(row: Mapping[str, Any]) -> dict[str, Any]:
        out = {
            "blackbox_model": row["blackbox_model"],
            "generator_model": row["generator_model"],
            "metric": task_metric(config, row["task"]),
            "template": template,
        }
        task_file = _task_file(config, row["task"])
        if task_file is not None:
            out["task_file"] = task_file
        out["provenance"] = dict(common)
        return out

    if per_seed:
        return [
            {
                "task": s["task"],
                "method": s["method"],
                "seed": s["seed"],
                "instruction": s["best_instruction"],
                "dev_score": _clean(s["best_dev_score"]),
                "test_score": _clean(s["test_score"]),
                "n_test": s["n_test"],
                "calls": s["total_calls"],
                "cost_usd": s["total_cost_usd"],
                **context(s),
            }
            for s in summaries
        ]

    dev_of = _dev_by_instruction(
        store.read_evaluations(
            tasks=tasks,
            methods=methods,
            columns=["task", "method", "seed", "eval_index", "instruction", "dev_score"],
        )
    )
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for s in summaries:
        groups.setdefault((s["task"], s["method"]), []).append(s)
    rows = []
    for (task_name, method_name), runs in sorted(groups.items()):
        seeds = sorted(r["seed"] for r in runs)
        candidates = []
        for instruction in dict.fromkeys(r["best_instruction"] for r in runs):
            scored = [
                (seed, dev_of[(task_name, method_name, seed, instruction)])
                for seed in seeds
                if (task_name, method_name, seed, instruction) in dev_of
            ]
            won = [r for r in runs if r["best_instruction"] == instruction]
            if not scored:  # no evaluation row (cannot happen for runs izero wrote)
                scored = [(r["seed"], r["best_dev_score"]) for r in won]
            candidates.append(
                {
                    "instruction": instruction,
                    "dev_score": _mean([d for _, d in scored]),
                    "seeds": sorted(seed for seed, _ in scored),
                    "test_score": _mean([r["test_score"] for r in won]),
                }
            )
        best = max(
            candidates,
            key=lambda c: (
                -math.inf if c["dev_score"] is None else c["dev_score"],
                len(c["seeds"]),
                -min(c["seeds"], default=0),
            ),
        )
        rows.append(
            {
                "task": task_name,
                "method": method_name,
                "instruction": best["instruction"],
                "dev_score": _clean(best["dev_score"]),
                "test_score": _clean(best["test_score"]),
                "seeds": best["seeds"],
                "runs": len(runs),
                "mean_best_dev_score": _clean(_mean([r["best_dev_score"] for r in runs])),
                "mean_test_score": _clean(_mean([r["test_score"] for r in runs])),
                **context(runs[0]),
            }
        )
    return rows


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    per_seed = bool(rows) and "seed" in rows[0]
    head = ["task", "method", *(["seed"] if per_seed else ["seeds"]), "dev", "test", "instruction"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        seeds = str(r["seed"]) if per_seed else ", ".join(map(str, r["seeds"]))
        instruction = r["instruction"].replace("|", "\\|").replace("\n", " ")
        cells = [r["task"], r["method"], seeds, _score(r["dev_score"]), _score(r["test_score"])]
        lines.append("| " + " | ".join([*cells, instruction]) + " |")
    if rows:
        first = rows[0]
        prov = first["provenance"]
        template = first["template"].replace("\n", "\\n")
        lines += [
            "",
            f"Black box: {first['blackbox_model']}; template: `{template}`",
            f"Sweep {prov.get('sweep')!s} at {prov['results']} (created {prov.get('created_at')}, "
            f"git {prov.get('git_commit')}, izero {prov.get('izero_version')})",
        ]
    return "\n".join(lines)


def _yaml(rows: Sequence[Mapping[str, Any]]) -> str:
    import yaml

    class _Dumper(yaml.SafeDumper):
        """Multi-line strings (the template) as literal blocks."""

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, text)
    return yaml.dump(
        [dict(r) for r in rows], Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000
    ).rstrip()


def format_best(rows: Sequence[Mapping[str, Any]], fmt: str = "json") -> str:
    """``rows`` of :func:`best_instructions` as JSON, YAML or a Markdown table.

    Raises:
        ResultsError: unknown format.
    """
    if fmt == "json":
        return json.dumps(list(rows), indent=2, ensure_ascii=False)
    if fmt == "yaml":
        return _yaml(rows)
    if fmt == "md":
        return _markdown(rows)
    raise ResultsError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
