"""User images in: safe decoding of uploaded files, arrays from the canvas, and fitting to a model's input."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from vqvae.app import inputs
from vqvae.app.inputs import DIGIT_NAMES, Fitting, fit_image, fitting_for, from_array, read_image, to_rgb
from vqvae.bench.refusals import bomb_files, png_chunk
from vqvae.errors import DataError

RED, GREEN, BLUE, WHITE, BLACK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)
DIGITS, GREY, COLOUR = fitting_for(1, DIGIT_NAMES), fitting_for(1, ["T-shirt/top", "Trouser"]), fitting_for(3, [])


def saved(tmp_path, image, name, **options):
    path = tmp_path / name
    image.save(path, **options)
    return path


def decoded(path):
    rgb = read_image(path)
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    return rgb


def stripes(*colours, height=8, width=8):
    """An RGB picture of vertical stripes, `width` pixels each."""
    array = np.concatenate([np.full((height, width, 3), c, dtype=np.uint8) for c in colours], axis=1)
    return Image.fromarray(array)


# --- formats and modes ------------------------------------------------------------------


@pytest.mark.parametrize("name,options", [("a.png", {}), ("a.bmp", {}), ("a.webp", {"lossless": True}), ("a.gif", {})])
def test_lossless_formats_decode_exactly(tmp_path, name, options):
    picture = stripes(RED, GREEN, BLUE, WHITE)
    rgb = decoded(saved(tmp_path, picture, name, **options))
    assert rgb.shape == (8, 32, 3)
    assert np.array_equal(rgb, np.asarray(picture))


def test_jpeg_decodes_close_to_its_colours(tmp_path):
    rgb = decoded(saved(tmp_path, stripes(RED, BLUE, width=16), "a.jpg", quality=95))
    assert rgb.shape == (8, 32, 3)
    assert np.abs(rgb[:, 4:12].astype(int) - RED).max() <= 8
    assert np.abs(rgb[:, 20:28].astype(int) - BLUE).max() <= 8


def test_an_animated_gif_gives_its_first_frame(tmp_path):
    first, second = Image.new("RGB", (6, 4), RED), Image.new("RGB", (6, 4), BLUE)
    path = saved(tmp_path, first, "a.gif", save_all=True, append_images=[second], duration=100, loop=0)
    with Image.open(path) as gif:
        assert gif.n_frames == 2
    rgb = decoded(path)
    assert rgb.shape == (4, 6, 3) and (rgb == RED).all()


def test_grey_and_bilevel_modes(tmp_path):
    grey = Image.fromarray(np.array([[0, 100, 255]], dtype=np.uint8), "L")
    assert decoded(saved(tmp_path, grey, "l.png")).tolist() == [[[0] * 3, [100] * 3, [255] * 3]]
    bilevel = Image.new("1", (3, 1), 0)
    bilevel.putpixel((1, 0), 1)
    assert decoded(saved(tmp_path, bilevel, "1.png")).tolist() == [[[0] * 3, [255] * 3, [0] * 3]]


def test_alpha_is_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (3, 1))
    rgba.putpixel((0, 0), (255, 0, 0, 0))  # fully transparent red: white
    rgba.putpixel((1, 0), (0, 0, 255, 255))  # opaque blue
    rgba.putpixel((2, 0), (0, 0, 0, 128))  # half-transparent black: mid grey
    rgb = decoded(saved(tmp_path, rgba, "rgba.png"))
    assert rgb[0, 0].tolist() == list(WHITE) and rgb[0, 1].tolist() == list(BLUE)
    assert np.abs(rgb[0, 2].astype(int) - 127).max() <= 1

    la = Image.new("LA", (3, 1))
    la.putpixel((0, 0), (0, 0))
    la.putpixel((1, 0), (0, 255))
    la.putpixel((2, 0), (100, 255))
    assert decoded(saved(tmp_path, la, "la.png"))[0, :, 0].tolist() == [255, 0, 100]


@pytest.mark.parametrize("name", ["p.png", "p.gif"])
def test_a_palette_image_with_a_transparent_index(tmp_path, name):
    palette = Image.new("P", (3, 1))
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (768 - 9))
    for x, index in enumerate([0, 1, 2]):
        palette.putpixel((x, 0), index)
    rgb = decoded(saved(tmp_path, palette, name, transparency=0))  # index 0 (black) is transparent: white
    assert rgb[0].tolist() == [list(WHITE), list(RED), list(GREEN)]


def test_sixteen_bit_grey_keeps_its_brightness(tmp_path):
    image = Image.fromarray(np.array([[0, 1000, 32768, 65535]], dtype=np.uint16))
    assert image.mode == "I;16"
    assert decoded(saved(tmp_path, image, "16.png"))[0, :, 0].tolist() == [0, 4, 128, 255]  # v / 257


@pytest.mark.parametrize(
    "values,transparent",
    [
        (np.array([[0, 100, 255]], dtype=np.uint8), 100),  # tRNS of a grey PNG: one grey level
        (np.array([[[0, 0, 0], [10, 20, 30], [255, 0, 0]]], dtype=np.uint8), (10, 20, 30)),  # ... an RGB one
        (np.array([[0, 25700, 65535]], dtype=np.uint16), 25700),  # ... a 16-bit grey one
    ],
)
def test_a_transparent_colour_chunk_is_painted_white(tmp_path, values, transparent):
    rgb = decoded(saved(tmp_path, Image.fromarray(values), "t.png", transparency=transparent))
    assert rgb[0, 1].tolist() == list(WHITE)  # the middle pixel has the transparent value
    assert rgb[0, 0].tolist() == list(BLACK) and rgb[0, 2, 0] == 255


@pytest.mark.parametrize(
    "values,mode",
    [
        (np.array([[-100, 0, 100]], dtype=np.int32), "I"),
        (np.array([[0.0, 0.5e-3, 1e-3]], dtype=np.float32), "F"),
        (np.array([[7, 7, 7]], dtype=np.int32), "I"),  # a flat image: black, not a division by zero
    ],
)
def test_wide_integer_and_float_modes_are_scaled_by_their_range(values, mode):
    image = Image.fromarray(values)
    assert image.mode == mode
    expected = [0, 0, 0] if values.min() == values.max() else [0, 128, 255]
    rgb = to_rgb(image)
    assert rgb.shape == (1, 3, 3) and rgb[0, :, 0].tolist() == expected and (rgb == rgb[..., :1]).all()


def test_cmyk_jpeg(tmp_path):
    cmyk = Image.new("CMYK", (32, 16), (0, 0, 0, 0))  # no ink: white
    cmyk.paste((0, 255, 255, 0), (16, 0, 32, 16))  # magenta + yellow: red
    rgb = decoded(saved(tmp_path, cmyk, "cmyk.jpg", quality=95))
    assert np.abs(rgb[:, :12].astype(int) - WHITE).max() <= 8
    assert np.abs(rgb[:, 20:].astype(int) - RED).max() <= 8


def test_exif_orientation_is_applied(tmp_path):
    picture = stripes(RED, BLUE, height=10, width=10)  # 20 wide, 10 high: red left, blue right
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    rgb = decoded(saved(tmp_path, picture, "o.jpg", exif=exif, quality=95))
    assert rgb.shape == (20, 10, 3)
    assert np.abs(rgb[:8].astype(int) - RED).max() <= 8  # the left half is now on top
    assert np.abs(rgb[12:].astype(int) - BLUE).max() <= 8


# --- what is refused ----------------------------------------------------------------------


def test_empty_and_missing_files_are_refused(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        read_image(tmp_path / "empty.png")
    with pytest.raises(DataError, match="cannot read the uploaded file"):
        read_image(tmp_path / "nowhere.png")


def test_a_truncated_png_is_refused(tmp_path):
    data = saved(tmp_path, stripes(RED, GREEN, height=64, width=64), "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="damaged or truncated"):
        read_image(tmp_path / "cut.png")


@pytest.mark.parametrize(
    "name,content",
    [
        ("page.png", b"<!DOCTYPE html><html><body>not a picture</body></html>"),
        (
            "drawing.svg",
            b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8"/></svg>',
        ),
        ("drawing.png", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>'),
        ("paper.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"),
        ("text.jpg", b"just some text"),
    ],
)
def test_files_that_are_not_images_are_refused(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=r"not an image this app reads \(PNG, JPEG, WEBP, GIF, BMP\)"):
        read_image(tmp_path / name)


def test_an_image_format_outside_the_list_is_refused(tmp_path):
    path = saved(tmp_path, stripes(RED), "a.tif")
    with pytest.raises(DataError, match="not an image this app reads"):
        read_image(path)


def test_a_header_claiming_too_many_pixels_is_refused_before_decoding(tmp_path):
    header = struct.pack(">IIBBBBB", 5000, 5000, 8, 0, 0, 0, 0)  # 5000x5000 8-bit grey
    png = (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b""))
        + png_chunk(b"IEND", b"")
    )
    (tmp_path / "bomb.png").write_bytes(png)
    with pytest.raises(DataError, match=r"more than 16,777,216 pixels; it is refused before decoding"):
        read_image(tmp_path / "bomb.png")


def test_a_real_image_just_over_the_pixel_cap_is_refused(tmp_path):
    path = saved(tmp_path, Image.new("1", (4100, 4100)), "big.png")  # a few KB on disk
    assert path.stat().st_size < 100_000
    with pytest.raises(DataError, match="more than 16,777,216 pixels"):
        read_image(path)


def test_a_file_over_the_size_cap_is_refused(tmp_path, monkeypatch):
    path = saved(tmp_path, stripes(RED, GREEN, BLUE), "a.png")
    monkeypatch.setattr(inputs, "MAX_FILE_BYTES", path.stat().st_size - 1)
    with pytest.raises(DataError, match="at most"):
        read_image(path)


# --- arrays -------------------------------------------------------------------------------


def test_from_array_greys_and_colours():
    grey = np.array([[0, 128], [200, 255]], dtype=np.uint8)
    expected = np.repeat(grey[..., None], 3, axis=-1)
    assert np.array_equal(from_array(grey), expected)
    assert np.array_equal(from_array(grey[..., None]), expected)
    colour = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    assert np.array_equal(from_array(colour), colour)


def test_from_array_composites_alpha_on_white():
    rgba = np.array([[[255, 0, 0, 0], [0, 0, 255, 255]]], dtype=np.uint8)
    assert from_array(rgba).tolist() == [[list(WHITE), list(BLUE)]]


def test_from_array_scales_floats_in_zero_one():
    floats = np.array([[0.0, 0.25], [1.0, 1.7]], dtype=np.float32)  # 1.7 clips to white
    rgb = from_array(floats)
    assert rgb.dtype == np.uint8 and rgb[..., 0].tolist() == [[0, 64], [255, 255]]
    assert from_array(np.full((2, 2, 3), np.nan))[0, 0].tolist() == [0, 0, 0]


@pytest.mark.parametrize("shape", [(4,), (4, 4, 2), (4, 4, 5), (4, 4, 3, 1), (0, 4), (4, 0, 3), ()])
def test_from_array_rejects_other_shapes(shape):
    with pytest.raises(DataError, match="expected an image of shape"):
        from_array(np.zeros(shape, dtype=np.uint8))


# --- fitting a picture to a model ---------------------------------------------------------


def ink_centre(x: np.ndarray) -> tuple[float, float]:
    rows, cols = np.indices(x.shape)
    return float((rows * x).sum() / x.sum()), float((cols * x).sum() / x.sum())


@pytest.mark.parametrize("size", [28, 8])
def test_a_dark_drawing_on_white_is_inverted_and_centred(size):
    picture = np.full((90, 60, 3), 255, dtype=np.uint8)
    picture[6:36, 4:16] = 0  # a black bar near the top-left corner
    x = fit_image(picture, size, DIGITS)
    assert x.shape == (1, 1, size, size) and x.dtype == np.float32
    grey = x[0, 0]
    assert grey.min() >= 0 and grey.max() <= 1 and grey.max() > 0.9  # light ink ...
    assert grey[0].max() < 0.05 and grey[-1].max() < 0.05 and grey[:, 0].max() < 0.05  # ... on black
    centre = (size - 1) / 2
    row, col = ink_centre(grey)
    assert abs(row - centre) <= 0.5 + size / 28 and abs(col - centre) <= 0.5 + size / 28
    tall = np.nonzero(grey.max(1) > 0.5)[0]
    assert len(tall) == round(size * 20 / 28)  # the longer side fills a MNIST-sized box


def test_a_light_drawing_on_black_is_not_inverted():
    picture = np.zeros((40, 40, 3), dtype=np.uint8)
    picture[10:30, 18:22] = 255
    light = fit_image(picture, 28, DIGITS)
    assert light[0, 0, 0, 0] == 0 and float(light.max()) > 0.9
    assert np.array_equal(light, fit_image(255 - picture, 28, DIGITS))


def test_a_blank_picture_fits_to_black():
    for fitting in (DIGITS, GREY):
        assert float(fit_image(np.full((30, 30, 3), 255, dtype=np.uint8), 8, fitting).max()) == 0.0


@pytest.mark.parametrize(
    "channels, names, kind, noun",
    [
        (1, [str(i) for i in range(10)], "digit", "digit"),  # the shipped mnist checkpoint, and digits
        (1, ["T-shirt/top", "Trouser", "Pullover"], "grey", "image"),  # Fashion-MNIST
        (1, [], "grey", "image"),  # unlabelled grey data
        (1, [str(i) for i in range(9)], "grey", "image"),  # nine numbered classes are not the ten digits
        (3, [str(i) for i in range(10)], "colour", "image"),  # digits in colour are fitted as colour
        (3, ["Smileys & Emotion", "Flags"], "colour", "image"),
        (3, [], "colour", "image"),
    ],
)
def test_a_models_channels_and_class_names_decide_how_pictures_are_fitted_and_named(channels, names, kind, noun):
    fitting = fitting_for(channels, names)
    assert fitting.kind == kind and fitting.channels == channels and fitting.noun == noun
    assert fitting.a_noun == ("a digit" if kind == "digit" else "an image")
    assert fitting.nouns == f"{noun}s"


def test_an_unknown_fitting_is_refused():
    with pytest.raises(ValueError, match="digit, grey or colour"):
        Fitting("sepia")


def test_a_grey_non_digit_model_gets_its_content_filling_the_frame():
    picture = np.full((120, 90, 3), 250, dtype=np.uint8)  # a dark garment, 60 high and 30 wide, off centre
    picture[10:70, 5:35] = 30
    digit, grey = fit_image(picture, 28, DIGITS)[0, 0], fit_image(picture, 28, GREY)[0, 0]
    for x in (digit, grey):  # both inverted to light on black, centred
        assert x.max() > 0.8 and x[:, 0].max() < 0.05 and x[:, -1].max() < 0.05
        row, col = ink_centre(x)
        assert abs(row - 13.5) <= 1 and abs(col - 13.5) <= 1
    tall = lambda x: len(np.nonzero(x.max(1) > 0.5)[0])  # noqa: E731
    wide = lambda x: len(np.nonzero(x.max(0) > 0.5)[0])  # noqa: E731
    assert tall(digit) == 20 and tall(grey) == 28  # MNIST's 20-pixel box, or the whole frame
    assert wide(grey) == 14  # the aspect kept: half as wide as tall


def test_a_colour_model_gets_the_whole_picture_on_white_in_its_own_colours():
    picture = np.asarray(stripes(RED, GREEN, GREEN, BLUE, height=40, width=20))  # 40 high, 80 wide
    x = fit_image(picture, 16, COLOUR)
    assert x.shape == (1, 3, 16, 16) and x.dtype == np.float32
    rgb = x[0].transpose(1, 2, 0)  # (3, S, S) -> (S, S, 3)
    assert np.allclose(rgb[:3], 1.0, atol=0.02) and np.allclose(rgb[-3:], 1.0, atol=0.02)  # white above and below
    middle = rgb[8]  # the stripes kept whole, in order, never inverted or made grey
    assert np.allclose(middle[1], [1, 0, 0], atol=0.05) and np.allclose(middle[-2], [0, 0, 1], atol=0.05)
    assert np.allclose(middle[7], [0, 1, 0], atol=0.05)
    white = fit_image(np.full((20, 30, 3), 255, dtype=np.uint8), 8, COLOUR)
    assert np.allclose(white, 1.0)  # a white picture stays white


# --- bombs: refused from the header, in bounded memory ----------------------------------------

MEASURE = """
import json, sys
from vqvae.errors import DataError
from vqvae.app.inputs import read_image

def peak_mb():  # this process's peak resident memory (ru_maxrss would start from the forking parent's)
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024

read_image(sys.argv[1])  # a small picture first: the decoders' own start-up is not counted
results = {}
for path in sys.argv[2:]:
    before = peak_mb()
    try:
        read_image(path)
        outcome = "decoded"
    except DataError as error:
        outcome = str(error)
    results[path] = {"outcome": outcome, "growth_mb": peak_mb() - before}
print(json.dumps(results))
"""


def test_bombs_are_refused_without_decoding(tmp_path):
    import json
    import subprocess
    import sys

    files = bomb_files(tmp_path)
    assert all(path.stat().st_size < 500_000 for path in files.values())
    control = saved(tmp_path, Image.new("L", (4000, 4000), 90), "big-but-allowed.png")  # 16 Mpx, decoded
    small = saved(tmp_path, stripes(RED), "small.png")
    paths = [str(small), *map(str, files.values()), str(control)]  # the control last: peaks only rise
    run = subprocess.run([sys.executable, "-c", MEASURE, *paths], capture_output=True, text=True, check=True)
    results = json.loads(run.stdout)
    print({name: results[str(path)] for name, path in files.items()}, results[str(control)])
    assert results[str(control)]["outcome"] == "decoded"
    assert results[str(control)]["growth_mb"] > 40  # the measurement sees a real decode (16 Mpx, RGB)
    for name, path in files.items():
        result = results[str(path)]
        assert "more than 16,777,216 pixels" in result["outcome"], name
        assert result["growth_mb"] < 50, name  # how fast: `python -m vqvae bench`
