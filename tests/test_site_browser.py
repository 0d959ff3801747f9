"""The built site in a real browser (Debian's Chromium, headless, driven by Playwright): no console errors, sorting
and filters change the rows, hostile names and answers show as text and never run, every page linked from the
index loads. Screenshots go to results/test-artifacts/site-browser/ (printed).

CI installs Chromium (.ci/run); on a machine without /usr/bin/chromium these tests are skipped, saying so."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from benchmarks.site_bench import CHROMIUM, HOSTILE, launch, synthetic_run
from leaderboard.build import build

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements.txt)")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no {CHROMIUM}: apt-get install chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "results" / "test-artifacts" / "site-browser"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("site")
    synthetic_run(root, n_methods=10, n_prompts=40, seeds=(0, 1), hostile=True)  # a method named with the payload
    return build(root / "runs", root / "site").parent


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    """A page that records console errors, uncaught exceptions and any request leaving the disk."""
    pg = browser.new_page(viewport={"width": 1400, "height": 1000})
    pg.problems = []
    pg.on("console", lambda m: pg.problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    pg.on("pageerror", lambda e: pg.problems.append(f"exception: {e}"))
    pg.on("request", lambda r: None if r.url.startswith("file:") else pg.problems.append(f"network: {r.url}"))
    yield pg
    pg.close()


def shot(pg, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)
    print(f"screenshot: {ARTIFACTS / name}.png")


def visible_names(pg, table: str) -> list[str]:
    return pg.eval_on_selector_all(f"{table} tbody tr.row", "rows => rows.filter(r => !r.hidden).map(r => r.dataset.name)")


def test_index_sorts_and_filters_without_console_errors(site, page):
    page.goto((site / "index.html").as_uri())
    table = "table.lb"
    tiered = visible_names(page, table)
    assert len(tiered) == 13  # base, 10 methods, 2 controls
    page.click(f"{table} th:has-text('win rate %') >> nth=0")
    ascending = visible_names(page, table)
    values = lambda: page.eval_on_selector_all(f"{table} tbody tr.row td:nth-child(4)",  # noqa: E731
                                               "cs => cs.map(c => Number(c.dataset.v))")
    assert ascending != tiered and values() == sorted(values())
    assert page.eval_on_selector_all(f"{table} tr.tier", "ts => ts.every(t => t.hidden)")
    page.click(f"{table} th:has-text('win rate %') >> nth=0")
    assert values() == sorted(values(), reverse=True) and visible_names(page, table) != ascending
    page.fill(".filters input[data-filter=text]", "ppo")
    assert sorted(visible_names(page, table)) == ["fg-ppo", "fg-ppo-terminal", "ppo"]
    page.fill(".filters input[data-filter=text]", "")
    page.select_option(".filters select[data-filter=kind]", "controls")
    assert sorted(visible_names(page, table)) == ["null", "positive"]
    assert page.evaluate("() => window.__pwned") is None
    shot(page, "index")
    assert page.problems == []


def test_hostile_names_and_answers_show_as_text_and_nothing_runs(site, page):
    run_dir = next(p for p in site.iterdir() if p.is_dir() and p.name != "static")
    page.goto((site / "index.html").as_uri())
    assert HOSTILE in page.inner_text("h2")  # the run's name, as text
    assert page.locator(f"a:text-is('evil{HOSTILE}')").count() == 1
    page.goto((run_dir / "samples.html").as_uri())
    page.wait_for_selector(".sample .answer.reference")
    first = page.locator(".sample").first
    assert HOSTILE in first.locator("h4").inner_text()  # the instruction carries the payload
    assert any(HOSTILE in t for t in first.locator(".answer .text").all_inner_texts())
    assert page.eval_on_selector("#s-list", "l => l.querySelectorAll('script, img, iframe').length") == 0
    assert page.evaluate("() => window.__pwned") is None
    shot(page, "samples")
    assert page.problems == []


def test_sample_browser_filters_and_pages(site, page):
    run_dir = next(p for p in site.iterdir() if p.is_dir() and p.name != "static")
    page.goto((run_dir / "samples.html").as_uri())
    page.wait_for_selector(".sample .answer.reference")
    count = lambda: page.inner_text("#s-count")  # noqa: E731
    assert count().startswith("40 of 40") and page.locator(".sample").count() == 10
    page.click("#s-next")
    assert "page 2 of 4" in count() and page.locator(".sample").first.get_attribute("data-prompt") == "p10"
    page.select_option("#s-method", "null")
    page.select_option("#s-verdict", "win")  # the constant answer wins nowhere
    assert count().startswith("0 of 40")
    page.select_option("#s-verdict", "loss")
    page.wait_for_selector(".sample .answer.reference")
    assert page.locator(".sample").first.locator(".answer").nth(1).inner_text().startswith("null · loss")
    page.select_option("#s-method", "")
    page.select_option("#s-verdict", "")
    page.fill("#s-minlen", "100000")
    assert count().startswith("0 of 40")
    page.fill("#s-minlen", "")
    page.fill("#s-search", "question 3")
    assert count().startswith("11 of 40")  # Question 3, 30-39: case-insensitive
    page.fill("#s-search", "question 3:")
    assert count().startswith("1 of 40")
    assert page.problems == []


def test_every_page_linked_from_the_index_loads(site, page):
    page.goto((site / "index.html").as_uri())
    links = set(page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)"))
    pages = {u.split("#")[0] for u in links if u.split("#")[0].endswith(".html")}
    files = {u for u in links if not u.split("#")[0].endswith(".html")}
    assert len(pages) >= 15  # index, run, samples and a page per method
    for url in sorted(pages):  # and from each run page, its own links (model_outputs.json, method pages)
        page.goto(url)
        assert page.locator("h1").count() == 1, url
        if url.endswith("/run.html"):
            files |= set(page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)"))
            shot(page, "run")
    for url in files:
        path = Path(unquote(urlparse(url.split("#")[0]).path))
        assert path.exists(), url
    assert page.evaluate("() => window.__pwned") is None
    assert page.problems == []


def test_site_survives_a_move(site, tmp_path, page):
    """Only relative links: the folder opens the same from anywhere (a published copy, a zip)."""
    moved = shutil.copytree(site, tmp_path / "elsewhere")
    page.goto((moved / "index.html").as_uri())
    assert page.locator("table.lb").count() == 1 and page.problems == []
