"""``drum serve``'s request parsing, apart from a running server."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from drum.serve import protocol
from drum.serve.protocol import ImageStore


def _data_url(color: tuple[int, int, int]) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_two_requests_staging_the_same_image_at_once_both_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The interleaving that failed CI once: a second request stages the same image while the
    # first is still checking it. Made deterministic by checking the second inside the first.
    store = ImageStore(tmp_path)
    url = _data_url((200, 10, 10))
    real_decode = protocol.decode_image
    inner: list[Path] = []
    started = []

    def decode_while_another_request_stages(image: Path) -> None:
        real_decode(image)
        if not started:
            started.append(True)
            inner.append(store.path_of(url, "inner"))

    monkeypatch.setattr(protocol, "decode_image", decode_while_another_request_stages)
    outer = store.path_of(url, "outer")
    assert outer == inner[0]
    assert outer.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [outer.name]


def test_an_unreadable_image_leaves_no_staged_file(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    url = "data:image/png;base64," + base64.b64encode(b"not a png").decode()
    with pytest.raises(protocol.RequestError, match="not a readable image"):
        store.path_of(url, "messages[0].content[0].image_url")
    assert list(tmp_path.iterdir()) == []
