"""The job spec: one run request plus the paths and permissions a worker needs, as JSON."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Union

from ..atomic import atomic_write_text
from ..errors import MedSegAIError
from ..run_request import RunRequest, RunRequestError

SPEC_VERSION = 2


class JobSpecError(MedSegAIError):
    """The job is malformed or asks for something the runner cannot do."""


@dataclass
class JobSpec:
    input_path: str  # NIfTI/NRRD file or DICOM folder, on the grid the result must come back on
    output_dir: str  # created by the worker; outputs are renamed into place when complete
    run: RunRequest = field(default_factory=RunRequest)
    # Download the catalogue models the run needs and lacks (the user agreed to it); licences that
    # must be accepted are accepted only with accept_licenses.
    download_models: bool = False
    accept_licenses: bool = False
    output_stem: str = "segmentation"
    version: int = SPEC_VERSION

    def validate(self) -> "JobSpec":
        if self.version != SPEC_VERSION:
            raise JobSpecError(f"Job spec version {self.version} is not supported (expected {SPEC_VERSION}).")
        if not self.input_path:
            raise JobSpecError("The job names no input image.")
        if not self.output_dir:
            raise JobSpecError("The job names no output folder.")
        if not isinstance(self.run, RunRequest):
            raise JobSpecError("The job's run options are missing.")
        try:
            self.run.validate()
        except RunRequestError as e:
            raise JobSpecError(str(e)) from None
        return self

    def to_dict(self) -> Dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["run"] = self.run.to_dict()
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def write(self, path: Union[str, os.PathLike]) -> Path:
        self.validate()
        return atomic_write_text(path, self.to_json())

    @classmethod
    def read(cls, path: Union[str, os.PathLike]) -> "JobSpec":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise JobSpecError(f"The job file {path} does not exist.") from None
        except (OSError, ValueError) as e:
            raise JobSpecError(f"The job file {path} cannot be read: {e}.") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> "JobSpec":
        if not isinstance(data, dict):
            raise JobSpecError("The job is not a JSON object.")
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise JobSpecError(f"The job has unknown field(s): {', '.join(unknown)}.")
        data = dict(data)
        try:
            data["run"] = RunRequest.from_dict(data.get("run", {}))
            spec = cls(**data)
        except RunRequestError as e:
            raise JobSpecError(str(e)) from None
        except TypeError as e:
            raise JobSpecError(f"The job is incomplete: {e}.") from None
        return spec.validate()
