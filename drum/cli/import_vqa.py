"""``drum data import vqav2 / okvqa / vizwiz``: the VQA formats (``drum.data.importers.vqa``),
added to the ``drum data import`` group by ``drum.cli.importers``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from drum.cli.common import fail
from drum.cli.import_options import (
    NO_ANNOTATIONS,
    CopyOption,
    OutOption,
    SplitOption,
    run_import,
    same_count,
    split_names,
)


def vqa_command(name: str, title: str) -> Callable[..., None]:
    def command(
        questions: Annotated[
            list[Path], typer.Option("--questions", help="Questions JSON, per split.")
        ],
        annotations: Annotated[
            list[Path],
            typer.Option(
                "--annotations",
                help="Annotations JSON, per split; 'none' for a split without public answers "
                "(test-dev, test): its questions become queries without answers.",
            ),
        ],
        images: Annotated[
            list[Path], typer.Option("--images", help="COCO image folder, per split.")
        ],
        out: OutOption,
        split: SplitOption = None,
        coco_split: Annotated[
            list[str] | None,
            typer.Option(
                "--coco-split",
                help="Image name part (COCO_<coco-split>_<id>.jpg), per split "
                "(default: the questions file's data_subtype).",
            ),
        ] = None,
        copy_images: CopyOption = False,
    ) -> None:
        from drum.data.importers.vqa import VQAOptions, VQASource

        count = same_count(
            {"--questions": questions, "--annotations": annotations, "--images": images}
        )
        splits = split_names(split, count, "question files")
        subtypes: list[str | None] = list(coco_split) if coco_split else [None] * count
        if len(subtypes) != count:
            fail(f"--coco-split given {len(subtypes)} times for {count} question files")
        # 'none' (a file of that name: ./none): no annotations, every question answerless.
        answers: list[Path | None] = [None if str(a) == NO_ANNOTATIONS else a for a in annotations]
        run_import(
            name,
            lambda: VQAOptions(
                sources=tuple(
                    VQASource(*group)
                    for group in zip(splits, questions, answers, images, subtypes, strict=True)
                ),
                copy_images=copy_images,
            ),
            out,
        )

    command.__doc__ = (
        f"{title}: the official questions + annotations files and the COCO image folder; all "
        "10 human answers kept; questions without annotations (test splits, --annotations "
        "none) become queries without answers, counted as unanswered."
    )
    return command


def vizwiz_command(
    annotations: Annotated[
        list[Path], typer.Option("--annotations", help="Annotations JSON array, per split.")
    ],
    images: Annotated[list[Path], typer.Option("--images", help="Image folder, per split.")],
    out: OutOption,
    split: SplitOption = None,
    copy_images: CopyOption = False,
) -> None:
    """VizWiz VQA: the annotations file ([{image, question, answers, ...}]) and image folder."""
    from drum.data.importers.vqa import VizWizOptions, VizWizSource

    count = same_count({"--annotations": annotations, "--images": images})
    splits = split_names(split, count, "annotation files")
    run_import(
        "vizwiz",
        lambda: VizWizOptions(
            sources=tuple(
                VizWizSource(*group) for group in zip(splits, annotations, images, strict=True)
            ),
            copy_images=copy_images,
        ),
        out,
    )
