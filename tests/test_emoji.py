"""`--data emoji`: the pictures Noto Color Emoji draws, labelled by Unicode emoji group (scripts/test.sh
installs Debian's fonts-noto-color-emoji and unicode-data). One picture per emoji, sequences included,
drawn once per size into the user's cache and read back from it; a missing or wrong font or list is
one clear line, and nothing is written."""

import dataclasses
import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from vqvae import emoji
from vqvae.app.exposure import allowed_source
from vqvae.data import TEST_FRACTION, load_source, load_split
from vqvae.errors import DataError
from vqvae.sources import check_source, count_images
from vqvae.train import train_vqvae

GROUPS = [
    "Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink", "Travel & Places",
    "Activities", "Objects", "Symbols", "Flags",
]  # fmt: skip
GRINNING, MAN = "\U0001f600", "\U0001f468"
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # man ZWJ woman ZWJ girl
JAPAN = "\U0001f1ef\U0001f1f5"  # regional indicators J, P
KEYCAP = "#\ufe0f\u20e3"
SIZE = 16  # small, so the whole source draws in a few seconds
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
RENDER = emoji.render  # the real one, for tests that count its calls

# A short emoji-test.txt: one emoji of each kind the rules keep or leave out.
LIST = """\
# group: Smileys & Emotion
1F600 ; fully-qualified # grinning face
263A FE0F ; fully-qualified # smiling face
263A ; unqualified # smiling face, without its presentation selector
1F600 200D ; fully-qualified # a grinning face and a stray ZWJ: drawn as the face alone
# group: People & Body
1F468 200D 1F469 200D 1F467 ; fully-qualified # family: man, woman, girl
1F468 200D 1F468 200D 1F468 200D 1F468 ; fully-qualified # four men: no such emoji, four glyphs
# group: Component
1F3FB ; component # light skin tone
1F3FC ; fully-qualified # medium-light skin tone, as if fully qualified: a part, not a picture
# group: Symbols
E000 ; fully-qualified # a private-use code point: the empty .notdef glyph
1F600 ; fully-qualified # grinning face again: a picture already taken
# group: Flags
1F1EF 1F1F5 ; fully-qualified # flag: Japan
"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A cache folder of its own as $VQVAE_CACHE, for the whole module: the source is drawn once."""
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VQVAE_CACHE", str(folder))
        yield folder


@pytest.fixture
def short_list(tmp_path):
    path = tmp_path / "emoji-test.txt"
    path.write_text(LIST, encoding="utf-8")
    return path


def test_the_source_is_every_group_in_colour_on_white_drawn_at_the_models_size(cache):
    split = load_split("emoji", SIZE, 3)
    (cached,) = cache.glob(f"emoji-{SIZE}px-*.npz")  # drawn straight to the model's size
    with np.load(cached, allow_pickle=False) as archive:
        assert archive["images"].dtype == np.uint8 and archive["images"].shape[1:] == (SIZE, SIZE, 3)
    for part in (split.train, split.test):
        assert part.images.dtype.is_floating_point and part.images.shape[1:] == (3, SIZE, SIZE)
        assert part.class_names == GROUPS
        assert 0.0 <= float(part.images.min()) and float(part.images.max()) == 1.0
    images = split.train.images
    edges = torch.cat([images[..., 0, :], images[..., -1, :], images[..., 0], images[..., -1]], -1)  # (N, 3, 4 * H)
    assert float((edges.mean((1, 2)) > 0.9).float().mean()) > 0.9  # on white
    assert float((images > 0.98).all(1).float().mean()) > 0.3
    spread = images.max(1).values - images.min(1).values  # (N, H, W): 0 for a grey pixel
    assert float((spread > 0.3).float().mean()) > 0.05  # and colour in them
    assert count_images("emoji") == len(split.train) + len(split.test) > 3000


def test_every_group_is_in_both_splits_with_a_tenth_of_it_held_out(cache):
    split = load_split("emoji", SIZE, 3)
    train = np.bincount(split.train.labels.numpy(), minlength=len(GROUPS))
    test = np.bincount(split.test.labels.numpy(), minlength=len(GROUPS))
    assert (train > 0).all() and (test > 0).all()
    assert (test == np.round((train + test) * TEST_FRACTION)).all()
    again = load_split("emoji", SIZE, 3)  # the same fixed split every time
    assert (again.test.images == split.test.images).all()


def test_flags_keycaps_and_zwj_sequences_are_one_picture_each_with_their_group(cache):
    drawn = emoji.pictures(SIZE)
    assert len(drawn.sequences) == len(set(drawn.sequences)) == len(drawn.labels) == len(drawn.images)
    group_of = {sequence: drawn.groups[label] for sequence, label in zip(drawn.sequences, drawn.labels)}
    assert group_of[FAMILY] == "People & Body" and group_of[JAPAN] == "Flags" and group_of[KEYCAP] == "Symbols"
    assert "\U0001f3fb" not in group_of  # the Component group's skin-tone swatch
    image = {sequence: drawn.images[i].astype(int) for i, sequence in enumerate(drawn.sequences)}
    assert np.abs(image[FAMILY] - image[MAN]).mean() > 10  # the family's own picture, not a man's


def test_one_glyph_of_its_own_each_and_no_picture_twice(tmp_path, short_list):
    drawn = emoji.pictures(SIZE, emoji_test=short_list, folder=tmp_path / "cache")
    assert drawn.sequences == [GRINNING, "\u263a\ufe0f", FAMILY, JAPAN]
    assert drawn.groups == ["Smileys & Emotion", "People & Body", "Flags"]  # only groups with pictures
    assert drawn.labels.tolist() == [0, 0, 1, 2]
    assert drawn.images.shape == (4, SIZE, SIZE, 3) and drawn.images.dtype == np.uint8
    font = emoji.EmojiFont()
    assert font.one_glyph(MAN + "\u200d" + MAN) is None  # two glyphs side by side
    assert font.one_glyph("\ue000") is None  # the empty .notdef glyph
    assert font.one_glyph(GRINNING + "\U000e0067\U000e007f") is None  # unknown tags: the face alone


def test_the_cache_is_read_back_without_drawing_and_a_changed_list_is_drawn_again(tmp_path, short_list, monkeypatch):
    folder = tmp_path / "cache"
    first = emoji.pictures(SIZE, emoji_test=short_list, folder=folder)
    (cached,) = folder.iterdir()
    written = cached.stat().st_mtime_ns

    def no_drawing(*args, **kwargs):
        raise AssertionError("drew again")

    with monkeypatch.context() as patch:
        patch.setattr(emoji, "render", no_drawing)
        patch.setattr(emoji, "drawn", no_drawing)
        again = emoji.pictures(SIZE, emoji_test=short_list, folder=folder)
        assert emoji.count_pictures(emoji_test=short_list, folder=folder) == 4
    assert (again.images == first.images).all() and again.sequences == first.sequences
    assert again.groups == first.groups and (again.labels == first.labels).all()
    assert cached.stat().st_mtime_ns == written

    short_list.write_text(LIST.replace("1F1EF 1F1F5", "1F1EB 1F1F7"), encoding="utf-8")  # France, not Japan
    changed = emoji.pictures(SIZE, emoji_test=short_list, folder=folder)
    assert changed.sequences[-1] == "\U0001f1eb\U0001f1f7" and len(list(folder.iterdir())) == 2


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong size"])
def test_a_damaged_cache_file_is_drawn_again(tmp_path, short_list, monkeypatch, damage):
    folder = tmp_path / "cache"
    first = emoji.pictures(SIZE, emoji_test=short_list, folder=folder)
    (cached,) = folder.iterdir()
    whole = cached.read_bytes()
    if damage == "garbage":
        cached.write_bytes(b"not a zip archive" * 100)
    elif damage == "truncated":
        cached.write_bytes(whole[: len(whole) // 2])
    else:
        np.savez(cached.with_suffix(""), images=first.images[:, :8], labels=first.labels, groups=first.groups,
                 sequences=first.sequences)  # fmt: skip
    calls = []
    monkeypatch.setattr(emoji, "render", lambda *args: calls.append(args) or RENDER(*args))
    again = emoji.pictures(SIZE, emoji_test=short_list, folder=folder)
    assert len(calls) == 1 and (again.images == first.images).all()
    with np.load(cached, allow_pickle=False) as archive:  # replaced by a whole one
        assert archive["images"].shape == first.images.shape


def test_without_the_font_or_the_list_one_line_names_the_package_and_writes_nothing(tmp_path, short_list):
    folder = tmp_path / "cache"
    cases = {
        "sudo apt-get install fonts-noto-color-emoji": dict(font=tmp_path / "NotoColorEmoji.ttf"),
        "sudo apt-get install unicode-data": dict(emoji_test=tmp_path / "emoji-test.txt.missing"),
    }
    for message, paths in cases.items():
        arguments = {"emoji_test": short_list, "folder": folder} | paths
        for attempt in (
            functools.partial(emoji.pictures, SIZE, **arguments),
            functools.partial(emoji.count_pictures, **arguments),
        ):
            with pytest.raises(DataError, match=message) as error:
                attempt()
            assert "\n" not in str(error.value)
    assert not folder.exists()


def test_a_font_without_colour_or_not_a_font_is_refused(tmp_path, short_list):
    folder = tmp_path / "cache"
    with pytest.raises(DataError, match="not a colour emoji font") as error:
        emoji.pictures(SIZE, font=DEJAVU, emoji_test=short_list, folder=folder)
    assert "fonts-noto-color-emoji" in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(DataError, match="cannot open .* as a font"):
        emoji.pictures(SIZE, font=short_list, emoji_test=short_list, folder=folder)
    notes = tmp_path / "notes.txt"
    notes.write_text("# group: Smileys & Emotion\nsome notes; not a list of emoji\n", encoding="utf-8")
    with pytest.raises(DataError, match="lists no fully-qualified emoji"):
        emoji.pictures(SIZE, emoji_test=notes, folder=folder)
    with pytest.raises(DataError, match="cannot read"):
        emoji.pictures(SIZE, emoji_test=DEJAVU, folder=folder)  # not text at all
    assert not folder.exists()


def test_the_source_names_a_missing_package_before_loading_or_counting(monkeypatch, tmp_path):
    monkeypatch.setattr(emoji, "check_installed", functools.partial(emoji.check_installed, tmp_path / "none.ttf"))
    for attempt in (lambda: load_source("emoji"), lambda: check_source("emoji", 32)):
        with pytest.raises(DataError, match="sudo apt-get install fonts-noto-color-emoji"):
            attempt()


def test_a_size_beyond_the_fonts_own_is_refused(tmp_path, short_list):
    with pytest.raises(DataError, match=f"1 to {emoji.MAX_SIZE} px"):
        emoji.pictures(emoji.MAX_SIZE + 1, emoji_test=short_list, folder=tmp_path)


def test_the_cache_folder_follows_the_environment(tmp_path):
    home = Path.home()
    assert emoji.cache_folder({"VQVAE_CACHE": str(tmp_path)}) == tmp_path
    assert emoji.cache_folder({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "vqvae-explorer"
    assert emoji.cache_folder({"XDG_CACHE_HOME": "relative"}) == home / ".cache" / "vqvae-explorer"
    assert emoji.cache_folder({}) == home / ".cache" / "vqvae-explorer"


def test_a_run_from_the_app_may_train_on_it(tmp_path):
    assert allowed_source("emoji", tmp_path, None) == "emoji"


def test_a_colour_model_trains_on_it(cache, tiny, tmp_path):
    model = dataclasses.replace(tiny.vqvae.model, in_channels=3, image_size=SIZE)
    config = dataclasses.replace(tiny.vqvae, model=model)
    result = train_vqvae(config, dataclasses.replace(tiny.train, data="emoji", steps=3), tmp_path / "run")
    assert result.step == 3
