"""The per-query report rendered in a real browser: headless Chromium (Debian's ``chromium``
package) driven by Playwright, no browser download.

Without Chromium or Playwright the test is skipped locally; with ``CI`` set it fails, naming
what is missing (``.ci/run`` installs Chromium).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from drum.eval.query_report import ReportConfig, build_report

CHROMIUM_NAMES = ("chromium", "chromium-browser")


def _chromium() -> str:
    found = os.environ.get("DRUM_CHROMIUM") or next(
        (path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None
    )
    problem = None
    if found is None:
        problem = "no chromium on PATH (apt-get install chromium; .ci/run does it)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is missing (pip install -e '.[dev]')"
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the browser test cannot run in CI: {problem}")
        pytest.skip(problem)
    assert found is not None
    return found


def test_the_report_renders_without_console_errors_and_filters(
    icl_run: Path, tmp_path: Path
) -> None:
    chromium = _chromium()
    from playwright.sync_api import sync_playwright

    page_path = tmp_path / "report.html"
    summary = build_report(icl_run, page_path, ReportConfig(per_group=3, compare_per_group=1))
    problems: list[str] = []
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on(
                "console",
                lambda m: (
                    problems.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning")
                    else None
                ),
            )
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_path.as_uri(), wait_until="load")

            cards = page.locator(".card")
            assert cards.count() == summary.cards
            visible = page.locator(".card:visible")
            assert visible.count() == summary.cards
            assert page.locator("#shown").inner_text() == str(summary.cards)
            # The thumbnails and the plot are decoded images.
            assert page.evaluate("document.querySelector('img.plot').naturalWidth") > 100
            page.screenshot(path=str(tmp_path / "report.png"))

            # A filter hides the cards of other strategies.
            expected = page.locator('.card[data-strategy="concat"]').count()
            assert 0 < expected < summary.cards
            page.select_option("#filter-strategy", "concat")
            assert visible.count() == expected
            assert page.locator("#shown").inner_text() == str(expected)
            page.select_option("#filter-right", "wrong")
            wrong = page.locator('.card[data-strategy="concat"][data-right="wrong"]').count()
            assert visible.count() == wrong
            page.select_option("#filter-strategy", "")
            page.select_option("#filter-right", "")
            assert visible.count() == summary.cards
            page.screenshot(path=str(tmp_path / "report-full.png"), full_page=True)
        finally:
            browser.close()
    assert problems == []
    # Nothing but the page itself was requested (inline images, no network).
    assert requests == [page_path.as_uri()]
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_demon_report_renders_without_console_errors(demon_run: Path, tmp_path: Path) -> None:
    chromium = _chromium()
    from playwright.sync_api import sync_playwright

    page_path = tmp_path / "demon.html"
    summary = build_report(demon_run, page_path)
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(page_path.as_uri(), wait_until="load")
            assert page.locator(".card:visible").count() == summary.cards == 7
            page.select_option("#filter-task", "TQA")
            assert page.locator(".card:visible").count() == 2
            page.screenshot(path=str(tmp_path / "demon.png"))
        finally:
            browser.close()
    assert problems == []
