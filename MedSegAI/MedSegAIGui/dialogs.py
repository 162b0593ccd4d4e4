"""Every question and message the module puts to the user, behind one interface.

Two implementations: :class:`~MedSegAIGui.qt_dialogs.QtDialogs` (modal Qt dialogs) and
:class:`~MedSegAIGui.automatic_dialogs.AutomaticDialogs` (testing mode: nobody is there to answer).
:func:`default_dialogs` is the only place that looks at testing mode.
"""
from __future__ import annotations

from typing import Optional, Protocol, Sequence

from MedSegAILib.model_availability import MissingModel


class Dialogs(Protocol):
    def confirm_install(self, packages: str) -> bool:
        """Install these Python packages now?"""

    def confirm_restart(self) -> bool:
        """Packages Slicer had loaded were upgraded: restart now?"""

    def confirm_download(self, missing: Sequence[MissingModel]) -> bool:
        """Download these models? True also accepts the licences the question showed."""

    def ask_about_edited_segments(self, message: str) -> Optional[str]:
        """"keep", "replace", or None to import nothing."""

    def show_error(self, message: str) -> None: ...

    def ask_save_path(self, title: str, default_name: str, file_filter: str) -> Optional[str]:
        """A file to write, or None."""

    def ask_open_path(self, title: str, file_filter: str) -> Optional[str]:
        """A file to read, or None."""


def default_dialogs() -> Dialogs:
    # Testing mode is set once, on Slicer's command line (--testing), so one answer holds for a session.
    import slicer

    if slicer.app.testingEnabled():
        from .automatic_dialogs import AutomaticDialogs
        return AutomaticDialogs()
    from .qt_dialogs import QtDialogs
    return QtDialogs()
