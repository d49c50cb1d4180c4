"""VPG-C: residual visual prompts regenerated from the instruction, inside a frozen LVLM
(``docs/vpgc.md``). ``config`` (``VPGCConfig``), ``layer`` (the module; ``cross_attention``: its
variant for IDEFICS and Mllama), ``model`` (``VPGCLVLM``, save / load, parameter counts) and
the trainer (``train``: ``train_vpgc``, handed its samples). The synthetic training data is
the built-in kit's (``drum.builtin.vpgc``)."""

from drum.adapters.vpgc.config import VPGCConfig, VPGCConfigError
from drum.adapters.vpgc.cross_attention import CrossAttentionVPGC
from drum.adapters.vpgc.layer import ProjectorVPGC, QFormerVPGC, VPGCError
from drum.adapters.vpgc.model import (
    VPGCLVLM,
    ParameterCount,
    load_adapter,
    parameter_count,
)

__all__ = [
    "CrossAttentionVPGC",
    "ParameterCount",
    "ProjectorVPGC",
    "QFormerVPGC",
    "VPGCConfig",
    "VPGCConfigError",
    "VPGCError",
    "VPGCLVLM",
    "load_adapter",
    "parameter_count",
]
