"""Adapters on frozen LVLMs (``drum.adapters.vpgc``: VPG-C), each an ``LVLM`` itself."""
