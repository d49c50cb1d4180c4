"""``VPGCConfig``: what a VPG-C adapter is, as a typed frozen dataclass with a JSON round trip.

A config as a user writes it leaves the base-dependent fields ``None`` (the layer, the base's
sizes); ``VPGCConfig.resolve(**base_fields)`` fills them from the base model (``base_fields``
in ``drum.adapters.vpgc.model``, read from the base's family record) and checks them, and the
resolved config is what ``adapter_config.json`` holds, so a saved adapter says exactly which
base shape it fits. The per-base rules live in ``resolve``: the layer defaults to
``num_layers // 2``; a projector base's re-attention width is ``hidden_size`` (``None``: the
vision width); a Q-Former base (BLIP-2) always uses its Q-Former's width and query count; a
cross-attention base (IDEFICS, Mllama) also fixes ``state_size``, the width of the image states
its residual is added to (a field written to ``adapter_config.json`` only when set, so other
adapters' files stay as they were).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from drum.adapters.registry import CONFIG_NAME, AdapterConfigError
from drum.utils.io import atomic_write_json

ADAPTER_TYPE = "vpgc"
# How the adapter regenerates visual prompts: re-attention from per-visual-token queries over
# the vision tower's patch features (projector bases), a trainable copy of the base's
# Q-Former queries run through its frozen Q-Former (BLIP-2), or re-attention from per-image-
# state queries whose residual joins the image states the later cross-attention layers read
# (IDEFICS, Mllama: drum.adapters.vpgc.cross_attention).
BASE_KINDS = ("projector", "qformer", "cross_attention")
# Fields a base may fix over a config's own value (a Q-Former base: its width and queries).
BASE_FIXED = ("hidden_size", "num_queries", "base_kind")
# Written to adapter_config.json only when set (the adapters made before it never had it).
OPTIONAL_FIELDS = ("state_size",)


class VPGCConfigError(AdapterConfigError):
    """A VPG-C config that does not fit its base (layer out of range, widths, heads, ...)."""


@dataclass(frozen=True)
class VPGCConfig:
    """A VPG-C adapter.

    Attributes:
        layer: the decoder layer ``k`` at whose input the guidance is read and the residual
            visual prompts are added (the hook rewrites the output of layer ``k - 1``); must be
            in ``[1, num_layers - 1]``. ``None``: ``num_layers // 2`` (VPG-C's L/2).
        hidden_size: width of the re-attention on projector bases. ``None``: the vision
            tower's width. 16 keeps the adapter at 0.53% of the built-in DEMON base's
            parameters (the vision width, 64, would make it 4.0%; the budget is 1%). A
            Q-Former base ignores it: its width is its Q-Former's (``resolve``).
        num_heads: attention heads of the re-attention; must divide the resolved width.
        num_queries: query tokens (BLIP-2: the Q-Former's; ``None`` for projector bases).
        query_copies: Q-Former bases: trainable copies of the query tokens, each run through
            the frozen Q-Former; the outputs of query ``j``'s copies, concatenated, map to the
            image's ``j``-th visual token. More copies, more capacity at the same positions
            (on the built-in BLIP-2, 4 copies carried what 1 could not). Projector bases: 1.
        seed: seeds the non-zero initial weights (the zero-init maps start at zero anyway).
        base_kind: ``"projector"``, ``"qformer"`` or ``"cross_attention"``; ``None``: from the
            base's model type.
        model_type: the base's ``model_type`` (filled by ``resolve``).
        num_layers: the base's decoder layers (filled by ``resolve``).
        llm_hidden_size: the base's language-model width (filled by ``resolve``).
        vision_hidden_size: width of the patch features the adapter attends over (filled by
            ``resolve``).
        state_size: cross-attention bases: width of the image states the cross-attention
            layers read (filled by ``resolve``); ``None`` on the others.
    """

    layer: int | None = None
    hidden_size: int | None = 16
    num_heads: int = 2
    num_queries: int | None = None
    query_copies: int = 1
    seed: int = 0
    base_kind: str | None = None
    model_type: str | None = None
    num_layers: int | None = None
    llm_hidden_size: int | None = None
    vision_hidden_size: int | None = None
    state_size: int | None = None

    # ------------------------------------------------------------------------------- checks
    @property
    def resolved(self) -> bool:
        """Whether every base-dependent field is filled."""
        return None not in (
            self.layer,
            self.hidden_size,
            self.base_kind,
            self.model_type,
            self.num_layers,
            self.llm_hidden_size,
            self.vision_hidden_size,
        )

    def check(self) -> None:
        """Raise ``VPGCConfigError`` unless the (resolved) fields are consistent."""
        if not self.resolved:
            raise VPGCConfigError(f"unresolved VPG-C config (call resolve(base)): {self}")
        assert self.layer is not None and self.num_layers is not None
        assert self.hidden_size is not None
        if not 1 <= self.layer <= self.num_layers - 1:
            raise VPGCConfigError(
                f"VPG-C layer {self.layer} is out of range: the base has {self.num_layers} "
                f"decoder layers, so the layer must be in [1, {self.num_layers - 1}] (the "
                "residual enters layer k, written onto the output of layer k - 1)"
            )
        if self.base_kind not in BASE_KINDS:
            raise VPGCConfigError(f"base_kind must be one of {BASE_KINDS}, got {self.base_kind!r}")
        if self.num_heads < 1 or self.hidden_size < 1 or self.hidden_size % self.num_heads:
            raise VPGCConfigError(
                f"num_heads ({self.num_heads}) must divide hidden_size ({self.hidden_size})"
            )
        if self.query_copies < 1 or (self.base_kind != "qformer" and self.query_copies != 1):
            raise VPGCConfigError(
                "query_copies must be >= 1, and 1 on a projector or cross-attention base; got "
                f"{self.query_copies}"
            )
        if self.base_kind == "qformer" and not self.num_queries:
            raise VPGCConfigError("a Q-Former VPG-C needs num_queries")
        if (self.base_kind == "cross_attention") != (self.state_size is not None):
            raise VPGCConfigError(
                "state_size (the image states' width) is set on a cross-attention base and "
                f"only there; got base_kind={self.base_kind!r}, state_size={self.state_size!r}"
            )

    def resolve(self, **base: Any) -> VPGCConfig:
        """This config fitted to a base described by ``base`` (``model_type``, ``num_layers``,
        ``llm_hidden_size``, ``vision_hidden_size``, ``base_kind``; a Q-Former base also
        ``hidden_size`` and ``num_queries``; a cross-attention base ``state_size``), checked.

        A config not yet fitted to any base (``model_type is None``) takes every field the base
        fixes, ``hidden_size`` of a Q-Former base included (the width of its queries); a fitted
        one (a saved adapter) must agree with the base on them. Then ``layer`` defaults to
        ``num_layers // 2`` and a projector base's ``hidden_size`` to the vision width."""
        fitted = self.model_type is not None
        updates: dict[str, Any] = {}
        for name, value in base.items():
            mine = getattr(self, name)
            if mine is None or (not fitted and name in BASE_FIXED):
                updates[name] = value
            elif name != "base_kind" and mine != value:
                raise VPGCConfigError(
                    f"this VPG-C adapter was made for {name}={mine!r}, the base has {value!r}"
                )
        config = replace(self, **updates)
        num_layers = config.num_layers
        if config.layer is None and num_layers is not None:
            config = replace(config, layer=num_layers // 2)
        if config.hidden_size is None:
            config = replace(config, hidden_size=config.vision_hidden_size)
        config.check()
        return config

    # --------------------------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for name in OPTIONAL_FIELDS:
            if data[name] is None:
                del data[name]
        return {"adapter_type": ADAPTER_TYPE, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VPGCConfig:
        """The config ``data`` describes; a ``VPGCConfigError`` for another adapter type, an
        unknown field, or a field of the wrong JSON type (``"layer": "two"``)."""
        if not isinstance(data, dict):
            raise VPGCConfigError(f"a VPG-C config is a JSON object, got {type(data).__name__}")
        data = dict(data)
        kind = data.pop("adapter_type", ADAPTER_TYPE)
        if kind != ADAPTER_TYPE:
            raise VPGCConfigError(f"not a VPG-C adapter config (adapter_type={kind!r})")
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise VPGCConfigError(f"unknown VPG-C config fields: {unknown}")
        for name, value in data.items():
            _check_type(name, str(known[name]), value)
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> VPGCConfig:
        return cls.from_dict(json.loads(text))

    def save(self, directory: str | Path) -> Path:
        """Write ``adapter_config.json`` in ``directory`` (atomically); its path."""
        path = Path(directory) / CONFIG_NAME
        atomic_write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, directory: str | Path) -> VPGCConfig:
        """The config in ``directory``'s ``adapter_config.json``; what is wrong with the file
        is a ``VPGCConfigError`` naming it (``FileNotFoundError`` when it is missing)."""
        path = Path(directory) / CONFIG_NAME
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as error:
            raise FileNotFoundError(f"{path}: no VPG-C adapter config here") from error
        except UnicodeDecodeError as error:
            raise VPGCConfigError(f"{path}: not JSON (not UTF-8: {error})") from error
        try:
            return cls.from_json(text)
        except json.JSONDecodeError as error:
            raise VPGCConfigError(f"{path}: not JSON ({error})") from error
        except VPGCConfigError as error:
            raise VPGCConfigError(f"{path}: {error}") from error


def _check_type(name: str, annotation: str, value: Any) -> None:
    """``VPGCConfigError`` unless ``value`` (read from JSON) fits the field's annotation
    (``int``, ``int | None``, ``str | None``); a bool is not an integer, nor 2.0."""
    optional = annotation.endswith("| None")
    if value is None and optional:
        return
    if annotation.startswith("int"):
        fits, kind = isinstance(value, int) and not isinstance(value, bool), "an integer"
    else:
        fits, kind = isinstance(value, str), "a string"
    if not fits:
        expected = f"{kind} or null" if optional else kind
        raise VPGCConfigError(f"{name} must be {expected}, got {value!r}")
