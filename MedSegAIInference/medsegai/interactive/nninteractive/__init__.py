"""nnInteractive checkpoints, loaded as they are, for MedSegAI's interactive session.

Our own implementation of nnInteractive 2.6.0's inference (input encoding, AutoZoom, refinement):
the ``nninteractive`` package is needed only by the tests that compare against it. Checkpoints
are loaded weights-only; the network is the runner's ResidualEncoderUNet.
"""
from .engine import NNInteractiveEngine, PredictionStats
from .model_folder import NNInteractiveModel, load_model_folder

__all__ = ["NNInteractiveEngine", "PredictionStats", "NNInteractiveModel", "load_model_folder", "create_engine"]


def create_engine(model=None, device: str = "auto", threads=None) -> NNInteractiveEngine:
    """The registry's factory: ``model`` is an nnInteractive model folder (or a folder holding one)."""
    from ...errors import InvalidModelError
    from ..registry import nninteractive_folder

    if model is None:
        raise InvalidModelError("The nninteractive engine needs an nnInteractive model folder (model=...).")
    return NNInteractiveEngine(nninteractive_folder(model) or model, device=device, threads=threads)
