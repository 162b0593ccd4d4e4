"""MedSegAI model runner: 3D CT/MR segmentation with nnU-Net v2 / TotalSegmentator models."""

__version__ = "0.1.0"

from .api import segment, write_outputs  # noqa: E402
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
    "__version__", "segment", "write_outputs", "Image", "SegmentationResult", "CancelToken",
    "ProgressEvent", "MedSegAIError", "InvalidImageError", "InvalidModelError",
    "UnsafeCheckpointError", "DeviceError", "CancelledError",
]
