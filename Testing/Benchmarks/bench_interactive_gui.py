"""How long Slicer's GUI thread is busy per interactive prompt on the full-size CT, step by step.

  .venv/bin/python Testing/Benchmarks/bench_interactive_gui.py [--repeats 5] [--engine classical]

Only Slicer's side is timed: the prompt's world -> voxel conversion, the request's encoding and
sending, the reply's decoding, and the segment update (masking settings, the other segments'
voxels, the writes into the segmentation); the worker's own time runs in another process and is
printed for scale. Real MRML nodes (slicer-core), the Logic the module uses, the Pancreas-CT-CB_001
series (512 x 512 x 134) and a "finished" segment where the prompts land. Each prompt kind is timed
under MedSegAI's default settings (others protected), under "overwrite all segments" (the finished
segment gives up voxels) and with the editable area "outside all segments" as well (Slicer's edit
mask computed on the prompt's region).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "MedSegAIInference"), str(REPO / "MedSegAI"), str(REPO / "Testing/Python/slicer_module")]

TIMES = defaultdict(list)


def timed(owner, name, label):
    """Wrap ``owner.name`` so each call's duration is added to TIMES[label]."""
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            TIMES[label].append(time.perf_counter() - t)

    setattr(owner, name, wrapper)


def main() -> None:
    import numpy as np
    import slicer

    import MedSegAILib.interactive_logic as il
    from medsegai.io.read import read_image
    from medsegai.service import WorkerProcess, regions
    from MedSegAILib import interactive_channel
    from MedSegAILib.prompt_geometry import VolumeFrame
    from MedSegAILib.segment_regions import SegmentGrid
    from mrml_scene import install_as_current, make_scene

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("MEDSEGAI_DATA_DIR", REPO.parent / "shared/data")))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--engine", default="classical")
    a = ap.parse_args()

    image = read_image(a.data / "ct/pancreas-ct-cb001-dicom/Pancreas-CT-CB_001_CT_dicom")
    mrml = make_scene()
    install_as_current(mrml)
    scene = mrml.scene
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")
    volume.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(image.ijk_to_ras()))
    slicer.util.updateVolumeFromArray(volume, image.array)
    K, J, I = image.shape
    print(f"CT {image.shape} (k, j, i) {image.array.dtype}, {image.array.nbytes / 1e6:.0f} MB; engine {a.engine}")

    seg = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Seg")
    seg.CreateDefaultDisplayNodes()
    seg.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    seg.GetSegmentation().AddEmptySegment("finished", "finished")
    seg.GetSegmentation().AddEmptySegment("new", "new")
    frame = VolumeFrame(volume)
    centre = (K // 2, J // 2, I // 2)
    body = np.zeros((24, 120, 120), bool)  # a finished segment where the prompts land: soft tissue
    crop = image.array[centre[0] - 12:centre[0] + 12, centre[1] - 60:centre[1] + 60, centre[2] - 60:centre[2] + 60]
    body[(crop > -100) & (crop < 200)] = True
    SegmentGrid(seg, frame).write("finished", (slice(centre[0] - 12, centre[0] + 12),
                                               slice(centre[1] - 60, centre[1] + 60),
                                               slice(centre[2] - 60, centre[2] + 60)), body)

    timed(VolumeFrame, "point", "ras->ijk"), timed(VolumeFrame, "box", "ras->ijk")
    timed(VolumeFrame, "lasso", "ras->ijk"), timed(VolumeFrame, "scribble", "ras->ijk")
    timed(regions, "encode", "encode")
    timed(WorkerProcess, "send_request", "send")
    timed(interactive_channel.Reply, "region", "decode")
    timed(il, "apply_proposal", "segment update")
    timed(il.SegmentSession, "_prepare", "prepare (sync, first: image + set_mask)")

    tmp = Path(tempfile.mkdtemp(prefix="bench-interactive-"))
    worker = WorkerProcess(env={"OMP_NUM_THREADS": "2"})
    logic = il.InteractiveLogic(scene, lambda: worker, work_root=str(tmp))
    roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "box")
    rng = np.random.default_rng(0)

    def prompts(kind, n):
        k, j, i = (c + int(rng.integers(-5, 6)) for c in centre)
        if kind == "point":
            return lambda s: s.addPoint(frame.world_of_voxel((k, j, i)), positive=n % 3 != 2, wait=False)
        if kind == "box":
            roi.SetCenter(*frame.world_of_voxel((k, j, i)))
            roi.SetSize(40, 40, 0)
            return lambda s: s.addBox(roi, wait=False)
        if kind == "lasso":
            ring = [frame.world_of_voxel((k, j + dj, i + di)) for dj, di in
                    ((-12, -10), (-8, 14), (10, 12), (12, -9))]
            return lambda s: s.addLasso(ring, positive=n % 2 == 0, wait=False)
        stroke = np.zeros(image.shape, np.uint8)
        stroke[k, j - 2:j + 3, i - 15:i + 15] = 1
        return lambda s: s.addScribble(stroke, positive=n % 2 == 0, wait=False)

    def editor(settings):
        node = scene.GetSingletonNode("SegmentEditor", "vtkMRMLSegmentEditorNode")
        if settings.startswith("overwrite"):
            if node is None:
                node = slicer.vtkMRMLSegmentEditorNode()
                node.SetSingletonTag("SegmentEditor")
                node = scene.AddNode(node)
            node.SetOverwriteMode(slicer.vtkMRMLSegmentEditorNode.OverwriteAllSegments)
            node.SetMaskMode(slicer.vtkMRMLSegmentationNode.EditAllowedOutsideAllSegments if "outside" in settings
                             else slicer.vtkMRMLSegmentationNode.EditAllowedEverywhere)
        elif node is not None:
            scene.RemoveNode(node)

    session = logic.interactiveSession(volume, seg, "new", engine=a.engine, device="cpu")
    rows = []
    first = True
    for settings in ("default (others protected)", "overwrite all, everywhere", "overwrite all, outside all segments"):
        editor(settings)
        for kind in ("point", "box", "lasso", "scribble"):
            for n in range(a.repeats + (1 if first else 0)):
                TIMES.clear()
                start = time.perf_counter()
                edit = prompts(kind, n)(session)
                sent = time.perf_counter() - start
                wait_start = time.perf_counter()
                while not edit.done:
                    time.sleep(0.001)
                waited = time.perf_counter() - wait_start
                t = time.perf_counter()
                change = edit.finish()
                finish = time.perf_counter() - t
                parts = {k: sum(v) for k, v in TIMES.items()}
                rows.append((settings, kind, first, sent + finish, sent, finish, waited, change.seconds,
                             change.added + change.removed, sum(change.others.values()), change.refused, parts))
                first = False
            t = time.perf_counter()
            session.undo()
            rows.append((settings, "undo", False, time.perf_counter() - t, 0, 0, 0, 0, 0, 0, 0, {}))

    print("\nfirst prompt of the session (writes the temporary NRRD, sends the segment's voxels):")
    r = rows[0]
    print(f"  {r[1]}: GUI {r[3] * 1000:.0f} ms = send {r[4] * 1000:.0f} + apply {r[5] * 1000:.0f}; "
          + ", ".join(f"{k} {v * 1000:.1f}" for k, v in r[11].items()))
    print("\nGUI-thread ms per prompt, median over the repeats (worker time for scale):")
    header = ("settings", "prompt", "GUI total", "ras->ijk", "encode", "send", "decode", "segment update",
              "worker s", "changed", "overwritten", "refused")
    print(" | ".join(header))
    groups = defaultdict(list)
    for r in rows[1:]:
        groups[(r[0], r[1])].append(r)
    for (settings, kind), rs in groups.items():
        med = lambda f: statistics.median(f(r) for r in rs)  # noqa: E731
        part = lambda name: med(lambda r: r[11].get(name, 0.0)) * 1000  # noqa: E731
        print(" | ".join([settings, kind, f"{med(lambda r: r[3]) * 1000:.1f}", f"{part('ras->ijk'):.2f}",
                          f"{part('encode'):.2f}", f"{part('send'):.2f}", f"{part('decode'):.2f}",
                          f"{part('segment update'):.1f}", f"{med(lambda r: r[7]):.2f}",
                          f"{med(lambda r: r[8]):.0f}", f"{med(lambda r: r[9]):.0f}", f"{med(lambda r: r[10]):.0f}"]))
    logic.shutdown()
    worker.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
