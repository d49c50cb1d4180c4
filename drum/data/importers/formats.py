"""The ``ImportFormat`` of each registered name (``FORMATS`` points here); importing this
module imports every importer but not the ``datasets`` library."""

from __future__ import annotations

from drum.data.importers import ImportFormat
from drum.data.importers.captions import CaptionOptions, import_coco_captions
from drum.data.importers.classification import (
    HatefulMemesOptions,
    ImageFolderOptions,
    import_hateful_memes,
    import_image_folder,
)
from drum.data.importers.hf import HFOptions, import_hf
from drum.data.importers.vqa import (
    VizWizOptions,
    VQAOptions,
    import_okvqa,
    import_vizwiz,
    import_vqav2,
)

VQAV2 = ImportFormat("vqav2", "vqa", VQAOptions, import_vqav2)
OKVQA = ImportFormat("okvqa", "vqa", VQAOptions, import_okvqa)
VIZWIZ = ImportFormat("vizwiz", "vqa", VizWizOptions, import_vizwiz)
COCO_CAPTIONS = ImportFormat("coco-captions", "caption", CaptionOptions, import_coco_captions)
IMAGE_FOLDER = ImportFormat(
    "image-folder", "classification", ImageFolderOptions, import_image_folder
)
HATEFUL_MEMES = ImportFormat(
    "hateful-memes", "classification", HatefulMemesOptions, import_hateful_memes
)
HF = ImportFormat("hf", "any", HFOptions, import_hf)
