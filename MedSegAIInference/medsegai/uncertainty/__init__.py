"""Voxel uncertainty and per-segment confidence for any single nnU-Net model.

Methods: ``entropy`` (normalised softmax entropy of the normal prediction, no extra pass),
``tta`` (spread of whole-volume flips), ``mcdropout`` (spread of passes with dropout sampling,
models with dropout only), ``ensemble`` (spread of the folds). The spread is the total variance
of the class probabilities across passes divided by its maximum, so every map is 0..1.
"""
from .confidence import DEFAULT_CONFIDENCE_THRESHOLD, flag_segments, least_confident
from .errors import (NoDropoutError, SingleFoldError, UncertaintyError, UncertaintyMemoryError,
                     UnknownMethodError)
from .passes import METHODS, check_method
from .run import UncertaintyOutcome, UncertainOutput, run_with_uncertainty

__all__ = ["METHODS", "check_method", "run_with_uncertainty", "UncertaintyOutcome", "UncertainOutput",
           "DEFAULT_CONFIDENCE_THRESHOLD", "flag_segments", "least_confident", "UncertaintyError",
           "UnknownMethodError", "NoDropoutError", "SingleFoldError", "UncertaintyMemoryError"]
