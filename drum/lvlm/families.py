"""What DRUM needs to know about each ``transformers`` LVLM family, in one table.

One frozen ``LVLMFamily`` record per supported ``model_type`` (as peft keeps its per-model
target modules in one mapping), read by everything that treats families differently:

* ``HFLVLM`` (``drum.lvlm.hf``, ``drum.lvlm.processors``): which processor to build
  (``processor``), whether image encodings can be cached and passed back and how its pixel
  inputs are cut per image (``feature_cache``),
  whether a batch needs an image (``requires_image``), which forward argument takes the
  per-token image mask (``token_types``);
* the layer hooks (``drum.lvlm.hooks.decoder_layers``): where the decoder layers are;
* VPG-C (``drum.adapters.vpgc.model``): which module's input or output is the patch features
  (``patch_features``, ``patch_features_at``) and how wide they are (``vision_width``), and
  whether the base is a Q-Former one (``qformer``: BLIP-2), how many rows of those features
  each image has where the visual-token counts cannot say (``patch_rows``: LLaVA-OneVision's
  anyres tiles); on a cross-attention base, which modules take the image states and where
  they run among the decoder layers (``cross_attention_modules``), under which keyword
  (``image_states_arg``) and how wide the states are (``image_states_width``); its trainer's
  projector-tuning baseline: which module maps visual features into the LLM (``projector``);
* the attention reader (``drum.lvlm.attention``): Q-Former cross-attention or the prompt's
  attention to visual tokens (``qformer``), and how many patches per side one visual token
  covers (``token_merge``).

A new family is one record in ``FAMILIES`` plus its tiny model in ``tests/lvlm/tiny_lvlms``'s
``BUILDERS``.
``family_of(model_type)`` is the lookup; an unsupported ``model_type`` is an
``UnsupportedFamilyError`` naming the supported ones. ``HFLVLM`` serves a ``model_type`` without
a record as it always has (``served_family``: ``AutoProcessor``, the decoder layers found at the
usual paths, no feature cache), so scoring, generation and layer hooks work on any LLaVA-like
checkpoint; what needs a record's facts (VPG-C, the attention reader) refuses it with the error.

Example::

    family_of(model.config.model_type).vision_width(model.config)  # 64 for the built-in LVLM
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# How ``HFLVLM`` builds a family's processor.
PROCESSORS = (
    "auto",  # AutoProcessor
    # AutoProcessor, or where it needs the missing torchvision (Qwen2-VL's video processor)
    # Qwen2VLImageOnlyProcessor, which reproduces its image half.
    "qwen_image_only",
    # Blip2InterleavedProcessor: BLIP-2's own prepends every image; this one expands each image
    # placeholder where it stands.
    "blip2_interleaved",
    # InternVLImageOnlyProcessor where AutoProcessor needs the missing torchvision (InternVL's
    # video processor).
    "internvl_image_only",
    # PixtralImageOnlyProcessor where AutoProcessor needs the missing torchvision
    # (PixtralProcessor declares it).
    "pixtral_image_only",
    # IdeficsInterleavedProcessor: IDEFICS's own takes lists of strings and images; this one
    # takes the rendered chat template and derives the cross-attention mask from any ids.
    "idefics_interleaved",
    # MllamaInterleavedProcessor: Mllama's own lays its cross-attention mask along its own
    # padding and gives no per-image entries; this one derives the mask from any ids.
    "mllama_interleaved",
    # AutoProcessor, or where its video processor needs the missing torchvision, the family's
    # processor class without it (drum.lvlm.image_only_processor; LLaVA-OneVision).
    "image_only",
    # Idefics2CountingProcessor: Idefics2's own, which also says how many image tokens each
    # image became (drum.lvlm.idefics2_processor).
    "idefics2_counted",
)
# The forward argument that takes the per-token image mask (1 at image tokens) HFLVLM derives
# from the final ids: Qwen2-VL-style M-RoPE, Gemma 3's bidirectional attention within images.
TOKEN_TYPES = ("", "mm_token_type_ids", "token_type_ids")
# How the image-feature cache cuts a batch's pixel inputs per image and encodes them
# (``drum.lvlm.image_features.LAYOUTS``); "" caches nothing.
FEATURE_CACHE = ("", "rows", "grid", "grid_deepstack")
PATCH_FEATURES_AT = ("input", "output")


class UnsupportedFamilyError(ValueError):
    """A ``model_type`` with no record in ``FAMILIES``."""


@dataclass(frozen=True)
class LVLMFamily:
    """One family's facts (module docstring says who reads which).

    Attributes:
        model_type: the ``transformers`` config's ``model_type``.
        processor: how to build its processor (``PROCESSORS``).
        decoder_layers: attribute path, from the ``...ForConditionalGeneration`` model, of the
            language model's decoder layers (a ``ModuleList``).
        patch_features: attribute path of the module whose ``patch_features_at`` (its
            ``"input"`` or ``"output"``) is the patch features VPG-C re-attends over: the
            projector's input, or the vision tower's output that BLIP-2's Q-Former reads.
        patch_features_at: ``"input"`` or ``"output"``.
        projector: attribute path of the module that maps visual features into the LLM's
            embedding space (what VPG-C's projector-tuning baseline trains).
        vision_width: the width of those patch features, from the model's config.
        token_merge: how many patches per side one visual token covers, from the config.
        qformer: a Q-Former base (the LLM sees query outputs, not patches).
        feature_cache: its image encodings are one tensor per image that can be passed back
            through ``mm_encoder_outputs`` (so ``HFLVLM`` caches them), and how its pixel
            inputs are laid out per image (``FEATURE_CACHE``): ``"rows"``, one row of
            ``pixel_values`` per image (LLaVA, Gemma 3); ``"grid"``, each image's
            ``image_grid_thw`` patches in turn (Qwen2-VL, Qwen2.5-VL); ``"grid_deepstack"``,
            as ``"grid"`` with each image's deepstack features kept beside its encoding
            (Qwen3-VL); ``""``: not cached.
        stacked_encodings: its forward takes those encodings as one ``(images, tokens,
            width)`` tensor, not a list of them (Gemma 3).
        requires_image: its forward and generate cannot run without an image.
        cross_attention: images reach the language model through cross-attention layers,
            never as tokens of the sequence (IDEFICS, Mllama): an image's span
            (``VisualPositions``) is its placeholder token, the one token of the sequence
            that stands for it; the processor derives the cross-attention mask from the
            padded ids (``token_inputs``). VPG-C adds its residual to the image states
            (``drum.adapters.vpgc.cross_attention``); the attention reader refuses it
            (``cross_attention_refusal``).
        batch_by_image_count: ``HFLVLM`` runs each batch as one sub-batch per image count
            (``drum.lvlm.image_count_groups``: Mllama's imageless tokens see the batch's
            padding images).
        token_types: the forward argument that takes the per-token image mask (``TOKEN_TYPES``;
            ``""``: none, or whatever the forward's signature shows for a stand-in).
        patch_rows: ``patch_rows(config, inputs)``, from a forward pass's inputs, how many rows
            of the captured ``(rows, patches, width)`` patch features each image of the pass
            has, where that is not the same number of visual tokens per row for every image
            (LLaVA-OneVision's anyres tiles); ``None`` (the default reader): VPG-C finds it
            from the visual-token counts.
        cross_attention_modules: ``cross_attention_modules(model)``, a cross-attention base's
            modules that read the image states, each with the index of the decoder layer it
            runs at or just before (IDEFICS: its gated cross-attention blocks' ``cross_attn``,
            each run before decoder layer ``j * cross_layer_interval``; Mllama: the
            ``cross_attn`` of its cross-attention decoder layers); ``[]`` elsewhere.
        image_states_arg: the keyword argument of those modules that takes the image states.
        image_states_width: the width of the image states, from the model's config.
        recorded: ``False`` for the stand-in ``served_family`` gives a ``model_type`` without a
            record; its ``decoder_layers`` is empty (searched at the usual paths) and its
            patch-feature facts raise ``UnsupportedFamilyError``.
    """

    model_type: str
    processor: str
    decoder_layers: str
    patch_features: str
    patch_features_at: str
    projector: str
    vision_width: Callable[[Any], int]
    token_merge: Callable[[Any], int]
    qformer: bool = False
    feature_cache: str = ""
    stacked_encodings: bool = False
    requires_image: bool = False
    cross_attention: bool = False
    batch_by_image_count: bool = False
    token_types: str = ""
    patch_rows: Callable[[Any, dict[str, Any]], list[int] | None] = lambda config, inputs: None
    cross_attention_modules: Callable[[Any], list[tuple[int, Any]]] = lambda model: []
    image_states_arg: str = ""
    image_states_width: Callable[[Any], int] = lambda config: 0
    recorded: bool = True

    def __post_init__(self) -> None:
        if self.processor not in PROCESSORS:
            raise ValueError(f"processor must be one of {PROCESSORS}, got {self.processor!r}")
        if self.patch_features_at not in PATCH_FEATURES_AT:
            raise ValueError(
                f"patch_features_at must be one of {PATCH_FEATURES_AT}, "
                f"got {self.patch_features_at!r}"
            )
        if self.feature_cache not in FEATURE_CACHE:
            raise ValueError(
                f"feature_cache must be one of {FEATURE_CACHE}, got {self.feature_cache!r}"
            )
        if self.token_types not in TOKEN_TYPES:
            raise ValueError(f"token_types must be one of {TOKEN_TYPES}, got {self.token_types!r}")


def module_at(model: Any, path: str) -> Any:
    """``model``'s submodule at the dotted attribute ``path``."""
    module = model
    for name in path.split("."):
        module = getattr(module, name)
    return module


# ------------------------------------------------------------------------ the config readers
def _llava_vision_width(config: Any) -> int:
    # LLaVA concatenates the features of every selected vision layer.
    layers = config.vision_feature_layer
    return int(config.vision_config.hidden_size) * (1 if isinstance(layers, int) else len(layers))


def _vision_hidden_size(config: Any) -> int:
    return int(config.vision_config.hidden_size)


def _qwen2_vl_vision_width(config: Any) -> int:
    return int(config.vision_config.embed_dim)


def _blip2_vision_width(config: Any) -> int:
    return int(config.qformer_config.encoder_hidden_size)


def _internvl_vision_width(config: Any) -> int:
    # The projector reads the pixel-shuffled features: (1 / downsample_ratio)**2 patches
    # side by side.
    return int(config.vision_config.hidden_size) * int(1 / config.downsample_ratio) ** 2


def _internvl_merge(config: Any) -> int:
    return int(1 / config.downsample_ratio)


def _mistral3_vision_width(config: Any) -> int:
    # The projector's input, before its patch merger: every selected vision layer side by side.
    layers = config.vision_feature_layer
    return int(config.vision_config.hidden_size) * (1 if isinstance(layers, int) else len(layers))


def _mistral3_merge(config: Any) -> int:
    # The projector's patch merger joins spatial_merge_size x spatial_merge_size patches.
    return int(config.spatial_merge_size)


def _idefics_vision_width(config: Any) -> int:
    return int(config.vision_config.embed_dim)


def _mllama_vision_width(config: Any) -> int:
    return int(config.vision_config.vision_output_dim)


def _idefics_cross_attention(model: Any) -> list[tuple[int, Any]]:
    # Gated cross-attention block j runs just before decoder layer j * cross_layer_interval.
    interval = int(model.config.cross_layer_interval)
    blocks = model.model.gated_cross_attn_layers
    return [(j * interval, block.cross_attn) for j, block in enumerate(blocks)]


def _mllama_cross_attention(model: Any) -> list[tuple[int, Any]]:
    # Its cross-attention layers are decoder layers of their own (among the self-attention ones).
    layers = model.model.language_model.layers
    indices = model.config.text_config.cross_attention_layers
    return [(int(i), layers[int(i)].cross_attn) for i in indices]


def _mllama_states_width(config: Any) -> int:
    # The projector maps the vision output to the text width.
    return int(config.text_config.hidden_size)


def _one_patch(config: Any) -> int:
    return 1


def _spatial_merge(config: Any) -> int:
    # Qwen2-VL's merger joins spatial_merge_size x spatial_merge_size patches into one token.
    return int(config.vision_config.spatial_merge_size)


def _pixel_shuffle(config: Any) -> int:
    # Idefics3's connector folds scale_factor x scale_factor patches into one token.
    return int(config.scale_factor)


def _gemma3_pool(config: Any) -> int:
    # Gemma 3's projector average-pools the patch grid down to mm_tokens_per_image tokens.
    side = int(config.vision_config.image_size) // int(config.vision_config.patch_size)
    return side // round(int(config.mm_tokens_per_image) ** 0.5)


def _onevision_tiles(config: Any, inputs: dict[str, Any]) -> list[int] | None:
    # The tiles LlavaOnevisionModel.get_image_features encodes per image (transformers' own
    # count): a prompt's only image is its base tile plus its anyres grid of tiles; every
    # image of a multi-image prompt is its base tile alone.
    from transformers.models.llava_onevision.modeling_llava_onevision import (
        image_size_to_num_patches,
    )

    sizes = inputs.get("image_sizes")
    if sizes is None or inputs.get("pixel_values") is None:
        return None
    per_prompt = inputs.get("batch_num_images")
    if per_prompt is None:
        lone = [True] * len(sizes)
    else:
        lone = [int(n) == 1 for n in per_prompt for _ in range(int(n))]
    return [
        image_size_to_num_patches(
            size, config.image_grid_pinpoints, config.vision_config.image_size
        )
        if alone
        else 1
        for size, alone in zip(sizes, lone, strict=True)
    ]


def _no_patch_grid(why: str) -> Callable[[Any], int]:
    def refuse(config: Any) -> int:
        raise ValueError(f"{config.model_type}: its visual tokens map onto no patch grid ({why})")

    return refuse


_QWEN = {
    "processor": "qwen_image_only",
    "decoder_layers": "model.language_model.layers",
    "patch_features": "model.visual.merger",
    "patch_features_at": "input",
    "projector": "model.visual.merger",
    "token_merge": _spatial_merge,
    "token_types": "mm_token_type_ids",
}

FAMILIES: dict[str, LVLMFamily] = {
    family.model_type: family
    for family in (
        LVLMFamily(
            model_type="llava",
            processor="auto",
            decoder_layers="model.language_model.layers",
            patch_features="model.multi_modal_projector",
            patch_features_at="input",
            projector="model.multi_modal_projector",
            vision_width=_llava_vision_width,
            token_merge=_one_patch,
            feature_cache="rows",
        ),
        LVLMFamily(
            model_type="idefics3",  # SmolVLM (v1) checkpoints are idefics3 too
            processor="auto",
            decoder_layers="model.text_model.layers",
            patch_features="model.connector",
            patch_features_at="input",
            projector="model.connector",
            vision_width=_vision_hidden_size,
            token_merge=_pixel_shuffle,
        ),
        LVLMFamily(
            model_type="qwen2_vl",
            vision_width=_qwen2_vl_vision_width,
            feature_cache="grid",
            **_QWEN,
        ),
        LVLMFamily(
            model_type="qwen2_5_vl", vision_width=_vision_hidden_size, feature_cache="grid", **_QWEN
        ),
        # Its image processor is Qwen2-VL's; deepstack features join after the first layers,
        # so an image's cached encoding keeps them beside its tokens.
        LVLMFamily(
            model_type="qwen3_vl",
            vision_width=_vision_hidden_size,
            feature_cache="grid_deepstack",
            **_QWEN,
        ),
        LVLMFamily(
            model_type="gemma3",
            processor="auto",
            decoder_layers="model.language_model.layers",
            patch_features="model.multi_modal_projector",
            patch_features_at="input",
            projector="model.multi_modal_projector",
            vision_width=_vision_hidden_size,
            token_merge=_gemma3_pool,
            token_types="token_type_ids",
            feature_cache="rows",  # not for an image cut into pan-and-scan crops
            stacked_encodings=True,
        ),
        LVLMFamily(
            model_type="llava_onevision",
            processor="image_only",
            decoder_layers="model.language_model.layers",
            patch_features="model.multi_modal_projector",
            patch_features_at="input",
            projector="model.multi_modal_projector",
            vision_width=_llava_vision_width,
            token_merge=_no_patch_grid("anyres tiles, a newline token after each row"),
            patch_rows=_onevision_tiles,
        ),
        LVLMFamily(
            model_type="idefics2",
            processor="idefics2_counted",
            decoder_layers="model.text_model.layers",
            patch_features="model.connector",
            patch_features_at="input",
            projector="model.connector",
            vision_width=_vision_hidden_size,
            token_merge=_no_patch_grid("a perceiver resampler's latents"),
        ),
        LVLMFamily(
            model_type="blip-2",
            processor="blip2_interleaved",
            decoder_layers="language_model.model.layers",
            patch_features="vision_model",
            patch_features_at="output",
            projector="language_projection",
            vision_width=_blip2_vision_width,
            token_merge=_one_patch,
            qformer=True,
            requires_image=True,
        ),
        LVLMFamily(
            model_type="internvl",
            processor="internvl_image_only",
            decoder_layers="model.language_model.layers",
            patch_features="model.multi_modal_projector",
            patch_features_at="input",
            projector="model.multi_modal_projector",
            vision_width=_internvl_vision_width,
            token_merge=_internvl_merge,
        ),
        LVLMFamily(
            model_type="mistral3",
            processor="pixtral_image_only",
            decoder_layers="model.language_model.layers",
            patch_features="model.multi_modal_projector",
            patch_features_at="input",
            projector="model.multi_modal_projector",
            vision_width=_mistral3_vision_width,
            token_merge=_mistral3_merge,
        ),
        LVLMFamily(
            model_type="idefics",  # IDEFICS v1 (IdeficsForVisionText2Text)
            processor="idefics_interleaved",
            decoder_layers="model.layers",
            # The vision tower's output is what the perceiver resampler reads.
            patch_features="model.vision_model",
            patch_features_at="output",
            projector="model.perceiver_resampler",
            vision_width=_idefics_vision_width,
            token_merge=_one_patch,
            requires_image=True,
            cross_attention=True,
            cross_attention_modules=_idefics_cross_attention,
            image_states_arg="key_value_states",
            # The perceiver's latents keep the vision width.
            image_states_width=_idefics_vision_width,
        ),
        LVLMFamily(
            model_type="mllama",  # Llama 3.2 Vision
            processor="mllama_interleaved",
            decoder_layers="model.language_model.layers",  # cross-attention layers among them
            patch_features="model.vision_model",
            patch_features_at="output",
            projector="model.multi_modal_projector",
            vision_width=_mllama_vision_width,
            token_merge=_one_patch,
            cross_attention=True,
            batch_by_image_count=True,
            cross_attention_modules=_mllama_cross_attention,
            image_states_arg="cross_attention_states",
            image_states_width=_mllama_states_width,
        ),
    )
}


def cross_attention_refusal(family: LVLMFamily, what: str) -> UnsupportedFamilyError:
    """Why ``what`` (the attention reader) cannot act on a cross-attention family."""
    return UnsupportedFamilyError(
        f"{what} does not support model_type {family.model_type!r}: its images reach the "
        "language model through cross-attention layers, not as visual tokens of the sequence "
        f"(the one {what} acts on); supported: "
        + ", ".join(m for m in supported_model_types() if not FAMILIES[m].cross_attention)
    )


def supported_model_types() -> list[str]:
    return sorted(FAMILIES)


def _unsupported(model_type: str) -> UnsupportedFamilyError:
    return UnsupportedFamilyError(
        f"model_type {model_type!r} is not a supported LVLM family; supported: "
        f"{', '.join(supported_model_types())} (a new one is a record in "
        "drum.lvlm.families.FAMILIES)"
    )


def family_of(model_type: str) -> LVLMFamily:
    """The record of ``model_type``; ``UnsupportedFamilyError`` naming the supported ones."""
    try:
        return FAMILIES[model_type]
    except KeyError:
        raise _unsupported(model_type) from None


# Where the decoder layers of a family without a record are looked for, in this order.
USUAL_DECODER_LAYERS = (
    "model.language_model.layers",  # LLaVA-style models in transformers 5
    "model.text_model.layers",  # Idefics-style
    "language_model.model.layers",  # older layouts
)


def served_family(model_type: str) -> LVLMFamily:
    """The record of ``model_type`` or, for one without a record, a stand-in that serves it
    through ``AutoProcessor`` with no feature cache (``recorded=False``; module docstring)."""
    if model_type in FAMILIES:
        return FAMILIES[model_type]

    def unsupported(config: Any) -> int:
        raise _unsupported(model_type)

    return LVLMFamily(
        model_type=model_type,
        processor="auto",
        decoder_layers="",
        patch_features="",
        patch_features_at="input",
        projector="",
        vision_width=unsupported,
        token_merge=unsupported,
        recorded=False,
    )
