"""The ``izero report`` command: ``izero report RESULTS [--format md|html] [--out DIR]
[--reference METHOD]``.

The CLI wires it as a sub-command::

    sub = subparsers.add_parser("report", help=...)
    command.add_arguments(sub)
    sub.set_defaults(func=command.run)
"""

from __future__ import annotations

import argparse
import sys

from izero.errors import ResultsError

#: One-line help of the sub-command.
HELP = "write a Markdown or HTML report (tables and PNG plots) of a sweep's results"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``izero report`` arguments to ``parser``."""
    from izero.results.report import FORMATS

    parser.add_argument(
        "results", help="results folder or pyarrow.fs URI of a sweep (file://, s3://, gs://)"
    )
    parser.add_argument(
        "--format",
        dest="format",
        choices=FORMATS,
        default="md",
        help="report format (default: md)",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="output folder or URI for the report and its plots (default: RESULTS/report)",
    )
    parser.add_argument(
        "--rpm-limit",
        dest="rpm_limit",
        type=float,
        default=None,
        help="requests-per-minute limit drawn in the call-rate plot "
        "(default: blackbox.rpm from the sweep's provenance)",
    )
    parser.add_argument(
        "--reference",
        default=None,
        metavar="METHOD",
        help="method the others are compared with (wins/ties/losses over seeds; default: "
        "instructzero when the results have it, else the first method by name)",
    )


def run(args: argparse.Namespace) -> int:
    """Build the report; print where it went. Returns 0, or 2 with one error line on stderr."""
    from izero.results.report import build_report

    try:
        report = build_report(
            args.results,
            out=args.out,
            fmt=args.format,
            rate_limit_rpm=args.rpm_limit,
            reference=args.reference,
        )
    except ResultsError as exc:
        print(f"izero report: error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {report.path}")
    for plot in report.plots:
        print(f"plot:   {plot}")
    return 0
