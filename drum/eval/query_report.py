"""``drum report``: one self-contained HTML page of sampled per-query results.

Built from a results directory alone, never from evaluation state, and never computing a
model output or a feedback score:

* ``drum eval`` / ``drum demo`` outputs (``icl_results.json`` + ``icl_queries.jsonl``, the
  per-query records of ``drum.eval.icl``): the summary table and plot on top; per task,
  strategy and shot count ``per_group`` sampled query cards (query image, text, references,
  prediction, a right/wrong badge, and its demonstrations side by side with their image,
  text, answer, similarity and feedback); a comparison of two strategies (``compare``,
  ``drum`` vs ``concat`` by default when both ran): per task and shot count, how many queries
  are right with A and wrong with B and the reverse, with some of those queries' cards.
* ``drum demon eval`` / ``drum demon score`` outputs (``demon_scores.json`` +
  ``<Task>/sample_records.jsonl``): the task table and plot, then ``per_group`` sampled
  sample cards per task (its images, instruction, context, prediction, reference, score).

Self-contained: images are inline base64 JPEG thumbnails (each distinct image once, as a CSS
class, however many cards show it), the plot an inline PNG, the filters (task, strategy,
shots, right/wrong) plain JavaScript in the page; nothing refers to a URL.

Sampling is deterministic: per task, ``per_group`` query ids drawn with a generator seeded
by ``(seed, task)``; every group of that task shows the same queries, so one query can be
followed across strategies and shot counts. A seeded strategy with several seeds shows its
first seed (the card says which).

A query counts as right when its primary per-query score reaches ``right_at[metric]``
(``RIGHT_AT``; ``DEFAULT_RIGHT_AT`` for other metrics): accuracy and VQA accuracy 0.5
(VQA: at least half of the human-agreement credit), CIDEr-D 1.0 (pycocoevalcap scale, about
a good COCO caption), ROUGE-L and DEMON scores 0.5.

The page's HTML pieces (cards, thumbnails, the filter bar, tables, CSS and JavaScript) are
``drum.eval.report_html``; this module chooses what goes on the page.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drum.eval.records import QUERIES_FILE as ICL_QUERIES
from drum.eval.records import read_query_records, read_records
from drum.eval.report_html import (
    Card,
    ReportError,
    Shown,
    Thumbnails,
    card_html,
    esc,
    filter_bar,
    fmt_number,
    html_page,
    html_table,
    png_data_uri,
)
from drum.utils.io import atomic_write_text

RIGHT_AT: dict[str, float] = {
    "vqa_accuracy": 0.5,
    "accuracy": 0.5,
    "cider": 1.0,
    "rouge_l": 0.5,
    "bleu4": 0.3,
}
DEFAULT_RIGHT_AT = 0.5
DEFAULT_COMPARE = ("drum", "concat")
ICL_RESULTS = "icl_results.json"
DEMON_SCORES = "demon_scores.json"  # drum.demon.evaluate.SCORES_FILE
DEMON_RECORDS = "sample_records.jsonl"  # drum.demon.evaluate.SAMPLE_RECORDS_FILE


@dataclass(frozen=True)
class ReportConfig:
    """What the page shows.

    Attributes:
        per_group: query cards per (task, strategy, shots) group (DEMON: per task).
        seed: the sampling seed.
        compare: the two strategies compared (A, B); None: ``DEFAULT_COMPARE`` when both ran,
            else no comparison.
        compare_per_group: cards per (task, shots, direction) in the comparison.
        thumbnail: the longest side of the inline thumbnails, in pixels (never upscaled).
        right_at: per-metric thresholds of the right/wrong badge (default ``RIGHT_AT``).
    """

    per_group: int = 4
    seed: int = 0
    compare: tuple[str, str] | None = None
    compare_per_group: int = 2
    thumbnail: int = 64
    right_at: Mapping[str, float] = field(default_factory=lambda: dict(RIGHT_AT))

    def __post_init__(self) -> None:
        if self.per_group < 1:
            raise ValueError(f"per_group must be >= 1, got {self.per_group}")
        if self.compare_per_group < 0:
            raise ValueError(f"compare_per_group must be >= 0, got {self.compare_per_group}")
        if self.thumbnail < 8:
            raise ValueError(f"thumbnail must be >= 8 pixels, got {self.thumbnail}")
        if self.compare is not None:
            pair = tuple(self.compare)
            if len(pair) != 2 or pair[0] == pair[1]:
                raise ValueError(f"compare needs two different strategies, got {self.compare!r}")
            object.__setattr__(self, "compare", pair)

    def threshold(self, metric: str) -> float:
        return float(self.right_at.get(metric, DEFAULT_RIGHT_AT))


@dataclass(frozen=True)
class ReportSummary:
    """What ``build_report`` wrote: the page, its query cards (comparison cards included),
    the comparison's counts ``{task: {shots: (A right B wrong, B right A wrong)}}``, the
    page's size and how long it took to build."""

    path: Path
    kind: str  # "icl" or "demon"
    cards: int
    comparison: tuple[str, str] | None
    counts: dict[str, dict[int, tuple[int, int]]]
    bytes: int
    seconds: float
    # One line per data file whose content changed since the evaluation (also on the page).
    warnings: tuple[str, ...] = ()


# ----------------------------------------------------------------------------- helpers


def _plot_png(plot: Any, results: Mapping[str, Any]) -> bytes:
    """The report module's summary plot rendered to PNG bytes (through a temporary file)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "plot.png"
        plot(results, path)
        return path.read_bytes()


def _stable_rng(seed: int, *parts: object) -> np.random.Generator:
    digest = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _sample(ids: Sequence[str], n: int, seed: int, *parts: object) -> list[str]:
    """``n`` of ``ids`` (all when fewer), drawn deterministically, kept in ``ids``' order."""
    if len(ids) <= n:
        return list(ids)
    chosen = set(_stable_rng(seed, *parts).choice(len(ids), size=n, replace=False).tolist())
    return [value for i, value in enumerate(ids) if i in chosen]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ReportError(f"{path}: not JSON ({error})") from error
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object")
    return data


# ----------------------------------------------------------------------------- ICL


def _examples(results: Mapping[str, Any], results_path: Path) -> dict[str, dict[str, Any]]:
    """``{task: {example id: Example}}`` of every task's pool and queries."""
    from drum.data.jsonl import DataError, read_examples

    tasks = results.get("config", {}).get("tasks")
    if not tasks:
        raise ReportError(f"{results_path}: config.tasks is missing (no task files to read)")
    by_task: dict[str, dict[str, Any]] = {}
    for task in tasks:
        examples: dict[str, Any] = {}
        for key in ("pool", "queries"):
            path = Path(task[key])
            if not path.is_file():
                raise ReportError(
                    f"{results_path}: task {task['name']!r} {key} file {path} is missing; the "
                    "report shows examples from the files the evaluation read"
                )
            try:
                examples.update((e.id, e) for e in read_examples(path, verify_images=False))
            except DataError as error:
                raise ReportError(str(error)) from error
        by_task[task["name"]] = examples
    return by_task


def _changed_data(results: Mapping[str, Any], results_path: Path) -> list[str]:
    """A line per task file whose SHA-256 no longer matches the one the evaluation recorded
    (``config.tasks[i].data_sha256``; results written before it was recorded: none)."""
    from drum.utils.fingerprint import sha256_file

    changed = []
    for task in results.get("config", {}).get("tasks") or []:
        for key, digest in (task.get("data_sha256") or {}).items():
            path = Path(task[key])
            if path.is_file() and sha256_file(path) != digest:
                changed.append(
                    f"{results_path}: task {task['name']!r} {key} file {path} changed since the "
                    "evaluation: the cards show its examples as they are now, not as evaluated"
                )
    return changed


def _icl_card(
    record: Mapping[str, Any], examples: Mapping[str, Any], metric: str, config: ReportConfig
) -> Card:
    def example(example_id: str) -> Any:
        if example_id not in examples:
            raise ReportError(
                f"task {record['task']!r}: example {example_id!r} of a per-query record is not "
                "in the task's pool or queries"
            )
        return examples[example_id]

    query = example(record["query_id"])
    similarity = record["similarity"] or [None] * len(record["demo_ids"])
    feedback = record["feedback"] or [None] * len(record["demo_ids"])
    demos = tuple(
        Shown(
            tuple(str(p) for p in example(demo_id).images),
            example(demo_id).text,
            example(demo_id).answer,
            sim,
            fb,
        )
        for demo_id, sim, fb in zip(record["demo_ids"], similarity, feedback, strict=True)
    )
    score = float(record["score"])
    return Card(
        task=record["task"],
        strategy=record["strategy"],
        shots=int(record["shots"]),
        seed=record["seed"],
        query_id=record["query_id"],
        query=Shown(tuple(str(p) for p in query.images), query.text, query.answer),
        references=tuple(record["references"]),
        prediction=record["prediction"],
        score=score,
        metric=metric,
        right=score >= config.threshold(metric),
        demos=demos,
    )


def _icl_page(
    results_path: Path, records_path: Path, config: ReportConfig
) -> tuple[str, int, tuple[str, str] | None, dict[str, dict[int, tuple[int, int]]], list[str]]:
    from drum.eval.report import (
        all_shots,
        format_cell,
        plot,
        primary_metric,
        summarize,
        task_names,
    )

    results = _read_json(results_path)
    if not records_path.is_file():
        raise ReportError(
            f"{records_path} is missing: the per-query records are written by drum eval / "
            "drum demo (since issue 13); rerun the evaluation"
        )
    records = read_query_records(records_path)
    examples = _examples(results, results_path)
    changed = _changed_data(results, results_path)
    banners = "".join(f'<p class="meta" style="color:#b00">warning: {esc(c)}</p>' for c in changed)
    thumbs = Thumbnails(config.thumbnail)
    tasks = task_names(results)
    metrics = {task: primary_metric(results, task) for task in tasks}

    # Groups in record order; a seeded strategy keeps its first seed.
    groups: dict[tuple[str, str, int], dict[str, dict[str, Any]]] = {}
    first_seed: dict[tuple[str, str, int], Any] = {}
    query_order: dict[str, dict[str, None]] = {}  # task -> query ids, first-seen order
    for record in records:
        key = (record["task"], record["strategy"], int(record["shots"]))
        if record["task"] not in metrics:
            raise ReportError(f"{records_path}: task {record['task']!r} is not in {results_path}")
        first_seed.setdefault(key, record["seed"])
        if record["seed"] != first_seed[key]:
            continue
        groups.setdefault(key, {})[record["query_id"]] = record
        query_order.setdefault(record["task"], {})[record["query_id"]] = None
    sampled = {
        task: _sample(list(ids), config.per_group, config.seed, task)
        for task, ids in query_order.items()
    }

    cards: list[Card] = []
    sections = []
    for task in tasks:
        task_groups = [key for key in groups if key[0] == task]
        if not task_groups:
            continue
        parts = [f"<h2>{esc(task)} ({esc(metrics[task])})</h2>"]
        for key in task_groups:
            group_cards = [
                _icl_card(groups[key][qid], examples[task], metrics[task], config)
                for qid in sampled[task]
                if qid in groups[key]
            ]
            cards += group_cards
            seed = first_seed[key]
            label = f"{key[1]} · {key[2]}-shot" + ("" if seed is None else f" · seed {seed}")
            parts.append(
                f'<div class="group"><h3>{esc(label)}</h3><div class="cards">'
                + "".join(card_html(card, thumbs, "groups") for card in group_cards)
                + "</div></div>"
            )
        sections.append("".join(parts))

    strategies = list(dict.fromkeys(key[1] for key in groups))
    pair = config.compare
    if pair is None and all(name in strategies for name in DEFAULT_COMPARE):
        pair = DEFAULT_COMPARE
    if pair is not None:
        absent = [name for name in pair if name not in strategies]
        if absent:
            raise ReportError(
                f"compare: strategy {absent[0]!r} has no records in {records_path}; "
                f"it holds {strategies}"
            )
    comparison, counts, compare_cards = "", {}, []
    if pair is not None:
        comparison, counts, compare_cards = _comparison(
            pair, tasks, groups, examples, metrics, config, thumbs
        )
    cards_total = len(cards) + len(compare_cards)

    summary_tables = []
    for task in tasks:
        shots = all_shots(results, task)
        rows = [
            [strategy, *(format_cell(cells.get(k)) for k in shots)]
            for strategy, cells in summarize(results, task).items()
        ]
        summary_tables.append(
            f"<h3>{esc(task)} ({esc(metrics[task])})</h3>"
            + html_table(["strategy", *(f"{k}-shot" for k in shots)], rows)
        )
    plot_uri = png_data_uri(_plot_png(plot, results))
    lvlm = results.get("config", {}).get("lvlm", {})
    thresholds = ", ".join(
        f"{m} ≥ {config.threshold(m):g}" for m in dict.fromkeys(metrics.values())
    )
    body = (
        "<h1>ICL per-query report</h1>"
        f'<p class="meta">{esc(results_path)} · LVLM {esc(lvlm.get("name", "?"))} · '
        f"{len(records)} per-query records · right when {esc(thresholds)} · "
        f"{config.per_group} sampled queries per task (seed {config.seed}); sim: the "
        "retriever's similarity, fb: cached LVLM feedback (– when not cached)</p>"
        + banners
        + "<h2>Summary</h2>" + "".join(summary_tables)
        + f'<img class="plot" alt="summary plot" src="{plot_uri}">'
        + filter_bar([*cards, *compare_cards], ("task", "strategy", "shots", "right"))
        + comparison
        + "<h2>Sampled queries</h2>"
        + "".join(sections)
    )  # fmt: skip
    page = html_page("ICL per-query report", body, thumbs)
    return page, cards_total, pair, counts, changed


def _comparison(
    pair: tuple[str, str],
    tasks: Sequence[str],
    groups: Mapping[tuple[str, str, int], Mapping[str, Mapping[str, Any]]],
    examples: Mapping[str, Mapping[str, Any]],
    metrics: Mapping[str, str],
    config: ReportConfig,
    thumbs: Thumbnails,
) -> tuple[str, dict[str, dict[int, tuple[int, int]]], list[Card]]:
    """Counts of right-with-A-wrong-with-B (and the reverse) per task and shot count, and up
    to ``compare_per_group`` such queries each, A's card beside B's."""
    a, b = pair
    counts: dict[str, dict[int, tuple[int, int]]] = {}
    cards: list[Card] = []
    blocks = []
    rows = []
    for task in tasks:
        shots = sorted(
            {k for (t, s, k) in groups if t == task and s == a}
            & {k for (t, s, k) in groups if t == task and s == b}
        )
        for k in shots:
            left, right = groups[(task, a, k)], groups[(task, b, k)]
            common = [qid for qid in left if qid in right]
            threshold = config.threshold(metrics[task])
            a_only = [
                q for q in common if left[q]["score"] >= threshold and right[q]["score"] < threshold
            ]
            b_only = [
                q for q in common if right[q]["score"] >= threshold and left[q]["score"] < threshold
            ]
            counts.setdefault(task, {})[k] = (len(a_only), len(b_only))
            rows.append([task, f"{k}-shot", str(len(common)), str(len(a_only)), str(len(b_only))])
            for label, ids in ((f"right with {a}, wrong with {b}", a_only),
                               (f"right with {b}, wrong with {a}", b_only)):  # fmt: skip
                chosen = _sample(ids, config.compare_per_group, config.seed, task, k, label)
                if not chosen:
                    continue
                pairs = []
                for qid in chosen:
                    both = [
                        _icl_card(group[qid], examples[task], metrics[task], config)
                        for group in (left, right)
                    ]
                    cards += both
                    pairs.append(
                        '<div class="pair">'
                        + "".join(card_html(card, thumbs, "compare") for card in both)
                        + "</div>"
                    )
                blocks.append(
                    f'<div class="group"><h3>{esc(task)} · {k}-shot · {esc(label)} '
                    f"({len(ids)})</h3>"
                    f'<div class="cards">{"".join(pairs)}</div></div>'
                )
    table = html_table(
        ["task", "shots", "queries", f"right with {a}, wrong with {b}",
         f"right with {b}, wrong with {a}"],
        rows,
    )  # fmt: skip
    html_text = f'<h2 id="comparison">Comparison: {esc(a)} vs {esc(b)}</h2>{table}' + "".join(
        blocks
    )
    return html_text, counts, cards


# ----------------------------------------------------------------------------- DEMON


def _demon_page(scores_path: Path, config: ReportConfig) -> tuple[str, int]:
    from drum.demon.report import plot

    scores = _read_json(scores_path)
    tasks = scores.get("tasks")
    if not isinstance(tasks, dict) or not tasks:
        raise ReportError(f"{scores_path}: no 'tasks' scores")
    thumbs = Thumbnails(config.thumbnail)
    cards: list[Card] = []
    sections = []
    rows = []
    fields = ("sample_id", "images", "instruction", "context", "prediction", "references", "score")
    for task, entry in tasks.items():
        ci = entry.get("ci95") or [None, None]
        rows.append(
            [task, str(entry.get("metric", "")), fmt_number(entry.get("score")),
             f"[{fmt_number(ci[0], 2)}, {fmt_number(ci[1], 2)}]", str(entry.get("n", ""))]
        )  # fmt: skip
        path = scores_path.parent / task / DEMON_RECORDS
        if not path.is_file():
            raise ReportError(
                f"{path} is missing: the per-sample records are written by drum demon eval / "
                "score (since issue 13); score the predictions again"
            )
        records = read_records(path, fields)
        ids = [str(record["sample_id"]) for record in records]
        chosen = set(_sample(ids, config.per_group, config.seed, task))
        metric = str(entry.get("metric", "score"))
        task_cards = [
            Card(
                task=task,
                strategy="demon",
                shots=0,
                seed=None,
                query_id=str(record["sample_id"]),
                query=Shown(
                    tuple(str(p) for p in record["images"]),
                    f"{record['instruction']} {record['context']}",
                    "",
                ),
                references=tuple(str(r) for r in record["references"]),
                prediction=str(record["prediction"]),
                score=float(record["score"]),
                metric=metric,
                right=float(record["score"]) >= config.threshold(metric),
            )
            for record in records
            if str(record["sample_id"]) in chosen
        ]
        cards += task_cards
        sections.append(
            f'<div class="group"><h2>{esc(task)}</h2><div class="cards">'
            + "".join(card_html(card, thumbs, "groups") for card in task_cards)
            + "</div></div>"
        )
    plot_uri = png_data_uri(_plot_png(plot, scores))
    body = (
        "<h1>DEMON per-sample report</h1>"
        f'<p class="meta">{esc(scores_path)} · {config.per_group} sampled samples per task '
        f"(seed {config.seed}) · right when score ≥ {DEFAULT_RIGHT_AT:g}</p>"
        "<h2>Summary</h2>"
        + html_table(["task", "metric", "score", "95% CI", "n"], rows)
        + f'<img class="plot" alt="summary plot" src="{plot_uri}">'
        + filter_bar(cards, ("task", "right"))
        + "".join(sections)
    )
    return html_page("DEMON per-sample report", body, thumbs), len(cards)


# ----------------------------------------------------------------------------- entry


def build_report(
    results: str | os.PathLike[str],
    out: str | os.PathLike[str],
    config: ReportConfig | None = None,
) -> ReportSummary:
    """Write the report of ``results`` (a results directory, or its ``icl_results.json`` /
    ``demon_scores.json``) to ``out`` atomically.

    Example::

        summary = build_report("runs/demo/results", "runs/demo/report.html")
        summary.cards, summary.counts  # cards in the page; {task: {shots: (A-only, B-only)}}
    """
    config = config or ReportConfig()
    started = time.perf_counter()
    results = Path(results)
    folder = results if results.is_dir() else results.parent
    if results.is_file() and results.name not in (ICL_RESULTS, DEMON_SCORES):
        raise ReportError(f"{results}: expected {ICL_RESULTS} or {DEMON_SCORES} (or their folder)")
    if not folder.is_dir():
        raise ReportError(f"{results}: no such results directory")
    counts: dict[str, dict[int, tuple[int, int]]] = {}
    pair: tuple[str, str] | None = None
    changed: list[str] = []
    if (folder / ICL_RESULTS).is_file() and results.name != DEMON_SCORES:
        page, cards, pair, counts, changed = _icl_page(
            folder / ICL_RESULTS, folder / ICL_QUERIES, config
        )
        kind = "icl"
    elif (folder / DEMON_SCORES).is_file():
        if config.compare is not None:
            raise ReportError("compare applies to ICL results; a DEMON run has one strategy")
        page, cards = _demon_page(folder / DEMON_SCORES, config)
        kind = "demon"
    else:
        raise ReportError(
            f"{folder}: neither {ICL_RESULTS} (drum eval / drum demo) nor {DEMON_SCORES} "
            "(drum demon eval / score)"
        )
    out = Path(out)
    atomic_write_text(out, page)
    return ReportSummary(
        path=out,
        kind=kind,
        cards=cards,
        comparison=pair,
        counts=counts,
        bytes=len(page.encode("utf-8")),
        seconds=round(time.perf_counter() - started, 3),
        warnings=tuple(changed),
    )
