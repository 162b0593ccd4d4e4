"""``import ctk`` as in Slicer: CTK's classes as PythonQt shows them (see ctk_widgets.py)."""
import ctk_widgets
import qt


def __getattr__(name: str):
    for cls in ctk_widgets.CLASSES:
        if cls.__name__ == name:
            return qt._ClassProxy(cls)
    raise AttributeError(f"module 'ctk' has no attribute '{name}' in this test environment")
