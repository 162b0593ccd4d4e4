"""Our runner vs TotalSegmentator vs nnU-Net's predictor, side by side in one run (issue 2).

  Testing/Benchmarks/work/venv/bin/python Testing/Benchmarks/bench_runner.py            # full benchmark
  Testing/Benchmarks/work/venv/bin/python Testing/Benchmarks/bench_runner.py --ct FILE --no-results   # smoke

Runs, each in its own subprocess, on the same random-weight 297 (TotalSegmentator `total --fast`)
model folder (make_random_model.py):
  (a) ours, `medsegai segment --task total --fast --ml --mode totalseg` (TotalSegmentator's pipeline)
  (b) the TotalSegmentator 2.18 CLI `--task total --fast --ml`, offline (run_totalseg_offline.py)
  (c) nnU-Net v2's own predictor on the model folder, fed the CT as it is (it resamples itself)
  (d) ours, `medsegai segment --model FOLDER --mode nnunet` (nnU-Net's pipeline), compared with (c)
  (e) ours as (a) with `--speed fast` (the fast path this CPU has), compared with (a); with random
      weights its agreement only bounds the worst case (bench_fast_path.py measures it on trained models)
and reports wall time, peak memory, per-stage times from each tool's own output and label agreement
((a) vs (b), (d) vs (c)): Dice per class present and the fraction of identical voxels.

Fairness: the DICOM series is converted once to NIfTI (SimpleITK) in the work folder and that same
file feeds all tools (TotalSegmentator takes only NIfTI; our runner would also read the DICOM folder,
but then it would time a different reader). Every tool runs with its own defaults for threads
(torch uses the machine's cores). A warm-up reads the weights and the CT and imports each tool's
packages once, so that no tool pays for a cold disk cache; with --repeats N the order alternates
(a b c d, then b a d c, ...). The load average and free memory are printed before each run.

Memory: the process tree's summed RSS is polled with psutil (TotalSegmentator and nnU-Net start
worker processes); GNU time's "Maximum resident set size" (the largest single process) is reported
beside it when /usr/bin/time exists. nnU-Net's predictor resamples all 118 class logits to the full
grid before argmax; at 512x512x134 that alone is ~17 GB. On a 24 GB machine shared with others it is
run only if the available memory covers the estimate with a margin; otherwise (c) and (d) run on
the CT downsampled 2x in-plane (--cd-input auto, the default, says which it chose) or (c) is
skipped (--cd-input skip).

Run it with the benchmark venv's python (it has psutil and nibabel); our runner runs from the repo's
.venv. Results are printed and appended to Testing/Benchmarks/RESULTS.md (unless --no-results).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from bench_common import tree_rss

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WORK = HERE / "work"
BENCH_PY = WORK / "venv" / "bin" / "python"
OURS = ROOT / ".venv" / "bin" / "medsegai"
DATA = Path(os.environ.get("MEDSEGAI_DATA_DIR", ROOT.parent / "shared" / "data"))
DEFAULT_CT = DATA / "ct" / "pancreas-ct-cb001-dicom"
TASK297 = "Dataset297_TotalSegmentator_total_3mm_1559subj"
TASKS = {"fast": TASK297, "fastest": "Dataset298_TotalSegmentator_total_6mm_1559subj"}
TRAINER_FOLDER = "nnUNetTrainer_4000epochs_NoMirroring__nnUNetPlans__3d_fullres"

# (c): nnU-Net's predictor, the steps of predict_from_files without its worker processes, each
# timed. Run with the bench venv's python; the trainer lookup is resolved as for TotalSegmentator.
NNUNET_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
sys.path.insert(0, sys.argv[4])
from run_totalseg_offline import patch_trainer_lookup
patch_trainer_lookup()
import torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.inference.export_prediction import export_prediction_from_logits
folder, ct, out = sys.argv[1:4]
predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=True, perform_everything_on_device=False,
                            device=torch.device("cpu"), verbose=False, verbose_preprocessing=False, allow_tqdm=False)
predictor.initialize_from_trained_model_folder(folder, (0,), "checkpoint_final.pth")
t = {"load": time.perf_counter() - t0}
s = time.perf_counter()
pre = predictor.configuration_manager.preprocessor_class(verbose=False)
data, _, props = pre.run_case([ct], None, predictor.plans_manager, predictor.configuration_manager, predictor.dataset_json)
t["preprocess"] = time.perf_counter() - s
s = time.perf_counter()
logits = predictor.predict_logits_from_preprocessed_data(torch.from_numpy(data)).cpu()
t["predict"] = time.perf_counter() - s
s = time.perf_counter()
export_prediction_from_logits(logits, props, predictor.configuration_manager, predictor.plans_manager,
                              predictor.dataset_json, out[:-len(".nii.gz")], False)
t["export"] = time.perf_counter() - s
print("NNUNET_TIMINGS " + json.dumps(t), flush=True)
"""

CONVERT_CHILD = r"""
import sys, SimpleITK as sitk
src, dst, half = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
if src.endswith((".nii", ".nii.gz", ".nrrd", ".mha")):
    img = sitk.ReadImage(src)
else:
    import os
    # the series may sit in a subfolder (the pancreas CT does, beside its licence files)
    folders = [d for d, _, fs in os.walk(src) if any(f.lower().endswith(".dcm") for f in fs)] or [src]
    series = max(folders, key=lambda d: len(os.listdir(d)))
    r = sitk.ImageSeriesReader(); r.SetFileNames(r.GetGDCMSeriesFileNames(series)); img = r.Execute()
if half:  # 2x in-plane: the same anatomy on a quarter of the voxels, for nnU-Net's full-grid export
    size = [img.GetSize()[0] // 2, img.GetSize()[1] // 2, img.GetSize()[2]]
    spacing = [img.GetSpacing()[0] * img.GetSize()[0] / size[0], img.GetSpacing()[1] * img.GetSize()[1] / size[1], img.GetSpacing()[2]]
    img = sitk.Resample(img, size, sitk.Transform(), sitk.sitkLinear, img.GetOrigin(), spacing, img.GetDirection(), -1024, img.GetPixelID())
sitk.WriteImage(img, dst)
print(img.GetSize(), img.GetSpacing())
"""


# ------------------------------------------------------------------ machine facts
def sh(cmd: str) -> str:
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception as exc:  # noqa: BLE001 (a fact we could not read is reported, not fatal)
        return f"? ({exc})"


def machine() -> str:
    cpu = re.sub(r"\s+", " ", sh("lscpu | grep -m1 'Model name' | cut -d: -f2"))
    flags = Path("/proc/cpuinfo").read_text().split()
    extras = [f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    mem = int(sh("grep MemTotal /proc/meminfo | awk '{print $2}'") or 0) / 1024 ** 2
    return f"{os.cpu_count()} CPUs ({sh('nproc')} usable), {cpu.strip()} [{' '.join(extras)}], {mem:.1f} GiB RAM, {platform.platform()}"


def load_and_mem() -> dict:
    la = os.getloadavg()
    avail = int(sh("grep MemAvailable /proc/meminfo | awk '{print $2}'") or 0) / 1024 ** 2
    return {"load1": la[0], "load5": la[1], "avail_gb": avail}


# ------------------------------------------------------------------ measuring one run
def measure(name: str, cmd: list, log: Path, env=None, cwd=None) -> dict:
    """Run cmd (under GNU time -v if present), poll the tree's summed RSS every 0.1 s."""
    import psutil
    gnu_time = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    full = ([gnu_time, "-v"] if gnu_time else []) + [str(c) for c in cmd]
    before = load_and_mem()
    print(f"\n[{name}] load {before['load1']:.2f}/{before['load5']:.2f}, {before['avail_gb']:.1f} GB available; "
          f"$ {shlex.join(full)}", flush=True)
    t0 = time.perf_counter()
    # Each output line is logged with its time since the start: our runner's progress lines
    # ("preprocess [...]", "predict [...]", "export [...]") then give its per-stage times.
    stamped = []
    with open(log, "w") as fh:
        p = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                             text=True, errors="replace", bufsize=1)

        def pump():
            for line in p.stdout:
                stamped.append((time.perf_counter() - t0, line.rstrip("\n")))
                fh.write(f"[{stamped[-1][0]:8.2f}s] {line}")
                fh.flush()

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        ps = psutil.Process(p.pid)
        peak = 0
        while p.poll() is None:
            peak = max(peak, tree_rss(ps))
            time.sleep(0.1)
        reader.join(timeout=10)
    wall = time.perf_counter() - t0
    text = "\n".join(line for _, line in stamped)
    res = {"name": name, "rc": p.returncode, "wall_s": wall, "tree_peak_gb": peak / 1e9, "before": before,
           "cmd": shlex.join(str(c) for c in cmd), "log": str(log)}
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if m:
        res["max_proc_rss_gb"] = int(m.group(1)) * 1024 / 1e9
    m = re.search(r"User time \(seconds\): ([\d.]+)", text)
    if m:
        res["user_s"] = float(m.group(1))
        res["sys_s"] = float(re.search(r"System time \(seconds\): ([\d.]+)", text).group(1))
    res["stages"] = parse_stages(name, text)
    if name.startswith(("a", "d", "e")):  # ours
        res["stages_from_progress"] = progress_stages(stamped, wall)
    status = "ok" if p.returncode == 0 else f"FAILED rc={p.returncode} (see {log})"
    print(f"[{name}] {status}: wall {wall:.1f}s, peak tree RSS {peak / 1e9:.2f} GB, "
          f"largest process {res.get('max_proc_rss_gb', float('nan')):.2f} GB, stages {res['stages']}", flush=True)
    if p.returncode != 0:
        print("\n".join(text.splitlines()[-25:]))
    return res


def progress_stages(stamped, wall: float) -> dict:
    """Seconds per stage of our runner from the times its progress lines appeared (a stage's
    first line is printed at once; the last stage runs until the process ends)."""
    marks = []
    for t, line in stamped:
        m = re.match(r"^(\w+)\s+\[", line)
        if m and (not marks or marks[-1][1] != m.group(1)):
            marks.append((t, m.group(1)))
    out = {}
    for (t, stage), nxt in zip(marks, marks[1:] + [(wall, None)]):
        out[stage] = round(out.get(stage, 0.0) + nxt[0] - t, 1)
    if marks:
        out["start-up"] = round(marks[0][0], 1)
    return out


def parse_stages(name: str, text: str) -> dict:
    stages = {}
    if name.startswith(("a", "d", "e")):  # ours: "device: cpu; load 1.2s, preprocess 3.4s, ..."
        m = re.search(r"^device: [^;]*; (.*)$", text, re.M)
        if m:
            for part in m.group(1).split(","):
                mm = re.match(r"\s*(.+?) ([\d.]+)s\s*$", part)
                if mm:
                    stages[mm.group(1)] = float(mm.group(2))
    elif name.startswith("b"):  # TotalSegmentator: "  Resampled in 3.21s", "  Predicted in ...", ...
        for word, secs in re.findall(r"^\s+(\w+) in ([\d.]+)s", text, re.M):
            key = {"Resampled": "resample", "Predicted": "predict", "Saved": "save", "Generated": "generate"}.get(word, word.lower())
            if key in stages:
                key += " back" if key == "resample" else " 2"
            stages[key] = float(secs)
    elif name.startswith("c"):
        m = re.search(r"^NNUNET_TIMINGS (.*)$", text, re.M)
        if m:
            stages = {k: round(v, 2) for k, v in json.loads(m.group(1)).items()}
    return stages


# ------------------------------------------------------------------ agreement
def agreement(path_x: Path, path_y: Path, n_classes: int = 118) -> dict:
    import nibabel as nib
    x, y = nib.load(str(path_x)), nib.load(str(path_y))
    if x.shape != y.shape or not np.allclose(x.affine, y.affine, atol=1e-3):
        return {"error": f"grids differ: {x.shape} vs {y.shape}"}
    a = np.asarray(x.dataobj).astype(np.int64).ravel()
    b = np.asarray(y.dataobj).astype(np.int64).ravel()
    cm = np.bincount(a * n_classes + b, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    tp = np.diag(cm)
    sx, sy = cm.sum(1), cm.sum(0)
    present = [c for c in range(1, n_classes) if sx[c] + sy[c] > 0]
    dice = {c: 2 * tp[c] / (sx[c] + sy[c]) for c in present}
    vals = np.array(list(dice.values())) if dice else np.array([np.nan])
    worst = sorted(dice.items(), key=lambda kv: kv[1])[:3]
    return {"identical": float(tp.sum() / a.size), "n_present": len(present), "mean_dice": float(vals.mean()),
            "min_dice": float(vals.min()), "n_dice_1": int(sum(1 for v in dice.values() if v == 1.0)),
            "worst": [(int(c), round(float(d), 4)) for c, d in worst]}


# ------------------------------------------------------------------ main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ct", type=Path, default=DEFAULT_CT, help="DICOM folder or NIfTI (default: the full-size pancreas CT)")
    ap.add_argument("--weights", type=Path, default=WORK / "totalseg_weights", help="folder of model folders")
    ap.add_argument("--cd-input", choices=["auto", "full", "half", "skip"], default="auto",
                    help="input of (c)/(d): the CT itself, the CT 2x downsampled in-plane, or skip (c)/(d)")
    ap.add_argument("--min-free-gb", type=float, default=20.0, help="(c) on the full CT only with this much available")
    ap.add_argument("--quality", choices=list(TASKS), default="fast",
                    help="--fast (297, 3 mm) or --fastest (298, 6 mm: make_random_model.py --with-298) for (a), (b), (e)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--only", default="abcd", help="subset of runs, e.g. 'ab'")
    ap.add_argument("--no-warmup", action="store_true")
    ap.add_argument("--no-results", action="store_true", help="do not append to RESULTS.md")
    ap.add_argument("--note", default="", help="a line added to the RESULTS.md section")
    args = ap.parse_args(argv)

    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run_dir = WORK / "runs" / stamp
    run_dir.mkdir(parents=True)
    folder = args.weights / TASKS[args.quality] / TRAINER_FOLDER
    if not (folder / "fold_0" / "checkpoint_final.pth").is_file():
        sys.exit(f"{folder} missing: run make_random_model.py first")
    mach = machine()
    print(f"machine: {mach}\nrun folder: {run_dir}")

    # One NIfTI for all tools, converted once and cached (the work folder is git-ignored).
    inputs = WORK / "inputs"
    inputs.mkdir(exist_ok=True)
    base = args.ct.resolve().name.replace(".nii.gz", "").replace(".nii", "")

    def converted(half: bool) -> Path:
        dst = inputs / f"{base}{'_half' if half else ''}.nii.gz"
        if not dst.exists():
            out = subprocess.run([str(BENCH_PY), "-c", CONVERT_CHILD, str(args.ct), str(dst), "1" if half else "0"],
                                 check=True, capture_output=True, text=True).stdout
            print(f"converted {args.ct} -> {dst} {out.strip()}")
        return dst

    ct = converted(False)
    import nibabel as nib
    shape = nib.load(str(ct)).shape[:3]
    n_vox = int(np.prod(shape))
    # nnU-Net's export holds 118 fp32 logits on the full grid, then converts them: ~1.25x that, plus ~2 GB.
    need_gb = 118 * n_vox * 4 * 1.25 / 1e9 + 2.0
    avail = load_and_mem()["avail_gb"]
    cd_note = ""
    cd_mode = args.cd_input
    if cd_mode == "auto":
        # a small need fits anyway; a large one only with --min-free-gb available (others' processes)
        cd_mode = "full" if avail >= need_gb + 3 and (need_gb < 8 or avail >= args.min_free_gb) else "half"
        if cd_mode == "half":
            cd_note = (f"(c)/(d) on the CT downsampled 2x in-plane: nnU-Net's predictor on the full {shape} grid "
                       f"needs ~{need_gb:.0f} GB (118 class logits resampled to the full grid), {avail:.1f} GB available "
                       f"(threshold {args.min_free_gb:.0f} GB, machine shared)")
    elif cd_mode == "full" and avail < args.min_free_gb:
        cd_mode = "half"
        cd_note = f"--cd-input full refused: {avail:.1f} GB available < {args.min_free_gb} GB; (c)/(d) on the half CT"
    elif cd_mode == "skip":
        cd_note = "(c)/(d) skipped (--cd-input skip)"
    if cd_note:
        print("NOTE: " + cd_note)
    if not set(args.only) & set("cd"):
        cd_mode, cd_note = "skip", ""
    ct_cd = None if cd_mode == "skip" else converted(cd_mode == "half")
    shape_cd = nib.load(str(ct_cd)).shape[:3] if ct_cd else None

    env_ts = dict(os.environ, TOTALSEG_WEIGHTS_PATH=str(args.weights), TOTALSEG_HOME_DIR=str(WORK / "totalseg_home"))
    out = run_dir / "out"
    out.mkdir()
    runs = {
        "a_ours_totalseg": [OURS, "segment", "-i", ct, "-o", out / "a_ours_totalseg.nii.gz", "--task", "total",
                            f"--{args.quality}", "--ml", "--model", args.weights, "--mode", "totalseg", "-d", "cpu"],
        "b_totalsegmentator": [BENCH_PY, HERE / "run_totalseg_offline.py", "-i", ct, "-o", out / "b_totalsegmentator.nii.gz",
                               "--task", "total", f"--{args.quality}", "--ml", "-d", "cpu"],
    }
    runs["e_ours_fast"] = runs["a_ours_totalseg"][:5] + [out / "e_ours_fast.nii.gz"] + runs["a_ours_totalseg"][6:] + [
        "--speed", "fast"]
    if ct_cd:
        runs["c_nnunet_predictor"] = [BENCH_PY, "-c", NNUNET_CHILD, folder, ct_cd, out / "c_nnunet_predictor.nii.gz", HERE]
        runs["d_ours_nnunet"] = [OURS, "segment", "-i", ct_cd, "-o", out / "d_ours_nnunet.nii.gz", "--model", folder,
                                 "--mode", "nnunet", "-d", "cpu"]
    runs = {k: v for k, v in runs.items() if k[0] in args.only}

    if not args.no_warmup:
        # Disk cache: the weights, the inputs and each interpreter's packages, read once before timing.
        for f in [folder / "fold_0" / "checkpoint_final.pth", ct] + ([ct_cd] if ct_cd else []):
            Path(f).read_bytes()
        subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-c", "import torch, scipy.ndimage, SimpleITK, nibabel, medsegai.cli"], check=False)
        subprocess.run([str(BENCH_PY), "-c", "import torch, scipy.ndimage, nibabel, SimpleITK, totalsegmentator.python_api, "
                        "nnunetv2.inference.predict_from_raw_data"], check=False, env=env_ts)

    results = []
    order = list(runs)
    for rep in range(args.repeats):
        # swap neighbours on odd repeats (a b c d e -> b a d c e); an unpaired last run keeps its place
        seq = order if rep % 2 == 0 else [order[i ^ 1] if (i ^ 1) < len(order) else order[i] for i in range(len(order))]
        for name in seq:
            r = measure(name, runs[name], run_dir / f"{name}.{rep}.log", env=env_ts if name[0] in "bc" else None)
            r["rep"] = rep
            results.append(r)

    agree = {}
    for x, y in (("a_ours_totalseg", "b_totalsegmentator"), ("d_ours_nnunet", "c_nnunet_predictor"),
                 ("e_ours_fast", "a_ours_totalseg")):
        px, py = out / f"{x}.nii.gz", out / f"{y}.nii.gz"
        if px.exists() and py.exists():
            agree[f"{x[0]} vs {y[0]}"] = agreement(px, py)

    report = render(results, agree, mach, args, shape, shape_cd, cd_mode, cd_note, ct, ct_cd, run_dir)
    print("\n" + report)
    (run_dir / "results.json").write_text(json.dumps({"results": results, "agreement": agree}, indent=1, default=str))
    if not args.no_results:
        res_md = HERE / "RESULTS.md"
        head = "" if res_md.exists() else "# Benchmark results\n\n"
        with open(res_md, "a") as fh:
            fh.write(head + report + "\n")
        print(f"appended to {res_md}")
    return 0 if all(r["rc"] == 0 for r in results) else 1


def render(results, agree, mach, args, shape, shape_cd, cd_mode, cd_note, ct, ct_cd, run_dir) -> str:
    rel = lambda p: os.path.relpath(p, ROOT)  # noqa: E731
    lines = [f"## Runner vs TotalSegmentator vs nnU-Net ({dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC)", "",
             f"- Machine: {mach}",
             f"- Command (from the repo root): `{rel(BENCH_PY)} {rel(Path(__file__))} {' '.join(sys.argv[1:])}`".rstrip(),
             f"- Model: random weights, {TASKS[args.quality][7:10]} architecture, `--{args.quality}` (`{rel(args.weights)}/{TASKS[args.quality]}/{TRAINER_FOLDER}`, make_random_model.py)",
             f"- (a)/(b) input: `{rel(ct)}` {tuple(shape)}, converted once from `{args.ct}`; the same file for both",
             f"- (c)/(d) input: " + (f"`{rel(ct_cd)}` {tuple(shape_cd)} ({cd_mode})" if ct_cd else "none (skipped)")]
    if cd_note:
        lines.append(f"- Note: {cd_note}")
    if args.note:
        lines.append(f"- Note: {args.note}")
    lines += ["", "| run | rep | load before (1/5 min) | avail. GB | wall s | user+sys s | peak RSS tree GB | largest process GB | stages (tool's own figures, s) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        cpu = f"{r['user_s'] + r['sys_s']:.0f}" if "user_s" in r else "-"
        st = ", ".join(f"{k} {v:.1f}" for k, v in r["stages"].items()) or "-"
        if r.get("stages_from_progress"):
            st += " (progress lines: " + ", ".join(f"{k} {v:.1f}" for k, v in r["stages_from_progress"].items()) + ")"
        ok = "" if r["rc"] == 0 else f" **FAILED rc={r['rc']}**"
        lines.append(f"| {r['name']}{ok} | {r['rep']} | {r['before']['load1']:.2f}/{r['before']['load5']:.2f} | "
                     f"{r['before']['avail_gb']:.1f} | {r['wall_s']:.1f} | {cpu} | {r['tree_peak_gb']:.2f} | "
                     f"{r.get('max_proc_rss_gb', float('nan')):.2f} | {st} |")
    lines += ["", "| agreement | identical voxels | classes present | mean Dice | min Dice | classes with Dice 1 | worst (class, Dice) |",
              "|---|---|---|---|---|---|---|"]
    for k, a in agree.items():
        if "error" in a:
            lines.append(f"| {k} | {a['error']} | | | | | |")
        else:
            lines.append(f"| {k} | {a['identical']:.6f} | {a['n_present']} | {a['mean_dice']:.4f} | {a['min_dice']:.4f} | "
                         f"{a['n_dice_1']} | {a['worst']} |")
    lines += ["", f"Logs and outputs: `{rel(run_dir)}` (git-ignored).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
