"""A second Apply on the same model: a new worker process per run (what MedSegAI did before the worker
stayed) against the worker that stays with the model loaded, side by side in one run.

  .venv/bin/python Testing/Benchmarks/bench_worker_reuse.py [--model medsegai_ct_demo] [--repeats 3]

Uses the Slicer Logic the module uses, real MRML nodes (slicer-core) and the full-size
Pancreas-CT-CB_001 series (512 x 512 x 134). Each Apply is timed from Logic.start to the
segments in the scene (Logic.finish), as the user waits for it. "new worker" stops the worker
before each Apply, so every run pays the process start, the imports and the model load again.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_common import cpu_flags

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "MedSegAIInference"), str(REPO / "MedSegAI"), str(REPO / "Testing/Python/slicer_module")]


def main() -> None:
    import slicer

    from medsegai.io.read import read_image
    from medsegai.run_request import RunRequest
    from MedSegAILib.segment_logic import SegmentationRequest, SegmentLogic
    from mrml_scene import install_as_current, make_scene

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("MEDSEGAI_DATA_DIR", REPO.parent / "shared/data")))
    ap.add_argument("--model", default="medsegai_ct_demo",
                    help="catalogue id or model folder (with --task: the folder holding the task's models)")
    ap.add_argument("--task", default=None, help="e.g. total (with --quality fast and --model WEIGHTS_DIR)")
    ap.add_argument("--quality", default="normal")
    ap.add_argument("--input", type=Path, default=None,
                    help="CT file or DICOM folder (default: the full-size Pancreas-CT-CB_001 series)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    image = read_image(a.input or a.data / "ct/pancreas-ct-cb001-dicom/Pancreas-CT-CB_001_CT_dicom")
    mrml = make_scene()
    install_as_current(mrml)
    volume = mrml.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")
    volume.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(image.ijk_to_ras()))
    slicer.util.updateVolumeFromArray(volume, image.array)
    print(f"CT {image.array.shape}; task {a.task} {a.quality}, model {a.model}; {a.threads} threads; "
          f"CPU flags: {cpu_flags()}")

    logic = SegmentLogic(mrml.scene, mrml.segmentations, work_root=tempfile.mkdtemp(prefix="bench-reuse-"))
    run = RunRequest(task=a.task, quality=a.quality, model=a.model, device="cpu", threads=a.threads)

    def apply():
        """(seconds Apply -> segments in the scene, seconds Apply -> the network's first tile, result)."""
        t = time.perf_counter()
        running = logic.start(SegmentationRequest(volume, run))
        first_tile = None
        while not running.done:
            for ev in running.poll():
                if first_tile is None and ev.kind == "progress" and ev.get("stage") == "predict" \
                        and "tile" in str(ev.get("message", "")):
                    first_tile = time.perf_counter() - t
            time.sleep(0.02)
        outcome = logic.finish(running)
        mrml.scene.RemoveNode(outcome.segmentation_node)
        return time.perf_counter() - t, first_tile, outcome.result

    times = {"new worker": [], "worker that stays": []}
    to_tile = {"new worker": [], "worker that stays": []}
    logic.shutdown()
    apply()  # warm the file cache and the OS (not counted)
    for r in range(a.repeats):
        for kind in (("new worker", "worker that stays") if r % 2 == 0 else ("worker that stays", "new worker")):
            if kind == "new worker":
                logic.shutdown()  # else the worker of the last Apply holds the model already
            seconds, first_tile, result = apply()
            assert result.model_reused == (kind == "worker that stays"), (kind, result.model_reused)
            times[kind].append(seconds)
            to_tile[kind].append(first_tile)
            print(f"  {kind:18s} {seconds:6.2f} s, first tile after {first_tile:5.2f} s  (worker timings: "
                  + ", ".join(f"{k} {v:.2f}" for k, v in result.timings.items()) + ")")
    logic.shutdown()
    cold, warm = statistics.median(times["new worker"]), statistics.median(times["worker that stays"])
    print(f"second Apply, median of {a.repeats}: new worker {cold:.2f} s, worker that stays {warm:.2f} s, "
          f"ratio {cold / warm:.2f}x, saved {cold - warm:.2f} s")
    # The part of an Apply the worker's reuse removes (process start, imports, model load), without
    # the prediction itself, whose time swings with the machine's load.
    cold, warm = statistics.median(to_tile["new worker"]), statistics.median(to_tile["worker that stays"])
    print(f"Apply to the network's first tile, median: new worker {cold:.2f} s, worker that stays {warm:.2f} s, "
          f"saved {cold - warm:.2f} s")


if __name__ == "__main__":
    main()
