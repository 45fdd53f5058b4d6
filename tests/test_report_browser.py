"""Reports in a real headless browser (the system's Chromium, driven by Playwright): what a person sees.

Marked ``browser``; `.ci/run` installs Chromium and requires these to run (``IROUTER_REQUIRE_BROWSER=1``).
A screenshot of each page is left in the temporary folder (``/tmp/irouter-report*.png``) to look at.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from irouter import Call, Chat, Report

from .report_helpers import REVIEW, SLUGS, answer_for, double

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("IROUTER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() or not _has_playwright():
        if os.environ.get("IROUTER_REQUIRE_BROWSER"):
            pytest.fail(f"Chromium ({CHROMIUM}) and playwright are required here (IROUTER_REQUIRE_BROWSER is set)")
        pytest.skip("needs Chromium (apt-get install chromium) and playwright (pip install playwright)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def _has_playwright() -> bool:
    import importlib.util

    return importlib.util.find_spec("playwright") is not None


class Opened:
    """A page opened from a saved report, with every console error and request it made."""

    def __init__(self, browser: Any, path: Path, shot: str) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.url = path.resolve().as_uri()
        self.page.goto(self.url)
        self.page.wait_for_load_state("networkidle")
        self.page.screenshot(path=str(Path(tempfile.gettempdir()) / shot), full_page=True)

    def centres(self) -> dict[str, tuple[float, float, float, float]]:
        """Per charted model: (cost, latency, x, y) with x, y the point's centre on screen."""
        found = {}
        for point in self.page.locator("svg.chart g.point").all():
            box = point.locator("circle").bounding_box()
            found[str(point.get_attribute("data-model"))] = (
                float(str(point.get_attribute("data-cost"))),
                float(str(point.get_attribute("data-latency"))),
                box["x"] + box["width"] / 2,
                box["y"] + box["height"] / 2,
            )
        return found


def test_a_reviewed_turn_in_chromium(browser: Any, tmp_path: Path) -> None:
    with double() as router:
        chat = Chat(SLUGS, base_url=router.base_url, api_key=router.api_key)
        chat("Explain CRDTs in two sentences.")
    path = chat.report(review=REVIEW).save(tmp_path / "report.html")
    opened = Opened(browser, path, "irouter-report.png")
    page = opened.page
    assert opened.errors == []
    assert opened.requests == [opened.url]  # the page itself, nothing else
    cards = page.locator("div.answer")
    assert cards.count() == len(SLUGS)
    for i, ranked in enumerate(REVIEW.ranking):
        card = cards.nth(i)
        assert card.get_attribute("data-model") == ranked.model
        assert card.is_visible()
        provider = ranked.model.partition("@")[2] or "openai"
        assert answer_for(provider) in card.inner_text()
        assert ranked.reason in card.inner_text()
    boxes = [cards.nth(i).bounding_box() for i in range(cards.count())]
    for a, b in itertools.pairwise(boxes):  # side by side, not on top of each other
        assert a["x"] + a["width"] <= b["x"] + 1 or a["y"] + a["height"] <= b["y"] + 1
    chart = page.locator("svg.chart").bounding_box()
    centres = opened.centres()
    assert set(centres) == set(SLUGS)
    for _, _, x, y in centres.values():
        assert chart["x"] <= x <= chart["x"] + chart["width"]
        assert chart["y"] <= y <= chart["y"] + chart["height"]
    assert sorted(centres, key=lambda m: centres[m][2]) == sorted(centres, key=lambda m: centres[m][1])
    assert sorted(centres, key=lambda m: -centres[m][3]) == sorted(centres, key=lambda m: centres[m][0])
    assert page.locator("ol.legend li").count() == len(SLUGS)
    page.close()


def test_a_grid_in_chromium(browser: Any, tmp_path: Path) -> None:
    prompts = [{"id": "crdt", "prompt": "Explain CRDTs."}, {"id": "raft", "prompt": "Explain <Raft>."}]
    with double() as router:
        grid = Call(SLUGS[:3], base_url=router.base_url, api_key=router.api_key).grid(prompts)
        list(grid.run())
        path = Report.of(grid.results(), prompts=prompts).save(tmp_path / "grid.html")
    opened = Opened(browser, path, "irouter-report-grid.png")
    page = opened.page
    assert opened.errors == []
    assert opened.requests == [opened.url]
    rows = page.locator("table.grid tbody tr")
    assert rows.count() == 2
    assert rows.nth(1).locator("th").inner_text() == "Explain <Raft>."
    for i, model in enumerate(SLUGS[:3]):
        cell = rows.nth(0).locator("td").nth(i)
        assert cell.get_attribute("data-model") == model
        assert cell.inner_text() == answer_for(model.partition("@")[2])
    assert len(opened.centres()) == 3
    page.close()
