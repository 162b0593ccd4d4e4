"""After a run: the uncertainty overlay and its jump, the 3D surfaces, and the statistics table."""
from __future__ import annotations

import qt
import slicer


class ResultsSection:
    def __init__(self, ui, logic, dialogs, log):
        self.ui, self.logic, self.dialogs, self.log = ui, logic, dialogs, log
        self.stats = []
        self.uncertainty_node = None
        self.uncertainty_volume = None
        ui.show3DCheckBox.connect("toggled(bool)", self.on_show_3d)
        ui.computeStatisticsButton.connect("clicked()", self.on_compute_statistics)
        ui.exportStatisticsButton.connect("clicked()", self.on_export_statistics)
        ui.overlayOpacitySlider.connect("valueChanged(double)", self.on_overlay_opacity)
        ui.overlayThresholdSlider.connect("valueChanged(double)", self.on_overlay_threshold)
        ui.jumpToLeastConfidentButton.connect("clicked()", self.on_jump_to_least_confident)

    def show_outcome(self, outcome, volume) -> None:
        if outcome.uncertainty_node is not None:
            self._show_uncertainty(outcome, volume)
        if self.ui.show3DCheckBox.checked:
            self.on_show_3d(True)

    # -- uncertainty ----------------------------------------------------------------------------
    def current_uncertainty_node(self, volume=None):
        """The last map while it is in the scene (and made for ``volume`` when one is given): the user
        may have deleted it, or be looking at another volume."""
        node = self.uncertainty_node
        if node is None or node.GetScene() is not slicer.mrmlScene:
            return None
        return node if volume is None or volume is self.uncertainty_volume else None

    def _show_uncertainty(self, outcome, volume) -> None:
        from MedSegAILib.uncertainty_overlay import set_overlay_threshold, show_overlay

        self.uncertainty_node, self.uncertainty_volume = outcome.uncertainty_node, volume
        set_overlay_threshold(self.uncertainty_node, self.ui.overlayThresholdSlider.value)
        show_overlay(slicer.mrmlScene, volume, self.uncertainty_node, self.ui.overlayOpacitySlider.value)
        self.ui.jumpToLeastConfidentButton.enabled = bool(outcome.confidence)
        low = sorted(n for n, v in outcome.confidence.items() if v.get("flagged"))
        self.log(f"Uncertainty ({outcome.uncertainty_method}): {len(low)} segment(s) below "
                 f"{self.ui.confidenceThresholdSpinBox.value:.2f} confidence" + (f": {', '.join(low)}" if low else "."))

    def on_overlay_opacity(self, value) -> None:
        from MedSegAILib.uncertainty_overlay import set_overlay_opacity

        node = self.current_uncertainty_node()
        if node is not None:
            set_overlay_opacity(slicer.mrmlScene, node, value)

    def on_overlay_threshold(self, value) -> None:
        from MedSegAILib.uncertainty_overlay import set_overlay_threshold

        node = self.current_uncertainty_node()
        if node is not None:
            set_overlay_threshold(node, value)

    def on_jump_to_least_confident(self) -> None:
        node = self.ui.outputSegmentationSelector.currentNode()
        try:
            segment_id, _ras = self.logic.jump_to_least_confident(node, self.ui.inputVolumeSelector.currentNode())
        except Exception as e:
            self.dialogs.show_error(str(e))
            return
        self.ui.stageLabel.text = f"Least confident: {node.GetSegmentation().GetSegment(segment_id).GetName()}"

    # -- 3D and statistics ----------------------------------------------------------------------
    def on_show_3d(self, show) -> None:
        node = self.ui.outputSegmentationSelector.currentNode()
        if node is None:
            return
        if show:
            node.CreateClosedSurfaceRepresentation()
        display = node.GetDisplayNode()
        if display is not None:
            display.SetVisibility3D(bool(show))

    def on_compute_statistics(self) -> None:
        from MedSegAILib.statistics import COLUMNS

        volume = self.ui.inputVolumeSelector.currentNode()
        try:
            self.stats = list(self.logic.statistics(self.ui.outputSegmentationSelector.currentNode(), volume,
                                                    self.current_uncertainty_node(volume),
                                                    self.ui.confidenceThresholdSpinBox.value))
        except Exception as e:
            self.dialogs.show_error(str(e))
            return
        table = self.ui.statisticsTable
        table.setSortingEnabled(False)  # rows would move while they are filled in
        table.clear()
        table.setColumnCount(len(COLUMNS))
        table.setHorizontalHeaderLabels(list(COLUMNS))
        table.setRowCount(len(self.stats))
        for r, s in enumerate(self.stats):
            for c, value in enumerate(s.row()):
                item = qt.QTableWidgetItem()
                # Numbers as numbers, so that a column sorts by value rather than as text.
                item.setData(qt.Qt.DisplayRole, value if isinstance(value, str) else round(float(value), 2))
                table.setItem(r, c, item)
        table.setSortingEnabled(True)
        self.ui.exportStatisticsButton.enabled = bool(self.stats)

    def on_export_statistics(self) -> None:
        from MedSegAILib.statistics import write_statistics_csv

        path = self.dialogs.ask_save_path("Export statistics", "segment_statistics.csv", "CSV (*.csv)")
        if path:
            write_statistics_csv(self.stats, path)
