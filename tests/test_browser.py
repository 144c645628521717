"""A real browser (Debian's chromium, driven by playwright) on the launched app: the Reconstruct,
Codebook usage and Training pages, the header, and what every page owes a person looking at it.

Each test opens a fresh tab (tests/conftest.py `page`), whose console must stay free of warnings
and errors and which may fetch nothing from outside the app.
"""

from __future__ import annotations

import time

from pages.common import Shared
from tests.app_server import SHIPPED
from tests.browser import (
    choose,
    error_toast,
    has_image,
    labels_clear,
    no_error_badge,
    no_error_toast,
    nothing_scrolls,
    open_page,
    open_tab,
    shot,
)

TABS = ("Reconstruct", "Codebook usage", "Embedding atlas", "Per-code reconstructions", "Sampling", "Training")


def reconstruction_src(page) -> str:
    return page.locator("#reconstruction img").get_attribute("src")


def new_reconstruction(page, before: str) -> None:
    """Wait until the reconstruction shows another picture than `before`."""
    changed = "src => document.querySelector('#reconstruction img').getAttribute('src') !== src"
    page.wait_for_function(changed, arg=before)


def test_reconstruct_shows_a_reconstruction_on_open(page):
    has_image(page, "reconstruction")
    page.wait_for_selector("#source :text('held-out image 0')")
    page.wait_for_selector("#psnr :text('PSNR')")
    page.wait_for_selector("#code-grid .js-plotly-plot")
    has_image(page, "input-image")
    labels_clear(page)
    no_error_toast(page)
    shot(page, "1-reconstruct-open")


def test_the_reconstruction_follows_the_slider_and_its_number_box(page):
    has_image(page, "reconstruction")
    page.wait_for_selector("#source :text('held-out image 0')")
    first = reconstruction_src(page)
    box = page.locator("#heldout-index input[type=number]")
    box.fill("411")
    box.press("Enter")
    page.wait_for_selector("#source :text('held-out image 411')")
    new_reconstruction(page, first)
    slider = page.locator("#heldout-index input[type=range]")
    slider.focus()
    slider.press("ArrowRight")  # the slider itself, moved by one
    page.wait_for_selector("#source :text('held-out image 412')")
    no_error_toast(page)


def test_a_click_picks_a_cell_and_a_new_code_is_decoded(page):
    has_image(page, "reconstruction")
    page.wait_for_selector("#psnr :text('PSNR')")
    before = reconstruction_src(page)
    page.locator("#reconstruction img").click(position={"x": 100, "y": 100})  # picks a cell
    page.wait_for_function("() => document.querySelector('#edit-row input').value !== '0'")
    page.locator("#edit-code input").fill("5")
    page.click("#edit-button")
    new_reconstruction(page, before)
    no_error_toast(page)
    shot(page, "1-reconstruct-edited")


def test_a_bad_code_is_refused_and_the_last_result_stays(page):
    has_image(page, "reconstruction")
    page.wait_for_selector("#code-grid .js-plotly-plot")
    page.wait_for_selector("#edit-code :text('0 to 511')")  # the box knows K
    before = reconstruction_src(page)
    grid = page.locator("#code-grid").inner_text()
    page.locator("#edit-code input").fill("9999")
    page.click("#edit-button")
    error_toast(page, "9999")
    page.wait_for_timeout(500)
    assert page.locator("#reconstruction img").is_visible() and reconstruction_src(page) == before
    assert page.locator("#code-grid").inner_text() == grid
    no_error_badge(page)
    shot(page, "1-reconstruct-refused")


def test_a_drawing_is_fitted_and_reconstructed(page):
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
    labels_clear(page)
    no_error_toast(page)
    shot(page, "1-draw")


def test_usage_page_shows_its_figures_with_axis_titles(page):
    open_tab(page, "Codebook usage")
    page.wait_for_selector("#usage-stats :text('perplexity')")
    for plot in ("usage-bars", "usage-classes", "usage-training"):
        page.wait_for_selector(f"#{plot} .js-plotly-plot .xtitle")
        assert page.locator(f"#{plot} .ytitle").count() == 1, plot
    assert page.locator("#usage-classes .ytitle").text_content() == "class"
    ticks = page.locator("#usage-classes .xaxislayer-above .xtick text")
    ticks = ticks.evaluate_all("texts => texts.map(t => t.textContent)")
    assert len(ticks) >= 30 and all(t.isdigit() for t in ticks)  # code numbers, not ranks
    labels_clear(page)
    no_error_toast(page)
    shot(page, "2-usage")


def test_every_page_shows_a_result_on_open_with_clear_labels(page):
    """No page waits for a click to show something, and no label covers a picture or is cut off."""
    expected = {
        "Reconstruct": "#reconstruction img",
        "Codebook usage": "#usage-bars .js-plotly-plot",
        "Embedding atlas": "#atlas-plot .js-plotly-plot",
        "Per-code reconstructions": "#code-sheet img",
        "Sampling": "#samples-learned img",
        "Training": "#run-status :text('No run yet')",
    }
    for tab in TABS:
        open_tab(page, tab)
        page.wait_for_selector(expected[tab], state="visible")
        page.wait_for_timeout(300)
        labels_clear(page)
        nothing_scrolls(page)
    no_error_toast(page)


def test_a_checkpoint_picked_before_the_first_answer_is_the_one_every_page_shows(browser, app_server, monkeypatch):
    """A visitor who picks another checkpoint at once, while the page is still answering for the first
    one (slow here: the app runs in this process), gets the pages of the one the picker names."""
    opened = Shared.explorer

    def slowly(shared, choice, level=None):
        time.sleep(2.0 if choice == SHIPPED else 0)
        return opened(shared, choice, level)

    monkeypatch.setattr(Shared, "explorer", slowly)
    page = open_page(browser, app_server.url)
    choose(page, "checkpoint-picker", "emoji")
    # every page's answers for the first checkpoint come 2 s late each, two at a time (the app's two model
    # slots), and they are queued before the pick's: on a loaded machine those alone can take 30 s
    page.wait_for_selector("#source :text('class Smileys & Emotion')", timeout=120_000)
    page.get_by_role("tab", name="Held-out image", exact=True).wait_for()
    open_tab(page, "Codebook usage")
    page.wait_for_selector(f"#usage-stats :text('{363 * 64:,} latents counted')")  # 363 emoji, an 8x8 grid each
    open_tab(page, "Sampling")
    page.wait_for_selector("#tab-sampling :text('look like real images')")
    assert page.locator("#checkpoint-picker input").input_value() == "checkpoints/emoji"
    no_error_toast(page)
    page.context.close()
    assert page.console == [] and page.outside == []


def test_the_presenter_view_is_larger_and_kept_in_the_address(page, browser, app_server):
    has_image(page, "reconstruction")
    normal = page.locator("#reconstruction img").bounding_box()["width"]
    page.click("#presenter-toggle")
    page.wait_for_function("() => document.body.classList.contains('presenter')")
    assert "presenter" in page.url
    page.wait_for_timeout(300)
    assert page.locator("#reconstruction img").bounding_box()["width"] > 1.2 * normal
    shot(page, "0-presenter")
    page.click("#presenter-toggle")
    page.wait_for_function("() => !document.body.classList.contains('presenter')")
    assert "presenter" not in page.url
    # opened from an address that asks for it, the view is on and a click still finds its cell
    other = open_page(browser, app_server.url, "?presenter=1")
    try:
        other.wait_for_function("() => document.body.classList.contains('presenter')")
        has_image(other, "reconstruction")
        other.wait_for_selector("#psnr :text('PSNR')")
        image = other.locator("#reconstruction img").bounding_box()
        other.mouse.click(image["x"] + image["width"] * 0.9, image["y"] + image["height"] * 0.1)
        other.wait_for_function(
            "() => document.querySelector('#edit-row input').value === '0'"
            " && document.querySelector('#edit-col input').value === '6'"
        )
        labels_clear(other)
        assert other.console == [], other.console
    finally:
        other.context.close()


def test_training_page_before_any_run_says_so(page):
    open_tab(page, "Training")
    page.wait_for_selector("#run-status :text('No run yet')")
    assert page.locator("#run-progress progress").count() == 0  # no empty bar
    page.wait_for_selector("#run-prior-chart :text('once a run trains it')")
    page.wait_for_selector("#run-loss :text('no run yet')")
    labels_clear(page)


def fill_run(page, name: str, minutes: str) -> None:
    page.locator("#run-name").get_by_role("textbox").fill(name)
    page.locator("#run-preset input").fill("digits-tiny")
    page.locator("#run-preset input").press("Enter")
    page.locator("#run-data input").fill("digits")
    page.locator("#run-data input").press("Enter")
    page.locator("#run-minutes input[type=number]").fill(minutes)
    page.locator("#run-minutes input[type=number]").press("Enter")
    page.locator("#run-k input").fill("32")
    page.locator("#run-d input").fill("8")
    page.locator("#run-prior input[type=number]").fill("0")
    page.locator("#run-prior input[type=number]").press("Enter")


def test_a_run_trains_and_appears_in_the_picker_of_a_page_opened_before(page, browser, app_server):
    open_tab(page, "Training")
    fill_run(page, "browser-run", "0.1")
    page.click("#start-run")
    page.wait_for_selector("#run-message :text('started')")
    earlier = open_page(browser, app_server.url)  # opened while the run trains
    try:
        page.wait_for_selector("#run-status :text('finished')", timeout=180_000)
        assert page.locator("#run-progress progress.done").get_attribute("value") == "100.0"
        page.wait_for_selector("#run-prior-chart :text('trains no prior')")
        for chart in ("run-loss", "run-codebook"):
            assert page.locator(f"#{chart} .ytitle").count() == 1, chart
        no_error_toast(page)
        labels_clear(page)
        shot(page, "6-training")
        assert (app_server.runs_dir / "browser-run" / "analysis.safetensors").exists()
        earlier.locator("#checkpoint-picker input").click()  # the earlier page's picker offers it now
        earlier.wait_for_selector("[role=option]:has-text('browser-run')")
        earlier.keyboard.press("Escape")
        assert earlier.console == [], earlier.console
    finally:
        earlier.context.close()


def test_a_stopped_run_says_where_it_stopped(page, app_server):
    open_tab(page, "Training")
    fill_run(page, "halted-run", "2")
    page.click("#start-run")
    page.wait_for_selector("#run-status :text('vqvae phase, step')", timeout=60_000)
    page.wait_for_function(  # the run's first steps: on a busy machine they may take a while
        "() => { const p = document.querySelector('#run-progress progress'); return p && +p.value > 0; }",
        timeout=90_000,
    )
    page.click("#stop-run")
    page.wait_for_selector("#run-message :text('stopping')")
    page.wait_for_selector("#run-status :text('halted-run: stopped')", timeout=120_000)
    bar = page.locator("#run-progress progress")
    assert "stopped" in bar.get_attribute("class") and float(bar.get_attribute("value")) < 100
    page.wait_for_selector("#run-progress :text('stopped at')")
    page.wait_for_function("() => !document.querySelector('#run-message').innerText.includes('stopping')")
    page.wait_for_selector("#run-prior-chart :text('trains no prior')")
    no_error_toast(page)
    shot(page, "6-training-stopped")
