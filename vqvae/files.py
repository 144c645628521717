"""The names of the files in a checkpoint folder (DESIGN.md, "A checkpoint folder"), all of them.

Weights are safetensors and settings JSON, so loading a folder never runs code. Apart from
checkpoint.py, which reads and writes them (and re-exports these names), code that only needs to know
whether a folder holds a checkpoint (the app's picker, the run manager) imports these
names from here, which costs nothing at start-up (no torch).
"""

CONFIG = "config.json"  # settings to rebuild every module, plus the format version
WEIGHTS = "vqvae.safetensors"  # the VQ-VAE weights and buffers
TRAIN_STATE = "train_state.safetensors"  # everything a resume needs: weights, optimiser, RNG
HISTORY = "history.json"  # training curves
METRICS = "metrics.json"  # what `python -m vqvae evaluate` measured
CODES = "codes.safetensors"  # the code grids (and labels) of the train and test splits
PRIOR = "prior.safetensors"  # the learned prior
PRIOR_STATE = "prior_train_state.safetensors"
PRIOR_HISTORY = "prior_history.json"


def prior_stem(level: str | None) -> str:
    """The name a prior's files and config.json sections start with: "prior", or "prior_top" for the
    prior of a hierarchy's top level."""
    return "prior" if level is None else f"prior_{level}"


def prior_file(level: str | None) -> str:
    return f"{prior_stem(level)}.safetensors"


def prior_state_file(level: str | None) -> str:
    return f"{prior_stem(level)}_train_state.safetensors"


def prior_history_file(level: str | None) -> str:
    return f"{prior_stem(level)}_history.json"


CLASSIFIER = "classifier.safetensors"  # the small CNN that scores decoded samples
CLASSIFIER_STATE = "classifier_train_state.safetensors"
CLASSIFIER_HISTORY = "classifier_history.json"
ANALYSIS = "analysis.safetensors"  # what `python -m vqvae analyse` computed for the app
ANALYSIS_IMAGES = 2000  # the held-out images it keeps, the first of the split: all of mnist5k's 500

MAX_FILE_BYTES = 2 * 1024**3  # the largest weights file loaded (checkpoint.py); a run's plan is held to it

# A run started from the app trains in a hidden folder beside its final place, runs/.NAME.partial, renamed
# to runs/NAME only once its whole pipeline has ended: the picker lists no hidden folder, so it never
# offers a run still training, nor one that failed or was killed (whose folder is removed).
PARTIAL_SUFFIX = ".partial"
