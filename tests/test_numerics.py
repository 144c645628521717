"""The same arithmetic in every process (vqvae/numerics.py).

MKL's vector maths picks its code path on its first call; when two OpenMP threads make that call at
once, one of them can compute its first block with a less accurate variant. Without the fix, a fresh
process that makes its first tanh a parallel one (the worker thread asleep, as after any pause) did
so in about 1 of 10 tries here, so the check runs in several fresh processes, one after another.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROCESSES = 16

FIRST_PARALLEL_TANH = """
import time
import torch
from vqvae.config import PriorConfig
from vqvae.prior import GatedPixelCNN

GatedPixelCNN(PriorConfig(num_embeddings=16, latent_height=4, latent_width=4))
x = torch.randn(128, 64, 4, 4)  # the prior's first gate on a batch: split over the threads
x + 1  # the threads exist
time.sleep(0.01)  # ...and the worker sleeps, as it does between two steps
first = torch.tanh(x)
print(torch.get_num_threads(), torch.equal(first, torch.tanh(x)))
"""


def test_a_fresh_process_with_a_network_computes_its_first_parallel_tanh_exactly():
    for _ in range(PROCESSES):
        run = subprocess.run(
            [sys.executable, "-c", FIRST_PARALLEL_TANH], cwd=ROOT, capture_output=True, text=True, check=True
        )
        threads, same = run.stdout.split()
        assert same == "True", f"the first parallel tanh ({threads} threads) differed from the second"
