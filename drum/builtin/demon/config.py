"""``BuiltinDemonConfig``: how many built-in DEMON-style samples to draw, from which seed."""

from __future__ import annotations

from dataclasses import dataclass

SPLITS = ("train", "test")


@dataclass(frozen=True)
class BuiltinDemonConfig:
    """Settings of ``make_builtin_demon``.

    ``n_train`` / ``n_test`` are samples per task per split, 2 at least (the train split is
    for a later supervised ceiling; the test split is the benchmark). ``image_size`` is the
    side of every image in pixels (None: the world's, 32 without a world); ``noise_std`` the
    pixel noise (None: the world's, 12.0 without a world). The same config gives
    byte-identical files.
    """

    seed: int = 0
    n_train: int = 100
    n_test: int = 100
    image_size: int | None = None
    noise_std: float | None = None

    def __post_init__(self) -> None:
        for name in ("n_train", "n_test"):
            # Two at least: an open-ended chance level guesses another sample's answer.
            if getattr(self, name) < 2:
                raise ValueError(
                    f"BuiltinDemonConfig.{name} must be >= 2, got {getattr(self, name)}"
                )
        if self.image_size is not None and self.image_size < 24:
            raise ValueError(
                f"BuiltinDemonConfig.image_size must be >= 24 (digits need a legible cell), "
                f"got {self.image_size}"
            )
        if self.noise_std is not None and self.noise_std < 0:
            raise ValueError(f"BuiltinDemonConfig.noise_std must be >= 0, got {self.noise_std}")

    def split_sizes(self) -> dict[str, int]:
        return {"train": self.n_train, "test": self.n_test}
