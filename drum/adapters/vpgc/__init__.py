"""VPG-C: residual visual prompts regenerated from the instruction, inside a frozen LVLM
(``docs/vpgc.md``). ``config`` (``VPGCConfig``), ``layer`` (the module), ``model``
(``VPGCLVLM``, save / load, parameter counts); synthetic training data from the built-in world
(``data``) or edited real-size photos (``photos``), edits placed where the base attends least
(``regions``), and the trainer (``train``)."""

from drum.adapters.vpgc.config import VPGCConfig, VPGCConfigError
from drum.adapters.vpgc.layer import ProjectorVPGC, QFormerVPGC, VPGCError
from drum.adapters.vpgc.model import (
    VPGCLVLM,
    ParameterCount,
    load_adapter,
    parameter_count,
)

__all__ = [
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
