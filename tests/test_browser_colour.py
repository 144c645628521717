"""A real browser on every page with a colour checkpoint picked (tests/colour_checkpoint.py: 16x16 patches of
two photographs, classes "Chinese Temple & Sky" and "Dahlia Flower Petals"): each page opens with a result,
its pictures are shown in their own colours (read back from the page, pixel by pixel), the class names
appear whole wherever classes are named, and the words say "image", not "digit".

Each test opens a fresh 1440x1000 tab (tests/conftest.py `page`): its console stays free of warnings and
errors, and it fetches nothing from outside the app.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pages import atlas
from pages.common import display_scale, show_many
from tests.browser import choose, has_image, labels_clear, no_error_badge, no_error_toast, open_tab, shot
from tests.colour_checkpoint import CLASS_NAMES, PATCH
from vqvae.app.explorer import open_explorer

pytest.importorskip("playwright.sync_api")

PLAYER = "#step-player .sampler"

# A picture on the page as the browser decoded it: (H, W, 4) RGBA values, read back through a canvas.
_PIXELS = """
async (selector) => {
  const img = document.querySelector(selector);
  await img.decode();
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const context = canvas.getContext("2d");
  context.drawImage(img, 0, 0);
  return {width: canvas.width, height: canvas.height,
          data: Array.from(context.getImageData(0, 0, canvas.width, canvas.height).data)};
}
"""


@pytest.fixture(scope="module")
def colour(colour_checkpoint, app_server):
    """The colour checkpoint's explorer (the app runs in this process and shares its cache)."""
    return open_explorer(app_server.runs_dir / "colour")


def pixels(page, selector: str) -> np.ndarray:
    """The picture `selector` shows, as (H, W, 3) uint8 RGB."""
    shown = page.evaluate(_PIXELS, selector)
    return np.array(shown["data"], dtype=np.uint8).reshape(shown["height"], shown["width"], 4)[..., :3]


def spread(rgb: np.ndarray) -> float:
    """How far a picture's channels lie from their mean, on average (0: grey)."""
    values = rgb.reshape(-1, 3).astype(int)
    return float(np.abs(values - values.mean(1, keepdims=True)).mean())


def in_colour(rgb: np.ndarray) -> bool:
    """The channels of a picture differ by more than rounding: it is not grey."""
    return spread(rgb) > 4


def open_colour(page, checkpoint: str) -> None:
    """The colour checkpoint picked on the Reconstruct page, once its held-out image 0 is shown."""
    has_image(page, "reconstruction")
    choose(page, "checkpoint-picker", checkpoint)
    page.wait_for_selector(f"#source :text('class {CLASS_NAMES[0]}'), #source :text('class {CLASS_NAMES[1]}')")
    page.get_by_role("tab", name="Held-out image", exact=True).wait_for()
    page.wait_for_selector("#edit-code :text('0 to 63')")  # the colour checkpoint's K = 64


def test_reconstruct_shows_a_colour_image_and_its_reconstruction_in_their_own_colours(page, colour_checkpoint, colour):
    open_colour(page, colour_checkpoint)
    page.wait_for_selector("#psnr :text('PSNR')")
    expected = colour.reconstruct_heldout(0)
    label = colour.heldout_label(0)
    assert label in CLASS_NAMES and f"class {label}" in page.locator("#source").inner_text()
    has_image(page, "input-image")
    shown = pixels(page, "#input-image img")  # the held-out image, sent at its own 16x16 pixels
    assert shown.shape == (PATCH, PATCH, 3) and np.array_equal(shown, expected.image) and in_colour(shown)
    scale = display_scale(PATCH)  # the reconstruction comes enlarged by a whole factor, without blur
    reconstruction = pixels(page, "#reconstruction img")
    assert reconstruction.shape == (PATCH * scale, PATCH * scale, 3)
    assert np.array_equal(reconstruction[::scale, ::scale], expected.reconstruction) and in_colour(reconstruction)
    assert "digit" not in page.locator("#reconstruct-inputs").inner_text()
    labels_clear(page)
    no_error_toast(page)
    no_error_badge(page)
    shot(page, "colour-1-reconstruct")


def test_an_upload_of_a_colour_photo_is_fitted_whole_on_white_and_reconstructed(page, colour_checkpoint, tmp_path):
    open_colour(page, colour_checkpoint)
    photo = np.zeros((60, 120, 3), dtype=np.uint8)  # wide: orange left, blue right
    photo[:, :60] = (240, 140, 20)
    photo[:, 60:] = (20, 60, 230)
    Image.fromarray(photo).save(tmp_path / "wide.png")
    page.get_by_role("tab", name="Upload", exact=True).click()
    page.locator("#upload input[type=file]").set_input_files(str(tmp_path / "wide.png"))
    page.wait_for_selector("#upload :text('wide.png')")
    before = page.locator("#reconstruction img").get_attribute("src")
    page.click("#reconstruct-upload")
    page.wait_for_selector("#source :text('your upload, fitted to the model')")
    page.wait_for_function("(src) => document.querySelector('#reconstruction img').src !== src", arg=before)
    fitted = pixels(page, "#input-image img").astype(int)
    assert fitted.shape == (PATCH, PATCH, 3)
    assert (fitted[:3] > 245).all() and (fitted[-3:] > 245).all()  # the whole picture on white: nothing cropped
    middle = fitted[PATCH // 2]
    assert middle[1, 0] > 200 and middle[1, 2] < 80 and middle[-2, 2] > 200 and middle[-2, 0] < 80  # its own colours
    assert in_colour(pixels(page, "#reconstruction img"))
    page.wait_for_selector("#psnr :text('PSNR')")
    labels_clear(page)
    no_error_toast(page)
    no_error_badge(page)
    shot(page, "colour-1-upload")


def test_a_drawing_in_colour_is_reconstructed_in_colour(page, colour_checkpoint):
    open_colour(page, colour_checkpoint)
    page.get_by_role("tab", name="Draw", exact=True).click()
    page.wait_for_selector("#sketch-caption :text('draw an image')")
    assert "colour" in page.locator("#sketch-caption").inner_text()
    page.locator("#sketch button[aria-label=Brush]").click()
    box = page.locator("#sketch canvas").last.bounding_box()
    x, y = box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3
    page.mouse.move(x, y)
    page.mouse.down()
    for k in range(1, 21):  # a diagonal stroke in the brush's first colour, red
        page.mouse.move(x + k * box["width"] * 0.02, y + k * box["height"] * 0.02)
    page.mouse.up()
    page.click("#reconstruct-drawing")
    page.wait_for_selector("text=your drawing, fitted to the model's input")
    page.wait_for_selector("#psnr :text('PSNR')")
    drawn = pixels(page, "#input-image img").astype(int)
    red = (drawn[..., 0] > 150) & (drawn[..., 1] < 110) & (drawn[..., 2] < 110)
    assert red.any() and (drawn[0, 0] > 245).all()  # a red stroke on the white canvas, as drawn
    labels_clear(page)
    no_error_toast(page)
    shot(page, "colour-1-draw")


def test_usage_names_each_class_whole_on_its_chart(page, colour_checkpoint):
    open_colour(page, colour_checkpoint)
    open_tab(page, "Codebook usage")
    page.wait_for_selector("#usage-stats :text('K = 64 codes')")
    page.wait_for_selector("#usage-classes .js-plotly-plot .ytick")
    ticks = page.locator("#usage-classes .yaxislayer-above .ytick text")
    top_down = sorted(range(ticks.count()), key=lambda i: ticks.nth(i).bounding_box()["y"])
    assert [ticks.nth(i).text_content() for i in top_down] == list(CLASS_NAMES)  # the first class on top
    chart = page.locator("#usage-classes .main-svg").first.bounding_box()
    for i in range(ticks.count()):  # each name whole inside the chart, none cut off at its edge
        tick = ticks.nth(i).bounding_box()
        assert tick["x"] >= chart["x"] and tick["x"] + tick["width"] <= chart["x"] + chart["width"]
    title = page.locator("#usage-classes .ytitle").bounding_box()
    assert title["x"] + title["width"] <= min(ticks.nth(i).bounding_box()["x"] for i in range(ticks.count()))
    labels_clear(page)
    no_error_toast(page)
    no_error_badge(page)
    shot(page, "colour-2-usage")


def test_the_atlas_shows_a_code_in_colour_and_a_legend_of_whole_class_names(page, colour_checkpoint, colour):
    open_colour(page, colour_checkpoint)
    open_tab(page, "Embedding atlas")
    page.wait_for_selector(f"#atlas-details h3:text-is('code {colour.telling_code()}')")
    # a busy code whose held-out patches are the most colourful, typed in as a person would
    code = max(colour.usage_order()[:10], key=lambda k: spread(colour.code(k).exemplars))
    page.locator("#atlas-code input").fill(str(code))
    page.wait_for_selector(f"#atlas-details h3:text-is('code {code}')")
    page.wait_for_selector("#atlas-exemplars img")
    has_image(page, "atlas-nearest")
    info = colour.code(code)
    tile = pixels(page, "#atlas-tile img")
    scale = tile.shape[0] // info.tile.shape[0]  # enlarged by a whole factor, without blur
    assert np.array_equal(tile[::scale, ::scale], info.tile)
    patches = pixels(page, "#atlas-exemplars img")
    assert np.array_equal(patches, show_many(info.exemplars, atlas.EXEMPLAR_COLUMNS, atlas.PATCH_PIXELS))
    assert in_colour(patches) and in_colour(pixels(page, "#atlas-nearest img"))
    assert page.locator("#atlas-plot .g-xtitle").text_content() == "PCA 1"  # analysed without UMAP
    entries = page.locator("#atlas-plot .legend .traces .legendtext")
    names = [" ".join(entries.nth(i).locator("tspan.line").all_text_contents()) for i in range(entries.count())]
    assert {f"class {name}" for name in CLASS_NAMES} <= set(names)
    figure = page.locator("#atlas-plot .main-svg").first.bounding_box()
    points = page.locator("#atlas-plot .draglayer .xy .nsewdrag").bounding_box()  # the points' plot area
    for i in range(entries.count()):  # each entry whole, right of the points and inside the figure
        entry = entries.nth(i).bounding_box()
        assert points["x"] + points["width"] <= entry["x"]
        assert entry["x"] + entry["width"] <= figure["x"] + figure["width"]
    shares = page.locator("#atlas-details").inner_text()
    assert any(f"{name}:" in shares for name in CLASS_NAMES)  # the code's uses by class, by name
    labels_clear(page)
    no_error_toast(page)
    no_error_badge(page)
    shot(page, "colour-3-atlas")


def test_the_per_code_page_shows_colour_tiles_and_a_colour_edit(page, colour_checkpoint, colour):
    open_colour(page, colour_checkpoint)
    open_tab(page, "Per-code reconstructions")
    has_image(page, "code-sheet")
    page.wait_for_selector(f"#code-chosen :text('code {colour.telling_code()} chosen')")
    page.wait_for_selector("#context-summary :text('of 64 cells changed')")  # an 8x8 grid
    sheet = pixels(page, "#code-sheet img")
    assert in_colour(sheet[sheet.min(-1) < 250])  # the tiles, not the white page around them
    before, after = pixels(page, "#context-before img"), pixels(page, "#context-after img")
    assert in_colour(before) and in_colour(after) and before.shape == after.shape == (PATCH, PATCH, 3)
    labels_clear(page)
    no_error_toast(page)
    no_error_badge(page)
    shot(page, "colour-4-codes")


def test_sampling_offers_the_class_names_and_draws_the_chosen_class_in_colour(page, colour_checkpoint):
    open_colour(page, colour_checkpoint)
    open_tab(page, "Sampling")
    for prior in ("uniform", "unigram", "learned"):
        has_image(page, f"samples-{prior}")
    page.wait_for_selector(f"{PLAYER}[data-step='0'] [data-part=frame][src^='data:image/png']")
    page.wait_for_selector(f"{PLAYER} [data-part=count]:text-is('0 / 64')")  # an 8x8 grid
    assert "look like real images" in page.locator("#tab-sampling").inner_text()
    page.locator("#sample-class input").click()
    offered = page.locator("[role=option]").all_inner_texts()
    assert [o.replace("✓", "").strip() for o in offered] == ["any", *CLASS_NAMES]  # the chosen one ticked
    learned = page.locator("#samples-learned img").get_attribute("src")
    page.locator(f"[role=option]:has-text({CLASS_NAMES[1]!r})").first.click()
    page.wait_for_function("(src) => document.querySelector('#samples-learned img').src !== src", arg=learned)
    page.wait_for_selector(f"{PLAYER} [data-part=title]:has-text('class {CLASS_NAMES[1]}')")
    for prior in ("uniform", "unigram", "learned"):
        assert in_colour(pixels(page, f"#samples-{prior} img")), prior
    assert page.locator("#sample-class input").input_value() == CLASS_NAMES[1]
    page.click(f"{PLAYER} [data-part=play]")
    page.wait_for_selector(f"{PLAYER}[data-step='64'][data-playing='false']", timeout=60_000)
    assert in_colour(pixels(page, f"{PLAYER} [data-part=frame]"))
    labels_clear(page)
    no_error_toast(page)
    no_error_badge(page)
    shot(page, "colour-5-sampling")


def test_the_training_page_beside_a_colour_checkpoint(page, colour_checkpoint):
    open_colour(page, colour_checkpoint)
    open_tab(page, "Training")
    page.wait_for_selector(
        "#run-status :text('No run yet'), #run-status :text('finished'), #run-status :text('stopped')"
    )
    labels_clear(page)
    no_error_toast(page)
    shot(page, "colour-6-training")
