"""One exception type per domain; the CLI turns any of them into one line on stderr and exit code 2."""

from __future__ import annotations


class Speech2FaceError(Exception):
    """Base class of every error this package raises on bad input or bad files."""


class AudioError(Speech2FaceError):
    """An audio or video file could not be turned into a waveform (the message names the file)."""


class ModelError(Speech2FaceError):
    """A model directory is missing, unreadable, or its weights do not fit its config."""


class DataError(Speech2FaceError):
    """A dataset, manifest or shard is missing or malformed."""


class FaceNotFound(Speech2FaceError):
    """An image that must hold a face holds none."""
