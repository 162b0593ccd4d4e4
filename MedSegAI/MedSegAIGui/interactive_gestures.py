"""Mouse and keys on the slice views -> prompts, for the "MedSegAI Interactive" effect.

What the Segment Editor hands an effect (``processInteractionEvents``: the view's VTK interactor,
the event id, the view widget) becomes one prompt per gesture: a click for a point, a drag for a
box, a stroke for a scribble, a closed freehand outline for a lasso. Shift inverts the +/- toggle
for one gesture. Keys (as SlicerNNInteractive's users know them): P point, B box, S scribble,
L lasso, T toggles +/-, Esc drops the gesture being drawn, Ctrl+Z / Ctrl+Y (Ctrl+Shift+Z) undo and
redo prompts. The outline being drawn is shown in the view in display coordinates, green for +,
red for -.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

import vtk

TOOLS = ("point", "box", "scribble", "lasso")
TOOL_KEYS = {"p": "point", "b": "box", "s": "scribble", "l": "lasso"}
TOGGLE_KEY = "t"
# A drag shorter than this (display pixels) is a slip of the hand, not a box or an outline.
MIN_DRAG_PX = 3


@dataclass
class ToolState:
    tool: str = "point"
    positive: bool = True
    listeners: List[Callable[[], None]] = field(default_factory=list)

    def set(self, tool: Optional[str] = None, positive: Optional[bool] = None) -> None:
        if tool is not None:
            if tool not in TOOLS:
                raise ValueError(f"unknown tool {tool!r}")
            self.tool = tool
        if positive is not None:
            self.positive = bool(positive)
        for listener in list(self.listeners):
            listener()


@dataclass
class Drawing:
    view: object
    tool: str
    positive: bool
    ras: List[Tuple[float, float, float]]
    xy: List[Tuple[int, int]]
    slice_to_ras: object
    actor: object = None


class SliceGestures:
    """``effect``: the scripted effect (xyToRas, scriptedEffect.addActor2D/removeActor2D);
    ``prompts``: an object with point/box/scribble/lasso/undo/redo (InteractiveTools)."""

    def __init__(self, effect, prompts, state: ToolState):
        self.effect, self.prompts, self.state = effect, prompts, state
        self.drawing: Optional[Drawing] = None

    def process(self, interactor, event_id, view) -> bool:
        """True: the event was ours (the Segment Editor then stops it there)."""
        if view.className() != "qMRMLSliceWidget":
            return False
        if event_id == vtk.vtkCommand.KeyPressEvent:
            return self._key(interactor)
        xy = tuple(interactor.GetEventPosition())
        if event_id == vtk.vtkCommand.LeftButtonPressEvent:
            if interactor.GetControlKey() or interactor.GetAltKey():
                return False  # Slicer's own Ctrl/Alt gestures keep working
            positive = self.state.positive != bool(interactor.GetShiftKey())
            ras = tuple(self.effect.xyToRas(xy, view))
            if self.state.tool == "point":
                self.prompts.point(ras, positive)
                return True
            self._start(view, positive, ras, xy)
            return True
        if self.drawing is None or self.drawing.view != view:
            return False
        if event_id == vtk.vtkCommand.MouseMoveEvent:
            self._extend(xy, tuple(self.effect.xyToRas(xy, view)))
            return True
        if event_id == vtk.vtkCommand.LeftButtonReleaseEvent:
            self._extend(xy, tuple(self.effect.xyToRas(xy, view)))
            self._finish()
            return True
        return False

    def cancel(self) -> None:
        if self.drawing is not None and self.drawing.actor is not None:
            self.effect.scriptedEffect.removeActor2D(self.drawing.view, self.drawing.actor)
        self.drawing = None

    # -- keys -----------------------------------------------------------------------------------
    def _key(self, interactor) -> bool:
        key = (interactor.GetKeySym() or "").lower()
        if interactor.GetControlKey():
            if key == "z" and not interactor.GetShiftKey():
                self.prompts.undo()
                return True
            if key == "y" or key == "z":
                self.prompts.redo()
                return True
            return False
        if key in TOOL_KEYS:
            self.cancel()
            self.state.set(tool=TOOL_KEYS[key])
            return True
        if key == TOGGLE_KEY:
            self.state.set(positive=not self.state.positive)
            return True
        if key == "escape" and self.drawing is not None:
            self.cancel()
            return True
        return False

    # -- drags ----------------------------------------------------------------------------------
    def _start(self, view, positive, ras, xy) -> None:
        self.cancel()
        slice_to_ras = vtk.vtkMatrix4x4()
        slice_to_ras.DeepCopy(view.sliceLogic().GetSliceNode().GetSliceToRAS())
        self.drawing = Drawing(view, self.state.tool, positive, [ras], [xy], slice_to_ras)
        self.drawing.actor = _outline_actor(positive)
        self.effect.scriptedEffect.addActor2D(view, self.drawing.actor)
        self._show()

    def _extend(self, xy, ras) -> None:
        d = self.drawing
        if d.tool == "box":
            d.xy[1:], d.ras[1:] = [xy], [ras]
        elif xy != d.xy[-1]:
            d.xy.append(xy)
            d.ras.append(ras)
        self._show()

    def _finish(self) -> None:
        d = self.drawing
        self.cancel()
        span = max(max(abs(x - d.xy[0][0]), abs(y - d.xy[0][1])) for x, y in d.xy)
        if d.tool == "scribble":
            self.prompts.scribble(d.ras, d.positive, d.slice_to_ras)
        elif span < MIN_DRAG_PX:
            self.prompts.too_small(d.tool)
        elif d.tool == "box":
            self.prompts.box(d.ras[0], d.ras[-1], d.slice_to_ras, d.positive)
        else:
            self.prompts.lasso(d.ras, d.positive)

    def _show(self) -> None:
        d = self.drawing
        xy = d.xy
        if d.tool == "box" and len(xy) > 1:
            (x0, y0), (x1, y1) = xy[0], xy[-1]
            xy = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
        closed = d.tool in ("box", "lasso")
        points = vtk.vtkPoints()
        for x, y in xy:
            points.InsertNextPoint(x, y, 0.0)
        line = vtk.vtkPolyLine()
        ids = list(range(len(xy))) + ([0] if closed and len(xy) > 2 else [])
        line.GetPointIds().SetNumberOfIds(len(ids))
        for n, i in enumerate(ids):
            line.GetPointIds().SetId(n, i)
        cells = vtk.vtkCellArray()
        cells.InsertNextCell(line)
        poly = d.actor.GetMapper().GetInput()
        poly.SetPoints(points)
        poly.SetLines(cells)
        poly.Modified()
        d.view.sliceView().scheduleRender()


def _outline_actor(positive: bool):
    poly = vtk.vtkPolyData()
    mapper = vtk.vtkPolyDataMapper2D()
    mapper.SetInputData(poly)
    actor = vtk.vtkActor2D()
    actor.SetMapper(mapper)
    actor.GetProperty().SetColor((0.2, 0.9, 0.2) if positive else (0.95, 0.25, 0.2))
    actor.GetProperty().SetLineWidth(2)
    return actor
