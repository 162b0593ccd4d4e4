"""The console's DICOM SEG methods of MedSegAILogic, kept out of the module file (imports nothing at load)."""
from __future__ import annotations


class DicomSegConsole:
    def exportDicomSeg(self, volumeNode, segmentationNode, path, segmentIds=None, segmentationType="BINARY",
                       sourceFolder=None):
        """Write the segmentation as a DICOM SEG over the DICOM series ``volumeNode`` was loaded from
        (Slicer's DICOM database, or ``sourceFolder`` holding that series); returns notes."""
        from .dicom_seg_bridge import export_from_console

        return export_from_console(volumeNode, segmentationNode, path, segmentIds, segmentationType, sourceFolder)

    def importDicomSeg(self, path, volumeNode, segmentationNode=None, sourceFolder=None):
        """Read a DICOM SEG onto ``volumeNode``'s grid; returns (segmentation node, notes)."""
        import slicer

        from .dicom_seg_bridge import import_from_console

        return import_from_console(slicer.mrmlScene, path, volumeNode, segmentationNode, sourceFolder)
