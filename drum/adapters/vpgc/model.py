"""``VPGCLVLM``: a frozen ``HFLVLM`` with a VPG-C adapter, behind the same ``LVLM`` API.

While the adapter acts (every ``score``, ``generate`` and ``loss`` call) two hooks sit on the
base: a forward pre-hook on the module whose input is the patch features (the projector;
BLIP-2: the Q-Former) captures them for the pass in flight, and ``HFLVLM.layer_hook`` on the
output of decoder layer ``config.layer - 1`` adds the adapter's residual at every image's
visual tokens. The base's post-projector feature cache is bypassed meanwhile (a cached image
would skip the vision tower, leaving nothing to capture), so every pass re-encodes its images.
Decode steps of ``generate`` are not hooked (the KV cache holds the rewritten prompt).
On a cross-attention base (IDEFICS, Mllama) the hooks are ``CrossAttentionHooks``
(``drum.adapters.vpgc.cross_attention``): the residual joins the image states the
cross-attention layers after the guidance layer read.

The base is frozen (``requires_grad=False`` on all its parameters); only the adapter trains.
``save_adapter`` writes the adapter alone (``adapter_config.json`` +
``adapter_model.safetensors``, atomically), and records the base it was trained on in the
weights file's metadata (``"base"``: ``HFLVLM.fingerprint``, a digest of the base directory's
config, processor and weight files, so the same base loaded from a copy of its directory
matches; ``"base_name"``: where it was loaded from, for messages). ``load_adapter(base, dir)``
checks the folder (``drum.adapters.vpgc.check``), then puts the adapter back on ``base``: a
base of other shapes is a ``VPGCConfigError``, one of the same shapes but another fingerprint
an ``AdapterBaseError`` naming both (``allow_other_base=True`` loads it anyway, with an
``AdapterWarning``); an adapter that records no base loads with an ``AdapterWarning``.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from drum.adapters.registry import AdapterBaseError, AdapterWarning
from drum.adapters.vpgc.check import WEIGHTS_NAME as WEIGHTS_NAME  # re-exported
from drum.adapters.vpgc.check import SavedAdapter, read_adapter
from drum.adapters.vpgc.config import VPGCConfig
from drum.adapters.vpgc.cross_attention import CrossAttentionHooks, CrossAttentionVPGC
from drum.adapters.vpgc.layer import PREFIX, ProjectorVPGC, QFormerVPGC, VPGCError, images_of
from drum.lvlm.base import ScoreResult, WrappedLVLM
from drum.lvlm.families import family_of, module_at
from drum.lvlm.hf import HFLVLM
from drum.lvlm.hooks import VisualPositions, decoder_layers
from drum.lvlm.prompt import ICLPrompt
from drum.utils.io import atomic_write_bytes


def base_fields(base: HFLVLM) -> dict[str, Any]:
    """What ``VPGCConfig.resolve`` fills from ``base``, read from its family's record
    (``drum.lvlm.families``: patch-feature width, Q-Former or not)."""
    family = base.family
    if not family.recorded:
        family_of(family.model_type)  # UnsupportedFamilyError: VPG-C needs the record's facts
    return {**config_fields(base.model.config), "num_layers": len(decoder_layers(base.model))}


def config_fields(config: Any) -> dict[str, Any]:
    """``base_fields`` from a base's ``transformers`` config alone (its ``config.json``, no
    weights loaded; the decoder layers counted as ``num_hidden_layers``), so options can be
    checked before a base loads; ``UnsupportedFamilyError`` for a ``model_type`` without a
    family record (not a vision-language model VPG-C knows)."""
    family = family_of(str(config.model_type))
    text = getattr(config, "text_config", None) or config
    fields: dict[str, Any] = {
        "model_type": family.model_type,
        "base_kind": "projector",
        "num_layers": int(text.num_hidden_layers),
        "llm_hidden_size": int(text.hidden_size),
        "vision_hidden_size": family.vision_width(config),
    }
    if family.qformer:
        fields["base_kind"] = "qformer"
        fields["num_queries"] = int(config.num_query_tokens)
        fields["hidden_size"] = int(config.qformer_config.hidden_size)
    if family.cross_attention:  # the residual joins the image states (cross_attention.py)
        fields["base_kind"] = "cross_attention"
        fields["state_size"] = family.image_states_width(config)
    return fields


@dataclass(frozen=True)
class ParameterCount:
    """The adapter's trainable parameters, the base's, and their ratio."""

    adapter: int
    base: int

    @property
    def share(self) -> float:
        """``adapter / base``."""
        return self.adapter / self.base

    def __str__(self) -> str:
        percent = 100 * self.share
        return f"VPG-C: {self.adapter:,} parameters, {percent:.4f}% of the base's {self.base:,}"


class VPGCLVLM(WrappedLVLM):
    """``base`` (frozen) with a VPG-C adapter; an ``LVLM`` like any other.

    Args:
        base: the ``HFLVLM`` to adapt; its parameters are frozen in place.
        config: the adapter (default ``VPGCConfig()``); its ``None`` fields come from the base.

    Example::

        model = VPGCLVLM(HFLVLM(path), VPGCConfig(num_heads=8))
        optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-4)
        model.loss(prompts, answers, add_eos=True).backward(); optimizer.step()
        model.save_adapter("runs/vpgc")
        model = load_adapter(HFLVLM(path), "runs/vpgc")
    """

    def __init__(self, base: HFLVLM, config: VPGCConfig | None = None) -> None:
        self.base = base
        self.config = (config or VPGCConfig()).resolve(**base_fields(base))
        for parameter in base.model.parameters():
            parameter.requires_grad_(False)
        self._captures = base.family.patch_features_at
        self._source = module_at(base.model, base.family.patch_features)
        self.adapter: ProjectorVPGC | QFormerVPGC | CrossAttentionVPGC
        self._cross: CrossAttentionHooks | None = None
        if self.config.base_kind == "cross_attention":
            dtype = next(base.model.parameters()).dtype
            self.adapter = CrossAttentionVPGC(self.config).to(base.device, dtype)
            self._cross = CrossAttentionHooks(base, self.adapter, self.config.layer)
        elif self.config.base_kind == "qformer":
            model = base.model
            self.adapter = QFormerVPGC(self.config, model.qformer, model.query_tokens)
            self.adapter.to(base.device, model.query_tokens.dtype)
        else:
            dtype = next(base.model.parameters()).dtype
            self.adapter = ProjectorVPGC(self.config).to(base.device, dtype)
        self._patches: torch.Tensor | None = None
        # (rows, patches) true at real patches, where the projector is told (Idefics2: images
        # padded to the batch's largest); padding patches are no keys.
        self._patch_mask: torch.Tensor | None = None
        self._rows: list[int] | None = None

    # --------------------------------------------------------------------------- the hooks
    def _capture_input(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self._patches = args[0] if args else next(iter(kwargs.values()))
        self._patch_mask = kwargs.get("attention_mask")

    def _capture_output(self, module: nn.Module, args: Any, output: Any) -> None:
        self._patches = output[0] if isinstance(output, tuple) else output.last_hidden_state

    def _capture_rows(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        # Each image's rows of patch features, where its family reads them from the inputs.
        rows = self.base.family.patch_rows(self.base.model.config, kwargs)
        if rows is not None:
            self._rows = rows

    def _hook(self, hidden: torch.Tensor, visual: VisualPositions) -> torch.Tensor:
        patches, self._patches = self._patches, None
        rows, self._rows = self._rows, None
        mask, self._patch_mask = self._patch_mask, None
        _, counts = images_of(visual)
        if not counts:
            return hidden
        if patches is None:
            raise VPGCError(
                "the batch has images but no patch features were captured (the vision tower "
                "did not run in this pass: run the model through VPGCLVLM)"
            )
        return self.adapter(hidden, visual, self.adapter.per_image(patches, counts, rows, mask))

    @contextmanager
    def active(self) -> Iterator[None]:
        """Inside the block the base's passes run with the adapter (score, generate, forward
        through ``self.base``)."""
        assert self.config.layer is not None
        if self._cross is not None:
            with self._cross.active():
                yield
            return
        with ExitStack() as stack:
            stack.enter_context(self.base.feature_cache_bypassed())
            if self._captures == "input":
                handle = self._source.register_forward_pre_hook(
                    self._capture_input, with_kwargs=True
                )
            else:
                handle = self._source.register_forward_hook(self._capture_output)
            stack.callback(handle.remove)
            rows = self.base.model.register_forward_pre_hook(self._capture_rows, with_kwargs=True)
            stack.callback(rows.remove)
            stack.enter_context(self.base.layer_hook(self.config.layer - 1, self._hook))
            self._patches, self._rows, self._patch_mask = None, None, None
            try:
                yield
            finally:
                self._patches, self._rows, self._patch_mask = None, None, None

    # ---------------------------------------------------------------------------- the API
    @property
    def fingerprint(self) -> str:
        """The base's fingerprint and a digest of the adapter's config and current weights."""
        digest = hashlib.sha256(self.config.to_json().encode())
        for name, tensor in sorted(self.adapter.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().to("cpu").contiguous().numpy().tobytes())
        return f"{self.base.fingerprint}+vpgc-{digest.hexdigest()[:16]}"

    def score(
        self,
        prompts: Sequence[ICLPrompt],
        answers: Sequence[str],
        batch_size: int = 32,
        progress: bool = False,
    ) -> list[ScoreResult]:
        with self.active():
            return self.base.score(prompts, answers, batch_size, progress)

    def generate(
        self,
        prompts: Sequence[ICLPrompt],
        max_new_tokens: int = 8,
        batch_size: int = 32,
        progress: bool = False,
    ) -> list[str]:
        with self.active():
            return self.base.generate(prompts, max_new_tokens, batch_size, progress)

    def loss(
        self, prompts: Sequence[ICLPrompt], answers: Sequence[str], add_eos: bool = False
    ) -> torch.Tensor:
        """Mean next-token cross-entropy over the answer tokens of one batch (plus an EOS after
        each answer if ``add_eos``), with gradients into the adapter alone (the base is frozen):
        the base's ``HFLVLM.answer_loss`` with the adapter acting."""
        with self.active():
            return self.base.answer_loss(prompts, answers, add_eos)

    # ------------------------------------------------------------------------- parameters
    def trainable_parameters(self) -> list[nn.Parameter]:
        """The adapter's parameters (what an optimizer should get)."""
        return list(self.adapter.parameters())

    def parameter_count(self) -> ParameterCount:
        """The adapter's parameter count and its share of the base's."""
        return parameter_count(self)

    # ------------------------------------------------------------------------ save / load
    def save_adapter(self, directory: str | Path) -> Path:
        """Write ``adapter_config.json`` and ``adapter_model.safetensors`` (the adapter's
        ``vpgc_``-prefixed weights, nothing of the base) to ``directory``, atomically."""
        from safetensors.torch import save

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {
            name: tensor.detach().to("cpu").contiguous()
            for name, tensor in self.adapter.state_dict().items()
        }
        assert all(name.startswith(PREFIX) for name in state)
        metadata = {
            "format": "pt",
            "adapter_type": "vpgc",
            "base": self.base.fingerprint,
            "base_name": self.base.name,
        }
        atomic_write_bytes(directory / WEIGHTS_NAME, save(state, metadata=metadata))
        self.config.save(directory)
        return directory


def load_adapter(
    base: HFLVLM, directory: str | Path, *, allow_other_base: bool = False
) -> VPGCLVLM:
    """The adapter saved in ``directory`` (``VPGCLVLM.save_adapter``) on ``base``: the folder
    checked (``read_adapter``: ``AdapterConfigError`` naming the file), its config must fit
    the base's shapes (``VPGCConfigError``) and the base must be the one it was trained on
    (``AdapterBaseError``, unless ``allow_other_base``)."""
    directory = Path(directory)
    saved = read_adapter(directory)
    saved.config.resolve(**base_fields(base))  # VPGCConfigError: a base of other shapes
    _check_base(saved, base, directory / WEIGHTS_NAME, allow_other_base)
    model = VPGCLVLM(base, saved.config)
    model.adapter.load_state_dict({name: t.to(base.device) for name, t in saved.state.items()})
    return model


def _check_base(saved: SavedAdapter, base: HFLVLM, path: Path, allow_other_base: bool) -> None:
    """Refuse (or, allowed, warn about) a base whose fingerprint is not the recorded one."""
    recorded = saved.metadata.get("base")
    if recorded is None:
        warnings.warn(
            f"{path} records no base (saved before adapters recorded theirs): loading it onto "
            f"{base.fingerprint} ({base.name}) unchecked",
            AdapterWarning,
            stacklevel=3,
        )
        return
    if recorded == base.fingerprint:
        return
    name = saved.metadata.get("base_name")
    trained_on = f"{recorded} ({name})" if name else recorded
    if not allow_other_base:
        raise AdapterBaseError(
            f"{path}: trained on base {trained_on}, not on {base.fingerprint} ({base.name}); "
            "pass allow_other_base=True (CLI: --allow-other-base) to load it anyway"
        )
    warnings.warn(
        f"{path}: trained on base {trained_on}, loaded onto another base, {base.fingerprint} "
        f"({base.name}), as allowed",
        AdapterWarning,
        stacklevel=3,
    )


def parameter_count(model: VPGCLVLM) -> ParameterCount:
    """The adapter's trainable parameters and its share of the (frozen) base's parameters."""
    adapter = sum(p.numel() for p in model.adapter.parameters())
    base = sum(p.numel() for p in model.base.model.parameters())
    return ParameterCount(adapter=adapter, base=base)
