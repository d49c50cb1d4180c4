"""Reading a saved VPG-C adapter folder and checking it, before any base loads.

A saved ``adapter_config.json`` is fully resolved (``VPGCConfig.resolve``), so the config
alone says which tensors ``adapter_model.safetensors`` must hold and their shapes: the
adapter's module is built on the meta device (no memory, no base) and its state dict read
off. ``read_adapter(directory)`` returns the config, the weights and the file's metadata
(``"base"``: the fingerprint of the base it was trained on, ``VPGCLVLM.save_adapter``), or
raises ``AdapterConfigError`` in one line naming the file and what is wrong: malformed or
mistyped config, a config that is not resolved or not consistent, no weights file, a file
that is not safetensors (truncated, a pickled file renamed), tensors missing, unexpected, of
another shape or dtype, or not finite. ``check_adapter_dir`` is the registry's checker
(``drum.adapters.CHECKS``); ``load_adapter`` reads through ``read_adapter`` too.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import torch

from drum.adapters.registry import CONFIG_NAME, AdapterConfigError
from drum.adapters.vpgc.config import VPGCConfig, VPGCConfigError
from drum.adapters.vpgc.cross_attention import CrossAttentionVPGC
from drum.adapters.vpgc.layer import ProjectorVPGC, QFormerVPGC

WEIGHTS_NAME = "adapter_model.safetensors"


@dataclass(frozen=True)
class SavedAdapter:
    """A checked adapter folder: its config, its weights (on the CPU) and the weights file's
    metadata."""

    config: VPGCConfig
    state: dict[str, torch.Tensor]
    metadata: dict[str, str]


def expected_shapes(config: VPGCConfig) -> dict[str, tuple[int, ...]]:
    """The adapter's tensor names and shapes, from its resolved ``config`` alone (the module
    built on the meta device; a Q-Former adapter's base Q-Former is not needed for them)."""
    with torch.device("meta"):
        if config.base_kind == "qformer":
            assert config.num_queries is not None and config.hidden_size is not None
            queries = torch.empty(config.num_queries, config.hidden_size)
            module: torch.nn.Module = QFormerVPGC(config, torch.nn.Identity(), queries)
        elif config.base_kind == "cross_attention":
            module = CrossAttentionVPGC(config)
        else:
            module = ProjectorVPGC(config)
    return {name: tuple(tensor.shape) for name, tensor in module.state_dict().items()}


def _config(directory: Path) -> VPGCConfig:
    path = directory / CONFIG_NAME
    try:
        config = VPGCConfig.load(directory)
    except FileNotFoundError as error:
        raise AdapterConfigError(str(error)) from error
    if not config.resolved:
        unresolved = [f.name for f in fields(config) if getattr(config, f.name) is None]
        raise VPGCConfigError(
            f"{path}: not resolved ({', '.join(unresolved)} null); a saved adapter's config "
            "records its base's sizes"
        )
    try:
        config.check()
    except VPGCConfigError as error:
        raise VPGCConfigError(f"{path}: {error}") from error
    return config


def _weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    if not path.is_file():
        raise AdapterConfigError(f"{path}: no such file (the adapter's weights)")
    try:
        with safe_open(str(path), "pt") as handle:
            metadata = dict(handle.metadata() or {})
            state = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except Exception as error:  # safetensors' errors have no common base class
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise AdapterConfigError(
            f"{path}: not a readable safetensors file ({reason}); truncated, or not written "
            "by save_adapter"
        ) from error
    return state, metadata


def read_adapter(directory: str | Path) -> SavedAdapter:
    """The adapter saved in ``directory``, checked against its own config (module
    docstring); on the CPU, no base needed."""
    directory = Path(directory)
    config = _config(directory)
    path = directory / WEIGHTS_NAME
    state, metadata = _weights(path)
    expected = expected_shapes(config)
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise AdapterConfigError(
            f"{path}: tensors missing {missing}, unexpected {unexpected}, for the adapter its "
            f"{CONFIG_NAME} describes"
        )
    for name, shape in expected.items():
        tensor = state[name]
        if tuple(tensor.shape) != shape:
            raise AdapterConfigError(
                f"{path}: {name} has shape {tuple(tensor.shape)}, its {CONFIG_NAME} makes it "
                f"{shape}"
            )
        if not tensor.is_floating_point():
            raise AdapterConfigError(f"{path}: {name} is {tensor.dtype}, not floating point")
        if not bool(torch.isfinite(tensor).all()):
            raise AdapterConfigError(f"{path}: {name} holds values that are not finite (NaN/inf)")
    return SavedAdapter(config, state, metadata)


def check_adapter_dir(directory: str | Path) -> None:
    """``read_adapter(directory)`` for its errors alone (``drum.adapters.CHECKS``' checker)."""
    read_adapter(directory)
