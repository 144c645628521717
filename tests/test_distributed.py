"""Data-parallel training on the CPU (vqvae/distributed.py): two gloo processes on the two cores,
started by torchrun as a user starts them.

Every rank trains on its slice of the run's batch; DDP averages the gradients, the quantiser sums
its statistics over the ranks and broadcasts rank 0's restarts. So after any number of steps the
ranks hold the same model, and it is the model one process trains on the whole batches.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vqvae import checkpoint as ckpt
from vqvae import distributed
from vqvae.__main__ import main
from vqvae.config import QuantizerConfig
from vqvae.data import load_source
from vqvae.quantizer import VectorQuantizerEMA

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--preset", "digits-tiny", "--no-eval"]
ENV = os.environ | {"OMP_NUM_THREADS": "1"}  # one thread per process, whichever the number of processes


def torchrun(*args: str, nproc: int = 2, timeout: float = 240) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *args]
    return subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)


def vqvae(*args: str) -> int:
    """`python -m vqvae ARGS` as one process, run in this one."""
    return main(list(args))


STATISTICS = ("usage", "cluster_size", "embed_sum")  # the codebook's running counts and sums


def close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """The same names, and values equal to float32 rounding. Sums over the ranks add in another order, so an
    encoder output that lies as near one code as another may pick the other: that moves the codebook's
    running statistics by one latent's share, (1 - decay) |z_e|, about 1e-3 of them, and the codes
    themselves far less."""

    def near(name: str) -> bool:
        rtol = 1e-2 if name.rsplit(".", 1)[-1] in STATISTICS else 1e-3
        return torch.allclose(a[name].double(), b[name].double(), rtol=rtol, atol=1e-4)

    return a.keys() == b.keys() and all(near(name) for name in a)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return ckpt.read_tensors(folder / ckpt.WEIGHTS)[0]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """The state each rank held after 40 steps of two processes, and one process's after the same 40 batches."""
    out = tmp_path_factory.mktemp("ddp")
    for n in (1, 2):
        done = torchrun("-m", "tests.ddp_worker", str(out / f"n{n}"), "40", nproc=n)
        assert done.returncode == 0, done.stderr[-3000:]

    def held(n: int, rank: int) -> tuple[dict[str, torch.Tensor], dict]:
        folder = out / f"n{n}"
        state = torch.load(folder / f"rank{rank}.pt", weights_only=True)
        return state, json.loads((folder / f"rank{rank}.json").read_text())

    return {"one": held(1, 0), "rank0": held(2, 0), "rank1": held(2, 1)}


def test_two_ranks_hold_the_same_weights_and_codebook_after_every_step(ranks):
    (first, _), (second, _) = ranks["rank0"], ranks["rank1"]
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name  # bit for bit, buffers and all


def test_two_ranks_train_what_one_process_trains_on_the_whole_batches(ranks):
    (one, _), (two, _) = ranks["one"], ranks["rank0"]
    assert close(one, two)
    assert not torch.equal(one["quantizer.embedding"], torch.zeros_like(one["quantizer.embedding"]))


def test_codes_are_reseeded_alike_on_both_ranks_though_their_generators_differ(ranks):
    (_, first), (_, second), (_, one) = ranks["rank0"], ranks["rank1"], ranks["one"]
    assert sum(first["reseeded"]) > 0  # the k-means start and dead-code restarts happened
    assert first["reseeded"] == second["reseeded"] == one["reseeded"]


def _restart_worker(rank: int, init_file: str, out: str) -> None:
    """Rank 0 sends one code's worth of encoder outputs (every row the same); rank 1 sends rows far away."""
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    config = QuantizerConfig(num_embeddings=8, embedding_dim=2, init="uniform", dead_code_steps=1)
    torch.manual_seed(0)
    quantizer = VectorQuantizerEMA(config).train()  # the same codebook on both, as DDP would broadcast
    torch.manual_seed(rank)  # each rank's generator its own: what they agree on comes from rank 0
    rows = torch.zeros(1, 2, 4, 4) if rank == 0 else 100 + torch.arange(32.0).view(1, 2, 4, 4)
    quantizer(rows)
    torch.save(quantizer.state_dict(), Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_a_dead_code_restart_from_one_ranks_data_reaches_both(tmp_path):
    mp.spawn(_restart_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    first, second = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for name in first:
        assert torch.equal(first[name], second[name]), name
    assert (first["embedding"] >= 100).all(dim=1).any()  # a code re-seeded from rank 1's rows


def test_outside_a_process_group_the_collectives_leave_everything_as_it_is():
    t = torch.arange(4.0)
    assert distributed.sum_across_ranks(t) is t and torch.equal(t, torch.arange(4.0))
    assert distributed.rows_of_every_rank(t) is t
    assert distributed.agree(3.5, True) == (3.5, True)
    assert distributed.mean_across_ranks([1.0, 2.0]) == [1.0, 2.0]


def test_a_shard_is_its_slice_of_the_batch_and_refuses_a_batch_it_cannot_split():
    shard = distributed.Shard(rank=1, world_size=4)
    assert shard.part(32) == slice(8, 16)
    with pytest.raises(Exception, match="does not split evenly across 4 processes"):
        shard.check_batch(30)


def test_two_processes_save_one_folder_that_one_process_resumes(tmp_path):
    """torchrun trains to step 20 and saves; one process resumes it to 40: the weights are those of one
    process that trained to 20 and resumed to 40 (the learning rate's decay follows the length asked)."""
    two, one = tmp_path / "two", tmp_path / "one"
    done = torchrun("-m", "vqvae", "train", *TINY, "--out", str(two), "--steps", "20")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count(f"saved {two} at step 20") == 1  # rank 0 alone reports
    assert vqvae("train", *TINY, "--out", str(one), "--steps", "20") == 0
    for folder in (two, one):
        assert vqvae("train", "--out", str(folder), "--resume", "--steps", "40") == 0
    assert close(weights(two), weights(one))
    assert [row["step"] for row in ckpt.read_json(two / ckpt.HISTORY)] == list(range(5, 41, 5))


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory):
    """The digits without their labels, as an .npz source: a prior with no sample-scoring classifier after it."""
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(path, images=load_source("digits").images.numpy())
    return f"npz:{path}"


def test_two_machines_meeting_at_a_rendezvous_train_as_one_process(tmp_path):
    """torchrun's command for several machines (--nnodes, --rdzv-endpoint), here two launchers of one process
    each on this machine, both given the same folder as machines would be on a shared filesystem."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    two, one = tmp_path / "two", tmp_path / "one"
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1"]
    command += ["--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=machines"]
    command += ["-m", "vqvae", "train", *TINY, "--out", str(two), "--steps", "20"]
    machines = [subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    said = [machine.communicate(timeout=240)[0] for machine in machines]
    assert [machine.returncode for machine in machines] == [0, 0]
    assert sum(out.count(f"saved {two} at step 20") for out in said) == 1
    assert vqvae("train", *TINY, "--out", str(one), "--steps", "20") == 0
    assert close(weights(two), weights(one))


def test_the_prior_trains_across_two_processes_as_in_one(tmp_path, unlabelled):
    base = tmp_path / "base"
    assert vqvae("train", *TINY, "--data", unlabelled, "--out", str(base), "--steps", "20") == 0
    (tmp_path / "one").mkdir(), (tmp_path / "two").mkdir()
    for name in ("one", "two"):
        for file in base.iterdir():
            (tmp_path / name / file.name).write_bytes(file.read_bytes())
    prior = ["--steps", "20", "--batch-size", "32", "--unconditional"]
    assert vqvae("train-prior", str(tmp_path / "one"), *prior) == 0
    done = torchrun("-m", "vqvae", "train-prior", str(tmp_path / "two"), *prior)
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = (ckpt.read_tensors(tmp_path / name / ckpt.PRIOR)[0] for name in ("one", "two"))
    assert close(a, b)


def _children(pid: int) -> dict[int, int]:
    """The processes `pid` started, by their RANK."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        ranks = [int(v.split(b"=", 1)[1]) for v in environ if v.startswith(b"RANK=")]
        if parent == pid and ranks:
            found[ranks[0]] = int(entry.name)
    return found


def _launch(folder: Path, logs: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "vqvae"]
    command += ["train", *TINY, "--out", str(folder), "--steps", "100000", "--save-every", "20"]
    return subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=open(logs / "out", "w"), stderr=open(logs / "err", "w"))


def _first_save(process: subprocess.Popen, folder: Path) -> None:
    deadline = time.monotonic() + 120
    while not (folder / ckpt.TRAIN_STATE).exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (folder / ckpt.TRAIN_STATE).exists(), "no save within two minutes"


def test_a_killed_rank_ends_the_run_and_leaves_a_folder_that_resumes(tmp_path):
    folder = tmp_path / "run"
    process = _launch(folder, tmp_path)
    _first_save(process, folder)
    os.kill(_children(process.pid)[1], signal.SIGKILL)
    assert process.wait(timeout=120) != 0
    loaded = ckpt.load_checkpoint(folder)  # every file whole
    assert loaded.step % 20 == 0 and loaded.step > 0
    assert vqvae("train", "--out", str(folder), "--resume", "--steps", str(loaded.step + 5)) == 0


def test_sigterm_to_torchrun_stops_every_rank_at_one_step_with_a_save(tmp_path):
    folder = tmp_path / "run"
    process = _launch(folder, tmp_path)
    _first_save(process, folder)
    workers = _children(process.pid)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=120)
    out = (tmp_path / "out").read_text()
    assert out.count("stopped by SIGTERM") == 1, out + (tmp_path / "err").read_text()[-3000:]
    said = int(out.split("stopped by SIGTERM: saved", 1)[1].split(" at step ", 1)[1].split()[0])
    state = ckpt.read_header(folder / ckpt.TRAIN_STATE)["__metadata__"]
    assert int(state["step"]) == said == ckpt.load_checkpoint(folder).step
    assert all(not Path(f"/proc/{pid}").exists() for pid in workers.values())


def test_a_batch_the_processes_cannot_split_is_refused_before_anything_is_written(tmp_path):
    done = torchrun("-m", "vqvae", "train", *TINY, "--out", str(tmp_path / "run"), "--steps", "5", "--batch-size", "33")
    assert done.returncode != 0
    assert "the batch of 33 does not split evenly across 2 processes" in done.stderr + done.stdout
    assert not (tmp_path / "run").exists()
