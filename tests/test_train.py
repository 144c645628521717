import dataclasses
import itertools

import pytest
import torch

from vqvae import checkpoint as ckpt
from vqvae.data import Dataset, Split, load_split, random_shift
from vqvae.errors import TrainingError
from vqvae.train import EpochSampler, train_vqvae


def weights(folder):
    return ckpt.read_tensors(folder / ckpt.WEIGHTS)[0]


def test_a_few_steps_lower_the_loss(tiny, tmp_path):
    result = train_vqvae(tiny.vqvae, dataclasses.replace(tiny.train, steps=60), tmp_path / "run")
    first, last = result.history[0], result.history[-1]
    assert last["loss"] < 0.8 * first["loss"]
    assert last["reconstruction_mse"] < first["reconstruction_mse"]
    assert result.step == 60
    assert [row["step"] for row in result.history] == list(range(5, 61, 5))


@pytest.mark.parametrize("shift", [0, 1])
def test_resume_after_n_steps_equals_2n_steps_uninterrupted(tiny, tmp_path, shift):
    train = dataclasses.replace(tiny.train, steps=40, save_every=7, augment_shift=shift)
    train_vqvae(tiny.vqvae, train, tmp_path / "straight")

    events = []
    train_vqvae(
        tiny.vqvae,
        train,
        tmp_path / "halves",
        on_event=events.append,
        should_stop=lambda: bool(events) and events[-1].step >= 20,
    )
    assert int(ckpt.read_tensors(tmp_path / "halves" / ckpt.WEIGHTS)[1]["step"]) == 20
    train_vqvae(tiny.vqvae, train, tmp_path / "halves", resume=True)

    straight, halves = weights(tmp_path / "straight"), weights(tmp_path / "halves")
    assert straight.keys() == halves.keys()
    for name in straight:
        assert torch.equal(straight[name], halves[name]), name
    steps = [row["step"] for row in ckpt.read_json(tmp_path / "halves" / ckpt.HISTORY)]
    assert steps == list(range(5, 41, 5))


def test_a_resume_between_two_logs_writes_the_same_history(tiny, tmp_path):
    """The row logged after a resume averages the whole window, steps before the stop included."""
    train = dataclasses.replace(tiny.train, steps=20, save_every=100)
    train_vqvae(tiny.vqvae, train, tmp_path / "straight")
    asked = itertools.count()  # the loop asks once before each step
    train_vqvae(tiny.vqvae, train, tmp_path / "halves", should_stop=lambda: next(asked) >= 7)
    assert ckpt.load_checkpoint(tmp_path / "halves").step == 7  # between the logs of steps 5 and 10
    train_vqvae(tiny.vqvae, train, tmp_path / "halves", resume=True)

    def rows(folder):
        return [{k: v for k, v in row.items() if k != "time_s"} for row in ckpt.read_json(folder / ckpt.HISTORY)]

    assert rows(tmp_path / "halves") == rows(tmp_path / "straight")


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_finite_checkpoint(tiny, tmp_path):
    clean = load_split("digits", 8, 1)
    folder = tmp_path / "run"
    train = dataclasses.replace(tiny.train, steps=10, save_every=5, lr_decay=False)
    events = []
    train_vqvae(
        tiny.vqvae,
        train,
        folder,
        data=clean,
        on_event=events.append,
        should_stop=lambda: bool(events) and events[-1].step >= 5,
    )
    poisoned = clean.train.images.clone()
    poisoned[:] = float("nan")
    bad = Split(Dataset(poisoned, clean.train.labels, clean.train.class_names), clean.test)
    with pytest.raises(TrainingError, match="step 6.*step 5"):
        train_vqvae(tiny.vqvae, train, folder, data=bad, resume=True)
    loaded = ckpt.load_checkpoint(folder)  # still loads: finite, validated
    assert int(ckpt.read_tensors(folder / ckpt.WEIGHTS)[1]["step"]) == 5
    assert all(torch.isfinite(p).all() for p in loaded.model.parameters())


def test_an_existing_checkpoint_is_never_overwritten(tiny, tmp_path):
    train = dataclasses.replace(tiny.train, steps=3)
    train_vqvae(tiny.vqvae, train, tmp_path)
    before = (tmp_path / ckpt.WEIGHTS).read_bytes()
    with pytest.raises(TrainingError, match="already holds a checkpoint"):
        train_vqvae(tiny.vqvae, train, tmp_path)
    assert (tmp_path / ckpt.WEIGHTS).read_bytes() == before


def test_a_batch_larger_than_the_data_is_refused(tiny, tmp_path):
    with pytest.raises(TrainingError, match="larger than"):
        train_vqvae(tiny.vqvae, dataclasses.replace(tiny.train, batch_size=5000), tmp_path)
    assert not (tmp_path / ckpt.WEIGHTS).exists()


def test_epoch_sampler_visits_every_image_once_per_epoch():
    sampler = EpochSampler(10, 3, seed=1)
    epoch = torch.cat([sampler.rows(s) for s in range(3)])
    assert len(set(epoch.tolist())) == 9
    assert torch.equal(EpochSampler(10, 3, seed=1).rows(4), sampler.rows(4))
    assert not torch.equal(sampler.rows(0), sampler.rows(3))


def test_a_time_limit_ends_the_run(tiny, tmp_path):
    result = train_vqvae(tiny.vqvae, dataclasses.replace(tiny.train, steps=None, minutes=0.01), tmp_path)
    assert 0 < result.step < 10_000
    saved = ckpt.load_checkpoint(tmp_path)  # the weights of the last step, saved as the time ran out
    assert saved.step == result.step and all(row["step"] <= result.step for row in saved.history)


def test_random_shift_translates_each_image_reproducibly():
    x = torch.zeros(16, 1, 8, 8)
    x[:, :, 3:5, 3:5] = 1.0  # a centred blob, away from the edges
    shifted = random_shift(x, 2, seed=0, step=3)
    assert shifted.shape == x.shape
    assert torch.equal(shifted.sum((1, 2, 3)), x.sum((1, 2, 3)))  # moved, not cut
    assert torch.equal(shifted, random_shift(x, 2, seed=0, step=3))
    assert not torch.equal(shifted, random_shift(x, 2, seed=0, step=4))
    positions = {tuple(torch.nonzero(image[0])[0].tolist()) for image in shifted}
    assert len(positions) > 1 and all(1 <= r <= 5 and 1 <= c <= 5 for r, c in positions)
