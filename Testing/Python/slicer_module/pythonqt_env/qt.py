"""Slicer's ``qt`` module (PythonQt) emulated over PySide6, so the module's widget code runs on real
Qt widgets in pytest, without the Slicer application.

What PythonQt does, and this reproduces, because the widget code relies on it:
- every class of QtCore, QtGui, QtWidgets and QtUiTools in one module (``qt.QTimer``, ``qt.Qt``);
- Qt properties read and written as attributes (``label.text = "x"``, ``combo.currentData``,
  ``tree.topLevelItemCount``), a property winning over a method of the same name;
- ``name`` for ``objectName`` (``slicer.util.childWidgetVariables`` uses it), ``className()`` for
  the C++ class name (Segment Editor effects test the view widget's class with it);
- signals connected by their C++ signature (``button.connect("clicked()", slot)``), a slot that
  takes fewer arguments than the signal getting only the first ones;
- ``exec_()``, and ``QFileDialog.getSaveFileName`` returning the path alone.

Where PythonQt only prints a warning, this raises, so that a typo fails a test: an unknown signal
signature, an attribute that is neither a property nor a method, writing a non-property
attribute. An exception inside a slot is printed (as PythonQt does) and also kept in
:data:`SLOT_ERRORS`, which the tests check after each test.
"""
from __future__ import annotations

import inspect
import traceback
import weakref
from typing import Any, Callable, Dict, List

from PySide6 import QtCore, QtGui, QtUiTools, QtWidgets

_QT_MODULES = (QtCore, QtGui, QtWidgets, QtUiTools)
SLOT_ERRORS: List[str] = []
# Qt classes the harness replaces (Slicer's own widgets, CTK's, a QUiLoader that knows them).
_REPLACEMENTS: Dict[str, type] = {}
# Return values PythonQt converts differently from PySide6, by "Class.method".
_PYTHONQT_RESULTS: Dict[str, Callable[[Any], Any]] = {
    "QFileDialog.getSaveFileName": lambda r: r[0] if isinstance(r, tuple) else r,
    "QFileDialog.getOpenFileName": lambda r: r[0] if isinstance(r, tuple) else r,
    "QFileDialog.getExistingDirectory": lambda r: r,
}
_wrappers: "weakref.WeakKeyDictionary[QtCore.QObject, Wrapped]" = weakref.WeakKeyDictionary()


def register_replacement(name: str, cls: type) -> None:
    _REPLACEMENTS[name] = cls


def wrap(value):
    """The PythonQt view of a PySide6 value: QObjects wrapped (one wrapper per object), lists too."""
    if isinstance(value, Wrapped):
        return value
    if isinstance(value, QtCore.QObject):
        try:
            return _wrappers[value]
        except KeyError:
            w = _wrappers[value] = Wrapped(value)
            return w
        except TypeError:  # not weak-referenceable
            return Wrapped(value)
    if isinstance(value, list):
        return [wrap(v) for v in value]
    if isinstance(value, tuple):
        return tuple(wrap(v) for v in value)
    return value


def unwrap(value):
    if isinstance(value, Wrapped):
        return object.__getattribute__(value, "_qobj")
    if isinstance(value, _ClassProxy):
        return value._cls
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    if isinstance(value, tuple):
        return tuple(unwrap(v) for v in value)
    return value


def _call_wrapped(fn, qualname: str = ""):
    convert = _PYTHONQT_RESULTS.get(qualname)

    def call(*args, **kwargs):
        result = fn(*[unwrap(a) for a in args], **{k: unwrap(v) for k, v in kwargs.items()})
        if convert is not None:
            result = convert(result)
        return wrap(result)

    call.__name__ = getattr(fn, "__name__", "method")
    return call


def _has_property(obj: QtCore.QObject, name: str) -> bool:
    return obj.metaObject().indexOfProperty(name) >= 0


def _positional_capacity(slot) -> int:
    """How many signal arguments ``slot`` accepts (PythonQt drops the rest)."""
    try:
        sig = inspect.signature(slot)
    except (TypeError, ValueError):
        return 99
    n = 0
    for p in sig.parameters.values():
        if p.kind == p.VAR_POSITIONAL:
            return 99
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            n += 1
    return n


def _guarded(slot):
    capacity = _positional_capacity(slot)

    def receive(*args):
        try:
            slot(*[wrap(a) for a in args[:capacity]])
        except Exception:  # PythonQt prints it and goes on; the test fails on it afterwards
            text = traceback.format_exc()
            SLOT_ERRORS.append(text)
            print(text)

    return receive


def connect(obj: QtCore.QObject, signature: str, slot) -> bool:
    wanted = bytes(QtCore.QMetaObject.normalizedSignature(signature)).decode()
    aliases = getattr(type(obj), "PYTHONQT_SIGNALS", {})
    actual = aliases.get(wanted, wanted)
    if obj.metaObject().indexOfSignal(actual) < 0:
        raise AttributeError(f"{obj.metaObject().className()} has no signal {signature}")
    receiver = _guarded(slot)
    # Kept per (signal, slot) so that disconnect() can find it.
    obj.__dict__.setdefault("_pythonqt_slots", {})[(actual, slot)] = receiver
    return bool(QtCore.QObject.connect(obj, QtCore.SIGNAL(actual), receiver))


def disconnect(obj: QtCore.QObject, signature: str, slot) -> bool:
    wanted = bytes(QtCore.QMetaObject.normalizedSignature(signature)).decode()
    actual = getattr(type(obj), "PYTHONQT_SIGNALS", {}).get(wanted, wanted)
    receiver = obj.__dict__.get("_pythonqt_slots", {}).pop((actual, slot), None)
    return receiver is not None and bool(QtCore.QObject.disconnect(obj, QtCore.SIGNAL(actual), receiver))


class Wrapped:
    """A QObject as PythonQt shows it to Python."""

    __slots__ = ("_qobj", "__weakref__")

    def __init__(self, obj: QtCore.QObject):
        object.__setattr__(self, "_qobj", obj)

    def __getattr__(self, name: str):
        obj = object.__getattribute__(self, "_qobj")
        if name == "name":
            return obj.objectName()
        if name == "connect":
            return lambda signature, slot: connect(obj, signature, slot)
        if name == "disconnect":
            return lambda signature, slot: disconnect(obj, signature, slot)
        if name == "className":  # PythonQt gives every QObject its C++ class name this way
            return lambda: obj.metaObject().className()
        if _has_property(obj, name):
            return wrap(obj.property(name))
        if name == "exec_":
            name = "exec"
        attr = getattr(obj, name)  # AttributeError for a name Qt does not know
        if isinstance(attr, QtCore.SignalInstance):
            return attr
        if callable(attr):
            return _call_wrapped(attr, f"{type(obj).__name__}.{name}")
        return wrap(attr)

    def __setattr__(self, name: str, value) -> None:
        obj = object.__getattribute__(self, "_qobj")
        if name == "name":
            obj.setObjectName(value)
            return
        if not _has_property(obj, name):
            raise AttributeError(f"{obj.metaObject().className()} has no Qt property '{name}'")
        if not obj.setProperty(name, unwrap(value)):
            raise TypeError(f"{obj.metaObject().className()}.{name} cannot be set to {value!r}")

    def __eq__(self, other) -> bool:
        return unwrap(self) is unwrap(other)

    def __hash__(self) -> int:
        return id(unwrap(self))

    def __repr__(self) -> str:
        obj = object.__getattribute__(self, "_qobj")
        return f"<qt {obj.metaObject().className()} '{obj.objectName()}'>"


class _ClassProxy:
    """``qt.QSomething``: calling it makes a wrapped object; its static methods unwrap and wrap."""

    def __init__(self, cls: type):
        self._cls = cls

    def __call__(self, *args, **kwargs):
        return wrap(self._cls(*[unwrap(a) for a in args], **{k: unwrap(v) for k, v in kwargs.items()}))

    def __getattr__(self, name: str):
        attr = getattr(self._cls, name)
        if inspect.isclass(attr) or not callable(attr) or isinstance(attr, QtCore.Signal):
            return attr  # enums, flags, nested classes
        return _call_wrapped(attr, f"{self._cls.__name__}.{name}")

    def __instancecheck__(self, obj) -> bool:
        return isinstance(unwrap(obj), self._cls)

    def __repr__(self) -> str:
        return f"<qt class {self._cls.__name__}>"


def __getattr__(name: str):
    if name in _REPLACEMENTS:
        return _ClassProxy(_REPLACEMENTS[name])
    for module in _QT_MODULES:
        if hasattr(module, name):
            value = getattr(module, name)
            if name == "Qt" or not inspect.isclass(value):
                return value
            return _ClassProxy(value)
    raise AttributeError(f"module 'qt' has no attribute '{name}'")
