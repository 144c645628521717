"""A real browser on a VQ-VAE-2 (a tiny two-level checkpoint, tests/conftest.py `levels_checkpoint`): the level
choice appears beside the picker for a hierarchy and not for one grid; the pages that show one grid of codes
follow it (its grid, its codebook, its usage); an edited cell of either level decodes with the other kept;
and the learned prior draws the top grid, then the bottom one, step by step."""

from __future__ import annotations

import pytest

from tests.browser import choose, has_image, labels_clear, no_error_badge, no_error_toast, open_tab, shot

pytest.importorskip("playwright.sync_api")

PLAYER = "#step-player .sampler"


def pick_level(page, level: str) -> None:
    page.locator("#level").get_by_label(level, exact=True).check()


def open_levels(page, checkpoint: str) -> None:
    has_image(page, "reconstruction")
    choose(page, "checkpoint-picker", checkpoint)
    page.locator("#level").get_by_label("top", exact=True).wait_for()
    page.wait_for_selector("#code-grid :text('code numbers, top level')")


def test_the_level_choice_follows_the_checkpoint_and_the_reconstruct_grid_follows_the_level(page, levels_checkpoint):
    assert not page.locator("#level").is_visible()  # the default checkpoint has one grid
    open_levels(page, levels_checkpoint)
    assert page.locator("#level").get_by_label("top", exact=True).is_checked()
    assert page.locator("#edit-row input").get_attribute("max") == "1"  # the 2x2 top grid
    pick_level(page, "bottom")
    page.wait_for_selector("#code-grid :text('code numbers, bottom level')")
    page.wait_for_function("document.querySelector('#edit-row input').getAttribute('max') === '3'")
    before = page.locator("#reconstruction img").get_attribute("src")
    for elem_id, value in (("edit-row", "1"), ("edit-col", "2"), ("edit-code", "7")):
        page.locator(f"#{elem_id} input").fill(value)
    page.locator("#edit-button").click()
    page.wait_for_function(
        "(before) => document.querySelector('#reconstruction img')?.getAttribute('src') !== before", arg=before
    )
    no_error_toast(page)
    labels_clear(page)
    shot(page, "levels-reconstruct")
    choose(page, "checkpoint-picker", "checkpoints/mnist")
    page.locator("#level").wait_for(state="hidden")
    page.wait_for_selector("#code-grid :text('code numbers')")
    no_error_badge(page)


def test_usage_and_the_atlas_show_the_chosen_levels_codebook(page, levels_checkpoint):
    open_levels(page, levels_checkpoint)
    open_tab(page, "Codebook usage")
    page.wait_for_selector('#usage-stats :text("The top level\'s")')
    pick_level(page, "bottom")
    page.wait_for_selector('#usage-stats :text("The bottom level\'s")')
    open_tab(page, "Embedding atlas")
    page.wait_for_selector("#atlas-details :text('of the bottom level')")
    assert page.locator("#level").is_visible()
    no_error_toast(page)
    no_error_badge(page)
    shot(page, "levels-atlas")


def test_the_learned_prior_draws_the_top_grid_then_the_bottom_one(page, levels_checkpoint):
    open_levels(page, levels_checkpoint)
    open_tab(page, "Sampling")
    page.locator("#level").wait_for(state="hidden")  # the sampler draws every level: the choice would say nothing
    page.wait_for_selector(f"{PLAYER} [data-part=body]:not([hidden])")
    page.wait_for_selector("#tab-sampling :text('a sample is drawn top first')")
    page.wait_for_selector("#tab-sampling :text('The top grid is drawn first')")
    assert page.locator(f"{PLAYER} [data-part=count]").inner_text() == "0 / 20"  # 4 top codes, then 16 bottom ones
    assert page.locator(f"{PLAYER} [data-part=level]").inner_text() == ", top level"
    assert page.locator(f"{PLAYER} .sampler-grid div").count() == 4
    page.locator(f"{PLAYER} [data-part=step]").fill("5")
    page.wait_for_function(f"document.querySelector('{PLAYER} [data-part=count]').textContent === '5 / 20'")
    assert page.locator(f"{PLAYER} [data-part=level]").inner_text() == ", bottom level"
    assert page.locator(f"{PLAYER} .sampler-grid div").count() == 16
    assert page.locator(f"{PLAYER} .sampler-grid div:not(.empty)").count() == 1
    assert "bottom cell (0, 0)" in page.locator(f"{PLAYER} [data-part=question]").inner_text()
    no_error_toast(page)
    shot(page, "levels-sampling")


def test_the_levels_page_shows_what_each_level_carries_and_says_when_there_is_one_grid(page, levels_checkpoint):
    open_levels(page, levels_checkpoint)
    open_tab(page, "Levels")
    for elem_id in (
        "levels-image",
        "levels-both",
        "levels-top-alone",
        "levels-donor-image",
        "levels-swapped",
        "levels-resampled",
    ):
        page.wait_for_selector(f"#{elem_id} img")
    table = page.locator("#levels-table").inner_text()
    assert "top\t2 x 2" in table and "bottom\t4 x 4" in table
    assert "top alone" in page.locator("#levels-top-alone").inner_text()
    assert "held-out image 1" in page.locator("#levels-donor-image").inner_text()  # the image whose top is borrowed
    assert not page.locator("#levels-one-grid").is_visible()
    no_error_toast(page)
    labels_clear(page)
    shot(page, "levels-page")
    choose(page, "checkpoint-picker", "checkpoints/mnist")
    page.locator("#levels-one-grid").wait_for()
    assert not page.locator("#levels-body").is_visible()
    no_error_badge(page)
