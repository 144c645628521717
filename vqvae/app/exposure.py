"""Who may reach the app, and what a training run started from it may read.

Three ways to serve it:
    loopback       `python app.py`: only this machine reaches it; everything is on
    public demo    `--public` (or VQVAE_PUBLIC=1, for a hosted Space): anyone may explore the
                   shipped models; nobody may train (no run is started, stopped or polled)
    behind a login VQVAE_AUTH="user:password" or `--auth-file FILE` (never a password on the
                   command line, where `ps` shows it): Gradio asks for it before the first page,
                   and whoever passes may train
A non-loopback `--host` with neither is refused at start: a server reachable by others would let
them train on its disk.

Whatever the mode, a run reads a path source (folder:, idx:, npz:, cifar10:) only when its resolved
path lies under the app's data folder and outside the upload folder, and is refused otherwise with
one message that says nothing of the path: whether it exists, is a folder, or holds images.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import ExposureError, TrainingError
from ..sources import NAMED, PATH_KINDS

LOOPBACK = ("127.0.0.1", "localhost", "::1")
PUBLIC_VARIABLE = "VQVAE_PUBLIC"
LOGIN_VARIABLE = "VQVAE_AUTH"


@dataclass(frozen=True)
class Exposure:
    """How the app is served (see the module's docstring)."""

    public: bool = False
    login: tuple[str, str] | None = None  # (user, password) for Gradio's auth

    @property
    def training(self) -> bool:
        """Whether visitors may start training runs."""
        return not self.public or self.login is not None


def exposure_for(host: str, public: bool, auth_file: Path | None, environ: Mapping[str, str] = os.environ) -> Exposure:
    """The mode asked for by the flags and the environment; refuses a reachable host left open."""
    public = public or environ.get(PUBLIC_VARIABLE, "") not in ("", "0")
    login = read_login(auth_file, environ)
    if host not in LOOPBACK and not public and login is None:
        raise ExposureError(
            f"--host {host} makes the app reachable from other machines, where anyone could train on this "
            f"machine's disk: add --public for a demo without training, or set a login ({LOGIN_VARIABLE}="
            '"user:password", or --auth-file FILE)'
        )
    return Exposure(public, login)


def read_login(auth_file: Path | None, environ: Mapping[str, str] = os.environ) -> tuple[str, str] | None:
    """(user, password) from VQVAE_AUTH or the first line of an auth file, else None."""
    if environ.get(LOGIN_VARIABLE):
        text, where = environ[LOGIN_VARIABLE], LOGIN_VARIABLE
    elif auth_file is not None:
        try:
            text, where = Path(auth_file).read_text().splitlines()[0], str(auth_file)
        except (OSError, UnicodeDecodeError, IndexError):
            raise ExposureError(f"cannot read a login from {auth_file}: it must hold a line user:password") from None
    else:
        return None
    user, _, password = text.strip().partition(":")
    if not user or not password:
        raise ExposureError(f"{where} must hold user:password, both non-empty")
    return user, password


REFUSED_PATH = (
    f"this data source is not open to the app: it trains on {', '.join(NAMED)}, or a folder:, idx:, npz: or "
    "cifar10: source inside its data folder (python app.py --data-root DIR)"
)


def allowed_source(source: str, data_root: Path | None, uploads: Path | None) -> str:
    """`source` when a run from the app may read it, else TrainingError with REFUSED_PATH.

    A path counts by where it resolves (links followed), so neither `..` nor a link leads out."""
    kind, _, argument = source.partition(":")
    if kind in NAMED and not argument:
        return source
    if kind not in PATH_KINDS or not argument:
        raise TrainingError(
            f"unknown data source; use {', '.join(NAMED)}, or folder:, idx:, npz: or cifar10: with a path"
        )
    if data_root is None:
        raise TrainingError(REFUSED_PATH)
    path = (data_root / argument).resolve()  # an absolute argument replaces data_root here
    inside = path.is_relative_to(data_root.resolve())
    if not inside or (uploads is not None and path.is_relative_to(uploads.resolve())):
        raise TrainingError(REFUSED_PATH)
    return f"{kind}:{path}"


def without_paths(message: str, names: Mapping[Path, str]) -> str:
    """A message for a visitor: each of these folders (as written, and resolved) shown by its name."""
    for folder, name in names.items():
        for spelling in dict.fromkeys((str(folder.resolve()), str(folder))):
            message = message.replace(spelling, name)
    return message
