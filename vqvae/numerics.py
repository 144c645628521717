"""The same arithmetic in every process: what a resumed run needs to end bit for bit as an
uninterrupted one, and a seed to draw the same samples in the app as on the command line.

On an x86 CPU, PyTorch computes tanh, log, sin and the other transcendental functions through
MKL's vector maths library (VML), which picks its code path on its first call. When that first
call comes from two OpenMP threads at once (any tensor large enough for PyTorch to split, such
as the prior's first gated layer), one thread can compute its first block with the AVX2
"enhanced performance" variant, about 5e-5 off instead of 1 ulp. Seen in 2-17% of fresh
processes on a 2-core Xeon; one such block makes the whole run differ. A first call on one thread settles
the library, after which every thread gets the accurate code path.
"""

from __future__ import annotations

import functools

import torch


@functools.cache
def settle_vector_maths() -> None:
    """Make MKL's vector maths choose its code path now, on this thread (a 1-element tanh is
    never split across threads). Called when a network is built; costs microseconds, once."""
    torch.tanh(torch.zeros(1))
