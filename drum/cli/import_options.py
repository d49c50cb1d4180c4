"""What every ``drum data import`` subcommand shares: the per-split options and how they are
matched, and the run (options built, imported, summary printed).

Split-wise inputs are repeated options, matched by position: the first ``--questions`` goes
with the first ``--annotations``, ``--images`` and ``--split``. Without ``--split`` the output
splits are ``pool`` then ``queries``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from drum.cli.common import check_out, console, fail, read_or_fail

DEFAULT_SPLITS = ("pool", "queries")
NO_ANNOTATIONS = "none"  # --annotations value for a split without public answers

OutOption = Annotated[Path, typer.Option("--out", help="Directory to write (replaced as a whole).")]
SplitOption = Annotated[
    list[str] | None,
    typer.Option(
        "--split", help="Output split of each input, in order (default: pool, then queries)."
    ),
]
CopyOption = Annotated[
    bool,
    typer.Option(
        "--copy-images/--no-copy-images",
        help="Copy the images into <out>/images (default: point at them where they are).",
    ),
]


def split_names(names: Sequence[str] | None, count: int, inputs: str) -> list[str]:
    """The output split of each of ``count`` inputs: ``--split`` as given, else the defaults."""
    if names:
        if len(names) != count:
            fail(f"--split given {len(names)} times for {count} {inputs}; give one per input")
        return list(names)
    if count > len(DEFAULT_SPLITS):
        fail(f"{count} {inputs}: name the output split of each with --split")
    return list(DEFAULT_SPLITS[:count])


def same_count(option_values: dict[str, Sequence[Any]]) -> int:
    """The common length of the per-split options; exit 2 naming them if they differ."""
    counts = {name: len(values) for name, values in option_values.items()}
    if len(set(counts.values())) != 1:
        listed = ", ".join(f"{name} x{count}" for name, count in counts.items())
        fail(f"per-split options must be given the same number of times: {listed}")
    count = next(iter(counts.values()))
    if count == 0:
        fail(f"give at least one {' / '.join(counts)}")
    return count


def run_import(name: str, make_options: Callable[[], Any], out: Path) -> None:
    """Build the options (a ``ValueError`` exits 2), import, print the summary."""
    from drum.data.importers import import_dataset
    from drum.data.jsonl import DataError, DataWarning

    check_out(out, "directory")
    try:
        options = make_options()
    except ValueError as error:
        fail(str(error))
    report = read_or_fail(lambda: import_dataset(name, options, out), DataError, DataWarning)
    console.print(report.summary(), markup=False, highlight=False, soft_wrap=True)
