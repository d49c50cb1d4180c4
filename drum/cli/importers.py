"""``drum data import FORMAT``: public benchmarks, in their official files, to DRUM JSONL.

One subcommand per format (``drum.data.importers.FORMATS``). Split-wise inputs are repeated
options, matched by position: the first ``--questions`` goes with the first ``--annotations``,
``--images`` and ``--split``. Without ``--split`` the output splits are ``pool`` then
``queries``. Every command writes ``<out>/<split>.jsonl`` and ``<out>/import_report.json`` and
prints what it wrote and skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from drum.cli.common import check_out, console, default_of, fail, read_or_fail

CAPTIONS = "drum.data.importers.captions:CaptionOptions"
FOLDERS = "drum.data.importers.classification:ImageFolderOptions"
MEMES = "drum.data.importers.classification:HatefulMemesOptions"
HF = "drum.data.importers.hf:HFOptions"
DEFAULT_SPLITS = ("pool", "queries")
NO_ANNOTATIONS = "none"  # --annotations value for a split without public answers

app = typer.Typer(
    no_args_is_help=True,
    help="Import a public benchmark (official files or a Hugging Face dataset on disk) as DRUM "
    "JSONL: <out>/<split>.jsonl, images by relative path, and import_report.json.",
)

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


def _split_names(names: Sequence[str] | None, count: int, inputs: str) -> list[str]:
    """The output split of each of ``count`` inputs: ``--split`` as given, else the defaults."""
    if names:
        if len(names) != count:
            fail(f"--split given {len(names)} times for {count} {inputs}; give one per input")
        return list(names)
    if count > len(DEFAULT_SPLITS):
        fail(f"{count} {inputs}: name the output split of each with --split")
    return list(DEFAULT_SPLITS[:count])


def _same_count(option_values: dict[str, Sequence[Any]]) -> int:
    """The common length of the per-split options; exit 2 naming them if they differ."""
    counts = {name: len(values) for name, values in option_values.items()}
    if len(set(counts.values())) != 1:
        listed = ", ".join(f"{name} x{count}" for name, count in counts.items())
        fail(f"per-split options must be given the same number of times: {listed}")
    count = next(iter(counts.values()))
    if count == 0:
        fail(f"give at least one {' / '.join(counts)}")
    return count


def _run(name: str, make_options: Callable[[], Any], out: Path) -> None:
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


def _vqa_command(name: str, title: str) -> Callable[..., None]:
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

        count = _same_count(
            {"--questions": questions, "--annotations": annotations, "--images": images}
        )
        splits = _split_names(split, count, "question files")
        subtypes: list[str | None] = list(coco_split) if coco_split else [None] * count
        if len(subtypes) != count:
            fail(f"--coco-split given {len(subtypes)} times for {count} question files")
        # 'none' (a file of that name: ./none): no annotations, every question answerless.
        answers: list[Path | None] = [None if str(a) == NO_ANNOTATIONS else a for a in annotations]
        _run(
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


app.command("vqav2")(_vqa_command("vqav2", "VQAv2"))
app.command("okvqa")(_vqa_command("okvqa", "OK-VQA (the VQAv2 layout)"))


@app.command("vizwiz")
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

    count = _same_count({"--annotations": annotations, "--images": images})
    splits = _split_names(split, count, "annotation files")
    _run(
        "vizwiz",
        lambda: VizWizOptions(
            sources=tuple(
                VizWizSource(*group) for group in zip(splits, annotations, images, strict=True)
            ),
            copy_images=copy_images,
        ),
        out,
    )


@app.command("coco-captions")
def coco_captions_command(
    out: OutOption,
    images: Annotated[
        list[Path],
        typer.Option("--images", help="Image folder, per captions file (or the Karpathy root)."),
    ],
    captions: Annotated[
        list[Path] | None,
        typer.Option("--captions", help="Official captions_<split>.json, per split."),
    ] = None,
    karpathy: Annotated[
        Path | None,
        typer.Option("--karpathy", help="A Karpathy split file (dataset_coco.json, ...)."),
    ] = None,
    karpathy_split: Annotated[
        list[str] | None,
        typer.Option(
            "--karpathy-split",
            help="KARPATHY=OUTPUT split pairs (default: train=pool,restval=pool,test=queries).",
        ),
    ] = None,
    split: SplitOption = None,
    prompt: str = default_of(CAPTIONS, "prompt"),
    copy_images: CopyOption = False,
) -> None:
    """COCO captions: official captions_<split>.json files, or a Karpathy split file
    (dataset_coco.json / dataset_flickr30k.json) whose split field picks the output split."""
    from drum.data.importers.base import parse_split_map
    from drum.data.importers.captions import CaptionOptions, CocoCaptionSource, KarpathySource

    if karpathy is not None:
        if captions or split:
            fail("--karpathy takes --karpathy-split, not --captions / --split")
        if len(images) != 1:
            fail(f"--karpathy takes one --images root, got {len(images)}")

        def make() -> CaptionOptions:
            source = (
                KarpathySource(
                    karpathy, images[0], parse_split_map(karpathy_split, "--karpathy-split")
                )
                if karpathy_split
                else KarpathySource(karpathy, images[0])
            )
            return CaptionOptions(karpathy=source, prompt=prompt, copy_images=copy_images)

        _run("coco-captions", make, out)
        return
    if karpathy_split:
        fail("--karpathy-split needs --karpathy")
    count = _same_count({"--captions": captions or [], "--images": images})
    splits = _split_names(split, count, "captions files")
    _run(
        "coco-captions",
        lambda: CaptionOptions(
            sources=tuple(
                CocoCaptionSource(*group)
                for group in zip(splits, captions or [], images, strict=True)
            ),
            prompt=prompt,
            copy_images=copy_images,
        ),
        out,
    )


@app.command("image-folder")
def image_folder_command(
    root: Annotated[
        list[Path], typer.Option("--root", help="A folder of class sub-folders, per split.")
    ],
    out: OutOption,
    split: SplitOption = None,
    prompt: str = default_of(FOLDERS, "prompt"),
    copy_images: CopyOption = False,
) -> None:
    """Class folders, as torchvision's ImageFolder: <root>/<class>/<image>; label = class."""
    from drum.data.importers.classification import FolderSource, ImageFolderOptions

    count = _same_count({"--root": root})
    splits = _split_names(split, count, "roots")
    _run(
        "image-folder",
        lambda: ImageFolderOptions(
            sources=tuple(FolderSource(*group) for group in zip(splits, root, strict=True)),
            prompt=prompt,
            copy_images=copy_images,
        ),
        out,
    )


@app.command("hateful-memes")
def hateful_memes_command(
    jsonl: Annotated[
        list[Path], typer.Option("--jsonl", help="train.jsonl / dev_seen.jsonl / ..., per split.")
    ],
    out: OutOption,
    split: SplitOption = None,
    root: Annotated[
        Path | None,
        typer.Option("--root", help="Folder the img paths are relative to (default: the file's)."),
    ] = None,
    label_names: Annotated[
        str, typer.Option("--labels", help="Answers for labels 0 and 1, comma-separated.")
    ] = default_of(MEMES, "label_names"),
    meme_prompt: Annotated[
        str, typer.Option("--prompt", help="Example text; {text} is the meme's text.")
    ] = default_of(MEMES, "meme_prompt"),
    copy_images: CopyOption = False,
) -> None:
    """Hateful Memes: {"id", "img", "label", "text"} JSONL files (unlabelled test lines are
    skipped and reported)."""
    from drum.data.importers.classification import HatefulMemesOptions, MemeSource

    count = _same_count({"--jsonl": jsonl})
    splits = _split_names(split, count, "JSONL files")
    names = tuple(name.strip() for name in label_names.split(","))
    if len(names) != 2:
        fail(f"--labels must be two comma-separated names, got {label_names!r}")
    _run(
        "hateful-memes",
        lambda: HatefulMemesOptions(
            sources=tuple(MemeSource(*group) for group in zip(splits, jsonl, strict=True)),
            root=root,
            label_names=names,  # type: ignore[arg-type]
            meme_prompt=meme_prompt,
            copy_images=copy_images,
        ),
        out,
    )


@app.command("hf")
def hf_command(
    source: Annotated[
        Path, typer.Argument(help="A save_to_disk folder, or parquet / arrow file(s) or folder.")
    ],
    task: Annotated[str, typer.Option("--task", help="vqa, caption or classification.")],
    out: OutOption,
    image_column: str = default_of(HF, "image_column"),
    answers_column: str = default_of(HF, "answers_column"),
    text_column: Annotated[
        str | None, typer.Option(help="Question / text column (vqa needs one).")
    ] = None,
    id_column: Annotated[str | None, typer.Option(help="Id column (default: split-row).")] = None,
    answer_key: Annotated[
        str | None, typer.Option(help="Key of the answer in answer objects (default: auto).")
    ] = None,
    prompt: Annotated[
        str | None,
        typer.Option(help="Text without a text column; with one, a template with {text}."),
    ] = None,
    image_root: Annotated[
        Path | None, typer.Option(help="Folder string image paths are relative to.")
    ] = None,
    split_map: Annotated[
        list[str] | None,
        typer.Option(
            "--split-map",
            help="SOURCE=OUTPUT split pairs (default: train=pool,validation=queries).",
        ),
    ] = None,
    copy_images: CopyOption = False,
) -> None:
    """A Hugging Face dataset on disk, offline; images held as bytes are written under
    <out>/images."""
    from drum.data.importers.base import parse_split_map
    from drum.data.importers.hf import DEFAULT_HF_SPLIT_MAP, HFOptions

    _run(
        "hf",
        lambda: HFOptions(
            source=source,
            task=task,
            image_column=image_column,
            answers_column=answers_column,
            text_column=text_column,
            prompt=prompt,
            id_column=id_column,
            answer_key=answer_key,
            image_root=image_root,
            split_map=(
                parse_split_map(split_map, "--split-map")
                if split_map
                else dict(DEFAULT_HF_SPLIT_MAP)
            ),
            copy_images=copy_images,
        ),
        out,
    )
