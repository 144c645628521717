"""Which checkpoint folders a user may open: only those listed, never a path they make up; and the
listing, kept between calls, always as the roots are now."""

import os

import pytest

from vqvae import checkpoint as ckpt
from vqvae.app.catalog import Catalog
from vqvae.errors import CheckpointError


def fake_checkpoint(folder, config=True, weights=True):
    """A folder that looks like a checkpoint; choices() never loads it, so empty files do."""
    folder.mkdir(parents=True)
    if config:
        (folder / ckpt.CONFIG).write_text("")
    if weights:
        (folder / ckpt.WEIGHTS).write_bytes(b"")
    return folder


@pytest.fixture
def catalog(tmp_path):
    base = tmp_path / "app"
    shipped, runs = base / "shipped", base / "runs"  # "runs" sorts first, but shipped ones are listed first
    fake_checkpoint(shipped / "mnist")
    fake_checkpoint(shipped / "no-weights", weights=False)
    fake_checkpoint(shipped / "no-config", config=False)
    fake_checkpoint(runs / "b-run")
    fake_checkpoint(runs / "a-run")
    fake_checkpoint(runs / ".c-run.partial")  # a run still training: hidden until it has ended
    fake_checkpoint(shipped / ".hidden")
    (runs / "notes.txt").write_text("not a folder")
    (runs / ckpt.CONFIG).write_text("")  # files of a root itself do not make it a checkpoint
    outside = fake_checkpoint(tmp_path / "elsewhere" / "secret")
    os.symlink(outside, runs / "link-out", target_is_directory=True)
    os.symlink(shipped / "mnist", runs / "link-in", target_is_directory=True)  # a symlink, even to a listed one
    os.symlink(runs / "a-run", runs / "alias", target_is_directory=True)  # ... or to a sibling in its own root
    return Catalog(roots=(shipped, runs, base / "missing"), base=base)


def test_choices_list_only_complete_real_folders_shipped_first(catalog):
    assert catalog.choices() == ["shipped/mnist", "runs/a-run", "runs/b-run"]


def test_resolve_returns_the_listed_folder(catalog):
    base = catalog.base
    assert catalog.resolve("shipped/mnist") == (base / "shipped" / "mnist").resolve()
    assert catalog.resolve("runs/a-run") == (base / "runs" / "a-run").resolve()
    assert all(catalog.resolve(choice).is_dir() for choice in catalog.choices())


@pytest.mark.parametrize(
    "choice",
    [
        "../elsewhere/secret",
        "runs/../../elsewhere/secret",
        "runs/../shipped/mnist",
        "shipped/./mnist",
        "./runs/a-run",
        "runs/a-run/",
        "mnist",
        "runs/link-out",
        "runs/link-in",
        "runs/alias",
        "runs/.c-run.partial",
        "shipped/.hidden",
        "shipped/no-weights",
        "shipped/no-config",
        "missing/anything",
        "runs",
        "runs/notes.txt",
        "",
        "RUNS/A-RUN",
        None,
        3,
        b"runs/a-run",
        ["runs/a-run"],
        ("runs", "a-run"),
    ],
)
def test_anything_not_listed_is_refused(catalog, choice):
    with pytest.raises(CheckpointError, match="is not one of the checkpoints offered here"):
        catalog.resolve(choice)


def test_absolute_paths_are_refused_even_to_a_listed_folder(catalog, tmp_path):
    for path in [catalog.base / "runs" / "a-run", tmp_path / "elsewhere" / "secret"]:
        for choice in (str(path), path):
            with pytest.raises(CheckpointError):
                catalog.resolve(choice)


def test_a_folder_made_after_listing_is_offered_and_a_deleted_one_is_not(catalog):
    fake_checkpoint(catalog.base / "runs" / "c-run")
    assert catalog.resolve("runs/c-run").name == "c-run"
    (catalog.base / "runs" / "a-run" / ckpt.WEIGHTS).unlink()
    with pytest.raises(CheckpointError):
        catalog.resolve("runs/a-run")


def test_a_root_outside_the_base_is_listed_by_its_own_name_never_its_server_path(tmp_path):
    folder = fake_checkpoint(tmp_path / "other" / "run")
    catalog = Catalog(roots=(tmp_path / "other",), base=tmp_path / "app")
    assert catalog.choices() == ["other/run"]
    assert catalog.resolve("other/run") == folder.resolve()
    with pytest.raises(CheckpointError):
        catalog.resolve(folder.as_posix())


PAST = 1_600_000_000 * 10**9  # September 2020, in ns


def settle(*folders) -> None:
    """Set the folders' modification time back, as the runs folder is between runs."""
    for folder in folders:
        os.utime(folder, ns=(PAST, PAST))


def test_a_root_is_read_again_only_when_it_or_an_unfinished_folder_in_it_changes(catalog):
    runs = catalog.base / "runs"
    waiting = fake_checkpoint(runs / "c-run", weights=False)  # e.g. a command-line run before its first save
    settle(runs, waiting, catalog.base / "shipped")
    assert catalog.choices() == ["shipped/mnist", "runs/a-run", "runs/b-run"]

    fake_checkpoint(runs / "d-run")  # made behind the root's back: its time set back as it was
    settle(runs)
    assert "runs/d-run" not in catalog.choices()  # the root looks unchanged, so it was not read again
    (waiting / ckpt.WEIGHTS).write_bytes(b"")  # the unfinished folder saves its weights
    assert catalog.choices()[-3:] == ["runs/b-run", "runs/c-run", "runs/d-run"]  # read again, both offered


def test_a_run_that_ends_after_a_listing_is_offered_on_the_next_call(catalog):
    runs = catalog.base / "runs"
    settle(runs, catalog.base / "shipped")
    assert catalog.choices() == ["shipped/mnist", "runs/a-run", "runs/b-run"]
    with pytest.raises(CheckpointError):
        catalog.resolve("runs/c-run")
    (runs / ".c-run.partial").rename(runs / "c-run")  # how a run takes its name when it has ended
    assert catalog.choices()[-1] == "runs/c-run"
    assert catalog.resolve("runs/c-run") == (runs / "c-run").resolve()
