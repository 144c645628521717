"""Colour pictures of emoji, labelled by their Unicode emoji group: the `emoji` data source.

Every fully-qualified emoji that Unicode's emoji-test.txt lists (Debian's unicode-data) is drawn
with Noto Color Emoji (Debian's fonts-noto-color-emoji) through Pillow's raqm layout, so a ZWJ
sequence, a flag, a keycap or a skin tone shapes into the font's one picture for it. Left out:
    the Component group    skin-tone swatches and hair pieces: parts of emoji, not pictures
    two or more glyphs     a sequence the font does not know, drawn as its parts side by side
    the .notdef glyph      a code point the font lacks (Noto's is empty)
    a fallback             a sequence drawn as its first emoji alone, the rest as zero-width marks
    a repeat               a picture already taken (one image per picture, so none is both
                           trained on and held out)

Each picture is composed on white and resized with Lanczos to fit a square of the model's size,
its aspect ratio kept and centred. The pictures are drawn once per size and kept as uint8 in the
user's cache folder, under a name holding the size and a fingerprint of the font, the list and the
layout library, so a changed font or list is drawn again; a damaged cache file is drawn again too.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np
import PIL
from PIL import Image, ImageDraw, ImageFont, features

from .atomic import atomic_write_bytes
from .errors import CheckpointError, DataError

log = logging.getLogger(__name__)

FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
FONT_PACKAGE = "fonts-noto-color-emoji"
EMOJI_TEST = Path("/usr/share/unicode/emoji/emoji-test.txt")
EMOJI_TEST_PACKAGE = "unicode-data"
BITMAP_SIZE = 109  # the one size at which Noto Color Emoji holds its colour bitmaps (136 x 128 px)
MAX_SIZE = 136  # the bitmaps' wider side: a larger picture would only be enlarged (data.fit does that)
DEFAULT_SIZE = 64  # when no model's size is given
LEFT_OUT_GROUPS = ("Component",)
PROBE = "\U0001f600"  # grinning face: yellow in every colour emoji font
VS16 = "\ufe0f"  # emoji presentation selector: part of a fully-qualified emoji, never a glyph of its own
GROUP_HEADER = "# group:"
CACHE_VARIABLE = "VQVAE_CACHE"
FORMAT = 1  # of the cached pictures: raised whenever the rules above change what is drawn


class Listed(NamedTuple):
    """One fully-qualified emoji of emoji-test.txt and its group."""

    sequence: str
    group: str


class Pictures(NamedTuple):
    """The emoji drawn at one size, in emoji-test.txt's order."""

    images: np.ndarray  # (N, size, size, 3) uint8, on white
    labels: np.ndarray  # (N,) int64: the index of each one's group
    groups: list[str]  # the groups that have pictures, in the file's order
    sequences: list[str]  # the emoji each image shows


def _missing(path: Path, what: str, package: str) -> DataError:
    return DataError(f"{what} {path}, which Debian's {package} package installs: sudo apt-get install {package}")


def check_installed(font: Path = FONT, emoji_test: Path = EMOJI_TEST) -> None:
    """Refuse a missing font or list, naming the package that installs it."""
    if not Path(font).is_file():
        raise _missing(font, "emoji are drawn with the font", FONT_PACKAGE)
    if not Path(emoji_test).is_file():
        raise _missing(emoji_test, "the emoji and their groups are read from", EMOJI_TEST_PACKAGE)


def listed_emoji(emoji_test: Path = EMOJI_TEST) -> list[Listed]:
    """The fully-qualified emoji of emoji-test.txt (`CODE POINTS ; fully-qualified # ...` under
    `# group: NAME` headers), in the file's order, less the Component group."""
    found, group = [], None
    for number, line in enumerate(_read_text(emoji_test).splitlines(), 1):
        if line.startswith(GROUP_HEADER):
            group = line.removeprefix(GROUP_HEADER).strip()
            continue
        codes, semicolon, status = line.partition("#")[0].partition(";")
        if not semicolon or status.strip() != "fully-qualified" or group in LEFT_OUT_GROUPS:
            continue
        if group is None:
            raise DataError(f"{emoji_test}, line {number}: an emoji before the first '{GROUP_HEADER}' line")
        found.append(Listed(_sequence(codes, f"{emoji_test}, line {number}"), group))
    if not found:
        raise DataError(f"{emoji_test} lists no fully-qualified emoji; it is not Unicode's emoji-test.txt")
    return found


def _read_text(path: Path) -> str:
    if not Path(path).is_file():
        raise _missing(path, "the emoji and their groups are read from", EMOJI_TEST_PACKAGE)
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read {path}: {error}") from error


def _sequence(codes: str, where: str) -> str:
    try:
        return "".join(chr(int(code, 16)) for code in codes.split())
    except (ValueError, OverflowError) as error:
        raise DataError(f"{where}: {codes.strip()!r} is not a list of hexadecimal code points") from error


class EmojiFont:
    """A colour emoji font opened at its bitmap size, with raqm's layout, drawing one emoji at a time."""

    def __init__(self, path: Path = FONT):
        self.path = Path(path)
        self.font = _open_font(self.path)
        self._alone: dict[str, bytes] = {}  # a first code point -> its picture's pixels
        if not _in_colour(self.draw(PROBE)):
            raise DataError(
                f"{path} is not a colour emoji font (it draws the grinning face without colour); emoji are "
                f"drawn with Noto Color Emoji: sudo apt-get install {FONT_PACKAGE}"
            )

    def draw(self, text: str) -> Image.Image:
        """`text` in colour on a transparent canvas of its layout box (RGBA, 136 x 128 for one Noto emoji)."""
        _, _, right, bottom = self.font.getbbox(text)
        canvas = Image.new("RGBA", (max(right, 1), max(bottom, 1)), (0, 0, 0, 0))
        ImageDraw.Draw(canvas).text((0, 0), text, font=self.font, embedded_color=True)
        return canvas

    def one_glyph(self, sequence: str) -> Image.Image | None:
        """The font's one picture for `sequence`; None if it draws two or more glyphs (wider than its
        first code point alone), the empty .notdef glyph (no ink), or, for a sequence, the picture of
        its first code point alone (what a sequence the font does not know falls back to)."""
        first = sequence[0]
        if self.font.getlength(sequence) != self.font.getlength(first):
            return None
        picture = self.draw(sequence)
        if picture.getchannel("A").getbbox() is None:
            return None
        if sequence.replace(VS16, "") != first and picture.tobytes() == self._alone_pixels(first):
            return None
        return picture

    def _alone_pixels(self, first: str) -> bytes:
        if first not in self._alone:
            self._alone[first] = self.draw(first).tobytes()
        return self._alone[first]


def _open_font(path: Path) -> ImageFont.FreeTypeFont:
    if not features.check("raqm"):
        raise DataError("Pillow here lays out text without libraqm, so emoji sequences cannot be drawn")
    if not path.is_file():
        raise _missing(path, "emoji are drawn with the font", FONT_PACKAGE)
    try:
        return ImageFont.truetype(str(path), BITMAP_SIZE, layout_engine=ImageFont.Layout.RAQM)
    except OSError as error:
        raise DataError(f"cannot open {path} as a font at {BITMAP_SIZE} px: {error}") from error


def _in_colour(picture: Image.Image) -> bool:
    """Whether any inked pixel has a colour, not only a grey level."""
    pixels = np.asarray(picture).astype(np.int16)  # (H, W, 4)
    inked = pixels[..., 3] > 0
    spread = pixels[..., :3].max(-1) - pixels[..., :3].min(-1)  # (H, W): 0 for grey
    return bool((spread[inked] > 32).any())


def drawn(font: Path = FONT, emoji_test: Path = EMOJI_TEST) -> Iterator[tuple[Listed, Image.Image]]:
    """Each listed emoji the font draws as one picture of its own, with that picture (RGBA)."""
    check_installed(font, emoji_test)
    listed = listed_emoji(emoji_test)
    emoji_font = EmojiFont(font)
    taken: set[bytes] = set()
    for entry in listed:
        picture = emoji_font.one_glyph(entry.sequence)
        if picture is None:
            continue
        digest = hashlib.blake2b(picture.tobytes(), digest_size=16).digest()
        if digest not in taken:
            taken.add(digest)
            yield entry, picture


def on_white_square(picture: Image.Image, size: int) -> np.ndarray:
    """(size, size, 3) uint8: an RGBA picture over white, resized with Lanczos to fit, centred."""
    rgb = Image.alpha_composite(Image.new("RGBA", picture.size, "white"), picture).convert("RGB")
    scale = size / max(picture.size)
    width, height = (max(1, round(side * scale)) for side in picture.size)
    square = Image.new("RGB", (size, size), "white")
    square.paste(rgb.resize((width, height), Image.Resampling.LANCZOS), ((size - width) // 2, (size - height) // 2))
    return np.asarray(square)


def render(size: int, font: Path = FONT, emoji_test: Path = EMOJI_TEST) -> Pictures:
    """Every emoji the font draws as one picture, on white squares of `size` px, with its group."""
    images, groups, sequences = [], [], []
    for entry, picture in drawn(font, emoji_test):
        images.append(on_white_square(picture, size))
        groups.append(entry.group)
        sequences.append(entry.sequence)
    if not images:
        raise DataError(f"{font} draws none of the emoji that {emoji_test} lists as one picture")
    names = list(dict.fromkeys(groups))  # in the file's order
    labels = np.array([names.index(group) for group in groups], dtype=np.int64)
    return Pictures(np.stack(images), labels, names, sequences)


def cache_folder(environ: Mapping[str, str] = os.environ) -> Path:
    """$VQVAE_CACHE, else $XDG_CACHE_HOME/vqvae-explorer, else ~/.cache/vqvae-explorer."""
    if environ.get(CACHE_VARIABLE):
        return Path(environ[CACHE_VARIABLE]).expanduser()
    xdg = environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"  # XDG says: ignore a relative one
    return base / "vqvae-explorer"


def fingerprint(font: Path = FONT, emoji_test: Path = EMOJI_TEST) -> str:
    """Changes when the font, the list, the layout library or FORMAT does (files by size and mtime)."""
    parts = [f"format {FORMAT}", f"pillow {PIL.__version__}", f"raqm {features.version('raqm')}"]
    for path in (Path(font), Path(emoji_test)):
        info = path.stat()
        parts.append(f"{path.resolve()} {info.st_size} {info.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def cache_file(size: int, font: Path = FONT, emoji_test: Path = EMOJI_TEST, folder: Path | None = None) -> Path:
    return (folder or cache_folder()) / f"emoji-{size}px-{fingerprint(font, emoji_test)}.npz"


def pictures(size: int, font: Path = FONT, emoji_test: Path = EMOJI_TEST, folder: Path | None = None) -> Pictures:
    """The emoji at `size` px: from the cache when it holds them, else drawn and cached (atomically)."""
    if not 1 <= size <= MAX_SIZE:
        raise DataError(f"emoji are drawn 1 to {MAX_SIZE} px on a side (the font's own size); {size} was asked")
    check_installed(font, emoji_test)
    path = cache_file(size, font, emoji_test, folder)
    cached = _read_cache(path, size)
    if cached is not None:
        return cached
    started = time.perf_counter()
    found = render(size, font, emoji_test)
    log.info("drew %d emoji at %d x %d px in %.1f s", len(found.labels), size, size, time.perf_counter() - started)
    _write_cache(path, found)
    return found


def count_pictures(font: Path = FONT, emoji_test: Path = EMOJI_TEST, folder: Path | None = None) -> int:
    """How many pictures the source holds: from a cache file of any size, else by drawing them
    at the font's own size (nothing is written; loading draws and caches them at the model's)."""
    check_installed(font, emoji_test)
    pattern = f"emoji-*px-{fingerprint(font, emoji_test)}.npz"
    for path in sorted((folder or cache_folder()).glob(pattern)):
        count = _cached_count(path)
        if count is not None:
            return count
    return sum(1 for _ in drawn(font, emoji_test))


def _cached_count(path: Path) -> int | None:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return len(archive["labels"])
    except Exception:  # a damaged file may fail in any way; it is drawn again when loaded
        return None


def _read_cache(path: Path, size: int) -> Pictures | None:
    """The cached pictures, or None when there are none or the file is damaged in any way."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            found = Pictures(archive["images"], archive["labels"], list(archive["groups"]), list(archive["sequences"]))
        _check_cached(found, size)
    except Exception as error:  # a damaged file may fail in any way: each means "draw again"
        log.warning("drawing the emoji again: the cache file %s is damaged (%s)", path, error)
        return None
    return Pictures(found.images, found.labels, [str(g) for g in found.groups], [str(s) for s in found.sequences])


def _check_cached(found: Pictures, size: int) -> None:
    count = len(found.sequences)
    if found.images.dtype != np.uint8 or found.images.shape != (count, size, size, 3):
        raise ValueError(f"images of {found.images.shape} {found.images.dtype}")
    if found.labels.dtype != np.int64 or found.labels.shape != (count,):
        raise ValueError(f"labels of {found.labels.shape} {found.labels.dtype}")
    if count == 0 or found.labels.min() < 0 or found.labels.max() >= len(found.groups):
        raise ValueError("labels outside the groups")


def _write_cache(path: Path, found: Pictures) -> None:
    """Kept atomically; a cache that cannot be written (a read-only folder) only costs a redraw."""
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        images=found.images,
        labels=found.labels,
        groups=np.array(found.groups, dtype=str),
        sequences=np.array(found.sequences, dtype=str),
    )
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except CheckpointError as error:
        log.warning("the emoji are not cached: %s", error)
