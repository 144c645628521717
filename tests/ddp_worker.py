"""One rank of a data-parallel VQ-VAE run, started by torchrun from tests/test_distributed.py.

It trains through the library's own loop and then writes what this rank holds (every weight and
codebook buffer) and how many codes its quantiser re-seeded, so the test can compare ranks with
each other and with one process. After the model is built each rank's global generator is set
apart from the others' (seed + rank), so equal codebooks show that restarts and initialisations
are drawn once and broadcast, not drawn alike by chance.

    torchrun --standalone --nproc-per-node N -m tests.ddp_worker OUT_FOLDER STEPS
"""

import json
import sys
from pathlib import Path

import torch

from vqvae import distributed
from vqvae.config import preset
from vqvae.data import load_split, pixel_variance
from vqvae.families import build_model
from vqvae.runtime import pick_runtime
from vqvae.train import VQVAETask, train_loop


def main(out: Path, steps: int) -> None:
    shard = distributed.shard_from_environment()
    runtime = pick_runtime("cpu", "fp32", shard)
    distributed.join(shard, runtime.device)
    chosen = preset("digits-tiny")
    config, training = chosen.vqvae, chosen.train
    training = type(training)(**{**vars(training), "steps": steps, "save_every": 10_000, "log_every": 5})
    split = load_split(training.data, config.model.image_size, config.model.in_channels)
    torch.manual_seed(training.seed)
    model = build_model(config)
    torch.manual_seed(1000 + shard.rank)
    reseeded = []
    kind = type(model.quantizer)
    original = kind._set_codes

    def counting(self, which, codes):
        reseeded.append(int(which.sum()))
        original(self, which, codes)

    kind._set_codes = counting
    task = VQVAETask(model, split.train.images, training, pixel_variance(split.train.images), shard)
    folder = out / "folder"
    if shard.main:
        folder.mkdir(parents=True)
    distributed.barrier()
    train_loop(task, training, folder, runtime=runtime)
    torch.save(model.state_dict(), out / f"rank{shard.rank}.pt")
    (out / f"rank{shard.rank}.json").write_text(json.dumps({"reseeded": reseeded}))
    distributed.leave()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
