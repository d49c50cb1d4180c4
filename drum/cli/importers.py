"""``drum data import FORMAT``: public benchmarks, in their official files, to DRUM JSONL.

One subcommand per format (``drum.data.importers.FORMATS``). Split-wise inputs are repeated
options, matched by position (``drum.cli.import_options``). Every command writes
``<out>/<split>.jsonl`` and ``<out>/import_report.json`` and prints what it wrote and skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from drum.cli import import_vqa
from drum.cli.common import fail
from drum.cli.defaults import default_of
from drum.cli.import_options import (
    CopyOption,
    OutOption,
    SplitOption,
    run_import,
    same_count,
    split_names,
)

CAPTIONS = "drum.data.importers.captions:CaptionOptions"
FOLDERS = "drum.data.importers.classification:ImageFolderOptions"
MEMES = "drum.data.importers.classification:HatefulMemesOptions"
HF = "drum.data.importers.hf:HFOptions"

app = typer.Typer(
    no_args_is_help=True,
    help="Import a public benchmark (official files or a Hugging Face dataset on disk) as DRUM "
    "JSONL: <out>/<split>.jsonl, images by relative path, and import_report.json.",
)
# The VQA formats (drum.cli.import_vqa) first, then the others, as --help lists them.
app.command("vqav2")(import_vqa.vqa_command("vqav2", "VQAv2"))
app.command("okvqa")(import_vqa.vqa_command("okvqa", "OK-VQA (the VQAv2 layout)"))
app.command("vizwiz")(import_vqa.vizwiz_command)


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

        run_import("coco-captions", make, out)
        return
    if karpathy_split:
        fail("--karpathy-split needs --karpathy")
    count = same_count({"--captions": captions or [], "--images": images})
    splits = split_names(split, count, "captions files")
    run_import(
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

    count = same_count({"--root": root})
    splits = split_names(split, count, "roots")
    run_import(
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

    count = same_count({"--jsonl": jsonl})
    splits = split_names(split, count, "JSONL files")
    names = tuple(name.strip() for name in label_names.split(","))
    if len(names) != 2:
        fail(f"--labels must be two comma-separated names, got {label_names!r}")
    run_import(
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

    run_import(
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
