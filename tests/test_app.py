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


def test_a_checkpoint_outside_the_catalog_is_refused(client):
    for bad in ("../checkpoints/mnist", "/etc", "checkpoints/../checkpoints/mnist", "tests"):
        with pytest.raises(AppError, match="not one of the checkpoints"):
            client.predict(bad, 0, api_name="/reconstruct_heldout")


def test_usage_page_reports_the_shipped_codebook(client):
    stats, bars, classes, training = client.predict(SHIPPED, api_name="/usage")
    assert "**K** = 512" in stats and "**dead**: 0" in stats and "perplexity** 361" in stats
    counts = plot_data(bars)["data"][0]["y"]
    assert len(counts) == 512 and counts == sorted(counts, reverse=True) and sum(counts) == 500 * 49
    shares = np.array(plot_data(classes)["data"][0]["z"])
    assert shares.shape == (10, 512) and np.allclose(shares.sum(1), 1)
    names = [trace["name"] for trace in plot_data(training)["data"]]
    assert names == ["perplexity", "codes used"]


def test_atlas_and_code_selection(client):
    figure = plot_data(client.predict(SHIPPED, "umap", "dominant class", 7, api_name="/atlas"))
    codes = [c for trace in figure["data"] for c in (trace.get("customdata") or [])]
    assert sorted(codes)[:512] == list(range(512))  # every code is a point (plus the selection ring)
    pca = plot_data(client.predict(SHIPPED, "pca", "alive / dead", None, api_name="/atlas"))
    assert {trace["name"] for trace in pca["data"]} <= {"alive", "dead"}
    text, tile, exemplars, nearest = client.predict(SHIPPED, 7, api_name="/atlas_select")
    assert text.startswith("### code 7") and "held-out uses" in text
    assert picture(tile).ndim >= 2 and picture(exemplars).shape[0] > picture(tile).shape[0] // 2
    listed = [int(k) for k in text.split("left to right: ")[1].split(", ")]
    assert len(listed) == 8 and 7 not in listed
    assert picture(nearest).shape[1] > 6 * picture(nearest).shape[0]  # one strip of 8 tiles


def test_codebook_sheet_and_a_code_in_context(client):
    sheet = picture(client.predict(SHIPPED, "by usage", api_name="/codebook_sheet"))
    assert sheet.shape[0] > 100 and sheet.shape[1] > 2 * sheet.shape[0] * 0.9  # 32 x 16 tiles
    before, after, grid, summary = client.predict(SHIPPED, 0, "one cell", 0, 3, 3, 11, api_name="/code_in_context")
    assert grid_of(plot_data(grid))[3][3] == 11 and "1 of 49 cells changed" in summary
    assert picture(before).shape == picture(after).shape


def test_sampling_three_priors_side_by_side(client):
    uniform, unigram, learned, table = client.predict(SHIPPED, "3", 1.0, 16, 0, api_name="/sample")
    for markup in (uniform, unigram, learned):  # 16 digits of 28x28, 4 to a row, 1-pixel gaps
        assert inline_picture(markup).shape == (4 * 29 + 1, 4 * 29 + 1)
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()[2:]}
    held_out = {name: float(line.split("|")[2]) for name, line in rows.items()}
    assert held_out["uniform prior"] == pytest.approx(9.0, abs=1e-3)
    assert held_out["learned prior (PixelCNN)"] < held_out["unigram prior"] < held_out["uniform prior"]
    again = client.predict(SHIPPED, "3", 1.0, 16, 0, api_name="/sample")
    assert np.array_equal(inline_picture(again[2]), inline_picture(learned))  # same seed, same samples
    assert not np.array_equal(inline_picture(uniform), inline_picture(learned))
    with pytest.raises(AppError, match="class 'eleven' does not exist"):
        client.predict(SHIPPED, "eleven", 1.0, 16, 0, api_name="/sample")
    with pytest.raises(AppError, match="64"):  # gradio refuses it before our check
        client.predict(SHIPPED, "3", 1.0, 500, 0, api_name="/sample")


def test_step_by_step_sampling_ends_with_a_full_grid(client):
    slider, frame, grid, bars = client.predict(SHIPPED, "7", 1.0, 0, api_name="/sample_steps")
    assert slider["maximum"] == 49 and slider["value"] == 49
    assert -1 not in np.array(grid_of(plot_data(grid)))
    assert picture(frame).shape[0] >= 28


def test_training_endpoints_refuse_bad_settings_and_report_status(client):
    with pytest.raises(AppError, match="run name"):
        client.predict("../escape", "digits-tiny", "digits", 0.1, 32, 8, 3e-3, 0, "", api_name="/start_training")
    with pytest.raises(AppError, match="num_embeddings \\(K\\) must be at most"):
        client.predict("huge-codebook", "digits-tiny", "digits", 0.1, 10**8, 8, 3e-3, 0, "", api_name="/start_training")
    assert client.predict("", api_name="/stop_training") == "no run is going"
    summary, progress, *_ = client.predict("", api_name="/training_status")
    assert "No run yet" in summary or "**" in summary
    assert "<progress" in progress


def test_a_class_asking_for_the_same_digit_at_once_gets_whole_pictures(app_server):
    """Many sessions making the same picture at the same moment each get the complete file."""
    clients = [Client(app_server.url, verbose=False, ssl_verify=False) for _ in range(12)]
    with ThreadPoolExecutor(len(clients)) as pool:
        answers = list(pool.map(lambda c: c.predict(SHIPPED, 7, api_name="/reconstruct_heldout")[1], clients))
    pictures = [picture(answer) for answer in answers]
    assert all(np.array_equal(p, pictures[0]) for p in pictures) and pictures[0].shape[0] >= 28
