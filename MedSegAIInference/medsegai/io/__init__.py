from .image import Image, validate_image
from .read import read_image
from .segments import SegmentInfo, segments_from_names
from .seg_nrrd import read_seg_nrrd, write_seg_nrrd
from .write import atomic_path, write_image

__all__ = ["Image", "validate_image", "read_image", "write_image", "atomic_path", "SegmentInfo",
           "segments_from_names", "write_seg_nrrd", "read_seg_nrrd"]
