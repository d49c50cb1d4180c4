"""``VPGCLVLM``: a frozen ``HFLVLM`` with a VPG-C adapter, behind the same ``LVLM`` API.

While the adapter acts (every ``score``, ``generate`` and ``loss`` call) two hooks sit on the
base: a forward pre-hook on the module whose input is the patch features (the projector;
BLIP-2: the Q-Former) captures them for the pass in flight, and ``HFLVLM.layer_hook`` on the
output of decoder layer ``config.layer - 1`` adds the adapter's residual at every image's
visual tokens. The base's post-projector feature cache is bypassed meanwhile (a cached image
would skip the vision tower, leaving nothing to capture), so every pass re-encodes its images.
Decode steps of ``generate`` are not hooked (the KV cache holds the rewritten prompt).

The base is frozen (``requires_grad=False`` on all its parameters); only the adapter trains.
``save_adapter`` writes the adapter alone (``adapter_config.json`` +
``adapter_model.safetensors``, atomically), ``load_adapter(base, dir)`` puts it back on a base.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from drum.adapters.vpgc.config import VPGCConfig, VPGCConfigError
from drum.adapters.vpgc.layer import PREFIX, ProjectorVPGC, QFormerVPGC, VPGCError, images_of
from drum.lvlm.base import ScoreResult, WrappedLVLM
from drum.lvlm.families import family_of, module_at
from drum.lvlm.hf import HFLVLM
from drum.lvlm.hooks import VisualPositions, decoder_layers
from drum.lvlm.prompt import ICLPrompt
from drum.utils.io import atomic_write_bytes

WEIGHTS_NAME = "adapter_model.safetensors"


def base_fields(base: HFLVLM) -> dict[str, Any]:
    """What ``VPGCConfig.resolve`` fills from ``base``, read from its family's record
    (``drum.lvlm.families``: patch-feature width, Q-Former or not)."""
    family = base.family
    if not family.recorded:
        family_of(family.model_type)  # UnsupportedFamilyError: VPG-C needs the record's facts
    config = base.model.config
    text = getattr(config, "text_config", None) or config
    fields: dict[str, Any] = {
        "model_type": family.model_type,
        "base_kind": "projector",
        "num_layers": len(decoder_layers(base.model)),
        "llm_hidden_size": int(text.hidden_size),
        "vision_hidden_size": family.vision_width(config),
    }
    if family.qformer:
        fields["base_kind"] = "qformer"
        fields["num_queries"] = int(config.num_query_tokens)
        fields["hidden_size"] = int(config.qformer_config.hidden_size)
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
        self.adapter: ProjectorVPGC | QFormerVPGC
        if self.config.base_kind == "qformer":
            model = base.model
            self.adapter = QFormerVPGC(self.config, model.qformer, model.query_tokens)
            self.adapter.to(base.device, model.query_tokens.dtype)
        else:
            dtype = next(base.model.parameters()).dtype
            self.adapter = ProjectorVPGC(self.config).to(base.device, dtype)
        self._patches: torch.Tensor | None = None

    # --------------------------------------------------------------------------- the hooks
    def _capture_input(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self._patches = args[0] if args else next(iter(kwargs.values()))

    def _capture_output(self, module: nn.Module, args: Any, output: Any) -> None:
        self._patches = output[0] if isinstance(output, tuple) else output.last_hidden_state

    def _hook(self, hidden: torch.Tensor, visual: VisualPositions) -> torch.Tensor:
        patches, self._patches = self._patches, None
        _, counts = images_of(visual)
        if not counts:
            return hidden
        if patches is None:
            raise VPGCError(
                "the batch has images but no patch features were captured (the vision tower "
                "did not run in this pass: run the model through VPGCLVLM)"
            )
        return self.adapter(hidden, visual, self.adapter.per_image(patches, counts))

    @contextmanager
    def active(self) -> Iterator[None]:
        """Inside the block the base's passes run with the adapter (score, generate, forward
        through ``self.base``)."""
        assert self.config.layer is not None
        with ExitStack() as stack:
            stack.enter_context(self.base.feature_cache_bypassed())
            if self._captures == "input":
                handle = self._source.register_forward_pre_hook(
                    self._capture_input, with_kwargs=True
                )
            else:
                handle = self._source.register_forward_hook(self._capture_output)
            stack.callback(handle.remove)
            stack.enter_context(self.base.layer_hook(self.config.layer - 1, self._hook))
            self._patches = None
            try:
                yield
            finally:
                self._patches = None

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
        metadata = {"format": "pt", "adapter_type": "vpgc", "base": self.base.fingerprint}
        atomic_write_bytes(directory / WEIGHTS_NAME, save(state, metadata=metadata))
        self.config.save(directory)
        return directory


def load_adapter(base: HFLVLM, directory: str | Path) -> VPGCLVLM:
    """The adapter saved in ``directory`` (``VPGCLVLM.save_adapter``) on ``base``; its config
    must fit the base (``VPGCConfigError`` otherwise), its weights must be exactly the
    adapter's."""
    from safetensors.torch import load_file

    directory = Path(directory)
    config = VPGCConfig.load(directory)
    model = VPGCLVLM(base, config)
    path = directory / WEIGHTS_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no VPG-C adapter weights here")
    state = load_file(str(path), device=str(base.device))
    expected = set(model.adapter.state_dict())
    if set(state) != expected:
        raise VPGCConfigError(
            f"{path}: weights {sorted(set(state) ^ expected)} do not match the adapter "
            f"described by its {json.dumps(config.to_dict())}"
        )
    model.adapter.load_state_dict(state)
    return model


def parameter_count(model: VPGCLVLM) -> ParameterCount:
    """The adapter's trainable parameters and its share of the (frozen) base's parameters."""
    adapter = sum(p.numel() for p in model.adapter.parameters())
    base = sum(p.numel() for p in model.base.model.parameters())
    return ParameterCount(adapter=adapter, base=base)
