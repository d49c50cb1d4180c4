"""DRUM: demonstration retrieval for in-context learning with vision-language models."""

__version__ = "0.1.0"
