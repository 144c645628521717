"""Which checkpoint folders may be opened: those directly inside the checkpoint roots.

A choice coming from a user (a dropdown value, or a raw API call) is only ever matched
against this listing, so `..`, absolute paths and symlinks that lead out of a root cannot
name a folder. Hidden folders are never listed: a run started from the app trains in
runs/.NAME.partial and becomes runs/NAME only once it has ended (run_child.py).

Each root's listing is kept and read again only when the root changes: a folder made, removed
or renamed in it changes the root's modification time, and a file made in a folder that was not
yet complete (a command-line run still training) changes that folder's. So a model call costs a
few stat calls, however many runs the root holds.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CheckpointError
from ..files import CONFIG, WEIGHTS

# A listing read within this long of a change it depends on is read again next time: a change in the
# same tick of the file system's clock would leave the time it records as it was.
SETTLE_NS = 2_000_000_000


@dataclass(frozen=True)
class _Listing:
    stamp: tuple[int, ...]  # the root's device, inode and modification time
    waiting: tuple[tuple[Path, int], ...]  # folders not yet a checkpoint, each with its modification time
    found: dict[str, Path]  # label -> folder, in listing order
    settled: bool  # nothing it depends on changed just before it was read: it may be kept


@dataclass(frozen=True)
class Catalog:
    roots: tuple[Path, ...]  # e.g. (checkpoints/, runs/)
    base: Path  # choices are shown relative to this folder
    _listings: dict[Path, _Listing] = field(default_factory=dict, init=False, repr=False, compare=False)

    def choices(self) -> list[str]:
        """Every loadable-looking checkpoint folder, as 'root/name', shipped ones first."""
        return [label for root in self.roots for label in self._listing(root).found]

    def resolve(self, choice: str | None) -> Path:
        """The folder of a listed choice, still complete now; anything else is refused."""
        if isinstance(choice, str):
            for root in self.roots:
                folder = self._listing(root).found.get(choice)
                if folder is not None and _complete(folder):
                    return folder.resolve()
        raise CheckpointError(f"{choice!r} is not one of the checkpoints offered here")

    def _listing(self, root: Path) -> _Listing:
        stamp = _stamp(root)
        kept = self._listings.get(root)
        if kept is not None and kept.settled and kept.stamp == stamp and all(_mtime(f) == t for f, t in kept.waiting):
            return kept
        listing = self._read(root, stamp)
        self._listings[root] = listing
        return listing

    def _read(self, root: Path, stamp: tuple[int, ...]) -> _Listing:
        """The real, non-hidden folders directly in `root` that hold a config and weights."""
        started = time.time_ns()
        found: dict[str, Path] = {}
        waiting: list[tuple[Path, int]] = []
        try:
            entries = sorted(os.scandir(root), key=lambda e: e.name) if stamp else []
        except OSError:  # gone since its stat: read again next time
            entries, started = [], 0
        for entry in entries:
            # a real folder (not a link) directly in the root, so its resolved path lies in the root's
            if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                continue
            folder = root / entry.name
            if _holds_checkpoint(folder):
                found[label(folder, self.base)] = folder
            else:
                waiting.append((folder, _mtime(folder)))
        times = [stamp[-1]] if stamp else []
        settled = all(started - t > SETTLE_NS for t in times + [t for _, t in waiting])
        return _Listing(stamp, tuple(waiting), found, settled)


def label(folder: Path, base: Path) -> str:
    """How the picker names a checkpoint folder: 'root/name' as seen from `base`; in a root elsewhere,
    by the root's name and its own, so that no choice shows where it lies on the server."""
    try:
        return folder.relative_to(base).as_posix()
    except ValueError:
        return f"{folder.parent.name}/{folder.name}"


def _complete(folder: Path) -> bool:
    """A real folder (not a link) holding a config and weights."""
    return not folder.is_symlink() and _holds_checkpoint(folder)


def _holds_checkpoint(folder: Path) -> bool:
    return (folder / CONFIG).is_file() and (folder / WEIGHTS).is_file()


def _stamp(root: Path) -> tuple[int, ...]:
    """What changes when a name in `root` is made, removed or renamed; () when it is not a folder."""
    try:
        info = root.stat()
    except OSError:
        return ()
    return (info.st_dev, info.st_ino, info.st_mtime_ns) if stat.S_ISDIR(info.st_mode) else ()


def _mtime(folder: Path) -> int:
    try:
        return folder.stat(follow_symlinks=False).st_mtime_ns
    except OSError:
        return -1
