"""What the app asks of the library, torch-free to import: which checkpoint folders it may open
(catalog.py), a checkpoint opened for exploring (explorer.py), uploads decoded safely (inputs.py),
and the one background training run (runs.py, with its child's side in run_child.py)."""
