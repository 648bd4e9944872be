"""Exceptions that carry a one-line message meant for the user.

Entry points catch :class:`S2FError` and print ``<command>: error: <message>`` with a
non-zero exit instead of a traceback.
"""

from __future__ import annotations


class S2FError(Exception):
    """Base class of every error caused by the user's input or environment."""


class AudioError(S2FError, ValueError):
    """An audio file that cannot be read: missing, empty, corrupt, not audio, NaN samples."""


class ConfigError(S2FError, ValueError):
    """A configuration value that is missing or out of range."""


class ShortAudioWarning(UserWarning):
    """Audio too short to hold a voice (under ``speech2face.audio.MIN_VOICE_SECONDS``), tiled
    to a clip all the same."""
