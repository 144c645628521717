"""Ctrl-C (SIGINT) and SIGTERM during training: stop after the current step, save, and say so.

The first signal only asks the training loop to stop: it is the loop's `should_stop`, so the
loop finishes its step, saves, and returns. The command then exits with 128 + the signal's
number (130 for Ctrl-C, 143 for SIGTERM), the shell's convention for a process ended by a
signal, so that `train && train-prior` does not go on after a Ctrl-C. A second signal raises
KeyboardInterrupt at once: every file is written atomically, so the folder keeps its last
complete save.

Under torchrun a process gets a Ctrl-C twice, from the terminal and forwarded by torchrun, so
there the second is not a hard stop: torchrun itself ends the processes (SIGKILL) if they have
not stopped within its grace period. The ranks agree on the step to stop at (distributed.py).
"""

from __future__ import annotations

import os
import signal
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def under_launcher() -> bool:
    """Whether torchrun started this process (it sets TORCHELASTIC_RUN_ID)."""
    return "TORCHELASTIC_RUN_ID" in os.environ


class SignalStop:
    """A context manager that turns the first Ctrl-C or SIGTERM into a request to stop."""

    def __init__(self, launched: bool | None = None) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}
        self.launched = under_launcher() if launched is None else launched

    def __enter__(self) -> SignalStop:
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None and not self.launched:
            raise KeyboardInterrupt
        self.signum = signum

    def __call__(self) -> bool:
        """The training loop's `should_stop`."""
        return self.signum is not None

    @property
    def name(self) -> str:
        if self.signum is None:
            return "a signal to another process of the run"
        return "Ctrl-C" if self.signum == signal.SIGINT else signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        """128 + the signal's number; a rank of a data-parallel run that stopped with the others, but had no
        signal of its own, ends as if terminated."""
        return 128 + (self.signum if self.signum is not None else signal.SIGTERM)
