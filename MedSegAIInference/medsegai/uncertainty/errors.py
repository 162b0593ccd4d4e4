"""Errors for uncertainty requests the model or the machine cannot honour.

Each is raised before any network pass where possible, so a bad request never produces a map
of zeros that looks like certainty.
"""
from ..errors import MedSegAIError


class UncertaintyError(MedSegAIError):
    """An uncertainty method cannot run as asked."""


class UnknownMethodError(UncertaintyError):
    """The method name is not one of entropy, tta, mcdropout, ensemble."""


class NoDropoutError(UncertaintyError):
    """Monte Carlo dropout was asked of a model whose network has no dropout layers."""


class SingleFoldError(UncertaintyError):
    """A fold ensemble was asked of a model folder with a single fold."""


class UncertaintyMemoryError(UncertaintyError):
    """The per-pass accumulators would not fit in the memory available."""
