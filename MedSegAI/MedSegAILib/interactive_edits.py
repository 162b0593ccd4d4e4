"""What one prompt did to a segmentation, voxel for voxel, and how to take it back.

A prompt's proposal (the engine's new values for the target in a region) passes the masking
settings (``masking``) before it reaches the scene; the step then keeps, for every segment whose
voxels changed (the target and any segment it overwrote), those voxels before and after, as
packed bits over the region. Undo writes the "before" back and redo the "after": exactly the
voxels the prompt changed, in every segment, nothing recomputed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from .masking import MaskingSettings, editable_mask, overwritten

Region = Tuple[slice, slice, slice]
EMPTY: Region = (slice(0, 0), slice(0, 0), slice(0, 0))


def _empty(region: Region) -> bool:
    return any(s.stop <= s.start for s in region)


@dataclass
class Bits:
    """A bool array kept as packed bits (an undo history of large regions stays small)."""
    shape: Tuple[int, ...]
    packed: np.ndarray

    @classmethod
    def of(cls, mask: np.ndarray) -> "Bits":
        return cls(mask.shape, np.packbits(mask, axis=None))

    def array(self) -> np.ndarray:
        return np.unpackbits(self.packed, count=int(np.prod(self.shape))).reshape(self.shape).astype(bool)


@dataclass
class Step:
    kind: str
    region: Region
    before: Dict[str, Bits] = field(default_factory=dict)  # segment id -> its voxels in region, before
    after: Dict[str, Bits] = field(default_factory=dict)
    generation: Optional[int] = None  # the runner session (see RunnerSession.generation) holding its twin

    @property
    def nbytes(self) -> int:
        return sum(b.packed.nbytes for b in list(self.before.values()) + list(self.after.values()))


@dataclass
class SegmentChange:
    """What one call changed in the segmentation."""
    segment_id: str
    kind: str  # point, box, scribble, lasso, text, undo, redo
    region: Region = EMPTY  # the voxels (k, j, i) of the volume the call looked at
    added: int = 0  # voxels the segment gained
    removed: int = 0  # voxels it lost
    others: Dict[str, int] = field(default_factory=dict)  # other segment -> voxels it gave up (undo: got back)
    refused: int = 0  # voxels the engine proposed that the masking settings kept as they were
    seconds: float = 0.0  # the worker's time for the request
    notes: List[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or any(self.others.values()))


def apply_proposal(grid, target_id: str, kind: str, region: Region, proposed: np.ndarray,
                   settings: MaskingSettings) -> Tuple[Step, SegmentChange, np.ndarray]:
    """Write the engine's proposal for ``region`` into the scene as the settings allow; returns the
    step, what changed, and the values the target now has there (what the runner must be told)."""
    if _empty(region):
        return Step(kind, EMPTY), SegmentChange(target_id, kind), proposed
    old = grid.read(target_id, region)
    wanted = proposed.astype(bool)
    editable = editable_mask(grid, target_id, region, settings)
    kept = wanted if editable is None else np.where(editable, wanted, old)
    gained = kept & ~old
    step = Step(kind, region)
    change = SegmentChange(target_id, kind, region, int(gained.sum()), int((old & ~kept).sum()),
                           refused=int((kept != wanted).sum()))
    victims = {}
    if gained.any():
        candidates = overwritten(grid, target_id, settings)
        for segment_id, voxels in grid.read_many(candidates, region).items():
            lost = voxels & gained
            if lost.any():
                victims[segment_id] = (voxels, voxels & ~gained)
                change.others[segment_id] = int(lost.sum())
    written = []
    try:
        for segment_id, (before, after) in victims.items():
            grid.write(segment_id, region, after, old=before)
            written.append((segment_id, before))
        if (kept != old).any():
            grid.write(target_id, region, kept, old=old)
            written.append((target_id, old))
    except Exception:
        for segment_id, before in reversed(written):  # the scene as it was, then the error
            grid.write(segment_id, region, before)
        raise
    for segment_id, before in written:
        after = kept if segment_id == target_id else victims[segment_id][1]
        step.before[segment_id], step.after[segment_id] = Bits.of(before), Bits.of(after)
    return step, change, kept.astype(np.uint8)


def replay(grid, step: Step, target_id: str, undo: bool) -> SegmentChange:
    """Undo (``undo=True``) or redo a step: every segment it changed gets its voxels back exactly.
    A segment deleted since is skipped (said in the notes)."""
    kind = "undo" if undo else "redo"
    change = SegmentChange(target_id, kind, step.region)
    present = set(grid.segment_ids())
    for segment_id, bits in (step.before if undo else step.after).items():
        if segment_id not in present:
            change.notes.append(f"Segment {segment_id!r} no longer exists; its voxels were not restored.")
            continue
        values, now = bits.array(), grid.read(segment_id, step.region)
        grid.write(segment_id, step.region, values, old=now)
        if segment_id == target_id:
            change.added, change.removed = int((values & ~now).sum()), int((now & ~values).sum())
        else:
            change.others[segment_id] = int((values != now).sum())
    return change
