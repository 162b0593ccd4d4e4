"""Errors the runner raises on purpose.

Every failure a user can cause (bad file, bad model, cancel, out of memory) surfaces as a
subclass of :class:`MedSegAIError` with a message that names the problem, so the CLI, the
service and the Slicer module can show it without a traceback from inside torch.
"""


class MedSegAIError(Exception):
    """Base class for errors that carry a user-facing message."""


class InvalidImageError(MedSegAIError):
    """The input is not a usable 3D image (unreadable, 2D/4D, NaN, bad spacing, empty...)."""


class InvalidModelError(MedSegAIError):
    """A model folder or checkpoint is missing files, inconsistent, corrupt or unsafe."""


class UnsafeCheckpointError(InvalidModelError):
    """A checkpoint tried to execute code or load types outside the allow-list."""


class DeviceError(MedSegAIError):
    """The requested device cannot be used (no CUDA, out of memory with no fallback)."""


class CancelledError(MedSegAIError):
    """The run was cancelled through its cancel token."""
