"""Exact-mode resampling: scipy's one-core zoom against the threaded one (bit-identical), side by side.

    .venv/bin/python Testing/Benchmarks/bench_preprocessing.py [--threads 2]

On the full-size Pancreas-CT-CB_001 series (134 x 512 x 512, 1.07 x 1.07 x 3 mm), the zooms exact mode
runs: TotalSegmentator's (order 1, grid_mode False, then int32) to 3 mm (`fast`) and 1.5 mm
(`normal`), and nnU-Net's image resampling (order 3, grid_mode True, as skimage's resize) to the same.
Each pair checks that the two results are identical.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from medsegai.inference import parallel_zoom
from medsegai.io.read import read_image

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("MEDSEGAI_DATA_DIR", HERE.parents[2] / "shared/data")))
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()
    flags = next((ln for ln in open("/proc/cpuinfo") if ln.startswith("flags")), "").split()
    image = read_image(a.data / "ct/pancreas-ct-cb001-dicom/Pancreas-CT-CB_001_CT_dicom")
    data = image.array.T.astype(np.float64)  # (i, j, k), as TotalSegmentator zooms it
    print(f"## Exact-mode resampling: one core against {a.threads} threads "
          f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n")
    print(f"`.venv/bin/python Testing/Benchmarks/bench_preprocessing.py --threads {a.threads}`\n")
    print(f"CPU flags: {' '.join(f for f in ('avx2', 'avx512f', 'avx512_bf16', 'amx_bf16') if f in flags)}; "
          f"{os.cpu_count()} cores; input {image.shape} at {tuple(round(s, 3) for s in image.spacing)} mm\n")
    print("| zoom | to | output | scipy s | threaded s | ratio | identical |")
    print("|---|---|---|---|---|---|---|")
    for name, order, grid_mode in (("TotalSegmentator, order 1", 1, False), ("nnU-Net, order 3", 3, True)):
        for target in (3.0, 1.5):
            factors = [s / target for s in image.spacing]
            t = time.perf_counter()
            want = ndimage.zoom(data, factors, order=order, mode="nearest", grid_mode=grid_mode)
            t_one = time.perf_counter() - t
            t = time.perf_counter()
            got = parallel_zoom.zoom(data, factors, order=order, mode="nearest", grid_mode=grid_mode,
                                     threads=a.threads)
            t_par = time.perf_counter() - t
            print(f"| {name} | {target} mm | {want.shape} | {t_one:.2f} | {t_par:.2f} | {t_one / t_par:.2f}x | "
                  f"{np.array_equal(want, got)} |", flush=True)


if __name__ == "__main__":
    main()
