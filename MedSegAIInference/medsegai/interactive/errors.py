"""Errors of interactive segmentation: each names the problem and is raised before anything changes."""
from __future__ import annotations

from ..errors import MedSegAIError


class InteractiveError(MedSegAIError):
    """A prompt, mask, image or engine choice the session refuses (the mask and history are unchanged)."""


class EngineUnavailableError(InteractiveError):
    """The engine asked for is unknown, or known but not installed in this runner."""


class UnknownStructureError(InteractiveError):
    """A structure name no synonym and no installed model knows; the message lists the closest names."""


class StructureNotFoundError(InteractiveError):
    """The model knows the structure but found none of it in this image."""
