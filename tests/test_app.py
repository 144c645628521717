"""The app through its public API (gradio_client over HTTP), on the shipped checkpoint."""

from __future__ import annotations

import base64
import io
import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from tests.app_server import SHIPPED

PUBLIC = {
    "/reconstruct_heldout",
    "/reconstruct_upload",
    "/reconstruct_drawing",
    "/edit_code",
    "/usage",
    "/levels",
    "/atlas",
    "/atlas_select",
    "/codebook_sheet",
    "/code_in_context",
    "/sample",
    "/sample_steps",
    "/start_training",
    "/stop_training",
    "/training_status",
}


@pytest.fixture(scope="module")
def client(app_server):
    return Client(app_server.url, verbose=False)


def inline_picture(markup: str) -> np.ndarray:
    """The image inside an <img src="data:image/png;base64,..."> reply."""
    data = markup.split("base64,")[1].split('"')[0]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))))


def picture(path) -> np.ndarray:
    if path.lstrip().startswith("<"):
        return inline_picture(path)
    return np.asarray(Image.open(path))


def plot_data(value) -> dict:
    return json.loads(value["plot"])


def grid_of(figure: dict) -> list[list[int]]:
    return figure["data"][0]["z"]


def test_every_public_endpoint_is_offered(client):
    assert set(client.view_api(return_format="dict", print_info=False)["named_endpoints"]) == PUBLIC


def test_reconstruct_heldout_gives_input_codes_and_reconstruction(client):
    original, decoded, grid, psnr, source = client.predict(SHIPPED, 3, api_name="/reconstruct_heldout")
    x, x_hat = picture(original), picture(decoded)  # the input at its own size; the clickable one enlarged
    x_hat = x_hat[:: x_hat.shape[0] // 28, :: x_hat.shape[1] // 28]
    assert x.shape == x_hat.shape == (28, 28) and x.dtype == x_hat.dtype == np.uint8
    codes = grid_of(plot_data(grid))
    assert np.array(codes).shape == (7, 7) and 0 <= np.min(codes) and np.max(codes) < 512
    value = float(psnr.split("**PSNR** ")[1].split(" dB")[0])
    assert 18 < value < 45  # the shipped model reconstructs held-out digits well
    assert "held-out image 3" in source and "class" in source
    measured = 10 * np.log10(1 / np.mean((x.astype(float) / 255 - x_hat.astype(float) / 255) ** 2))
    assert abs(measured - value) < 0.5  # the shown PSNR is the shown images' PSNR


def test_edit_changes_the_decode(client):
    _, decoded, grid, _, _ = client.predict(SHIPPED, 5, api_name="/reconstruct_heldout")
    codes = grid_of(plot_data(grid))
    new_code = (codes[3][3] + 1) % 512
    edited, edited_grid, psnr = client.predict(SHIPPED, 3, 3, new_code, api_name="/edit_code")
    after = grid_of(plot_data(edited_grid))
    assert after[3][3] == new_code
    assert sum(a != b for ra, rb in zip(after, codes) for a, b in zip(ra, rb)) == 1
    assert not np.array_equal(picture(edited), picture(decoded))
    assert "PSNR" in psnr


def test_edit_with_a_code_out_of_range_is_refused_and_the_server_goes_on(client):
    client.predict(SHIPPED, 1, api_name="/reconstruct_heldout")
    with pytest.raises(AppError, match="code 9999 does not exist"):
        client.predict(SHIPPED, 0, 0, 9999, api_name="/edit_code")
    client.predict(SHIPPED, 2, api_name="/reconstruct_heldout")


def test_upload_of_an_image_file_is_fitted_and_reconstructed(client, tmp_path):
    canvas = np.full((120, 90, 3), 255, np.uint8)
    canvas[20:100, 40:50] = 0  # a black "1" on white paper
    path = tmp_path / "one.png"
    Image.fromarray(canvas).save(path)
    original, decoded, _, psnr, source = client.predict(SHIPPED, handle_file(str(path)), api_name="/reconstruct_upload")
    x = picture(original)
    assert x.max() > 200 and x[0, 0] == 0  # inverted to MNIST's white-on-black
    assert "upload" in source and "PSNR" in psnr


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("page.png", b"\x89PNG\r\n\x1a\n<html><body>not an image</body></html>", "not an image"),
        ("cut.png", None, "damaged or truncated"),
    ],
)
def test_bad_upload_gets_a_clear_error_and_the_server_keeps_serving(client, tmp_path, name, content, message):
    path = tmp_path / name
    if content is None:
        Image.fromarray(np.zeros((64, 64), np.uint8) + 40).save(path)
        content = path.read_bytes()[:60]
    path.write_bytes(content)
    with pytest.raises(AppError, match=message):
        client.predict(SHIPPED, handle_file(str(path)), api_name="/reconstruct_upload")
    assert client.predict(SHIPPED, 0, api_name="/reconstruct_heldout")[3].startswith("**PSNR**")


@pytest.mark.parametrize("content", [b"<html><body>not an image</body></html>", b""])
def test_an_upload_that_does_not_begin_as_an_image_is_refused_at_the_door(app_server, client, content):
    answer = httpx.post(app_server.url + "gradio_api/upload", files={"files": ("page.png", content)}, timeout=30)
    assert answer.status_code == 415 and "only image files" in answer.text
    assert client.predict(SHIPPED, 0, api_name="/reconstruct_heldout")[3].startswith("**PSNR**")


def test_every_shipped_checkpoints_heldout_images_are_open_to_the_api(client):
    """An API caller never opens a page (which fits its sliders to a checkpoint): the range it is held to
    covers every checkpoint, and each checkpoint refuses what it does not have in its own words."""
    fashion = "checkpoints/fashion-mnist"
    *_, source = client.predict(fashion, 1999, api_name="/reconstruct_heldout")  # the last of the 2,000 kept
    assert "held-out image 1999" in source and "class" in source
    *_, summary = client.predict(fashion, 1500, "one cell", 0, 3, 3, 11, api_name="/code_in_context")
    assert "of 49 cells changed" in summary
    with pytest.raises(AppError, match="held-out image 600 does not exist; choose 0 to 499"):
        client.predict(SHIPPED, 600, api_name="/reconstruct_heldout")


def test_a_checkpoint_outside_the_catalog_is_refused(client):
    for bad in ("../checkpoints/mnist", "/etc", "checkpoints/../checkpoints/mnist", "tests"):
        with pytest.raises(AppError, match="not one of the checkpoints"):
            client.predict(bad, 0, api_name="/reconstruct_heldout")


def test_usage_page_reports_the_shipped_codebook(client):
    stats, bars, classes, training = client.predict(SHIPPED, api_name="/usage")
    assert "**K** = 512" in stats and "**dead**: 0" in stats and "perplexity** 361" in stats
    counts = plot_data(bars)["data"][0]["y"]
    assert len(counts) == 512 and counts == sorted(counts, reverse=True) and sum(counts) == 500 * 49
    heatmap = plot_data(classes)["data"][0]
    shares = np.array(heatmap["z"])  # (classes, codes): each code's held-out uses split by class
    assert shares.shape == (10, 60) and np.allclose(shares.sum(0), 1)
    assert len(set(heatmap["x"])) == 60 and all(0 <= int(code) < 512 for code in heatmap["x"])
    for c in range(10):  # six codes per class, each group leaning to its class more than the rest do
        group = np.zeros(60, bool)
        group[6 * c : 6 * c + 6] = True
        assert shares[c, group].mean() > 1.5 * shares[c, ~group].mean()
    names = [trace["name"] for trace in plot_data(training)["data"]]
    assert names == ["perplexity", "codes used"]


def test_atlas_and_code_selection(client):
    figure = plot_data(client.predict(SHIPPED, "umap", "dominant class", 7, api_name="/atlas"))
    codes = [c for trace in figure["data"] for c in (trace.get("customdata") or [])]
    assert sorted(codes) == list(range(512))  # every code is a point, once (the ring and the size key are not)
    layout = figure["layout"]
    assert layout["xaxis"]["title"]["text"] == "UMAP 1" and layout["yaxis"]["title"]["text"] == "UMAP 2"
    key = [trace for trace in figure["data"] if trace.get("yaxis") == "y2"]
    assert len(key) == 1 and all(text.endswith(" uses") for text in key[0]["text"])  # the point-size key
    points = [trace for trace in figure["data"] if trace.get("customdata")]
    assert len({(t["marker"]["color"], t["marker"]["symbol"]) for t in points}) == len(points) == 10  # per class
    pca = plot_data(client.predict(SHIPPED, "pca", "alive / dead", None, api_name="/atlas"))
    assert {trace["name"] for trace in pca["data"] if trace.get("customdata")} <= {"alive", "dead"}
    assert pca["layout"]["xaxis"]["title"]["text"] == "PCA 1"
    text, tile, exemplars, nearest = client.predict(SHIPPED, 7, api_name="/atlas_select")
    assert text.startswith("### code 7") and "held-out uses" in text
    patches = picture(exemplars)  # two rows of four 12-pixel patches with 1-pixel gaps, enlarged 6 times
    assert picture(tile).shape[0] >= 120 and patches.shape[:2] == ((1 + 2 * 13) * 6, (1 + 4 * 13) * 6)
    listed = [int(k) for k in text.split("left to right: ")[1].split(", ")]
    assert len(listed) == 8 and 7 not in listed
    strip = picture(nearest)  # two rows of four tiles of 12 x 6 pixels, a number under each
    assert strip.shape[1] >= 4 * 72 and 2 * 72 < strip.shape[0] < strip.shape[1]


def test_codebook_sheet_and_a_code_in_context(client):
    path, pages, chosen = client.predict(SHIPPED, "by usage", 11, api_name="/codebook_sheet")
    sheet = picture(path)  # a page of 8 x 8 tiles of 12 x 6 pixels, each with its number under it
    assert sheet.shape[1] >= 8 * 72 and sheet.shape[0] > sheet.shape[1]
    assert len(pages["choices"]) == 8 and pages["choices"][0][0] == "1–64"  # 512 codes, busiest first
    assert "code 11" in chosen and f"page {pages['value'] + 1} of 8" in chosen
    before, after, grid, summary = client.predict(SHIPPED, 0, "one cell", 0, 3, 3, 11, api_name="/code_in_context")
    assert grid_of(plot_data(grid))[3][3] == 11 and "1 of 49 cells changed" in summary
    assert picture(before).shape == picture(after).shape
    *_, grid, summary = client.predict(SHIPPED, 0, "every use of a code", 15, 0, 0, 11, api_name="/code_in_context")
    changed = int(summary.split(" of 49")[0])  # code 15 is the one held-out image 0 uses most, past the background
    outlined = [(round(s["y0"] + 0.5), round(s["x0"] + 0.5)) for s in plot_data(grid)["layout"]["shapes"]]
    assert changed > 1 and len(outlined) == changed and all(grid_of(plot_data(grid))[r][c] == 11 for r, c in outlined)


def test_sampling_three_priors_side_by_side(client):
    uniform, unigram, learned, table = client.predict(SHIPPED, "3", 1.0, 16, 0, api_name="/sample")
    for markup in (uniform, unigram, learned):  # 16 digits of 28x28, 4 to a row, 1-pixel gaps
        assert inline_picture(markup).shape == (4 * 29 + 1, 4 * 29 + 1)
    header, _, *lines = [line for line in table.splitlines() if line.startswith("|")]
    assert [cell.strip() for cell in header.split("|")[2:4]] == [
        "held-out bits / latent, under this prior",
        "held-out bits / image, under this prior",
    ]  # every column says what it scores, and under which prior
    assert "its samples: bits / image, under the learned prior" in header
    rows = {line.split("|")[1].strip(): line for line in lines}
    held_out = {name: float(line.split("|")[2]) for name, line in rows.items()}
    assert held_out["uniform prior"] == pytest.approx(9.0, abs=1e-3)
    assert rows["uniform prior"].split("|")[3].strip() == "441"  # 49 latents x log2(512) bits, as the page says
    assert held_out["learned prior (PixelCNN)"] < held_out["unigram prior"] < held_out["uniform prior"]
    again = client.predict(SHIPPED, "3", 1.0, 16, 0, api_name="/sample")
    assert np.array_equal(inline_picture(again[2]), inline_picture(learned))  # same seed, same samples
    assert not np.array_equal(inline_picture(uniform), inline_picture(learned))
    with pytest.raises(AppError, match="class 'eleven' does not exist"):
        client.predict(SHIPPED, "eleven", 1.0, 16, 0, api_name="/sample")
    with pytest.raises(AppError, match="64"):  # gradio refuses it before our check
        client.predict(SHIPPED, "3", 1.0, 500, 0, api_name="/sample")


def test_step_by_step_sampling_sends_every_step_at_once_and_ends_with_a_full_grid(client):
    player = client.predict(SHIPPED, "7", 1.0, 0, api_name="/sample_steps")
    (stage,) = player["stages"]  # one grid: one stage, from step 0
    assert stage["level"] is None and stage["start"] == 0
    grid, tiles = np.array(stage["grid"]), stage["tiles"]
    assert grid.shape == (7, 7) and grid.min() >= 0 and grid.max() < 512  # every cell drawn
    assert len(player["frames"]) == 50  # the empty grid, then one frame per code drawn
    assert len(player["top_codes"]) == len(player["top_probs"]) == len(player["drawn_probs"]) == 49
    first, last = inline_picture(player["frames"][0]), inline_picture(player["frames"][-1])
    assert first.shape == last.shape == (28, 28) and not np.array_equal(first, last)
    for t, code in enumerate(grid.ravel().tolist()):  # every code drawn or offered has its tile
        assert {str(code), *map(str, player["top_codes"][t])} <= set(tiles)
        assert player["drawn_probs"][t] <= player["top_probs"][t][0] + 1e-4
    assert inline_picture(tiles[str(grid[0, 0])]).shape == (12, 12)
    assert "class 7" in player["title"] and "seed 0" in player["title"]
    assert client.predict(SHIPPED, "7", 1.0, 0, api_name="/sample_steps") == player  # same seed, same steps


def test_a_checkpoint_without_a_learned_prior_says_so_in_its_place(client, bare_checkpoint):
    uniform, unigram, learned, table = client.predict(bare_checkpoint, "any", 1.0, 4, 0, api_name="/sample")
    assert inline_picture(unigram).ndim == 2
    assert "no learned prior in this checkpoint" in learned and f"train-prior {bare_checkpoint}" in learned
    assert "under the unigram prior" in table and "not in this checkpoint" in table
    with pytest.raises(AppError, match="no learned prior"):
        client.predict(bare_checkpoint, "any", 1.0, 0, api_name="/sample_steps")


def test_training_endpoints_refuse_bad_settings_and_report_status(client):
    with pytest.raises(AppError, match="run name"):
        client.predict("../escape", "digits-tiny", "digits", 0.1, 32, 8, 3e-3, 0, "", api_name="/start_training")
    with pytest.raises(AppError, match="num_embeddings \\(K\\) must be at most"):
        client.predict("huge-codebook", "digits-tiny", "digits", 0.1, 10**8, 8, 3e-3, 0, "", api_name="/start_training")
    assert client.predict("", api_name="/stop_training") == "no run is going"
    summary, progress, *_ = client.predict("", api_name="/training_status")
    if "No run yet" in summary:
        assert progress == ""  # no empty bar before any run
    else:  # a run of another test: a bar while it goes, after it has ended unless it failed
        assert "**" in summary and ("<progress" in progress or ": failed" in summary)


def test_a_class_asking_for_the_same_digit_at_once_gets_whole_pictures(app_server):
    """Many sessions making the same picture at the same moment each get the complete file."""
    clients = [Client(app_server.url, verbose=False, ssl_verify=False) for _ in range(12)]
    with ThreadPoolExecutor(len(clients)) as pool:
        answers = list(pool.map(lambda c: c.predict(SHIPPED, 7, api_name="/reconstruct_heldout")[1], clients))
    pictures = [picture(answer) for answer in answers]
    assert all(np.array_equal(p, pictures[0]) for p in pictures) and pictures[0].shape[0] >= 28


def test_a_call_through_the_api_may_name_a_hierarchys_level(client, levels_checkpoint):
    """The level choice is offered every level name, so the API can ask for the bottom grid of a VQ-VAE-2
    (the browser's choice is narrowed to the checkpoint's own levels; test_browser_levels.py)."""
    for level, side in (("top", 2), ("bottom", 4)):
        grid = client.predict(levels_checkpoint, 3, level, api_name="/reconstruct_heldout")[2]
        assert np.array(grid_of(plot_data(grid))).shape == (side, side), level
    grid = client.predict(SHIPPED, 3, "bottom", api_name="/reconstruct_heldout")[2]
    assert np.array(grid_of(plot_data(grid))).shape == (7, 7)  # one grid: the level is not asked about
