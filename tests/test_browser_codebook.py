"""A real browser on the Embedding atlas and the Per-code reconstructions pages: what a class sees on a
projector without a click, what a click on a point, a nearest code or a tile does, and what a bad number does.

Each test opens a fresh 1440x1000 tab (tests/conftest.py `page`): its console stays free of warnings and
errors, and it fetches nothing from outside the app.
"""

from __future__ import annotations

import re

import pytest

from tests.app_server import SHIPPED
from tests.browser import (
    error_toast,
    has_image,
    labels_clear,
    no_error_badge,
    no_error_toast,
    open_page,
    open_tab,
    shot,
)
from vqvae.images import FRAME, MARK

MIN_PIXELS = 64  # every tile and patch on screen at least this wide
MNIST_TILE = 12  # the shipped checkpoint's tiles: 12 x 12 pixels, enlarged 6 times to 72


@pytest.fixture(scope="module")
def shipped(app_server):
    """The shipped checkpoint's explorer (the app runs in this process and shares its cache)."""
    import app
    from vqvae.app.explorer import open_explorer

    return open_explorer(app.ROOT / SHIPPED)


def src(page, selector: str) -> str:
    return page.locator(selector).get_attribute("src")


def shown_code(page) -> int:
    return int(re.search(r"code (\d+)", page.locator("#atlas-details h3").inner_text()).group(1))


def listed_nearest(page) -> list[int]:
    return [int(k) for k in page.locator("#atlas-details").inner_text().split("left to right: ")[1].split(", ")]


def on_screen_width(page, selector: str) -> float:
    return page.locator(selector).bounding_box()["width"]


def scale_on_screen(page, selector: str) -> float:
    """Screen pixels per pixel of the picture."""
    return page.evaluate(
        "(s) => { const i = document.querySelector(s); return i.getBoundingClientRect().width / i.naturalWidth; }",
        selector,
    )


def named_on_plot(page, code: int) -> None:
    """Wait until the atlas names `code` beside its point."""
    page.wait_for_function(
        "(name) => [...document.querySelectorAll('#atlas-plot .annotation-text')].some(a => a.textContent === name)",
        arg=f"code {code}",
    )


def plot_layout(page, elem_id: str, key: str):
    return page.evaluate(f"() => document.querySelector('#{elem_id} .js-plotly-plot').layout.{key}")


def click_picture(page, selector: str, x: float, y: float) -> None:
    """Click pixel (x, y) of the picture itself, wherever and however large it is shown."""
    scale = scale_on_screen(page, selector)
    page.locator(selector).click(position={"x": x * scale, "y": y * scale})


def framed(page, selector: str, x: int, y: int) -> None:
    """Wait until pixel (x, y) of the picture shown is the chosen tile's frame colour."""
    page.wait_for_function(
        """([s, x, y, mark]) => {
             const img = document.querySelector(s);
             if (!img || !img.complete || !img.naturalWidth) return false;
             const canvas = document.createElement("canvas");
             canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
             const context = canvas.getContext("2d");
             context.drawImage(img, 0, 0);
             const [r, g, b] = context.getImageData(x, y, 1, 1).data;
             return r === mark[0] && g === mark[1] && b === mark[2];
           }""",
        arg=[selector, x, y, list(MARK)],
    )


# --- the embedding atlas -----------------------------------------------------------------


def open_atlas(page) -> int:
    open_tab(page, "Embedding atlas")
    page.wait_for_selector("#atlas-plot .js-plotly-plot .scatterlayer .point")
    page.wait_for_selector("#atlas-details h3")
    has_image(page, "atlas-nearest")
    page.wait_for_selector("#atlas-exemplars img")
    return shown_code(page)


def test_the_atlas_opens_on_a_telling_code_with_its_details(page, shipped):
    code = open_atlas(page)
    assert code == shipped.telling_code() and code != shipped.analysis.background_code
    assert page.locator("#atlas-code input").input_value() == str(code)
    assert page.locator("#atlas-code input").get_attribute("max") == "511"  # K - 1, from the checkpoint
    page.wait_for_selector("#atlas-tile img")
    assert on_screen_width(page, "#atlas-tile img") >= MIN_PIXELS
    assert on_screen_width(page, "#atlas-exemplars img") >= 4 * MIN_PIXELS  # four patches to a row
    nearest = scale_on_screen(page, "#atlas-nearest img") * MNIST_TILE * 6
    assert nearest >= MIN_PIXELS
    named_on_plot(page, code)
    labels_clear(page)
    no_error_toast(page)
    no_error_badge(page)
    shot(page, "3-atlas")


def test_the_atlas_names_its_axes_and_keys_its_sizes_and_classes(page):
    open_atlas(page)
    assert page.locator("#atlas-plot .g-xtitle").text_content() == "UMAP 1"
    assert page.locator("#atlas-plot .g-ytitle").text_content() == "UMAP 2"
    page.wait_for_selector("#atlas-plot :text('UMAP axes have no units')")
    page.wait_for_selector("#atlas-plot :text('point size')")
    assert page.locator("#atlas-plot .textpoint:has-text('uses')").count() >= 2  # the size key's circles
    assert page.locator("#atlas-plot .legend .traces").count() == 10  # one entry a class
    points = plot_layout(page, "atlas-plot", "legend.title.text")
    assert points == "dominant class"
    styles = page.evaluate(
        "() => document.querySelector('#atlas-plot .js-plotly-plot').data"
        ".filter(t => t.customdata).map(t => t.marker.color + ' ' + t.marker.symbol)"
    )
    assert len(styles) == len(set(styles)) == 10  # colour and shape tell the classes apart
    page.get_by_label("PCA").check()
    page.wait_for_function("() => document.querySelector('#atlas-plot .g-xtitle')?.textContent === 'PCA 1'")
    no_error_toast(page)


def test_a_click_on_a_point_and_then_on_a_nearest_code_selects_each(page):
    first = open_atlas(page)
    page.evaluate(  # remember which code Plotly reports for the click
        "() => document.querySelector('#atlas-plot .js-plotly-plot')"
        ".on('plotly_click', e => { window.clickedCode = String(e.points[0].customdata); })"
    )
    point = page.locator("#atlas-plot .scatterlayer .trace").nth(5).locator(".point").nth(3)
    box = point.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)  # Plotly picks the point under the pointer, then the click selects it
    page.mouse.click(x, y)
    clicked = int(page.wait_for_function("() => window.clickedCode").json_value())
    assert clicked != first
    page.wait_for_selector(f"#atlas-details h3:text-is('code {clicked}')")
    assert page.locator("#atlas-code input").input_value() == str(clicked)
    named_on_plot(page, clicked)
    # the nearest codes: two rows of four 72-pixel tiles, each with its number under it; the second one
    second = listed_nearest(page)[1]
    cell = 72 + 2 * FRAME + 6  # tile, frame and gap across (vqvae.images.labelled_tiles)
    click_picture(page, "#atlas-nearest img", cell + 36, 36)
    page.wait_for_selector(f"#atlas-details h3:text-is('code {second}')")
    assert page.locator("#atlas-code input").input_value() == str(second)
    labels_clear(page)
    no_error_toast(page)
    shot(page, "3-atlas-clicked")


def test_a_code_that_does_not_exist_is_refused_and_the_atlas_keeps_its_result(page):
    code = open_atlas(page)
    tile = page.locator("#atlas-tile img").get_attribute("src")
    box = page.locator("#atlas-code input")
    box.fill("9999")
    error_toast(page, "9999")
    page.wait_for_selector(".toast-body:has-text('511')")  # the message names the codes there are
    assert shown_code(page) == code and page.locator("#atlas-tile img").get_attribute("src") == tile
    named_on_plot(page, code)
    no_error_badge(page)
    shot(page, "3-atlas-refused")


def test_a_checkpoint_without_umap_says_why_and_how_to_make_it(page, bare_checkpoint):
    page.locator("#checkpoint-picker input").click()  # as a person picks it: open the list, click the run
    page.locator(f"[role=option]:has-text({bare_checkpoint!r})").first.click()
    open_tab(page, "Embedding atlas")
    page.wait_for_selector(f"#atlas-why :text('python -m vqvae analyse {bare_checkpoint}')")
    page.wait_for_selector("#atlas-why :text('UMAP was not computed for this checkpoint')")
    page.wait_for_selector("#atlas-projection label:has-text('PCA') input:checked")
    assert page.locator("#atlas-projection label:has-text('UMAP')").count() == 0
    page.wait_for_function("() => document.querySelector('#atlas-plot .g-xtitle')?.textContent === 'PCA 1'")
    page.wait_for_selector("#atlas-code :text('0 to 31')")  # this codebook's K = 32
    labels_clear(page)
    no_error_toast(page)
    shot(page, "3-atlas-no-umap")
    open_tab(page, "Per-code reconstructions")  # the other page follows the checkpoint too: 32 codes, one page
    page.wait_for_selector("#context-code :text('0 to 31')")
    page.wait_for_selector("#code-chosen :text('page 1 of 1')")
    assert page.locator("#code-pages label").all_inner_texts() == ["0–31"]
    page.wait_for_selector("#context-summary :text('of 16 cells changed')")  # a 4 x 4 grid
    labels_clear(page)
    no_error_toast(page)
    shot(page, "4-codes-small-codebook")


# --- per-code reconstructions ---------------------------------------------------------------


def open_codes(page) -> None:
    open_tab(page, "Per-code reconstructions")
    has_image(page, "code-sheet")
    page.wait_for_selector("#context-after img")
    page.wait_for_selector("#context-summary :text('cells changed')")
    page.wait_for_selector("#context-grid .js-plotly-plot")


def changed_count(page) -> int:
    return int(page.locator("#context-summary").inner_text().split(" of ")[0])


def outlined(page) -> list[tuple[int, int]]:
    shapes = plot_layout(page, "context-grid", "shapes") or []
    return sorted((round(s["y0"] + 0.5), round(s["x0"] + 0.5)) for s in shapes)


def test_the_per_code_page_shows_its_sheet_and_an_edit_on_open(page, shipped):
    open_codes(page)
    code = shipped.telling_code()
    page.wait_for_selector(f"#code-chosen :text('code {code} chosen')")
    assert page.locator("#context-code input").input_value() == str(code)
    assert page.locator("#context-code input").get_attribute("max") == "511"
    assert scale_on_screen(page, "#code-sheet img") * MNIST_TILE * 6 >= MIN_PIXELS
    has_image(page, "context-before")
    page.wait_for_selector(f"#context-after :text('with code {code} put in')")
    assert changed_count(page) > 0 and len(outlined(page)) == changed_count(page)  # every changed cell marked
    # only the fields of the chosen way of putting the code in
    assert page.locator("#context-old").is_visible() and not page.locator("#context-row").is_visible()
    labels_clear(page)
    no_error_toast(page)
    no_error_badge(page)
    shot(page, "4-codes")


def test_a_click_on_a_tile_frames_it_and_puts_its_code_in(page):
    open_codes(page)
    cell_width, cell_height = 72 + 2 * FRAME + 6, 72 + 2 * FRAME + 26 + 6  # vqvae.images.labelled_tiles
    first = int(page.locator("#code-pages label:has(input:checked)").inner_text().split("–")[0])
    row, col = 2, 5
    expected = first + row * 8 + col  # by code number, 8 to a row
    click_picture(page, "#code-sheet img", col * cell_width + 40, row * cell_height + 40)
    page.wait_for_function(f"() => document.querySelector('#context-code input').value === '{expected}'")
    page.wait_for_selector(f"#code-chosen :text('code {expected} chosen')")
    framed(page, "#code-sheet img", col * cell_width + 1, row * cell_height + 1)
    page.wait_for_selector(f"#context-after :text('with code {expected} put in')")
    assert len(outlined(page)) == changed_count(page)
    labels_clear(page)
    no_error_toast(page)
    shot(page, "4-codes-clicked")


def test_one_cell_mode_shows_its_own_fields_and_the_result_follows_them(page):
    open_codes(page)
    page.get_by_label("one cell").check()
    page.wait_for_selector("#context-row", state="visible")
    assert not page.locator("#context-old").is_visible()
    page.wait_for_function("() => document.querySelector('#context-summary').innerText.startsWith('1 of 49')")
    assert outlined(page) == [(3, 3)]
    page.locator("#context-row input").fill("1")
    page.wait_for_function(
        "() => (document.querySelector('#context-grid .js-plotly-plot').layout.shapes || [])"
        ".some(s => Math.round(s.y0 + 0.5) === 1 && Math.round(s.x0 + 0.5) === 3)"
    )
    labels_clear(page)
    no_error_toast(page)
    shot(page, "4-codes-one-cell")


def test_pages_of_the_sheet_by_usage(page):
    open_codes(page)
    page.get_by_label("by usage").check()
    page.wait_for_selector("#code-pages :text('page, busiest codes first')")
    before = src(page, "#code-sheet img")
    page.locator("#code-pages label:has-text('449–512')").click()
    page.wait_for_selector("#code-chosen :text('page 8 of 8')")
    page.wait_for_function(f"() => document.querySelector('#code-sheet img').src !== {before!r}")
    no_error_toast(page)


def test_a_code_that_does_not_exist_is_refused_and_the_page_keeps_its_result(page):
    open_codes(page)
    sheet, after = src(page, "#code-sheet img"), page.locator("#context-after img").get_attribute("src")
    page.locator("#context-code input").fill("9999")
    error_toast(page, "9999")
    assert src(page, "#code-sheet img") == sheet
    assert page.locator("#context-after img").get_attribute("src") == after
    no_error_badge(page)
    shot(page, "4-codes-refused")


def test_both_pages_keep_their_pictures_large_in_the_presenter_view(browser, app_server):
    presenter = open_page(browser, app_server.url, "?presenter=1")
    try:
        presenter.wait_for_function("() => document.body.classList.contains('presenter')")
        open_atlas(presenter)
        assert scale_on_screen(presenter, "#atlas-nearest img") * MNIST_TILE * 6 >= MIN_PIXELS
        shot(presenter, "3-atlas-presenter")
        open_codes(presenter)
        assert scale_on_screen(presenter, "#code-sheet img") * MNIST_TILE * 6 >= MIN_PIXELS
        no_error_toast(presenter)
        shot(presenter, "4-codes-presenter")
        assert presenter.console == [] and presenter.outside == []
    finally:
        presenter.context.close()
