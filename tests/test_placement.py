"""placement.py: a network computes on its weights' device and answers on its caller's. Without a second
real device here, the weights sit on PyTorch's meta device, which holds shapes and no values."""

import torch
from torch import nn

from vqvae.config import preset
from vqvae.families import build_model
from vqvae.placement import moved, on_weights, weights_device


class Spy(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(3))
        self.seen: list = []

    @on_weights
    def answer(self, x, grids, labels=None):
        label_device = None if labels is None else labels.device.type
        self.seen.append((x.device.type, [g.device.type for g in grids], label_device))
        return torch.zeros(1) if x.is_meta else x  # a meta answer has no values to bring back


def test_the_inputs_of_a_marked_method_move_to_the_weights_device():
    spy = Spy().to("meta")
    spy.answer(torch.ones(2), [torch.zeros(1), torch.zeros(1)], labels=torch.zeros(2))
    assert spy.seen == [("meta", ["meta", "meta"], "meta")]


def test_nothing_moves_when_the_question_is_on_the_weights_device():
    spy = Spy()
    x = torch.ones(2)
    assert spy.answer(x, []) is x  # the very tensor: no copy on the CPU-only path


def test_the_device_of_a_module_of_buffers_alone_is_its_buffers():
    ema = build_model(preset("digits-tiny").vqvae).quantizer  # EMA codes: buffers, no parameters
    assert not list(ema.parameters())
    assert weights_device(ema.to("meta")) == torch.device("meta")
    assert weights_device(nn.Module()) == torch.device("cpu")


def test_moved_takes_lists_and_tuples_and_keeps_other_values():
    out = moved([torch.ones(1), (torch.ones(1), None), 3], torch.device("meta"))
    assert out[0].is_meta and out[1][0].is_meta and out[1][1] is None and out[2] == 3


def test_the_models_encode_and_decode_move_a_cpu_question_to_meta_weights():
    model = build_model(preset("digits-tiny").vqvae).eval().to("meta")
    seen = []
    model.encoder.register_forward_pre_hook(lambda module, args: seen.append(args[0].device.type))
    try:
        model.encode(torch.rand(2, 1, 8, 8))
    except (RuntimeError, NotImplementedError):  # the answer, of no values, cannot come back to the CPU
        pass
    assert seen == ["meta"]
