"""Training 3D segmentation networks into nnU-Net v2-style model folders the runner loads.

``medsegai train`` (see :mod:`.cli`) and :func:`train` are the entry points.
"""
from .errors import TrainingConfigError, TrainingDataError
from .loop import TrainOptions, TrainSummary, train
from .plans_writer import ArchitectureOptions

__all__ = ["train", "TrainOptions", "TrainSummary", "ArchitectureOptions", "TrainingDataError",
           "TrainingConfigError"]
