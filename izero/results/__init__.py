"""Results of a sweep: Parquet schemas, an append-safe store, provenance and the report.

Public API:

- :class:`ResultsStore`: one sweep's results under a local path or ``pyarrow.fs`` URI.
- Schemas :data:`EVALUATIONS_SCHEMA`, :data:`SUMMARIES_SCHEMA`, :data:`CALLS_SCHEMA` and the
  row dataclasses :data:`EvaluationRecord`, :data:`SummaryRecord`, :data:`CallRecord`.
- :func:`evaluations_table`, :func:`summaries_table`, :func:`calls_table`: validating builders.
- :class:`Provenance`, :func:`collect_provenance`.
- :func:`izero.results.report.build_report` (imported lazily: it needs matplotlib).
- :func:`best_instructions`, :func:`format_best`: the best instruction per task and method,
  with its scores, black-box model, template and provenance (``izero best``).
"""

from izero.results.export import best_instructions, format_best
from izero.results.provenance import Provenance, collect_provenance
from izero.results.schema import (
    CALLS_SCHEMA,
    EVALUATIONS_SCHEMA,
    SUMMARIES_SCHEMA,
    CallRecord,
    EvaluationRecord,
    SummaryRecord,
    calls_table,
    evaluations_table,
    summaries_table,
)
from izero.results.store import ResultsStore

__all__ = [
    "CALLS_SCHEMA",
    "EVALUATIONS_SCHEMA",
    "SUMMARIES_SCHEMA",
    "CallRecord",
    "EvaluationRecord",
    "Provenance",
    "ResultsStore",
    "SummaryRecord",
    "best_instructions",
    "calls_table",
    "collect_provenance",
    "evaluations_table",
    "format_best",
    "summaries_table",
]
