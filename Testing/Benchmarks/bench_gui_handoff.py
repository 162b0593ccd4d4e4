"""How long Slicer's GUI thread is busy around a run, on the full-size CT: handing the volume to the
worker (compressed vs uncompressed temporary NRRD, side by side) and importing the result.

  .venv/bin/python Testing/Benchmarks/bench_gui_handoff.py [--repeats 3]

Everything here runs on the GUI thread in Slicer; the worker's own time (the segmentation) runs in
another process and is printed only for scale. Uses real MRML nodes (slicer-core), the Logic the
module uses, the bundled model and the Pancreas-CT-CB_001 series (512 x 512 x 134).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "MedSegAIInference"), str(REPO / "MedSegAI"), str(REPO / "Testing/Python/slicer_module")]


def main() -> None:
    import slicer

    from medsegai.io.read import read_image
    from medsegai.io.write import write_image
    from medsegai.run_request import RunRequest
    from MedSegAILib.segment_logic import SegmentationRequest, SegmentLogic
    from MedSegAILib.volume_bridge import image_from_volume

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("MEDSEGAI_DATA_DIR", REPO.parent / "shared/data")))
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()

    image = read_image(a.data / "ct/pancreas-ct-cb001-dicom/Pancreas-CT-CB_001_CT_dicom")
    from mrml_scene import install_as_current, make_scene

    mrml = make_scene()
    install_as_current(mrml)
    scene, segmentations = mrml.scene, mrml.segmentations
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")
    volume.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(image.ijk_to_ras()))
    slicer.util.updateVolumeFromArray(volume, image.array)
    print(f"CT {image.array.shape} {image.array.dtype}, {image.array.nbytes / 1e6:.0f} MB")

    t = time.perf_counter()
    work = image_from_volume(volume)
    print(f"volume node -> image: {time.perf_counter() - t:.2f} s")
    tmp = Path(tempfile.mkdtemp(prefix="bench-handoff-"))
    times = {"compressed": [], "uncompressed": []}
    for r in range(a.repeats):
        for kind in (("compressed", "uncompressed") if r % 2 == 0 else ("uncompressed", "compressed")):
            path = tmp / f"{kind}.nrrd"
            t = time.perf_counter()
            write_image(work, path, compress=(kind == "compressed"))
            times[kind].append(time.perf_counter() - t)
            times[kind + "_mb"] = path.stat().st_size / 1e6
    for kind in ("compressed", "uncompressed"):
        print(f"write input NRRD {kind:12s}: " + ", ".join(f"{s:.2f}" for s in times[kind])
              + f" s ({times[kind + '_mb']:.0f} MB)")

    logic = SegmentLogic(scene, segmentations, work_root=str(tmp))
    t = time.perf_counter()
    running = logic.start(SegmentationRequest(volume, RunRequest(model="medsegai_ct_demo", device="cpu")))
    start_s = time.perf_counter() - t
    t = time.perf_counter()
    while not running.done:
        running.poll()
        time.sleep(0.05)
    worker_s = time.perf_counter() - t
    t = time.perf_counter()
    outcome = logic.finish(running)
    finish_s = time.perf_counter() - t
    print(f"Logic.start (GUI thread, includes the input write): {start_s:.2f} s")
    print(f"worker (other process, for scale): {worker_s:.1f} s")
    print(f"Logic.finish (GUI thread: read result, {len(outcome.update.written)} segments into the scene): "
          f"{finish_s:.2f} s")
    logic.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
