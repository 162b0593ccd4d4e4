"""The searchable structure checklist: which structures of the chosen model the run keeps."""
from __future__ import annotations

from typing import Iterator, List, Optional, Sequence

import qt


class StructureChecklist:
    def __init__(self, ui):
        self.ui = ui
        ui.structureSearchBox.connect("textChanged(QString)", self.filter)
        ui.selectAllStructuresButton.connect("clicked()", lambda: self.set_all(True))
        ui.clearStructuresButton.connect("clicked()", lambda: self.set_all(False))
        ui.structureTree.connect("itemChanged(QTreeWidgetItem*,int)", self.update_count)

    def fill(self, structures: Sequence[str]) -> None:
        from medsegai.terminology import structure_groups

        tree = self.ui.structureTree
        tree.blockSignals(True)
        tree.clear()
        for group, names in structure_groups(structures).items():
            parent = qt.QTreeWidgetItem(tree, [group])
            parent.setFlags(parent.flags() | qt.Qt.ItemIsUserCheckable | qt.Qt.ItemIsAutoTristate)
            for name in names:
                child = qt.QTreeWidgetItem(parent, [name])
                child.setFlags(child.flags() | qt.Qt.ItemIsUserCheckable)
                child.setCheckState(0, qt.Qt.Checked)
        tree.blockSignals(False)
        self.ui.structuresCollapsibleButton.enabled = bool(structures)
        self.update_count()

    def items(self) -> Iterator:
        tree = self.ui.structureTree
        for g in range(tree.topLevelItemCount):
            group = tree.topLevelItem(g)
            for c in range(group.childCount()):
                yield group.child(c)

    def set_all(self, checked: bool) -> None:
        """Only the structures the search shows: "kidney", then None, unticks the kidneys."""
        for item in self.items():
            if not item.isHidden():
                item.setCheckState(0, qt.Qt.Checked if checked else qt.Qt.Unchecked)

    def filter(self, text: str) -> None:
        text = text.lower().replace(" ", "_")  # "vertebrae L" finds vertebrae_L1
        tree = self.ui.structureTree
        for g in range(tree.topLevelItemCount):
            group = tree.topLevelItem(g)
            visible = 0
            for c in range(group.childCount()):
                child = group.child(c)
                child.setHidden(bool(text) and text not in child.text(0).lower())
                visible += 0 if child.isHidden() else 1
            group.setHidden(visible == 0)
            group.setExpanded(bool(text))

    def selected_subset(self) -> Optional[List[str]]:
        """None when everything is ticked (the full model runs, no cropping to parts), else the ticked names."""
        items = list(self.items())
        ticked = [i.text(0) for i in items if i.checkState(0) == qt.Qt.Checked]
        return None if len(ticked) == len(items) else ticked

    def update_count(self, *_) -> None:
        total = len(list(self.items()))
        subset = self.selected_subset()
        self.ui.structureCountLabel.text = f"{total if subset is None else len(subset)} of {total}"
