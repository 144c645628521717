"""The Sampling page in a real browser, as a class sees it on a projector: samples from the three priors
without a click, following the settings; the learned prior's sampler playing step by step."""

from __future__ import annotations

import pytest

from tests.app_server import SHIPPED
from tests.browser import (
    error_toast,
    has_image,
    labels_clear,
    no_error_badge,
    no_error_toast,
    open_tab,
    shot,
)

pytest.importorskip("playwright.sync_api")

PRIORS = ("uniform", "unigram", "learned")
PLAYER = "#step-player .sampler"
EMPTY_GREY = "rgb(217, 217, 217)"
MIN_PIXELS = 64  # a sample or a code's tile, on screen at 1440 px: readable from the back of a room


def open_sampling(page) -> None:
    """The Sampling tab, once its samples and the player have arrived by themselves."""
    open_tab(page, "Sampling")
    for prior in PRIORS:
        has_image(page, f"samples-{prior}")
    page.wait_for_selector(f"{PLAYER}[data-step='0'] [data-part=frame][src^='data:image/png']")


def src(page, selector: str) -> str:
    return page.locator(selector).first.get_attribute("src")


def step(page) -> int:
    return int(page.locator(PLAYER).get_attribute("data-step"))


def wait_for_new(page, selector: str, before: str) -> None:
    page.wait_for_function(
        "([selector, before]) => { const img = document.querySelector(selector); return img && img.src !== before; }",
        arg=[selector, before],
    )


def player_title(page, text: str) -> None:
    page.wait_for_selector(f"{PLAYER} [data-part=title]:has-text({text!r})")


def choose(page, elem_id: str, option: str) -> None:
    """Pick an option of a Gradio dropdown as a person would: open it, click the option."""
    page.locator(f"#{elem_id} input").click()
    page.locator(f"[role=option]:has-text({option!r})").first.click()


def test_the_page_shows_samples_and_a_ready_sampler_without_a_click(page):
    open_sampling(page)
    table = page.locator("#sample-bits").inner_text()
    assert "held-out bits / image, under this prior" in table
    assert "its samples: bits / image, under the learned prior" in table
    assert "441" in table  # the uniform prior's cost of a 7x7 grid of 512 codes: 49 x 9 bits, as the text says
    for prior in PRIORS:  # 16 samples, 4 to a row
        width = page.locator(f"#samples-{prior} img").bounding_box()["width"]
        assert width / 4 >= MIN_PIXELS, f"{prior}: each sample is {width / 4:.0f} px wide"
    player_title(page, "any class")
    assert page.locator(f"{PLAYER} [data-part=count]").inner_text() == "0 / 49"
    assert page.locator(f"{PLAYER} [data-part=frame]").bounding_box()["width"] >= 200
    no_error_toast(page)
    no_error_badge(page)
    labels_clear(page)
    shot(page, "5-sampling")


def test_changing_a_setting_redraws_the_samples_and_the_sampler(page):
    open_sampling(page)
    learned, frame = src(page, "#samples-learned img"), src(page, f"{PLAYER} [data-part=frame]")
    page.locator("#sample-seed input").fill("5")
    page.locator("#sample-seed input").press("Enter")
    wait_for_new(page, "#samples-learned img", learned)
    player_title(page, "seed 5")
    assert src(page, f"{PLAYER} [data-part=frame]") == frame  # both at step 0: nothing drawn yet
    learned = src(page, "#samples-learned img")
    choose(page, "sample-class", "3")
    wait_for_new(page, "#samples-learned img", learned)
    player_title(page, "class 3")
    learned = src(page, "#samples-learned img")
    slider_box = page.locator("#temperature input[type=number]")
    slider_box.fill("0.5")
    slider_box.blur()  # a slider redraws as it is let go
    wait_for_new(page, "#samples-learned img", learned)
    player_title(page, "temperature 0.5")
    learned = src(page, "#samples-learned img")
    count_box = page.locator("#sample-count input[type=number]")
    count_box.fill("64")
    count_box.blur()
    wait_for_new(page, "#samples-learned img", learned)
    width = page.locator("#samples-learned img").bounding_box()["width"]
    assert width / 5 >= MIN_PIXELS, f"64 samples, 5 to a row: each {width / 5:.0f} px wide"
    no_error_toast(page)
    labels_clear(page)


def test_the_sampler_plays_pauses_and_marks_each_drawn_code(page):
    open_sampling(page)
    page.select_option(f"{PLAYER} [data-part=speed]", "2")
    page.click(f"{PLAYER} [data-part=play]")
    page.wait_for_function(f"() => Number(document.querySelector({PLAYER!r}).dataset.step) >= 20")
    page.click(f"{PLAYER} [data-part=play]")  # now the pause button
    assert page.locator(PLAYER).get_attribute("data-playing") == "false"
    paused = step(page)
    page.wait_for_timeout(1000)  # six steps' time at this speed: a paused player stays put
    assert step(page) == paused and 20 <= paused < 49
    assert page.locator(f"{PLAYER} [data-part=step]").input_value() == str(paused)

    cells = page.locator(f"{PLAYER} [data-part=grid] > div")
    assert cells.count() == 49
    just = page.locator(f"{PLAYER} [data-part=grid] > div.just")
    assert just.count() == 1 and just.get_attribute("data-cell") == f"{(paused - 1) // 7},{(paused - 1) % 7}"
    drawn = just.inner_text()
    assert drawn.isdigit()
    empty = page.locator(f"{PLAYER} [data-part=grid] > div.empty")
    assert empty.count() == 49 - paused
    for i in (0, empty.count() - 1):  # not drawn yet: grey, no number, on no code's colour
        assert empty.nth(i).inner_text() == ""
        assert empty.nth(i).evaluate("el => getComputedStyle(el).backgroundColor") == EMPTY_GREY
    filled = page.locator(f"{PLAYER} [data-part=grid] > div:not(.empty)")
    assert filled.count() == paused
    assert all(filled.nth(i).inner_text().isdigit() for i in range(paused))
    assert filled.nth(0).evaluate("el => getComputedStyle(el).backgroundColor") != EMPTY_GREY

    tiles = page.locator(f"{PLAYER} [data-part=candidates] .candidate")
    assert tiles.count() in (5, 6)  # the five likeliest, and the drawn one when it is not among them
    for i in range(tiles.count()):
        box = tiles.nth(i).locator("img").bounding_box()
        assert box["width"] >= MIN_PIXELS and box["height"] >= MIN_PIXELS
        assert tiles.nth(i).locator("img").get_attribute("src").startswith("data:image/png")
        assert "code " in tiles.nth(i).inner_text() and "p = " in tiles.nth(i).inner_text()
    chosen = page.locator(f"{PLAYER} [data-part=candidates] .candidate.chosen")
    assert chosen.count() == 1 and chosen.get_attribute("data-code") == drawn and "drawn" in chosen.inner_text()
    labels_clear(page)
    shot(page, "5-sampling-steps")

    page.select_option(f"{PLAYER} [data-part=speed]", "4")
    page.click(f"{PLAYER} [data-part=play]")
    page.wait_for_selector(f"{PLAYER}[data-step='49'][data-playing='false']")
    assert page.locator(f"{PLAYER} [data-part=grid] > div.empty").count() == 0
    assert "Play again" in page.locator(f"{PLAYER} [data-part=play]").inner_text()
    page.locator(f"{PLAYER} [data-part=step]").fill("10")  # scrubbing back shows that step
    page.wait_for_selector(f"{PLAYER}[data-step='10']")
    assert page.locator(f"{PLAYER} [data-part=grid] > div.empty").count() == 39
    no_error_toast(page)


def test_the_draw_button_plays_the_sampler_from_its_start(page):
    open_sampling(page)
    page.click("#steps-button")
    page.wait_for_function(f"() => Number(document.querySelector({PLAYER!r}).dataset.step) >= 2")
    assert page.locator(PLAYER).get_attribute("data-playing") == "true"
    no_error_toast(page)


def test_a_checkpoint_without_a_learned_prior_says_so_and_disables_the_sampler(page, bare_checkpoint):
    open_sampling(page)
    page.click("#refresh-checkpoints")  # the run was trained after the page opened
    choose(page, "checkpoint-picker", bare_checkpoint)
    command = f"python -m vqvae train-prior {bare_checkpoint}"
    page.wait_for_selector(f"#step-player [data-part=note]:has-text({command!r})")
    assert "no learned prior in this checkpoint" in page.locator("#step-player [data-part=note]").inner_text()
    assert page.locator("#steps-button").is_disabled()
    assert page.locator(f"{PLAYER} [data-part=body]").is_hidden()
    learned = page.locator("#samples-learned")
    assert "no learned prior in this checkpoint" in learned.inner_text() and command in learned.inner_text()
    has_image(page, "samples-unigram")
    assert "under the unigram prior" in page.locator("#sample-bits").inner_text()
    no_error_toast(page)
    no_error_badge(page)
    labels_clear(page)
    shot(page, "5-sampling-no-prior")

    choose(page, "checkpoint-picker", SHIPPED)
    page.wait_for_selector(f"{PLAYER} [data-part=body]:not([hidden])")
    has_image(page, "samples-learned")
    assert page.locator("#steps-button").is_enabled()
    assert page.locator("#step-player [data-part=note]").is_hidden()


@pytest.mark.parametrize(
    "where, value, message",
    [
        ("#sample-seed input", "1" + "0" * 30, "the seed is too large"),
        ("#sample-class input", "eleven", "class 'eleven' does not exist"),
    ],
)
def test_a_bad_value_is_named_and_the_last_pictures_stay(page, where, value, message):
    open_sampling(page)
    learned, frame = src(page, "#samples-learned img"), src(page, f"{PLAYER} [data-part=frame]")
    page.locator(where).fill(value)
    page.locator(where).press("Enter")
    error_toast(page, message)
    no_error_badge(page)
    assert src(page, "#samples-learned img") == learned
    assert src(page, f"{PLAYER} [data-part=frame]") == frame
    for shown in ("#samples-learned img", f"{PLAYER} [data-part=frame]"):
        assert page.locator(shown).is_visible()
    shot(page, "5-sampling-refused")
