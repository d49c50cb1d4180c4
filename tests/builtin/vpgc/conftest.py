"""The VPG-C tests' tiny bases (``tests/adapters/vpgc/conftest.py``), for the data tests."""

from tests.adapters.vpgc.conftest import vpgc_base_dir

__all__ = ["vpgc_base_dir"]
