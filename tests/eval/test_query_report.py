"""``drum report``: the self-contained per-query HTML page (the browser test renders it)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drum.cli.main import app
from drum.eval.query_report import ReportConfig, ReportError, build_report
from drum.eval.records import QUERIES_FILE, read_query_records
from tests.eval.conftest import RUN_QUERIES, RUN_SHOTS, RUN_STRATEGIES

runner = CliRunner()
CARD = re.compile(r'<div class="card (right|wrong)"')
# Any attribute value pointing at the network (src, href, url(...)).
NETWORK = re.compile(r"""(src|href)\s*=\s*["']?\s*(https?:)?//|url\(\s*["']?\s*(https?:)?//""")


def _groups() -> int:
    """Groups per task: zero-shot, random (first seed), concat, drum at each shot count > 0."""
    return 1 + len(RUN_STRATEGIES) * len([k for k in RUN_SHOTS if k > 0])


def _expected_counts(run: Path, a: str, b: str, right_at: dict[str, float]) -> dict:
    records = read_query_records(run / QUERIES_FILE)
    metric = {"vqa": "vqa_accuracy", "caption": "cider"}
    scores = {(r["task"], r["strategy"], r["shots"], r["query_id"]): r["score"] for r in records}
    counts: dict = {}
    for task in ("vqa", "caption"):
        for k in (1, 2):
            ids = {r["query_id"] for r in records if r["task"] == task}
            t = right_at[metric[task]]
            right = {s: {q for q in ids if scores[(task, s, k, q)] >= t} for s in (a, b)}
            counts.setdefault(task, {})[k] = (
                len(right[a] - right[b]),
                len(right[b] - right[a]),
            )
    return counts


def test_the_page_holds_the_sampled_cards_and_the_comparison(icl_run: Path, tmp_path: Path) -> None:
    config = ReportConfig(per_group=4, compare_per_group=1)
    summary = build_report(icl_run, tmp_path / "report.html", config)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert summary.kind == "icl" and summary.comparison == ("drum", "concat")
    counts = _expected_counts(icl_run, "drum", "concat", dict(config.right_at))
    assert summary.counts == counts
    compared = sum(min(1, n) for by_shots in counts.values() for c in by_shots.values() for n in c)
    assert compared > 0  # the fixture's drum and concat differ
    expected = 2 * _groups() * min(4, RUN_QUERIES) + 2 * compared
    assert summary.cards == expected == len(CARD.findall(page))
    assert len(re.findall(r'data-view="compare"', page)) == 2 * compared
    # Every group of a task shows the same sampled queries.
    for task in ("vqa", "caption"):
        ids = re.findall(rf'data-view="groups" data-task="{task}"[^>]*>.*?<b>([^<]+)</b>', page)
        assert len(set(ids)) == 4 and len(ids) == _groups() * 4
    # Self-contained: inline images only, nothing on the network.
    assert not NETWORK.search(page), NETWORK.search(page)
    assert "http://" not in page and "https://" not in page
    assert page.count("data:image/png;base64,") == 1  # the plot
    assert page.count("data:image/jpeg;base64,") >= 10  # thumbnails, each image once
    assert "<table>" in page and "zero-shot" in page
    assert 'id="filter-strategy"' in page and 'id="filter-right"' in page
    # Deterministic.
    again = build_report(icl_run, tmp_path / "again.html", config)
    assert (tmp_path / "again.html").read_text(encoding="utf-8") == page
    assert again.cards == summary.cards


def test_cards_show_the_records_demonstrations_and_scores(icl_run: Path, tmp_path: Path) -> None:
    build_report(icl_run, tmp_path / "r.html", ReportConfig(per_group=RUN_QUERIES))
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    records = read_query_records(icl_run / QUERIES_FILE)
    (record,) = [
        r for r in records if (r["task"], r["strategy"], r["shots"]) == ("vqa", "concat", 2)
    ][:1]
    start = page.index(f"<b>{record['query_id']}</b> · concat · 2-shot")
    card = page[start : page.index('<div class="card', start)]
    assert (
        f"sim {record['similarity'][0]:.3f}" in card
        and f"sim {record['similarity'][1]:.3f}" in card
    )
    assert "fb –" in card  # no feedback cache in this run
    assert f"prediction: <b>{record['prediction']}</b>" in card
    assert card.count('class="demo"') == 2


def test_the_comparison_can_name_other_strategies_or_unknown_ones(
    icl_run: Path, tmp_path: Path
) -> None:
    summary = build_report(icl_run, tmp_path / "r.html", ReportConfig(compare=("concat", "random")))
    assert summary.comparison == ("concat", "random")
    with pytest.raises(ReportError, match=r"compare: strategy 'text' has no records"):
        build_report(icl_run, tmp_path / "r.html", ReportConfig(compare=("drum", "text")))


def test_missing_records_are_a_clear_error(icl_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "results"
    shutil.copytree(icl_run, copy)
    (copy / QUERIES_FILE).unlink()
    with pytest.raises(ReportError, match=rf"{QUERIES_FILE} is missing"):
        build_report(copy, tmp_path / "r.html")
    with pytest.raises(ReportError, match="neither icl_results.json"):
        build_report(tmp_path, tmp_path / "r.html")


def test_a_demon_output_gets_its_sample_cards(demon_run: Path, tmp_path: Path) -> None:
    summary = build_report(demon_run, tmp_path / "d.html", ReportConfig(per_group=1))
    page = (tmp_path / "d.html").read_text(encoding="utf-8")
    assert summary.kind == "demon" and summary.comparison is None
    assert summary.cards == 4 == len(CARD.findall(page))  # four tasks, one sample each
    assert not NETWORK.search(page)
    summary = build_report(demon_run / "demon_scores.json", tmp_path / "d.html")
    assert summary.cards == 2 + 1 + 2 + 2  # every sample (per_group 4 >= each task's)
    with pytest.raises(ReportError, match="compare applies to ICL"):
        build_report(demon_run, tmp_path / "d.html", ReportConfig(compare=("a", "b")))


def test_cli_writes_the_report_and_reports_bad_options(icl_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "page.html"
    result = runner.invoke(app, ["report", "--results", str(icl_run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "report:" in result.output and "query cards" in result.output
    assert "right with drum and wrong with concat" in " ".join(result.output.split())
    for args, message in (
        (["--compare", "drum"], "--compare needs two"),
        (["--per-group", "0"], "per_group must be >= 1"),
        (["--compare", "drum,text"], "has no records"),
    ):
        result = runner.invoke(app, ["report", "--results", str(icl_run), "--out", str(out), *args])
        assert result.exit_code == 2, result.output
        assert message in " ".join(result.output.split())
    result = runner.invoke(app, ["report", "--results", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "no such file" in result.output


def test_data_changed_since_the_evaluation_is_warned_about(
    tiny_world: Path, tmp_path: Path
) -> None:
    import json
    from dataclasses import replace

    from drum.builtin.world.tasks import world_tasks
    from drum.eval.icl import ICLEvalConfig, run_icl_eval
    from drum.testing import FakeLVLM

    task = world_tasks(tiny_world)["vqa"]
    copies = {}
    for name, source in (("pool", task.pool), ("queries", task.queries)):
        records = [json.loads(line) for line in source.read_text().splitlines()]
        for record in records:
            record["images"] = [str((source.parent / i).resolve()) for i in record["images"]]
        copies[name] = tmp_path / f"{name}.jsonl"
        copies[name].write_text("".join(json.dumps(r) + "\n" for r in records))
    task = replace(task, pool=copies["pool"], queries=copies["queries"])
    config = ICLEvalConfig(strategies=("random",), shots=(0, 1), max_queries=4)
    out = tmp_path / "results"
    run_icl_eval([task], FakeLVLM("first_demo"), config, None, out, progress=False)

    summary = build_report(out, tmp_path / "same.html")
    assert summary.warnings == ()
    # An answer of the pool edited after the evaluation: the report still renders, and says so.
    text = copies["pool"].read_text()
    copies["pool"].write_text(text.replace('"answers": ["', '"answers": ["edited ', 1))
    summary = build_report(out, tmp_path / "changed.html")
    assert len(summary.warnings) == 1
    assert str(copies["pool"]) in summary.warnings[0] and "changed since" in summary.warnings[0]
    page = (tmp_path / "changed.html").read_text(encoding="utf-8")
    assert "changed since" in page and str(copies["pool"]) in page
    result = runner.invoke(
        app, ["report", "--results", str(out), "--out", str(tmp_path / "c.html")]
    )
    assert result.exit_code == 0, result.output
    warning = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "changed since" in warning[0]
