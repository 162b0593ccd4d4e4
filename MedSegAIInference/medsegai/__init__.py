"""MedSegAI model runner: 3D CT/MR segmentation with nnU-Net v2 / TotalSegmentator models."""

__version__ = "0.1.0"

from .api import segment, write_outputs  # noqa: E402
from .run_request import RunRequest, RunRequestError  # noqa: E402
from .errors import (  # noqa: E402
    CancelledError,
    DeviceError,
    InvalidImageError,
    InvalidModelError,
    MedSegAIError,
    UnsafeCheckpointError,
)
from .io.image import Image  # noqa: E402
from .progress import CancelToken, ProgressEvent  # noqa: E402
from .result import SegmentationResult  # noqa: E402

__all__ = [
    "__version__", "segment", "Predictor", "RunRequest", "RunRequestError", "write_outputs", "Image", "SegmentationResult", "CancelToken",
    "ProgressEvent", "MedSegAIError", "InvalidImageError", "InvalidModelError",
    "UnsafeCheckpointError", "DeviceError", "CancelledError",
]


def __getattr__(name):
    # The Predictor pulls in torch; ``import medsegai`` stays light for Slicer's GUI process.
    if name == "Predictor":
        from .predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'medsegai' has no attribute {name!r}")
