"""``izero score``: score given instructions on a task against any endpoint.

    izero score --task sum --instruction "Add the two numbers" --base-url URL --model M --rpm N
    izero score --task sum --instruction "Add the two numbers" --simulated --out scores.jsonl

Prints each instruction's score and writes one row per (instruction, example) to ``--out``
(``.jsonl`` or ``.parquet``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from izero.blackbox.config import (
    DEFAULT_API_KEY_ENV,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_TOKENS,
    MAX_TOKENS_PARAMS,
    EndpointConfig,
)
from izero.blackbox.pool import EndpointScorer
from izero.blackbox.preflight import check_endpoint
from izero.blackbox.scoring import Scorer, ScoreResult
from izero.blackbox.simulated import DEFAULT_MODEL, SimulatedOptions, SimulatedServer
from izero.errors import IZeroError
from izero.tasks.types import Example, Task

logger = logging.getLogger(__name__)

DEFAULT_N_EXAMPLES = 50
#: ``izero score`` waits this long (seconds) for an endpoint that stops answering mid-way.
DEFAULT_OUTAGE_ALLOWANCE_S = 60.0
#: Exit status when an instruction got no answer at all (every call failed).
EXIT_UNANSWERED = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``score`` command's options to ``parser``."""
    parser.add_argument("--task", required=True, help="task name (built-in or in --data-dir)")
    parser.add_argument(
        "--instruction",
        action="append",
        required=True,
        help="an instruction to score (repeat for several)",
    )
    parser.add_argument("--data-dir", default=None, help="instruction-induction data folder")
    parser.add_argument(
        "--n",
        type=int,
        default=DEFAULT_N_EXAMPLES,
        help="examples to score on (from the execute split)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the example sample")
    parser.add_argument("--base-url", default=None, help="OpenAI-compatible API root (…/v1)")
    parser.add_argument("--model", default=None)
    parser.add_argument(
        "--api-key-env", default=DEFAULT_API_KEY_ENV, help="environment variable holding the key"
    )
    parser.add_argument("--rpm", type=float, default=None, help="requests per minute limit")
    parser.add_argument("--tpm", type=float, default=None, help="tokens per minute limit")
    parser.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS)
    parser.add_argument(
        "--max-tokens-param",
        choices=MAX_TOKENS_PARAMS,
        default=MAX_TOKENS_PARAMS[0],
        help="request field of --max-tokens (max_completion_tokens for newer OpenAI models)",
    )
    parser.add_argument("--max-calls", type=int, default=None, help="budget: paid calls")
    parser.add_argument(
        "--max-retries",
        type=int,
        default=DEFAULT_MAX_RETRIES,
        help="retries of a call after a transient failure",
    )
    parser.add_argument("--cache-dir", default=None, help="response cache folder")
    parser.add_argument("--out", default=None, help="per-example results (.jsonl/.parquet)")
    parser.add_argument(
        "--simulated",
        action="store_true",
        help="start the offline simulated endpoint for this call",
    )
    parser.add_argument(
        "--outage-allowance-s",
        type=float,
        default=DEFAULT_OUTAGE_ALLOWANCE_S,
        help="seconds to hold calls and probe an endpoint that answers nothing before giving up",
    )
    parser.add_argument(
        "--no-preflight",
        action="store_true",
        help="do not check the endpoint (GET /models or a 1-token completion) before scoring",
    )


def _examples(task: Task, n: int, seed: int) -> tuple[Example, ...]:
    pool = list(task.execute or task.induce)
    if n < len(pool):
        pool = random.Random(seed).sample(pool, n)
    return tuple(pool)


def _rows(result: ScoreResult, examples: Sequence[Example]) -> list[dict[str, Any]]:
    rows = []
    for i, (ex, score, answer, rec) in enumerate(
        zip(examples, result.scores, result.answers, result.call_records, strict=True)
    ):
        rows.append(
            {
                "instruction": result.instruction,
                "index": i,
                "input": ex.input,
                "answers": list(ex.answers),
                "prediction": answer,
                "score": score,
                "status": rec.status,
                "attempts": rec.attempts,
                "cached": rec.cached,
                "prompt_tokens": rec.prompt_tokens,
                "completion_tokens": rec.completion_tokens,
                "cost": rec.cost,
                "started_at": rec.started_at,
                "finished_at": rec.finished_at,
            }
        )
    return rows


def write_rows(rows: list[dict[str, Any]], path: Path) -> None:
    """Write rows as JSON lines, or as Parquet when ``path`` ends with ``.parquet``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
        return
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def run(
    args: argparse.Namespace, *, task: Task | None = None, scorer: Scorer | None = None, out=None
) -> int:
    """Run ``izero score``; returns the exit status (0 ok, 1 an instruction got no answer at
    all, 2 a stopped run or bad input).

    ``task``: use this task instead of loading ``args.task``; ``scorer``: ``None`` =
    ``izero.tasks.metrics.score_answer``; ``out``: stream for the report (``None`` = stdout).
    """
    out = out or sys.stdout
    server = None
    try:
        if task is None:
            from izero.tasks import load_task

            task = load_task(args.task, data_dir=args.data_dir)
        examples = _examples(task, args.n, args.seed)
        base_url, model = args.base_url, args.model
        if args.simulated:
            server = SimulatedServer([task], options=SimulatedOptions(rpm=args.rpm, tpm=args.tpm))
            base_url, model = server.start(), model or DEFAULT_MODEL
        if not base_url or not model:
            print("izero score: give --base-url and --model, or --simulated", file=sys.stderr)
            return 2
        config = EndpointConfig(
            base_url=base_url,
            model=model,
            api_key_env=args.api_key_env,
            rpm=args.rpm,
            tpm=args.tpm,
            max_tokens=args.max_tokens,
            max_tokens_param=args.max_tokens_param,
            max_calls=args.max_calls,
            max_retries=args.max_retries,
            outage_allowance_s=args.outage_allowance_s,
        )
        if not args.no_preflight and not args.simulated:
            asyncio.run(check_endpoint(config))
        results = asyncio.run(_score_all(config, args, task, examples, scorer))
    except IZeroError as err:
        print(f"izero score: {err}", file=sys.stderr)
        return 2
    finally:
        if server is not None:
            server.stop()
    rows: list[dict[str, Any]] = []
    for result in results:
        mean = "n/a" if result.mean is None else f"{result.mean:.4f}"
        print(
            f"{mean}\t{result.n_answered}/{len(examples)} answered, {result.n_failed} failed, "
            f"{result.calls} paid calls, {result.cache_hits} cached, cost {result.cost:.6f}"
            f"\t{result.instruction}",
            file=out,
        )
        rows.extend(_rows(result, examples))
    if args.out:
        write_rows(rows, Path(args.out))
        print(f"per-example results: {args.out}", file=out)
    unanswered = [r for r in results if examples and r.n_answered == 0]
    if unanswered:
        statuses = sorted({rec.status for r in unanswered for rec in r.call_records})
        print(
            f"izero score: {len(unanswered)} of {len(results)} instructions got no answer at all "
            f"(last statuses: {', '.join(statuses)}); their scores are unknown, not 0",
            file=sys.stderr,
        )
        return EXIT_UNANSWERED
    return 0


async def _score_all(config, args, task, examples, scorer) -> list[ScoreResult]:
    scorer_ = EndpointScorer(config, cache_dir=args.cache_dir, scorer=scorer)
    try:
        return list(
            await asyncio.gather(
                *(scorer_.score(i, examples, task.metric) for i in args.instruction)
            )
        )
    finally:
        await scorer_.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point (the ``izero`` CLI wires :func:`add_arguments`/:func:`run`)."""
    parser = argparse.ArgumentParser(prog="izero score", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
