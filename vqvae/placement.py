"""Where a network computes: on the device its weights are on, whatever device a question comes from.

A trained model may sit on a GPU while the data, the app's pictures and the saved codes stay on the
CPU. The inference entry points (a VQ-VAE's encode and decode, a quantiser's lookups, a prior's
log-probabilities) are marked `on_weights`: their tensor arguments move to the weights' device, and
the answer comes back to the device of the first one. On a CPU-only machine both are the CPU and
nothing moves. Training moves each batch itself (runtime.py), so these moves are no-ops there.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn

Method = TypeVar("Method", bound=Callable[..., Any])


def weights_device(module: nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (the CPU for a module with neither)."""
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


def moved(value: Any, device: torch.device) -> Any:
    """A tensor, or a list or plain tuple of them (None and other values kept), on `device`."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, list):
        return [moved(part, device) for part in value]
    if type(value) is tuple:
        return tuple(moved(part, device) for part in value)
    return value


def _first_device(values: Any) -> torch.device | None:
    for value in values:
        if isinstance(value, torch.Tensor):
            return value.device
        if isinstance(value, (list, tuple)) and (found := _first_device(value)) is not None:
            return found
    return None


def on_weights(method: Method) -> Method:
    """Mark a module's method as computing on its weights' device and answering on its caller's."""

    @functools.wraps(method)
    def placed(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
        asked = _first_device((*args, *kwargs.values()))
        device = weights_device(self)
        if asked is None or asked == device:
            return method(self, *args, **kwargs)
        answer = method(self, *moved(list(args), device), **{k: moved(v, device) for k, v in kwargs.items()})
        return moved(answer, asked)

    return placed  # type: ignore[return-value]
