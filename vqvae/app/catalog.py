"""Which checkpoint folders may be opened: those directly inside the checkpoint roots.

A choice coming from a user (a dropdown value, or a raw API call) is only ever matched
against this listing, so `..`, absolute paths and symlinks that lead out of a root cannot
name a folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError
from ..files import CONFIG, WEIGHTS


@dataclass(frozen=True)
class Catalog:
    roots: tuple[Path, ...]  # e.g. (checkpoints/, runs/)
    base: Path  # choices are shown relative to this folder

    def choices(self) -> list[str]:
        """Every loadable-looking checkpoint folder, as 'root/name', shipped ones first."""
        found = []
        for root in self.roots:
            if not root.is_dir():
                continue
            for folder in sorted(root.iterdir()):
                if self._inside(folder, root) and (folder / CONFIG).is_file() and (folder / WEIGHTS).is_file():
                    found.append(self._label(folder))
        return found

    def resolve(self, choice: str | None) -> Path:
        """The folder of a listed choice; anything else is refused."""
        if not isinstance(choice, str) or choice not in self.choices():
            raise CheckpointError(f"{choice!r} is not one of the checkpoints offered here")
        for root in self.roots:
            folder = root / Path(choice).name
            if self._label(folder) == choice and self._inside(folder, root):
                return folder.resolve()
        raise CheckpointError(f"{choice!r} is not one of the checkpoints offered here")

    def _label(self, folder: Path) -> str:
        try:
            return folder.relative_to(self.base).as_posix()
        except ValueError:
            return folder.as_posix()

    @staticmethod
    def _inside(folder: Path, root: Path) -> bool:
        """A real folder (not a symlink) whose resolved path lies in the resolved root."""
        if folder.is_symlink() or not folder.is_dir():
            return False
        return folder.resolve().parent == root.resolve()
