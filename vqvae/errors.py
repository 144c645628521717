"""The project's own error types: what a user can cause, with a message they can act on."""


class VQVAEError(Exception):
    """Base class for every error a user of vqvae-explorer can cause."""


class DataError(VQVAEError):
    """A data source that cannot be read: bad path, unreadable file, wrong format."""


class CheckpointError(VQVAEError):
    """A checkpoint folder that is missing, incomplete, corrupted or mismatched."""


class TrainingError(VQVAEError):
    """A training run that cannot start or cannot go on (bad settings, non-finite loss)."""


class InputError(VQVAEError, ValueError):
    """A request value out of range: a code, a grid position, a sample count, a temperature."""


class ExposureError(VQVAEError):
    """The app asked to serve where others could reach it without the settings that make that safe."""
