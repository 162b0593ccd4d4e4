"""The Extension Manager screenshot (Resources/Screenshots/MedSegAI-1.png), made from a real run.

  .venv/bin/python Testing/Tools/make_screenshot.py [--out Resources/Screenshots/MedSegAI-1.png]

Left: the module's panel after a run of the bundled model with entropy uncertainty and the
statistics computed: the real widget class and .ui file rendered offscreen by Qt (the same
PythonQt emulation the widget tests use, so Slicer's own widgets are drawn by stand-ins and the
style is Qt's, not Slicer's). Right: the runner's preview of the same result (axial, coronal and
sagittal slices, labels, legend, uncertainty). There is no Slicer on the build machines, so this
is not a picture of the Slicer application window.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "MedSegAIInference"), str(REPO / "MedSegAI"), str(REPO / "Testing/Python/slicer_module")]
CT = "ct/totalsegmentator-examples/tests/reference_files/example_ct.nii.gz"


def render_panel(ct_path: Path, work: Path):
    from pythonqt_env.slicer_application import add_slice_views, install, module_panel, process_events_until

    app = install(work)
    import slicer

    from mrml_scene import install_as_current, make_scene

    mrml = make_scene()
    install_as_current(mrml)
    add_slice_views(mrml.scene)
    import MedSegAI

    app.testing = True  # no dialogs: the panel takes the automatic answers
    widget, parent = module_panel(MedSegAI.MedSegAIWidget, mrml.scene)
    slicer.util.loadVolume(str(ct_path))
    ui = widget.ui
    ui.modelSelector.setCurrentIndex(ui.modelSelector.findData("model:medsegai_ct_demo"))
    ui.deviceSelector.setCurrentIndex(ui.deviceSelector.findData("cpu"))
    ui.uncertaintyMethodSelector.setCurrentIndex(ui.uncertaintyMethodSelector.findData("entropy"))
    ui.uncertaintyCollapsibleButton.collapsed = False
    ui.statisticsCollapsibleButton.collapsed = False
    ui.structuresCollapsibleButton.collapsed = False
    ui.structureSearchBox.setText("kidney")
    ui.applyButton.click()
    process_events_until(lambda: widget.panel.running is None, 600, "the run")
    ui.computeStatisticsButton.click()
    parent.resize(440, 1150)
    parent.show()
    app.processEvents()
    image = parent.grab().toImage()
    path = work / "panel.png"
    image.save(str(path))
    widget.cleanup()  # stops the worker, which stays between runs
    return path, ui.stageLabel.text


def render_preview(ct_path: Path, work: Path) -> Path:
    import medsegai
    from medsegai.preview import write_preview

    result = medsegai.segment(ct_path, model="medsegai_ct_demo", device="cpu", uncertainty="entropy")
    path = work / "preview.png"
    write_preview(ct_path, result, path)
    return path


def main() -> None:
    from PIL import Image

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=REPO / "Resources/Screenshots/MedSegAI-1.png")
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("MEDSEGAI_DATA_DIR", REPO.parent / "shared/data")))
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="medsegai-screenshot-"))
    panel_path, stage = render_panel(a.data / CT, work)
    preview_path = render_preview(a.data / CT, work)
    panel, preview = Image.open(panel_path).convert("RGB"), Image.open(preview_path).convert("RGB")
    scale = panel.height / preview.height
    preview = preview.resize((int(preview.width * scale), panel.height), Image.LANCZOS)
    sheet = Image.new("RGB", (panel.width + preview.width + 16, panel.height), "white")
    sheet.paste(panel, (0, 0))
    sheet.paste(preview, (panel.width + 16, 0))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    # 256 colours: the Extension Manager shows it small, and the file stays a few hundred KB.
    sheet.quantize(256, method=Image.Quantize.MEDIANCUT).save(a.out, optimize=True)
    print(f"{a.out}: {sheet.width}x{sheet.height}, {a.out.stat().st_size / 1e3:.0f} KB; panel says: {stage}")


if __name__ == "__main__":
    main()
