import dataclasses
import json
import pickle

import pytest
import torch

from vqvae import checkpoint as ckpt
from vqvae.config import DataFacts
from vqvae.errors import CheckpointError
from vqvae.train import train_vqvae


@pytest.fixture
def trained(tiny, tmp_path):
    folder = tmp_path / "run"
    train_vqvae(tiny.vqvae, dataclasses.replace(tiny.train, steps=10), folder)
    return folder


def test_round_trip_gives_identical_outputs(tiny, tmp_path):
    folder = tmp_path / "run"
    events = []
    train_vqvae(tiny.vqvae, dataclasses.replace(tiny.train, steps=10), folder, on_event=events.append)
    loaded = ckpt.load_checkpoint(folder)
    again = ckpt.load_checkpoint(folder)
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded.model.encode(x), again.model.encode(x))
        assert torch.equal(loaded.model(x).x_hat, again.model(x).x_hat)
    assert loaded.config == tiny.vqvae
    assert loaded.history[-1]["step"] == 10
    assert not loaded.model.training


def test_round_trip_of_a_model_in_memory(tiny, tmp_path):
    from vqvae.model import VQVAE

    model = VQVAE(tiny.vqvae).train()
    model(torch.rand(16, 1, 8, 8))  # k-means init and an EMA step: every buffer non-trivial
    model.eval()
    ckpt.save_config(tmp_path, tiny.vqvae, tiny.train, DataFacts())
    ckpt.save_weights(tmp_path, model, step=1)
    loaded = ckpt.load_checkpoint(tmp_path).model
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(x).x_hat, loaded(x).x_hat)
    for name, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[name])


def test_writes_leave_no_temporary_files(trained):
    assert sorted(p.name for p in trained.iterdir()) == sorted(
        [ckpt.CONFIG, ckpt.WEIGHTS, ckpt.TRAIN_STATE, ckpt.HISTORY]
    )


def test_a_missing_folder_or_file_raises_the_projects_error(trained, tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint folder"):
        ckpt.load_checkpoint(tmp_path / "nowhere")
    (trained / ckpt.WEIGHTS).unlink()
    with pytest.raises(CheckpointError, match="vqvae.safetensors is missing"):
        ckpt.load_checkpoint(trained)


def test_a_truncated_weights_file_is_refused(trained):
    data = (trained / ckpt.WEIGHTS).read_bytes()
    (trained / ckpt.WEIGHTS).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        ckpt.load_checkpoint(trained)


def test_a_pickle_renamed_to_safetensors_is_refused_and_never_run(trained, tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (trained / ckpt.WEIGHTS).write_bytes(pickle.dumps(Payload()))
    with pytest.raises(CheckpointError):
        ckpt.load_checkpoint(trained)
    assert not marker.exists()


def test_weights_that_do_not_match_the_config_are_refused(trained):
    config = json.loads((trained / ckpt.CONFIG).read_text())
    config["vqvae"]["quantizer"]["num_embeddings"] = 64
    (trained / ckpt.CONFIG).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="shape"):
        ckpt.load_checkpoint(trained)


def test_nan_weights_are_refused(trained):
    tensors, metadata = ckpt.read_tensors(trained / ckpt.WEIGHTS)
    name = next(k for k, v in tensors.items() if v.is_floating_point() and v.numel() > 1)
    tensors[name][0] = float("nan")
    from safetensors.torch import save_file

    save_file(tensors, str(trained / ckpt.WEIGHTS), metadata=metadata)
    with pytest.raises(CheckpointError, match="NaN"):
        ckpt.load_checkpoint(trained)


def test_saving_nan_weights_is_refused_and_the_old_file_kept(trained):
    before = (trained / ckpt.WEIGHTS).read_bytes()
    model = ckpt.load_checkpoint(trained).model
    with torch.no_grad():
        next(model.parameters())[...] = float("nan")
    with pytest.raises(CheckpointError, match="NaN"):
        ckpt.save_weights(trained, model, step=99)
    assert (trained / ckpt.WEIGHTS).read_bytes() == before


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda c: c["vqvae"]["quantizer"].update(num_embeddings=0), "invalid setting"),
        (lambda c: c["vqvae"]["model"].update(colour="blue"), "invalid setting"),
        (lambda c: c.update(format_version=99), "format_version"),
        (lambda c: c.pop("vqvae"), "invalid setting"),
    ],
)
def test_a_bad_config_is_refused(trained, edit, message):
    config = json.loads((trained / ckpt.CONFIG).read_text())
    edit(config)
    (trained / ckpt.CONFIG).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=message):
        ckpt.load_checkpoint(trained)


def test_a_config_that_is_not_json_is_refused(trained):
    (trained / ckpt.CONFIG).write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        ckpt.load_checkpoint(trained)


def test_config_json_names_its_model_family_and_one_loader_reads_it(trained):
    raw = json.loads((trained / ckpt.CONFIG).read_text())
    assert raw["family"] == "vqvae" and set(raw) >= {"vqvae", "train", "extra"}
    assert ckpt.load_config(trained).family == "vqvae"


def test_a_folder_from_before_families_were_named_loads_as_a_vqvae(trained):
    raw = json.loads((trained / ckpt.CONFIG).read_text())
    del raw["family"]  # as the shipped folder and every folder written before
    (trained / ckpt.CONFIG).write_text(json.dumps(raw))
    assert ckpt.load_config(trained).family == "vqvae"
    assert ckpt.load_checkpoint(trained).step == 10


def test_a_family_this_version_does_not_know_is_refused_by_name(trained):
    raw = json.loads((trained / ckpt.CONFIG).read_text())
    (trained / ckpt.CONFIG).write_text(json.dumps(raw | {"family": "video"}))
    with pytest.raises(CheckpointError, match="family 'video', which this version cannot load"):
        ckpt.load_checkpoint(trained)


def test_the_data_facts_are_typed(trained):
    facts = ckpt.load_checkpoint(trained).data
    assert isinstance(facts, DataFacts) and facts.labelled and facts.class_names == [str(d) for d in range(10)]
    assert facts.train_images > 0 and facts.data_variance > 0
