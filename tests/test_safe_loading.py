"""DRUM never unpickles untrusted files and runs no remote code unless asked
(docs/reliability.md): a scan of the library's source, and the loaders' defaults."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import drum
from drum.embed.hf import HFDualEncoder
from drum.lvlm.hf import HFLVLM

SOURCE = sorted(Path(drum.__file__).parent.rglob("*.py"))


def _calls(pattern: str) -> list[str]:
    found = []
    for path in SOURCE:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if re.search(pattern, line) and not line.lstrip().startswith(("#", "*", "``")):
                found.append(f"{path.name}:{number}: {line.strip()}")
    return found


def test_every_torch_load_is_weights_only() -> None:
    loads = _calls(r"torch\.load\(")
    assert loads, "the scan found no torch.load at all: is it looking at the package?"
    assert [call for call in loads if "weights_only=True" not in call] == []


@pytest.mark.parametrize("pattern", [r"\bpickle\b", r"allow_pickle\s*=\s*True", r"\bjoblib\b"])
def test_no_pickle_loading(pattern: str) -> None:
    assert _calls(pattern) == []


@pytest.mark.parametrize("shipped", ["builtin", "demon_base", "builtin_blip2"])
def test_shipped_models_are_safetensors_only(shipped: str) -> None:
    assets = Path(drum.__file__).parent / "assets" / shipped
    weights = [p for p in assets.rglob("*") if p.suffix in (".safetensors", ".bin", ".pt", ".pth")]
    assert weights and all(p.suffix == ".safetensors" for p in weights)


@pytest.mark.parametrize("loader", [HFDualEncoder, HFLVLM])
def test_loaders_run_no_remote_code_by_default(loader: type) -> None:
    assert inspect.signature(loader).parameters["trust_remote_code"].default is False
