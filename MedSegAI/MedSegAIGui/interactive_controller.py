"""Prompts from the Segment Editor effect, run without blocking Slicer's GUI thread.

Each prompt goes to the Logic with ``wait=False``; a QTimer polls it and applies the reply (a few
milliseconds). Prompts given while one is computing wait in a queue (a user clicks faster than
an engine answers), and so do undo and redo, so their order is the order the user gave them.
The session is looked up for every action from what the Segment Editor shows then (source
volume, segmentation, selected segment): switching segment or volume switches history, and the
Logic keeps each one. Every failure is one line on the status line; the scene is unchanged.
"""
from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from typing import Callable, Deque, Optional

import qt

from medsegai.errors import MedSegAIError


@dataclass
class Action:
    label: str  # for the status line: "Point +", "Undo", ...
    run: Callable  # session -> PendingEdit (a prompt) or SegmentChange (undo/redo)
    queued_at: float


class PromptController:
    POLL_MS = 15

    def __init__(self, logic: Callable[[], object], target: Callable[[], tuple], options: Callable[[], dict],
                 report: Callable[[str, bool], None], before_write: Callable[[], None] = lambda: None,
                 dependencies: Callable[[], bool] = lambda: True):
        """``logic()``: the InteractiveLogic; ``target()``: (volume, segmentation, segment id, editor node)
        as the Segment Editor has them now; ``options()``: engine/model/device; ``report(text, is_error)``:
        the status line; ``before_write()``: Slicer's undo state is saved there; ``dependencies()``:
        True once the runner's packages are installed (asked before the first prompt)."""
        self._logic, self._target, self._options = logic, target, options
        self._report, self._before_write, self._dependencies = report, before_write, dependencies
        self._queue: Deque[Action] = collections.deque()
        self._pending = None  # (Action, PendingEdit)
        self._ready = False
        self.last_change = None
        self.last_error: Optional[str] = None
        self.timer = qt.QTimer()
        self.timer.setInterval(self.POLL_MS)
        self.timer.connect("timeout()", self._poll)

    # -- what the tools call ------------------------------------------------------------------
    @property
    def idle(self) -> bool:
        return self._pending is None and not self._queue

    def submit(self, label: str, run: Callable) -> None:
        self._queue.append(Action(label, run, time.perf_counter()))
        self._pump()

    def cancel_all(self) -> None:
        """The effect is left or the scene closes: queued prompts are dropped (a running one finishes
        in the worker and is discarded with its session when the Logic closes it)."""
        self._queue.clear()
        self.timer.stop()

    def session(self):
        """The session of the segment the Segment Editor has selected now (InputError when it has none)."""
        from MedSegAILib.errors import InputError

        volume, segmentation, segment_id, editor = self._target()
        if segmentation is None:
            raise InputError("Select a segmentation in the Segment Editor.")
        if volume is None:
            raise InputError("Select a source volume in the Segment Editor.")
        if not segment_id:
            raise InputError("Select a segment to edit (add one to the segmentation first).")
        options = self._options()
        return self._logic().interactiveSession(volume, segmentation, segment_id, segmentEditorNode=editor,
                                                **options)

    def masking_description(self) -> str:
        volume, segmentation, segment_id, editor = self._target()
        if segmentation is None or not segment_id:
            return ""
        return self._logic().maskingDescription(segmentation, segment_id, editor)

    # -- the queue ------------------------------------------------------------------------------
    def _pump(self) -> None:
        while self._pending is None and self._queue:
            action = self._queue.popleft()
            try:
                if not self._ready:
                    self._ready = self._dependencies()
                    if not self._ready:
                        self._fail(action, "MedSegAI's Python packages are not installed; nothing was changed.")
                        continue
                result = action.run(self.session())
            except MedSegAIError as e:
                self._fail(action, str(e))
                continue
            if hasattr(result, "done"):  # a prompt on its way to the worker
                self._pending = (action, result)
                self.timer.start()
            else:
                self._done(action, result)

    def _poll(self) -> None:
        if self._pending is None:
            self.timer.stop()
            return
        action, edit = self._pending
        if edit.session.closed:  # its node was removed or the scene closed while it computed
            self._pending = None
            self.timer.stop()
            self._fail(action, "the session ended (a node was removed or the scene closed); nothing was changed.")
            self._pump()
            return
        if not edit.done and time.monotonic() < edit.deadline:
            return
        self._pending = None
        self.timer.stop()
        try:
            if edit.done:
                self._before_write()
            change = edit.finish(timeout=0)  # past its deadline: the Logic's one-line message, nothing changed
        except MedSegAIError as e:
            self._fail(action, str(e))
        else:
            self._done(action, change)
        self._pump()

    # -- the status line ---------------------------------------------------------------------------
    def _done(self, action: Action, change) -> None:
        self.last_change, self.last_error = change, None
        wall = time.perf_counter() - action.queued_at
        self._report(describe_change(action.label, change, wall), False)

    def _fail(self, action: Action, message: str) -> None:
        self.last_error = f"{action.label}: {message.splitlines()[0] if message else 'failed'}"
        self._report(self.last_error, True)


def describe_change(label: str, change, wall_s: float) -> str:
    """One line: what the action did to the segment and the others, and how long it took."""
    parts = [f"{label}: +{change.added} / -{change.removed} voxels"]
    others = sum(change.others.values())
    if others:
        verb = "got back" if change.kind == "undo" else "gave up"
        parts.append(f"other segments {verb} {others}")
    if change.refused:
        parts.append(f"{change.refused} kept as they were by the masking settings")
    text = ", ".join(parts) + f" in {wall_s:.2f} s"
    if change.seconds:
        text += f" (engine {change.seconds:.2f} s)"
    notes = " ".join(change.notes)
    return text + "." + (f" {notes}" if notes else "")
