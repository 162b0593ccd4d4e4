"""OpenVINO as a fast-path candidate: the 297 network per tile against PyTorch, side by side.

    PYTHONPATH=<dir with openvino> .venv/bin/python Testing/Benchmarks/bench_openvino.py [--threads 2] [--repeats 3]

OpenVINO is not a dependency of MedSegAI; install it anywhere (`pip install --target DIR openvino
openvino-telemetry`, then drop DIR/numpy so the venv's numpy stays in use) and put it on PYTHONPATH.
The random-weight 297 network (make_random_model.py), one 128 x 112 x 112 tile; PyTorch fp32 (exact
mode), PyTorch speed fast (bf16 with the full-resolution layers in fp32, CPUs with bf16 units), and the
same network converted with `openvino.convert_model` and compiled for the CPU with inference precision
f32 and bf16. Times are medians after a warm-up. Agreement: share of the tile's voxels whose argmax
matches PyTorch fp32 (random weights exaggerate disagreement; trained-model Dice would be the test
before shipping anything).
"""
from __future__ import annotations

import argparse
import time

import torch

from bench_common import RANDOM_297, cpu_flags, median_time
from medsegai.inference.device import autocast, cpu_has_bf16_units
from medsegai.inference.mixed_precision import keep_full_resolution_in_fp32
from medsegai.nnunet.model_folder import load_model_folder

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    import openvino as ov

    torch.set_num_threads(a.threads)
    model = load_model_folder(RANDOM_297)
    net = model.make_network(0)
    x = torch.randn(1, 1, *model.config.patch_size, generator=torch.Generator().manual_seed(0))
    rows = []
    with torch.inference_mode():
        t, ref = median_time(lambda: net(x), a.repeats)
        rows.append(("PyTorch fp32 (exact)", t, 1.0))
        ref_labels = ref.argmax(1)
        if cpu_has_bf16_units():
            fast = model.make_network(0)
            keep_full_resolution_in_fp32(fast)

            def run_fast():
                with autocast(torch.device("cpu"), "bf16"):
                    return fast(x)

            t, out = median_time(run_fast, a.repeats)
            rows.append(("PyTorch speed fast", t, float((out.argmax(1) == ref_labels).float().mean())))
    core = ov.Core()
    t0 = time.perf_counter()
    ov_model = ov.convert_model(net.eval(), example_input=x)
    setup = {"convert": time.perf_counter() - t0}
    for precision in ("f32", "bf16"):
        if precision == "bf16" and not cpu_has_bf16_units():
            continue
        t0 = time.perf_counter()
        compiled = core.compile_model(ov_model, "CPU", {"INFERENCE_PRECISION_HINT": precision,
                                                         "INFERENCE_NUM_THREADS": a.threads,
                                                         "PERFORMANCE_HINT": "LATENCY"})
        setup[f"compile {precision}"] = time.perf_counter() - t0
        request = compiled.create_infer_request()
        arr = x.numpy()

        def run_ov():
            request.infer({0: arr})
            return torch.from_numpy(request.get_output_tensor(0).data.copy())

        t, out = median_time(run_ov, a.repeats)
        rows.append((f"OpenVINO {ov.__version__.split('-')[0]} {precision}", t,
                     float((out.argmax(1) == ref_labels).float().mean())))
    print(f"CPU flags: {cpu_flags()}; {a.threads} threads; tile {tuple(model.config.patch_size)}; "
          f"median of {a.repeats} after a warm-up\n")
    print("| path | s per tile | vs PyTorch fp32 | argmax agreement with PyTorch fp32 |\n|---|---|---|---|")
    base = rows[0][1]
    for name, t, agree in rows:
        print(f"| {name} | {t:.2f} | {base / t:.2f}x | {agree:.4f} |")
    print("\none-off set-up, s: " + ", ".join(f"{k} {v:.1f}" for k, v in setup.items()))


if __name__ == "__main__":
    main()
