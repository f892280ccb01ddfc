"""Errors the engine raises; each message is meant to be shown to a person as is."""


class StylizeError(Exception):
    """Base class of every error the engine raises on purpose."""


class ConfigError(StylizeError, ValueError):
    """A StyleConfig value is out of range, of the wrong type, or unknown.

    `field` names the offending option so forms and APIs can show the message
    next to it.
    """

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class ImageError(StylizeError, ValueError):
    """An input image cannot be used: not an image, unsupported format, truncated, too large."""


class ImageTooLarge(ImageError):
    """The image's header declares more pixels than the configured limit."""


class WeightsError(StylizeError):
    """The VGG19 weights file is missing or is not the expected file."""


class DeviceMemoryError(StylizeError, MemoryError):
    """The device ran out of memory; `fits` is a long side (px) that should fit."""

    def __init__(self, message: str, fits: int | None = None):
        super().__init__(message)
        self.fits = fits


class Cancelled(StylizeError):
    """Raised by a progress callback to stop a run; the engine lets it propagate."""
