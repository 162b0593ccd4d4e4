"""The panel's DICOM SEG buttons: export the output segmentation over the input volume's DICOM series,
import a SEG onto the input volume. The Logic does the work and checks; this asks for the file and
reports, so a refusal is a message and the scene stays as it was."""
from __future__ import annotations


class DicomSegSection:
    def __init__(self, ui, logic, dialogs, log):
        self.ui, self.logic, self.dialogs, self.log = ui, logic, dialogs, log
        ui.exportDicomSegButton.connect("clicked()", self.on_export)
        ui.importDicomSegButton.connect("clicked()", self.on_import)

    @property
    def buttons(self):
        return (self.ui.exportDicomSegButton, self.ui.importDicomSegButton)

    def _say(self, text: str) -> None:
        self.ui.dicomSegStatusLabel.text = text
        self.log(text)

    def on_export(self) -> None:
        volume = self.ui.inputVolumeSelector.currentNode()
        node = self.ui.outputSegmentationSelector.currentNode()
        if volume is None or node is None:
            self.dialogs.show_error("Choose the input volume and the output segmentation to export.")
            return
        path = self.dialogs.ask_save_path("Export DICOM SEG", f"{node.GetName()}.dcm", "DICOM SEG (*.dcm)")
        if not path:
            return
        try:
            notes = self.logic.export_dicom_seg(volume, node, path)
        except Exception as e:  # InputError and friends: no file was written
            self.dialogs.show_error(str(e))
            return
        self._say(" ".join([f"Wrote {path}."] + list(notes)))

    def on_import(self) -> None:
        volume = self.ui.inputVolumeSelector.currentNode()
        if volume is None:
            self.dialogs.show_error("Choose the input volume the DICOM SEG was made on.")
            return
        path = self.dialogs.ask_open_path("Import DICOM SEG", "DICOM SEG (*.dcm);;All files (*)")
        if not path:
            return
        try:
            node, notes = self.logic.import_dicom_seg(path, volume)
        except Exception as e:  # the scene is unchanged
            self.dialogs.show_error(str(e))
            return
        self.ui.outputSegmentationSelector.setCurrentNode(node)
        count = node.GetSegmentation().GetNumberOfSegments()
        self._say(" ".join([f"Imported {count} segment(s) into '{node.GetName()}'."] + list(notes)))
