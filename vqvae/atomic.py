"""Atomic file writes for checkpoint folders: a reader sees the old file or the whole new one.

    temp file in the same folder -> write -> flush -> fsync -> os.replace -> fsync the folder

A crash at any point leaves the previous file in place (and at worst a stale temp file,
which the next training run into that folder removes). A failure the user can cause or
meet (a full disk, a read-only folder, no permission) is a CheckpointError naming the file,
its folder and the cause; the temp file is removed and the previous file left as it was.
No torch here, so the app can use it before torch has loaded.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import CheckpointError

log = logging.getLogger(__name__)

TEMP_SUFFIX = ".tmp"
HINTS = {  # what the usual causes mean for whoever reads the message
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the folder is on a read-only file system",
    errno.EACCES: "no permission to write there",
    errno.EPERM: "no permission to write there",
}


def cannot_write(path: Path, error: OSError, kept: bool = True) -> CheckpointError:
    """Our message for an OSError while saving `path`: the file, its folder, the cause."""
    cause = error.strerror or str(error)
    hint = HINTS.get(error.errno)
    reason = f"{cause} ({hint})" if hint else cause
    outcome = f"; the previous {path.name}, if any, is unchanged" if kept else ""
    return CheckpointError(f"cannot save {path.name} in {path.parent}: {reason}{outcome}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write data to path so that readers see the old file or the whole new one."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as error:
        raise cannot_write(path, error) from error
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(error, OSError):
            raise cannot_write(path, error) from error
        raise
    try:  # the rename itself reaches the disk only with its folder
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as error:
        raise cannot_write(path, error, kept=False) from error


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, allow_nan=False) + "\n").encode())


def remove_stale_temp_files(folder: Path, names: Iterable[str]) -> int:
    """Delete the temp files a killed writer of these files left in `folder`; returns how many."""
    removed = 0
    for name in names:
        for stale in Path(folder).glob(f".{name}.*{TEMP_SUFFIX}"):
            with contextlib.suppress(OSError):
                stale.unlink()
                removed += 1
    if removed:
        log.info("removed %d temp file(s) left in %s by an interrupted save", removed, folder)
    return removed
