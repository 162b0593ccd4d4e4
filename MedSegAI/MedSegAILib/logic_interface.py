"""What the module panel needs of the Logic, as a typed interface (no Qt, no application).

The panel (``MedSegAIGui``) is given an object of this shape and calls nothing else, so a test can
hand it a fake and the real :class:`~MedSegAILib.segment_logic.SegmentLogic` can change behind it.
SegmentLogic satisfies it structurally (Testing/Python/slicer_module/test_module_static.py checks
the signatures).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Protocol, Sequence, Tuple, runtime_checkable

from medsegai.service import WorkerEvent

from .model_availability import MissingModel
from .segment_logic import SegmentationRequest
from .statistics import SegmentStatistics


class RunResult(Protocol):
    notes: List[str]
    warnings: List[str]  # plain sentences: the result may be unreliable
    model_reused: bool


class SegmentsWritten(Protocol):
    written: List[str]
    kept_edited: List[str]


class RunOutcome(Protocol):
    """What a finished, imported run left in the scene."""
    update: SegmentsWritten
    result: RunResult
    seconds: float
    uncertainty_node: Any
    uncertainty_method: Optional[str]
    confidence: Dict[str, dict]

    @property
    def segmentation_node(self) -> Any: ...


class RunningRun(Protocol):
    """A run in the worker, followed from the GUI thread."""
    request: SegmentationRequest

    def poll(self) -> List[WorkerEvent]: ...

    def cancel(self) -> None: ...

    @property
    def done(self) -> bool: ...


@runtime_checkable
class PanelLogic(Protocol):
    # "Run on: server": a remote_job.RemoteSettings that start() and the interactive sessions use; None: here
    remote: Optional[Any]

    def missing_models(self, request: SegmentationRequest) -> List[MissingModel]: ...

    def start(self, request: SegmentationRequest) -> RunningRun: ...

    def finish(self, running: RunningRun, on_edited: Optional[str] = None) -> RunOutcome:
        """Raises EditedSegmentsError (call again with ``on_edited``, or :meth:`discard`), CancelledError,
        or the run's error; the scene is unchanged in every such case."""

    def discard(self, running: RunningRun) -> None: ...

    def statistics(self, segmentation_node, volume_node, uncertainty_volume=None,
                   confidence_threshold: Optional[float] = None) -> Sequence[SegmentStatistics]: ...

    def jump_to_least_confident(self, segmentation_node, volume_node) -> Tuple[str, Any]: ...

    def export_dicom_seg(self, volume_node, segmentation_node, path, segmentation_type: str = "BINARY") -> List[str]:
        """Raises InputError with nothing written; returns notes (empty segments left out)."""

    def import_dicom_seg(self, path, volume_node) -> Tuple[Any, List[str]]:
        """(new segmentation node, notes); raises InputError with the scene unchanged."""

    def shutdown(self) -> None:
        """Stop the worker process that stays between runs."""


__all__ = ["PanelLogic", "RunningRun", "RunOutcome", "RunResult", "SegmentsWritten"]
