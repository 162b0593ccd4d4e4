"""The job spec: everything a worker needs to run one segmentation, as a small JSON document."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import List, Optional, Union

from ..errors import MedSegAIError

SPEC_VERSION = 1
QUALITIES = ("normal", "fast", "fastest")


class JobSpecError(MedSegAIError):
    """The job file is missing, unreadable or asks for something the runner cannot do."""


@dataclass
class JobSpec:
    input_path: str  # NIfTI/NRRD file or DICOM folder, on the grid the result must come back on
    output_dir: str  # created by the worker; outputs are renamed into place when complete
    model: Optional[str] = None  # model folder or catalogue id
    task: Optional[str] = None  # TotalSegmentator task logic ("total", "total_mr")
    quality: str = "normal"
    roi_subset: Optional[List[str]] = None
    device: str = "auto"
    threads: Optional[int] = None
    uncertainty: Optional[str] = None  # entropy | tta | mcdropout | ensemble
    uncertainty_passes: int = 8  # passes for tta / mcdropout
    confidence_threshold: Optional[float] = None  # Soft Dice Confidence below this flags a segment
    # Download the catalogue models the run needs and lacks (the user agreed to it); licences that
    # must be accepted are accepted only with accept_licenses.
    download_models: bool = False
    accept_licenses: bool = False
    # The worker polls this path and cancels when it appears: works where signals do not (Windows).
    cancel_file: Optional[str] = None
    output_stem: str = "segmentation"
    version: int = field(default=SPEC_VERSION)

    def validate(self) -> None:
        if self.version != SPEC_VERSION:
            raise JobSpecError(f"Job spec version {self.version} is not supported (expected {SPEC_VERSION}).")
        if not self.input_path:
            raise JobSpecError("The job names no input image.")
        if not self.output_dir:
            raise JobSpecError("The job names no output folder.")
        if self.model is None and self.task is None:
            raise JobSpecError("The job names neither a model nor a task.")
        if self.quality not in QUALITIES:
            raise JobSpecError(f"Unknown quality {self.quality!r}; use one of {', '.join(QUALITIES)}.")
        if self.roi_subset is not None and not all(isinstance(n, str) and n for n in self.roi_subset):
            raise JobSpecError("The structure subset must be a list of structure names.")
        if self.threads is not None and int(self.threads) < 1:
            raise JobSpecError("threads must be at least 1.")
        if self.uncertainty is not None:
            from ..uncertainty import METHODS

            if self.uncertainty not in METHODS:
                raise JobSpecError(f"Unknown uncertainty method {self.uncertainty!r}; use one of {', '.join(METHODS)}.")
        if int(self.uncertainty_passes) < 2:
            raise JobSpecError("uncertainty_passes must be at least 2.")
        if self.confidence_threshold is not None and not 0.0 <= float(self.confidence_threshold) <= 1.0:
            raise JobSpecError("confidence_threshold must be between 0 and 1.")

    # -- JSON -----------------------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: dict) -> "JobSpec":
        if not isinstance(data, dict):
            raise JobSpecError("The job file does not hold a JSON object.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise JobSpecError(f"The job file has unknown field(s): {', '.join(unknown)}.")
        try:
            spec = cls(**data)
        except TypeError as e:
            raise JobSpecError(f"The job file is incomplete: {e}.") from None
        spec.validate()
        return spec

    @classmethod
    def read(cls, path: Union[str, os.PathLike]) -> "JobSpec":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise JobSpecError(f"The job file {path} does not exist.") from None
        except (OSError, ValueError) as e:
            raise JobSpecError(f"The job file {path} cannot be read: {e}.") from None
        return cls.from_dict(data)

    def write(self, path: Union[str, os.PathLike]) -> Path:
        self.validate()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_text(self.to_json(), encoding="utf-8")
        os.replace(tmp, path)
        return path
