"""DEMON scores rendered from ``demon_scores.json``: a markdown table per category and a bar
plot, one panel per category (never typed by hand: re-render any time from the JSON).

Task scores (fractions in the JSON, ``{"score", "ci95"}`` as the reference scorer names a
task's score; read as a ``drum.results.Estimate``) are shown as percentages, like the
category scores, with their 95% bootstrap interval. Tasks are grouped by the category map the
JSON was aggregated by (its ``category_members``: the reference's ``CATEGORIES``, or the
built-in tasks' own); a JSON without one (written before it was recorded) is grouped by
``CATEGORIES``. Tasks of no category are grouped under ``other``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from drum.demon.categories import CATEGORIES
from drum.results import Estimate, markdown_table_lines
from drum.utils.io import atomic_write_text
from drum.utils.plotting import new_figure, percent_error_bars, save_png

OTHER = "other"


def load_scores(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``demon_scores.json`` as written by ``drum.demon.evaluate``."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def category_members(scores: dict[str, Any]) -> dict[str, Sequence[str]]:
    """The category map ``scores`` were aggregated by: its ``category_members``, or
    ``CATEGORIES`` for a JSON written before that was recorded (always the reference's then)."""
    return scores.get("category_members") or dict(CATEGORIES)


def category_tasks(scores: dict[str, Any]) -> dict[str, list[str]]:
    """Each category with at least one scored task -> its scored tasks, in the category map's
    order (``i4_score.py``'s for the reference); tasks of no category under ``OTHER``."""
    tasks = scores["tasks"]
    members_of = category_members(scores)
    groups = {
        name: [task for task in members if task in tasks] for name, members in members_of.items()
    }
    known = {task for members in members_of.values() for task in members}
    groups[OTHER] = [task for task in tasks if task not in known]
    return {name: members for name, members in groups.items() if members}


def markdown_report(scores: dict[str, Any]) -> str:
    """The categories' scores, then one table per category of its tasks' scores."""
    lines = ["# DEMON scores", ""]
    config = scores.get("config", {})
    for key in ("model", "data", "predictions", "max_per_task"):
        if config.get(key) is not None:
            lines.append(f"- {key}: `{config[key]}`")
    sha = scores.get("provenance", {}).get("git_sha")
    if sha:
        lines.append(f"- git: {sha}")
    groups = category_tasks(scores)
    categories = []
    for name, members in category_members(scores).items():
        if name in scores["categories"]:
            score = f"{scores['categories'][name]:.2f}"
        else:
            score = f"- (missing {', '.join(scores.get('missing', {}).get(name, []))})"
        categories.append([name, score, f"{len(groups.get(name, []))}/{len(members)}"])
    lines += ["", *markdown_table_lines(["category", "score", "tasks"], categories)]
    for name, members in groups.items():
        rows = []
        for task in members:
            entry = scores["tasks"][task]
            score, interval = Estimate.from_json(entry).parts(decimals=1, scale=100)
            rows.append([task, str(entry["metric"]), str(entry["n"]), score, interval])
        header = ["task", "metric", "n", "score", "95% CI"]
        lines += ["", f"## {name}", "", *markdown_table_lines(header, rows)]
    lines += ["", "Scores in %: task scores are means over samples (Rouge-L f or accuracy), a"]
    lines.append("category's the unweighted mean of its tasks (scored only when all are present).")
    return "\n".join(lines) + "\n"


def plot(scores: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """One bar panel per category: its tasks' scores (%) with 95% CI bars, the category's
    score (when all its tasks are present) as a dashed line. Written as PNG atomically."""
    groups = category_tasks(scores)
    figure = new_figure((3.2 * max(1, len(groups)), 3.8))
    axes = figure.subplots(1, max(1, len(groups)), squeeze=False)[0]
    for ax, (name, members) in zip(axes, groups.items(), strict=False):
        values, errors = percent_error_bars(
            [Estimate.from_json(scores["tasks"][task]) for task in members]
        )
        ax.bar(range(len(members)), values, yerr=errors, capsize=3, color="tab:blue")
        if name in scores["categories"]:
            ax.axhline(scores["categories"][name], linestyle="--", color="0.3", label="category")
            ax.legend(fontsize="small")
        ax.set_xticks(range(len(members)), members, rotation=45, ha="right", fontsize="small")
        ax.set_ylim(0, 100)
        ax.set_ylabel("score (%)")
        score = scores["categories"].get(name)
        ax.set_title(name if score is None else f"{name}: {score:.2f}", fontsize="medium")
        ax.grid(axis="y", alpha=0.3)
    return save_png(figure, path)


def render_report(scores_json_path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``demon_scores.md`` and ``demon_scores.png`` beside ``demon_scores.json``."""
    scores_json_path = Path(scores_json_path)
    scores = load_scores(scores_json_path)
    markdown_path = scores_json_path.with_suffix(".md")
    png_path = plot(scores, scores_json_path.with_suffix(".png"))
    text = markdown_report(scores) + f"\n![DEMON scores]({png_path.name})\n"
    atomic_write_text(markdown_path, text)
    return markdown_path, png_path
