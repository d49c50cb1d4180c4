"""The HTML pieces of ``drum report`` (``drum.eval.query_report``): query cards, inline
thumbnails, the filter bar, tables and the page around them, with its CSS and JavaScript.

Everything is self-contained: images become base64 JPEG CSS classes (``Thumbnails``), plots
inline PNG data URIs; nothing refers to a URL.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ReportError(ValueError):
    """A results directory the report cannot be built from (which file, what was expected)."""


@dataclass(frozen=True)
class Shown:
    """One example as a card shows it (a query or one of its demonstrations)."""

    images: tuple[str, ...]
    text: str
    answer: str
    similarity: float | None = None
    feedback: float | None = None


@dataclass(frozen=True)
class Card:
    task: str
    strategy: str
    shots: int
    seed: Any
    query_id: str
    query: Shown
    references: tuple[str, ...]
    prediction: str
    score: float
    metric: str
    right: bool
    demos: tuple[Shown, ...] = ()


class Thumbnails:
    """Each distinct image once, as a base64 JPEG CSS class (``t0``, ``t1``, ...).

    JPEG at quality 85 without chroma subsampling: the world's 32 px images have noisy
    backgrounds, which PNG stores at ~2.5 KB each and this at ~1 KB, colours kept (a colour
    is what many queries ask about, so no palette quantisation)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._classes: dict[str, str] = {}
        self._css: list[str] = []

    def css_class(self, path: str) -> str:
        if path not in self._classes:
            from drum.data.images import open_image

            try:  # the one pixel limit (drum.data.images.MAX_IMAGE_PIXELS): too large, not corrupt
                with open_image(path) as image:
                    image = image.convert("RGB")
                    image.thumbnail((self.size, self.size))
                    buffer = io.BytesIO()
                    image.save(buffer, format="JPEG", quality=85, subsampling=0)
            except (OSError, ValueError) as error:
                raise ReportError(f"image {path}: cannot be read ({error})") from error
            name = f"t{len(self._classes)}"
            data = base64.b64encode(buffer.getvalue()).decode("ascii")
            self._css.append(f".{name}{{background-image:url(data:image/jpeg;base64,{data})}}")
            self._classes[path] = name
        return self._classes[path]

    def css(self) -> str:
        return "\n".join(self._css)


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt_number(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _thumbs(shown: Shown, thumbs: Thumbnails) -> str:
    return "".join(
        f'<span class="thumb {thumbs.css_class(path)}" title="{esc(Path(path).name)}"></span>'
        for path in shown.images
    )


def card_html(card: Card, thumbs: Thumbnails, view: str) -> str:
    badge = "right" if card.right else "wrong"
    demos = "".join(
        '<div class="demo">'
        f"{_thumbs(demo, thumbs)}"
        f'<div class="text">{esc(demo.text)}</div>'
        f'<div class="answer">→ {esc(demo.answer)}</div>'
        f'<div class="meta">sim {fmt_number(demo.similarity)} · '
        f"fb {fmt_number(demo.feedback)}</div>"
        "</div>"
        for demo in card.demos
    )
    seed = "" if card.seed is None else f" · seed {esc(card.seed)}"
    refs = " | ".join(card.references[:5]) + (" | …" if len(card.references) > 5 else "")
    return (
        f'<div class="card {badge}" data-view="{view}" data-task="{esc(card.task)}" '
        f'data-strategy="{esc(card.strategy)}" data-shots="{card.shots}" '
        f'data-right="{badge}">'
        f'<div class="head"><b>{esc(card.query_id)}</b> · {esc(card.strategy)} · '
        f"{card.shots}-shot{seed} "
        f'<span class="badge {badge}">{badge}</span> '
        f'<span class="meta">{esc(card.metric)} {fmt_number(card.score)}</span></div>'
        f'<div class="row"><div class="query">{_thumbs(card.query, thumbs)}'
        f'<div class="text">{esc(card.query.text)}</div>'
        f'<div class="pred">prediction: <b>{esc(card.prediction)}</b></div>'
        f'<div class="refs">references: {esc(refs)}</div></div>'
        f'<div class="demos">{demos or "<i>no demonstrations</i>"}</div></div>'
        "</div>"
    )


def png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


_CSS = """
body{font-family:system-ui,sans-serif;margin:16px;color:#222;font-size:13px}
h1{font-size:20px}h2{font-size:16px;margin-top:24px}h3{font-size:14px;margin:14px 0 6px}
table{border-collapse:collapse;margin:6px 0 12px}td,th{border:1px solid #ccc;padding:2px 6px}
th{background:#f3f3f3}.plot{max-width:100%}
#filters{position:sticky;top:0;background:#fff;padding:6px 0;border-bottom:1px solid #ddd;
z-index:1}#filters select{margin-right:10px}
.cards{display:flex;flex-wrap:wrap;gap:8px}.pair{display:flex;gap:6px;border:1px dashed #aaa;
padding:4px}
.card{border:1px solid #bbb;border-left:5px solid #999;padding:6px;width:560px;
background:#fafafa}.card.right{border-left-color:#2a2}.card.wrong{border-left-color:#c33}
.head{margin-bottom:4px}.row{display:flex;gap:8px}.query{width:150px;flex:none}
.demos{display:flex;gap:6px;overflow-x:auto}.demo{width:96px;flex:none;border:1px solid #ddd;
padding:3px;background:#fff}
.thumb{display:inline-block;width:64px;height:64px;background-size:contain;
background-repeat:no-repeat;image-rendering:pixelated;margin:1px}
.text{font-size:12px}.answer{font-size:12px;color:#036}.meta{font-size:11px;color:#666}
.badge{padding:0 5px;border-radius:3px;color:#fff;font-size:11px}.badge.right{background:#2a2}
.badge.wrong{background:#c33}.pred{margin-top:2px}.refs{font-size:11px;color:#555}
.hidden{display:none!important}
"""

_JS = """
(function(){
  var selects = document.querySelectorAll('#filters select');
  function apply(){
    var want = {};
    selects.forEach(function(s){ want[s.dataset.key] = s.value; });
    var shown = 0;
    document.querySelectorAll('.card').forEach(function(card){
      var ok = true;
      for (var key in want){
        if (want[key] !== '' && card.dataset[key] !== want[key]) { ok = false; }
      }
      card.classList.toggle('hidden', !ok);
      if (ok) { shown += 1; }
    });
    document.querySelectorAll('.pair').forEach(function(pair){
      pair.classList.toggle('hidden', pair.querySelectorAll('.card:not(.hidden)').length === 0);
    });
    document.querySelectorAll('.group').forEach(function(group){
      group.classList.toggle('hidden', group.querySelectorAll('.card:not(.hidden)').length === 0);
    });
    document.getElementById('shown').textContent = String(shown);
  }
  selects.forEach(function(s){ s.addEventListener('change', apply); });
  apply();
})();
"""


def filter_bar(cards: Sequence[Card], keys: Sequence[str]) -> str:
    values: dict[str, list[str]] = {
        "task": list(dict.fromkeys(card.task for card in cards)),
        "strategy": list(dict.fromkeys(card.strategy for card in cards)),
        "shots": [str(k) for k in sorted({card.shots for card in cards})],
        "right": ["right", "wrong"],
    }
    parts = []
    for key in keys:
        options = '<option value="">all</option>' + "".join(
            f'<option value="{esc(v)}">{esc(v)}</option>' for v in values[key]
        )
        parts.append(
            f'<label>{key} <select id="filter-{key}" data-key="{key}">{options}</select></label>'
        )
    return (
        '<div id="filters">'
        + "".join(parts)
        + f' <span class="meta"><span id="shown">{len(cards)}</span> of {len(cards)} cards '
        "shown</span></div>"
    )


def html_page(title: str, body: str, thumbs: Thumbnails) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{_CSS}\n{thumbs.css()}</style></head>"
        f"<body>{body}<script>{_JS}</script></body></html>\n"
    )


def html_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"
