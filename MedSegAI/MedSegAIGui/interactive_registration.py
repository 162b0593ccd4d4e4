"""Registers the "MedSegAI Interactive" Segment Editor effect and gives its clones one Logic.

Slicer makes one effect object per Segment Editor widget (``clone()``); they must share one
InteractiveLogic, so that a segment keeps its prompt history whichever widget edits it and the
image goes to the worker once. The Logic is built on first use, from the module's SegmentLogic
factory (so it uses the worker that stays, with the module's settings), and shut down with Slicer.
"""
from __future__ import annotations

import os
from typing import Callable, Optional

import slicer

EFFECT_NAME = "MedSegAI Interactive"
EFFECT_SOURCE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "MedSegAIEffect",
                             "SegmentEditorEffect.py")

_segment_logic_factory: Optional[Callable[[], object]] = None
_logic = None
_dependencies_ok = False


def register_effect(segment_logic_factory: Callable[[], object]) -> bool:
    """Called once Slicer has started (the Segment Editor's effect factory exists then); True when
    the effect is registered now or was already."""
    global _segment_logic_factory
    _segment_logic_factory = segment_logic_factory
    factory = slicer.qSlicerSegmentEditorEffectFactory.instance()
    if any(effect.name == EFFECT_NAME for effect in factory.registeredEffects()):
        return True
    import qSlicerSegmentationsEditorEffectsPythonQt as effects

    instance = effects.qSlicerSegmentEditorScriptedEffect(None)
    instance.setPythonSource(EFFECT_SOURCE.replace("\\", "/"))
    instance.self().register()
    return True


def interactive_logic():
    """The InteractiveLogic every clone of the effect uses."""
    global _logic
    if _logic is None:
        from MedSegAILib.interactive_logic import InteractiveLogic

        if _segment_logic_factory is None:
            raise RuntimeError("register_effect() was not called")
        core = _segment_logic_factory()
        core.remote = _stored_remote()
        _logic = InteractiveLogic(core.scene, lambda: core.session_worker, work_root=core.work_root)
        _logic.segment_logic = core
        slicer.app.connect("aboutToQuit()", shutdown)
    return _logic


def _stored_remote():
    """The panel's "Run on" choice as stored; an unusable server address runs here, as the panel says."""
    import qt

    from MedSegAILib.remote_job import RemoteSettings

    try:
        return RemoteSettings.from_settings(qt.QSettings())
    except Exception:  # noqa: BLE001 - the panel shows what is wrong with the address
        return None


def follow_remote(remote) -> None:
    """The panel's "Run on" changed: the next prompt runs there (sessions reopen from the segment)."""
    if _logic is not None:
        _logic.segment_logic.remote = remote


def dependencies_ready() -> bool:
    """Asked once, before the first prompt: the runner's packages, installed after the user agrees."""
    global _dependencies_ok
    if not _dependencies_ok:
        from .dependency_installer import ensure_dependencies

        _dependencies_ok = ensure_dependencies()
    return _dependencies_ok


def shutdown() -> None:
    """End the sessions and stop the worker (Slicer quits, or a test ends)."""
    global _logic
    interactive, _logic = _logic, None
    if interactive is not None:
        slicer.app.disconnect("aboutToQuit()", shutdown)
        interactive.shutdown()
        interactive.segment_logic.shutdown()
