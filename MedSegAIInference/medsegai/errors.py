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


def exit_status(exc: BaseException):
    """``(exit code, one-line message)`` for an error a user can cause, else None (a bug: let it raise).

    The one mapping every command-line entry point uses: 1 for an error, 130 for a cancel or Ctrl+C.
    """
    if isinstance(exc, CancelledError):
        return 130, f"{exc} No output was written."
    if isinstance(exc, KeyboardInterrupt):
        return 130, "interrupted; no output was written."
    if isinstance(exc, MedSegAIError):
        return 1, f"error: {exc}"
    if isinstance(exc, MemoryError):
        return 1, "error: the computer ran out of memory. Try quality 'fast' or 'fastest', or a structure subset."
    if isinstance(exc, OSError):  # disk full, permission denied, output path is a file...: no traceback
        return 1, f"error: {exc}"
    return None
