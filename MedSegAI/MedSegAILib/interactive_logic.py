"""Interactive segmentation in Slicer, without Qt: prompts in world coordinates edit one segment.

    logic = InteractiveLogic(scene, worker=lambda: segmentLogic.worker)
    session = logic.interactiveSession(volumeNode, segmentationNode, segmentId, engine="auto")
    change = session.addPoint(rasPoint)               # the console: returns when the segment is updated
    edit = session.addPoint(rasPoint, wait=False)     # the GUI: poll edit.done from a timer, then
    change = edit.finish()                            # ... apply it (milliseconds on the GUI thread)
    session.undo(); session.redo(); session.close()

The runner's session (``medsegai.interactive.InteractiveSession``) lives in the worker that stays,
one per (volume, segment), so each keeps its own prompt history; the volume is written once to a
temporary file per content and read once by the worker. The segment in the scene is the truth:
a session starts from the voxels it has, every change the runner proposes passes Slicer's masking
settings (``masking``) before it is written, and undo/redo are kept here, exactly, over every
segment a prompt touched (``interactive_edits``), so they also work when the worker has died.
The runner's mask is kept equal to the segment: what the settings refused, what another session
overwrote and what the user painted meanwhile are sent back to it (``session.amend``) before the
next prompt.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import slicer
import vtk

from medsegai.errors import MedSegAIError
from medsegai.service import regions

from .errors import InputError, SessionLostError
from .interactive_channel import Reply, RunnerSession
from .interactive_edits import SegmentChange, Step, apply_proposal, replay
from .masking import current_settings, describe
from .prompt_geometry import VolumeFrame
from .segment_regions import SegmentGrid, union

PROMPT_TIMEOUT_S = 300.0
TEXT_TIMEOUT_S = 1800.0  # a structure name runs an auto-segmentation model, on the CPU maybe for minutes


class InteractiveLogic:
    """The sessions of one scene, the temporary image files they share and the worker they use."""

    def __init__(self, scene, worker: Callable[[], object], *, work_root: Optional[str] = None):
        self.scene = scene
        self._worker = worker
        self.work_root = work_root
        self._sessions: Dict[Tuple[str, str, str], "SegmentSession"] = {}
        self._images: Dict[str, Tuple[tuple, Path]] = {}  # volume node id -> (content key, file)
        self._workdir: Optional[Path] = None
        self._observers: List[int] = []
        self.busy: Optional["PendingEdit"] = None
        self.images_written = 0  # temporary image files written (tests, benchmarks)

    # -- sessions -------------------------------------------------------------------------------
    def interactiveSession(self, volumeNode, segmentationNode, segmentId, engine: str = "auto", model=None,
                           device: str = "auto", threads: Optional[int] = None,
                           segmentEditorNode=None) -> "SegmentSession":
        """The session editing ``segmentId`` of ``segmentationNode`` on ``volumeNode`` (the same object
        again for the same three, with its history). ``segmentId`` may also be the segment's name."""
        frame = VolumeFrame(volumeNode)
        for node, what in ((volumeNode, "volume"), (segmentationNode, "segmentation")):
            if node is not None and node.GetScene() is not self.scene:
                raise InputError(f"The {what} '{node.GetName()}' is not in this scene.")
        grid = SegmentGrid(segmentationNode, frame)
        segment_id = _segment_id(segmentationNode, segmentId)
        grid.check_segment(segment_id)
        grid.check_reference_geometry()  # last: it gives a segmentation without a grid the volume's
        options = {"engine": engine, "model": model, "device": device, "threads": threads}
        key = (volumeNode.GetID(), segmentationNode.GetID(), segment_id)
        session = self._sessions.get(key)
        if session is not None and session.options != options:
            if session.busy:
                raise InputError("A prompt is still being computed; change the engine after it has come back.")
            previous = session  # another engine: a new runner session that inherits the voxel history
            session = SegmentSession(self, volumeNode, segmentationNode, segment_id, options)
            session.inherit_history(previous)
            previous.close()
            self._sessions[key] = session
        if session is None:
            session = SegmentSession(self, volumeNode, segmentationNode, segment_id, options)
            self._sessions[key] = session
        session.segmentEditorNode = segmentEditorNode
        self._observe_scene()
        return session

    @property
    def sessions(self) -> List["SegmentSession"]:
        return list(self._sessions.values())

    def maskingDescription(self, segmentationNode, segmentId, segmentEditorNode=None) -> str:
        """What a prompt on this segment will do, in one sentence (for the panel)."""
        segment_id = _segment_id(segmentationNode, segmentId)
        return describe(current_settings(self.scene, segmentEditorNode), segmentationNode, segment_id)

    def closeAll(self) -> None:
        """End every session (the worker frees their memory) and remove the temporary image files."""
        for session in list(self._sessions.values()):
            session.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        self._images.clear()

    def shutdown(self) -> None:
        self.closeAll()
        for tag in self._observers:
            self.scene.RemoveObserver(tag)
        self._observers = []

    # -- shared state ----------------------------------------------------------------------------
    def _forget(self, session: "SegmentSession") -> None:
        for key, s in list(self._sessions.items()):
            if s is session:
                del self._sessions[key]
        if self.busy is not None and self.busy.session is session:
            self.busy = None
        volume_id = session.volumeNode.GetID()
        if not any(s.volumeNode.GetID() == volume_id for s in self._sessions.values()):
            _, path = self._images.pop(volume_id, (None, None))
            if path is not None:
                path.unlink(missing_ok=True)

    def image_key(self, volume_node) -> tuple:
        image = volume_node.GetImageData()
        m = vtk.vtkMatrix4x4()
        volume_node.GetIJKToRASMatrix(m)
        return volume_node.GetID(), image.GetMTime(), tuple(image.GetDimensions()), \
            tuple(round(m.GetElement(r, c), 9) for r in range(3) for c in range(4))

    def image_file(self, volume_node) -> Path:
        """The volume as a temporary uncompressed NRRD, written once per content (zlib on a full-size
        CT would hold the GUI for a second, bench_gui_handoff.py)."""
        from medsegai.io.write import write_image

        from .volume_bridge import image_from_volume

        key = self.image_key(volume_node)
        known = self._images.get(volume_node.GetID())
        if known is not None and known[0] == key and known[1].is_file():
            return known[1]
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="MedSegAI-interactive-", dir=self.work_root))
        path = self._workdir / f"volume-{self.images_written + 1}.nrrd"
        write_image(image_from_volume(volume_node), path, compress=False)
        self.images_written += 1
        if known is not None:
            known[1].unlink(missing_ok=True)
        self._images[volume_node.GetID()] = (key, path)
        return path

    def stamps_before_write(self, grid) -> Dict["SegmentSession", bool]:
        """Which sessions on this segmentation still see their segment as they left it."""
        return {s: s._stamp is not None and grid.stamp(s.segmentId) == s._stamp
                for s in self._sessions.values() if s.segmentationNode is grid.node
                and grid.segmentation.GetSegment(s.segmentId) is not None}

    def after_write(self, grid, region, changed, before: Dict["SegmentSession", bool], by) -> None:
        """Session ``by`` wrote ``region`` of these segments (its own runner follows by itself): the other
        sessions' runner masks must hear of it before their next prompt."""
        for session, current in before.items():
            if grid.segmentation.GetSegment(session.segmentId) is None:
                continue
            if current:  # otherwise the segment changed elsewhere too: a full resync comes first
                session._stamp = grid.stamp(session.segmentId)
            if session is not by and session.segmentId in changed:
                session._note_external(region)

    # -- scene events -----------------------------------------------------------------------------
    def _observe_scene(self) -> None:
        if self._observers:
            return
        from vtkmodules.util.misc import calldata_type

        @calldata_type(vtk.VTK_OBJECT)
        def removed(_caller, _event, node):
            for session in list(self._sessions.values()):
                if node is session.volumeNode or node is session.segmentationNode:
                    session.close()

        self._on_removed = removed  # the observer holds only a weak reference to the callable
        self._observers = [self.scene.AddObserver(slicer.vtkMRMLScene.NodeRemovedEvent, removed),
                           self.scene.AddObserver(slicer.vtkMRMLScene.EndCloseEvent, lambda *_: self.closeAll())]


def _segment_id(segmentation_node, segment) -> str:
    if segmentation_node is None or not segmentation_node.IsA("vtkMRMLSegmentationNode"):
        raise InputError("Select a segmentation node.")
    if not segment:
        raise InputError("Select a segment to edit (add one to the segmentation first).")
    segmentation = segmentation_node.GetSegmentation()
    if segmentation.GetSegment(segment) is not None:
        return segment
    by_name = segmentation.GetSegmentIdBySegmentName(segment)
    if by_name:
        return by_name
    raise InputError(f"'{segmentation_node.GetName()}' has no segment '{segment}'.")


class PendingEdit:
    """A prompt sent to the worker; ``done`` is cheap to poll, ``finish()`` applies it to the segment."""

    def __init__(self, session: "SegmentSession", kind: str, fields: dict, timeout: float):
        self.session, self.kind, self.fields = session, kind, fields
        self.deadline = time.monotonic() + timeout
        self.request_id: Optional[str] = None
        self.reply: Optional[Reply] = None
        self.retried = False
        self.sent_at = time.perf_counter()

    @property
    def done(self) -> bool:
        if self.reply is None:
            reply = self.session.runner.poll(self.request_id, "session.prompt")
            if reply is not None and reply.error_type == "UnknownSession" and not self.retried:
                self.retried = True  # the worker closed the idle session: a new one, same prompt
                self.session.runner.forget()
                self.session._send(self)
                return False
            self.reply = reply
        return self.reply is not None

    def finish(self, timeout: Optional[float] = None) -> SegmentChange:
        """Wait for the reply (up to ``timeout`` more seconds, else the prompt's own limit), then write
        the change into the segment; raises InputError / SessionLostError with the scene unchanged."""
        deadline = self.deadline if timeout is None else time.monotonic() + timeout
        while not self.done:
            if time.monotonic() > deadline:
                self.session._abandon(self)
                raise InputError(f"The {self.kind} prompt got no answer within the time limit; the segment is "
                                 "unchanged and the session starts again at the next prompt.")
            time.sleep(0.002)
        return self.session._complete(self)


class SegmentSession:
    """Prompts on one segment of one segmentation, on one volume; see the module docstring."""

    def __init__(self, logic: InteractiveLogic, volume_node, segmentation_node, segment_id: str, options: dict):
        self.logic = logic
        self.volumeNode, self.segmentationNode, self.segmentId = volume_node, segmentation_node, segment_id
        self.options = dict(options)
        self.segmentEditorNode = None
        self.runner = RunnerSession(logic._worker, **options)
        self._undo: List[Step] = []
        self._redo: List[Step] = []
        self._image_key: Optional[tuple] = None  # the volume content the runner session has
        self._stamp: Optional[tuple] = None  # the segment's stamp when the runner's mask last equalled it
        self._known: Optional[tuple] = None  # holds every voxel the runner's mask may have set
        self._external: Optional[tuple] = None  # changed by other sessions since, to send before the next prompt
        self._pending: Optional[PendingEdit] = None
        self._notes: List[str] = []
        self._start_notes: List[str] = []  # said with the next prompt's change
        self.closed = False

    # -- state ------------------------------------------------------------------------------------
    @property
    def canUndo(self) -> bool:
        return bool(self._undo)

    @property
    def canRedo(self) -> bool:
        return bool(self._redo)

    @property
    def busy(self) -> bool:
        return self._pending is not None

    @property
    def engine(self) -> Optional[str]:
        """The engine the worker chose (known once the first prompt has come back)."""
        return self.runner.engine_name

    @property
    def engineNote(self) -> Optional[str]:
        return self.runner.engine_note

    @property
    def historyBytes(self) -> int:
        return sum(s.nbytes for s in self._undo + self._redo)

    @property
    def maskingDescription(self) -> str:
        return describe(current_settings(self.logic.scene, self.segmentEditorNode), self.segmentationNode,
                        self.segmentId)

    # -- prompts ------------------------------------------------------------------------------------
    def addPoint(self, rasPoint, positive: bool = True, wait: bool = True, timeout: float = PROMPT_TIMEOUT_S):
        """A click at a world (RAS) position: positive adds the structure there, negative removes it."""
        frame, _ = self._context()
        return self._prompt("point", {"point": list(frame.point(rasPoint))}, positive, wait, timeout)

    def addBox(self, roiNode, positive: bool = True, wait: bool = True, timeout: float = PROMPT_TIMEOUT_S):
        """A markups ROI around the structure (a flat ROI is a box on one slice)."""
        frame, _ = self._context()
        return self._prompt("box", {"box": [list(b) for b in frame.box(roiNode)]}, positive, wait, timeout)

    def addScribble(self, labelmapNodeOrArray, positive: bool = True, wait: bool = True,
                    timeout: float = PROMPT_TIMEOUT_S):
        """Strokes: a label map node (non-zero voxels, any grid), an array on the volume's grid [k, j, i],
        or (crop, offset) of one."""
        frame, _ = self._context()
        crop, offset = frame.scribble(labelmapNodeOrArray)
        return self._prompt("scribble", {"mask": regions.encode(crop, offset)}, positive, wait, timeout)

    def addLasso(self, rasPoints, positive: bool = True, wait: bool = True, timeout: float = PROMPT_TIMEOUT_S):
        """A closed polygon on one slice (world points, or a markups curve node), filled on that slice."""
        frame, _ = self._context()
        crop, offset = frame.lasso(rasPoints)
        return self._prompt("lasso", {"mask": regions.encode(crop, offset)}, positive, wait, timeout)

    def addText(self, name: str, wait: bool = True, timeout: float = TEXT_TIMEOUT_S):
        """A structure by name ("liver", "left kidney"), from an auto-segmentation model, to refine with clicks."""
        if not isinstance(name, str) or not name.strip():
            raise InputError("Type the name of a structure, e.g. 'liver'.")
        self._context()
        return self._prompt("text", {"text": name.strip()}, True, wait, timeout)

    def _prompt(self, kind: str, fields: dict, positive, wait: bool, timeout: float):
        if self.logic.busy is not None:
            raise InputError("A prompt is still being computed; wait for it before the next one.")
        edit = PendingEdit(self, kind, {"kind": kind, "positive": bool(positive), **fields}, timeout)
        self._send(edit)
        self._pending = self.logic.busy = edit
        return edit.finish() if wait else edit

    def _send(self, edit: PendingEdit) -> None:
        frame, grid = self._context()
        self._prepare(frame, grid)
        edit.request_id = self.runner.send("session.prompt", **edit.fields)

    # -- history ------------------------------------------------------------------------------------
    def undo(self) -> SegmentChange:
        """Take back the last prompt: every voxel it changed, in every segment, gets its old value."""
        return self._replay(undo=True)

    def redo(self) -> SegmentChange:
        """Put back what the last undone prompt wrote (nothing is recomputed)."""
        return self._replay(undo=False)

    def _replay(self, undo: bool) -> SegmentChange:
        kind = "undo" if undo else "redo"
        if self._pending is not None:
            raise InputError(f"A prompt is still being computed; {kind} after it has come back.")
        _, grid = self._context()
        source, dest = (self._undo, self._redo) if undo else (self._redo, self._undo)
        if not source:
            return SegmentChange(self.segmentId, kind, notes=[f"Nothing to {kind}."])
        step = source.pop()
        before = self.logic.stamps_before_write(grid)
        change = replay(grid, step, self.segmentId, undo)
        dest.append(step)
        self.logic.after_write(grid, step.region, set(step.before), before, by=self)
        self._follow(grid, step, kind)
        return change

    def _follow(self, grid, step: Step, kind: str) -> None:
        """The runner's mask follows an undo or redo: by its own undo/redo when it holds the step's twin,
        else by being told the voxels. A crashed or closed session is brought up to date when reopened."""
        self.runner.collect()
        if self.runner.state() != "open":
            return
        if _empty(step.region):
            if step.generation == self.runner.generation:
                self.runner.fire(f"session.{kind}")  # an empty step still has its twin to pop
            return
        expected = grid.read(self.segmentId, step.region)
        if step.generation == self.runner.generation:
            def check(data, region=step.region, expected=expected):
                values, offset = regions.decode(data.get("region"))
                got = regions.region_of(values, offset)
                if not _inside(got, region) or not np.array_equal(
                        values.astype(bool), expected[_relative(got, region)]):
                    self._stamp = None  # the two disagree: the next prompt resends the whole segment
            self.runner.fire(f"session.{kind}", check)
        else:
            self.runner.fire("session.amend", mask=regions.encode(expected, _start(step.region)), last_step=False)
        self._known = union(self._known, step.region)

    def inherit_history(self, previous: "SegmentSession") -> None:
        """Keep the undo/redo steps of the session this one replaces (the user changed the engine).

        The steps are voxel differences of the segments, so they replay the same whatever engine made
        them; none has a twin in the new runner session (generation None), so an undo tells the new
        runner the voxels instead of asking for its own undo."""
        self._undo = [replace(step, generation=None) for step in previous._undo]
        self._redo = [replace(step, generation=None) for step in previous._redo]
        if self._undo or self._redo:
            self._notes.append("Engine changed; the earlier prompts can still be undone.")
            self._start_notes = [self._notes[-1]]

    # -- closing ----------------------------------------------------------------------------------
    def close(self) -> None:
        """End the session: the worker frees its mask, history and engine; this object's history goes."""
        if self.closed:
            return
        self.closed = True
        if self._pending is not None:
            self.runner.discard(self._pending.request_id)
            self._pending = None
        self.runner.close()
        self._undo.clear()
        self._redo.clear()
        self.logic._forget(self)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until the worker has answered every request sent so far (tests; the GUI need not)."""
        deadline = time.monotonic() + timeout
        self.runner.collect()
        while self.runner.checks_pending and time.monotonic() < deadline and self.runner.state() == "open":
            time.sleep(0.005)
            self.runner.collect()

    # -- internals --------------------------------------------------------------------------------
    def _context(self) -> Tuple[VolumeFrame, SegmentGrid]:
        """The nodes as they are now, checked: a session whose nodes or segment went away is closed."""
        if self.closed:
            raise InputError("This interactive session is closed; start a new one.")
        scene = self.logic.scene
        gone = [n.GetName() for n in (self.volumeNode, self.segmentationNode) if n.GetScene() is not scene]
        segment = self.segmentationNode.GetSegmentation().GetSegment(self.segmentId)
        if gone or segment is None:
            what = f"'{gone[0]}' was removed from the scene" if gone else f"the segment '{self.segmentId}' was deleted"
            self.close()
            raise InputError(f"The interactive session ended: {what}.")
        frame = VolumeFrame(self.volumeNode)
        grid = SegmentGrid(self.segmentationNode, frame)
        grid.check_reference_geometry(fix_missing=False)
        grid.check_segment(self.segmentId)
        return frame, grid

    def _prepare(self, frame: VolumeFrame, grid: SegmentGrid) -> None:
        """Before a prompt: a runner session that holds this volume and exactly this segment's voxels."""
        state = self.runner.state()
        if state == "crashed":
            code = self.runner.worker.exit_code
            self.runner.forget()
            raise SessionLostError(
                f"The interactive segmentation process stopped unexpectedly (exit code {code}); "
                f"'{self._segment_name()}' is unchanged. The next prompt starts a new session (undo still works).")
        key = self.logic.image_key(self.volumeNode)
        if state != "open" or key != self._image_key:
            path = self.logic.image_file(self.volumeNode)
            box = grid.bounding_box(self.segmentId)
            initial = None if box is None else (grid.read(self.segmentId, box).astype(np.uint8), _start(box))
            self.runner.open(path, initial)
            self._image_key, self._known, self._external = key, box, None
            self._stamp = grid.stamp(self.segmentId)
            return
        stamp = grid.stamp(self.segmentId)
        if stamp != self._stamp:  # edited elsewhere (another effect, a crashed check): resend all of it
            region = union(union(self._known, grid.bounding_box(self.segmentId)), self._external)
        else:
            region = self._external
        if region is not None and not _empty(region):
            values = grid.read(self.segmentId, region).astype(np.uint8)
            self.runner.fire("session.amend", mask=regions.encode(values, _start(region)), last_step=False)
            self._known = union(self._known, region)
        self._external, self._stamp = None, stamp

    def _note_external(self, region) -> None:
        self._external = union(self._external, region)

    def _abandon(self, edit: PendingEdit) -> None:
        self.runner.discard(edit.request_id)
        self.runner.close()  # its state after the late reply is unknown: the next prompt opens a new one
        self._pending = None
        if self.logic.busy is edit:
            self.logic.busy = None

    def _complete(self, edit: PendingEdit) -> SegmentChange:
        reply = edit.reply
        self._pending = None
        if self.logic.busy is edit:
            self.logic.busy = None
        self.runner.collect()
        problem, self.runner.problem = self.runner.problem, None
        name = self._segment_name()
        if reply.lost:
            self.runner.forget()
            raise SessionLostError(f"{reply.error} '{name}' is unchanged; the next prompt starts a new session "
                                   "(undo still works).")
        if problem is not None and problem.op in ("session.open", "session.image", "session.set_mask"):
            self.runner.forget()
            raise InputError(problem.error)
        if problem is not None:
            self._stamp = None  # an amend failed: the runner's mask is resent in full before the next prompt
        if not reply.ok:
            if reply.error_type == "UnknownSession":
                self.runner.forget()
            if reply.error_type in ("BadRequest",) or reply.error.startswith("Unexpected error"):
                raise MedSegAIError(reply.error)
            raise InputError(reply.error)
        values, region = reply.region()
        try:
            frame, grid = self._context()
            settings = current_settings(self.logic.scene, self.segmentEditorNode)
            before = self.logic.stamps_before_write(grid)
            step, change, kept = apply_proposal(grid, self.segmentId, edit.kind, region, values, settings)
        except BaseException:
            if self.runner.state() == "open":
                self.runner.fire("session.undo")  # the runner forgets the prompt the scene did not take
            raise
        step.generation = self.runner.generation
        self._undo.append(step)
        self._redo.clear()
        if not _empty(region):
            if (kept != values).any():
                self.runner.fire("session.amend", mask=regions.encode(kept, _start(region)), last_step=True)
            self._known = union(self._known, region)
            self.logic.after_write(grid, region, set(step.before), before, by=self)
        change.seconds = float(reply.data.get("seconds") or 0.0)
        if reply.data.get("text_structures"):
            change.notes.append("From the model's " + ", ".join(reply.data["text_structures"]) + ".")
        change.notes += [str(w) for w in reply.data.get("text_warnings") or []]
        change.notes += self._start_notes
        self._start_notes = []
        if self.runner.engine_note and self.runner.engine_note not in self._notes:
            self._notes.append(self.runner.engine_note)
            change.notes.append(self.runner.engine_note)
        return change

    def _segment_name(self) -> str:
        segment = self.segmentationNode.GetSegmentation().GetSegment(self.segmentId)
        return segment.GetName() if segment is not None else self.segmentId


def _empty(region) -> bool:
    return region is None or any(s.stop <= s.start for s in region)


def _start(region) -> Tuple[int, int, int]:
    return tuple(int(s.start) for s in region)


def _inside(inner, outer) -> bool:
    return _empty(inner) or all(a.start >= b.start and a.stop <= b.stop for a, b in zip(inner, outer))


def _relative(inner, outer):
    if _empty(inner):
        return tuple(slice(0, 0) for _ in outer)
    return tuple(slice(a.start - b.start, a.stop - b.start) for a, b in zip(inner, outer))
