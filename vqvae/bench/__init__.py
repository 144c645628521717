"""The benchmark (`python -m vqvae bench`): our training, prior and app, measured beside a plain baseline."""

from .report import device_table, table
from .run import RESULTS, BenchConfig, load, run, save

__all__ = ["RESULTS", "BenchConfig", "device_table", "load", "run", "save", "table"]
