"""``Idefics2CountingProcessor``: Idefics2's processor, telling how many image tokens each
image became.

``HFLVLM`` cuts per-image visual-token spans (layer hooks, VPG-C) by the replacement string
each image placeholder became, which ``ProcessorMixin`` returns on request
(``return_text_replacement_offsets``). ``Idefics2Processor`` expands placeholders in its own
``__call__`` and returns no such thing; this subclass adds it. Every ``<image>`` becomes the
same string, ``<fake_token_around_image>`` + ``image_seq_len`` image tokens +
``<fake_token_around_image>``, five times over with image splitting (four crops and the whole
image), so the entry per placeholder is that string's image tokens. Everything else is
``Idefics2Processor``'s own, unchanged.
"""

from __future__ import annotations

from typing import Any

from transformers import Idefics2Processor


class Idefics2CountingProcessor(Idefics2Processor):
    """``Idefics2Processor`` that also returns ``text_replacement_offsets`` (module docstring):
    per text, one ``{"type": "image", "replacement": ...}`` per placeholder, in order."""

    def __call__(  # type: ignore[override]
        self,
        images: Any = None,
        text: Any = None,
        return_text_replacement_offsets: bool = False,
        **kwargs: Any,
    ) -> Any:
        output = super().__call__(images=images, text=text, **kwargs)
        if return_text_replacement_offsets:
            texts = [text] if isinstance(text, str) else list(text or [])
            crops = 5 if self.image_processor.do_image_splitting else 1
            entry = {
                "type": "image",
                "replacement": self.image_token * (self.image_seq_len * crops),
            }
            output["text_replacement_offsets"] = [
                [dict(entry) for _ in range(t.count(self.image_token))] for t in texts
            ]
        return output
