"""The module's questions as modal Qt dialogs, parented to Slicer's main window."""
from __future__ import annotations

from typing import Optional, Sequence

import slicer

from MedSegAILib.model_availability import MissingModel

TITLE = "MedSegAI"
KEEP_EDITS, REPLACE_EDITS, DONT_IMPORT = "Keep my edits", "Replace them", "Don't import"


def download_question(missing: Sequence[MissingModel]) -> str:
    """Sizes, licences and where the models go; a licence to accept is shown in full."""
    from medsegai.models import cache_dir

    lines = [f"This run needs {len(missing)} model(s) that are not installed yet:"]
    lines += [f"  - {m.describe()}" for m in missing]
    lines.append(f"\nDownload them now into {cache_dir()}? The download runs in the background and can be "
                 "cancelled; an interrupted download resumes next time.")
    for m in missing:
        if m.licence_must_be_accepted:
            lines.append(f"\nThe licence of {m.model_id} must be accepted; pressing OK accepts it:\n{m.licence_notice}")
    return "\n".join(lines)


class QtDialogs:
    def confirm_install(self, packages: str) -> bool:
        return slicer.util.confirmOkCancelDisplay(
            f"MedSegAI needs these Python packages: {packages}.\n"
            "They will be downloaded and installed now (several GB for PyTorch). Slicer's own SimpleITK, "
            "numpy, requests and VTK are kept as they are.", "MedSegAI: install dependencies")

    def confirm_restart(self) -> bool:
        return slicer.util.confirmYesNoDisplay(
            "Some packages Slicer had already loaded were upgraded. Restart Slicer now?")

    def confirm_download(self, missing: Sequence[MissingModel]) -> bool:
        return slicer.util.confirmOkCancelDisplay(download_question(missing), windowTitle="MedSegAI: download models")

    def ask_about_edited_segments(self, message: str) -> Optional[str]:
        import qt

        box = qt.QMessageBox(slicer.util.mainWindow())
        box.windowTitle = "MedSegAI: edited segments"
        box.icon = qt.QMessageBox.Question
        box.text = message
        box.informativeText = "Keep my edits: the other segments are updated, the edited ones stay as they are."
        keep = box.addButton(KEEP_EDITS, qt.QMessageBox.AcceptRole)
        box.addButton(REPLACE_EDITS, qt.QMessageBox.DestructiveRole)
        box.addButton(DONT_IMPORT, qt.QMessageBox.RejectRole)
        box.setDefaultButton(keep)
        box.exec_()
        # Closing the box with Escape clicks no button: that imports nothing, like "Don't import".
        role = box.buttonRole(box.clickedButton()) if box.clickedButton() else qt.QMessageBox.RejectRole
        box.deleteLater()
        return {qt.QMessageBox.AcceptRole: "keep", qt.QMessageBox.DestructiveRole: "replace"}.get(role)

    def show_error(self, message: str) -> None:
        slicer.util.errorDisplay(message, windowTitle=TITLE)

    def ask_save_path(self, title: str, default_name: str, file_filter: str) -> Optional[str]:
        import qt

        return qt.QFileDialog.getSaveFileName(None, title, default_name, file_filter) or None

    def ask_open_path(self, title: str, file_filter: str) -> Optional[str]:
        import qt

        return qt.QFileDialog.getOpenFileName(None, title, "", file_filter) or None
