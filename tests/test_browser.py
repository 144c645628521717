"""A real browser (Debian's chromium, driven by playwright) clicks through every page of the launched app."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(os.environ.get("VQVAE_SCREENSHOTS", Path(__file__).resolve().parent.parent / ".screenshots"))
TIMEOUT_MS = 30_000

pytestmark = pytest.mark.skipif(
    not shutil.which(CHROMIUM), reason="needs Debian's chromium (scripts/test.sh installs it)"
)


@pytest.fixture(scope="module")
def page(app_server):
    SCREENSHOTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        outside: list[str] = []
        context.route(
            lambda url: not url.startswith(app_server.url),
            lambda route: (outside.append(route.request.url), route.abort()),
        )
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(app_server.url)
        page.wait_for_selector("#checkpoint-picker")
        page.outside_requests = outside
        yield page
        browser.close()


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()


def no_error_toast(page) -> None:
    page.wait_for_timeout(300)
    toasts = page.locator(".toast-body.error")
    assert toasts.count() == 0, toasts.first.inner_text()


def has_image(page, elem_id: str) -> None:
    page.wait_for_selector(f"#{elem_id} img", state="visible")


def shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_reconstruct_page_reconstructs_and_edits_by_clicking(page):
    open_tab(page, "Reconstruct")
    page.click("#reconstruct-heldout")
    has_image(page, "reconstruction")
    page.wait_for_selector("#psnr :text('PSNR')")
    page.wait_for_selector("#code-grid .js-plotly-plot")
    before = page.locator("#reconstruction img").get_attribute("src")
    page.locator("#reconstruction img").click(position={"x": 100, "y": 100})  # picks a cell
    page.wait_for_function("() => document.querySelector('#edit-row input').value !== '0'")
    page.locator("#edit-code input").fill("5")
    page.click("#edit-button")
    page.wait_for_function(
        "src => document.querySelector('#reconstruction img').getAttribute('src') !== src", arg=before
    )
    no_error_toast(page)
    shot(page, "1-reconstruct")


def test_a_drawing_is_fitted_and_reconstructed(page):
    open_tab(page, "Reconstruct")
    page.get_by_role("tab", name="Draw", exact=True).click()
    page.locator("#sketch button[aria-label=Brush]").click()
    box = page.locator("#sketch canvas").last.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.2
    page.mouse.move(x, y)
    page.mouse.down()
    for k in range(1, 21):  # a vertical stroke: a "1"
        page.mouse.move(x, y + k * box["height"] * 0.03)
    page.mouse.up()
    page.click("#reconstruct-drawing")
    page.wait_for_selector("text=your drawing, fitted to the model's input")
    page.wait_for_selector("#psnr :text('PSNR')")
    no_error_toast(page)
    shot(page, "1-draw")


def test_usage_page_shows_its_figures(page):
    open_tab(page, "Codebook usage")
    page.wait_for_selector("#usage-stats :text('perplexity')")
    for plot in ("usage-bars", "usage-classes", "usage-training"):
        page.wait_for_selector(f"#{plot} .js-plotly-plot")
    no_error_toast(page)
    shot(page, "2-usage")


def test_atlas_click_on_a_point_selects_its_code(page):
    open_tab(page, "Embedding atlas")
    page.wait_for_selector("#atlas-plot .js-plotly-plot .scatterlayer .point")
    page.wait_for_selector("#atlas-details :text('code 0')")
    page.evaluate(  # remember which code Plotly reports for the click
        "() => document.querySelector('#atlas-plot .js-plotly-plot')"
        ".on('plotly_click', e => { window.clickedCode = String(e.points[0].customdata); })"
    )
    point = page.locator("#atlas-plot .scatterlayer .trace").nth(5).locator(".point").nth(3)
    box = point.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)  # Plotly picks the point under the pointer, then the click selects it
    page.mouse.click(x, y)
    clicked = page.wait_for_function("() => window.clickedCode").json_value()
    assert clicked != "0"
    page.wait_for_selector(f"#atlas-details :text('code {clicked}')")
    assert page.locator("#atlas-code input").input_value() == clicked
    has_image(page, "atlas-nearest")
    first = page.locator("#atlas-details").inner_text().split("left to right: ")[1].split(",")[0].strip()
    page.locator("#atlas-nearest img").click(position={"x": 20, "y": 20})  # the first of the nearest codes
    page.wait_for_selector(f"#atlas-details :text('code {first}')")
    no_error_toast(page)
    shot(page, "3-atlas")


def test_per_code_page_click_a_tile_and_decode_in_context(page):
    open_tab(page, "Per-code reconstructions")
    has_image(page, "code-sheet")
    page.locator("#code-sheet img").click(position={"x": 45, "y": 25})  # second tile of the first row
    page.wait_for_function("() => document.querySelector('#context-code input').value === '1'")
    page.click("#context-button")
    has_image(page, "context-after")
    page.wait_for_selector("#context-summary :text('cells changed')")
    no_error_toast(page)
    shot(page, "4-codes")


def test_sampling_page_draws_from_three_priors_and_steps(page):
    open_tab(page, "Sampling")
    page.click("#sample-button")
    for prior in ("uniform", "unigram", "learned"):
        has_image(page, f"samples-{prior}")
    page.wait_for_selector("#sample-bits :text('held-out bits')")
    page.click("#steps-button")
    has_image(page, "step-image")
    no_error_toast(page)
    shot(page, "5-sampling")


def test_training_page_starts_a_run_that_appears_in_the_picker(page, app_server):
    open_tab(page, "Training")
    page.locator("#run-name").get_by_role("textbox").fill("browser-run")
    page.locator("#run-preset input").fill("digits-tiny")
    page.locator("#run-preset input").press("Enter")
    page.locator("#run-data input").fill("digits")
    page.locator("#run-data input").press("Enter")
    page.locator("#run-minutes input[type=number]").fill("0.1")
    page.locator("#run-minutes input[type=number]").press("Enter")
    page.locator("#run-k input").fill("32")
    page.locator("#run-d input").fill("8")
    page.locator("#run-prior input[type=number]").fill("0")
    page.locator("#run-prior input[type=number]").press("Enter")
    page.click("#start-run")
    page.wait_for_selector("#run-message :text('started')")
    page.wait_for_selector("#run-status :text('finished')", timeout=180_000)
    page.wait_for_selector("#run-progress progress")
    no_error_toast(page)
    shot(page, "6-training")
    assert (app_server.runs_dir / "browser-run" / "analysis.safetensors").exists()
    page.locator("#checkpoint-picker input").click()
    page.wait_for_selector("[role=option]:has-text('browser-run')")
    page.keyboard.press("Escape")


def test_nothing_was_fetched_from_outside(page):
    assert page.outside_requests == []
