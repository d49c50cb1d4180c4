"""``drum report``: the per-query HTML report of a ``drum eval`` / ``drum demo`` /
``drum demon eval`` output (one self-contained page, see ``drum.eval.query_report``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from drum.cli.common import check_out, console, fail, warn
from drum.cli.defaults import default_of

REPORT_CONFIG = "drum.eval.query_report:ReportConfig"


def report_command(
    results: Annotated[
        Path,
        typer.Option(
            help="An evaluation's output: the folder (or its icl_results.json / "
            "demon_scores.json) of drum eval, drum demo's results/, or drum demon eval."
        ),
    ],
    out: Annotated[Path, typer.Option(help="The HTML file to write.")] = Path("report.html"),
    per_group: Annotated[
        int, typer.Option(help="Sampled query cards per task x strategy x shots (DEMON: task).")
    ] = default_of(REPORT_CONFIG, "per_group"),
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = default_of(REPORT_CONFIG, "seed"),
    compare: Annotated[
        str | None,
        typer.Option(help="Two strategies A,B to compare (default drum,concat when both ran)."),
    ] = None,
    compare_per_group: Annotated[
        int, typer.Option(help="Comparison cards per task x shots x direction.")
    ] = default_of(REPORT_CONFIG, "compare_per_group"),
    thumbnail: Annotated[
        int, typer.Option(help="Longest side of the inline thumbnails (pixels).")
    ] = default_of(REPORT_CONFIG, "thumbnail"),
) -> None:
    """One self-contained HTML page: summary, sampled query cards with their
    demonstrations, a two-strategy comparison, filters (no server, no network)."""
    from drum.eval.query_report import ReportConfig, build_report

    pair: tuple[str, str] | None = None
    if compare is not None:
        names = [name.strip() for name in compare.split(",") if name.strip()]
        if len(names) != 2:
            fail(f"--compare needs two comma-separated strategies, got {compare!r}")
        pair = (names[0], names[1])
    if not results.exists():
        fail(f"--results {results}: no such file or directory")
    check_out(out, "file")
    try:
        config = ReportConfig(
            per_group=per_group,
            seed=seed,
            compare=pair,
            compare_per_group=compare_per_group,
            thumbnail=thumbnail,
        )
        summary = build_report(results, out, config)
    except ValueError as error:
        fail(str(error))
    for line in summary.warnings:  # data changed since the evaluation
        warn(line)
    comparison = ""
    if summary.comparison is not None:
        a, b = summary.comparison
        totals = [sum(c[i] for by_shots in summary.counts.values() for c in by_shots.values())
                  for i in (0, 1)]  # fmt: skip
        comparison = f"; right with {a} and wrong with {b}: {totals[0]}, the reverse: {totals[1]}"
    console.print(
        f"report: {summary.path} ({summary.cards} query cards, {summary.bytes / 1e6:.2f} MB, "
        f"{summary.seconds:.1f} s{comparison})"
    )
