"""``medsegai demo``: segment a sample CT with the bundled model and write everything a user looks at.

The README's main job. Works offline when the sample CT is in ``$MEDSEGAI_DATA_DIR`` (default
``../shared/data``); otherwise the CT is downloaded once from a commit-pinned URL and checked
against its SHA256. Writes the label map (NIfTI and Slicer ``.seg.nrrd``), the uncertainty map
when the runner has uncertainty (else the class probabilities), and a PNG preview; then segments
three organs interactively with simulated clicks and prints Dice per click for each engine, and,
where the data folder has the OpenKBP cases, segments a held-out head-and-neck patient with the
organs-at-risk model (demo_head_neck.py).
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from .resources import resource_path

BUNDLED_MODEL_ID = "medsegai_ct_demo"
_CHECKOUT_MODEL = resource_path("Models", BUNDLED_MODEL_ID)


def bundled_model_folder() -> Path:
    """The bundled model's result folder: through the model manager when present, else the Resources folder."""
    from .nnunet.model_folder import find_result_folders

    try:
        from .models import resolve_model

        found = find_result_folders(Path(resolve_model(BUNDLED_MODEL_ID)))
        if found:
            return found[0]
    except Exception:  # noqa: BLE001 - an absent or unconfigured model manager must not stop the demo
        pass
    found = find_result_folders(_CHECKOUT_MODEL)
    if not found:
        from .errors import InvalidModelError

        raise InvalidModelError(f"The bundled model is missing: no model folder under {_CHECKOUT_MODEL}.")
    return found[0]


def has_uncertainty() -> bool:
    """Whether this runner has the uncertainty module (it is added separately)."""
    return importlib.util.find_spec("medsegai.uncertainty") is not None


def run_demo(out_dir: Path, *, input_path: Optional[Path] = None, device: str = "auto", threads: Optional[int] = None,
             allow_download: bool = True, interactive: bool = True, progress=None, log=print) -> Dict[str, Path]:
    from .api import segment
    from .io.read import read_image
    from .outputs import write_result_files
    from .preview import write_preview
    from .sample_data import sample_ct

    ct_path = Path(input_path) if input_path else sample_ct(allow_download=allow_download, log=log)
    model = bundled_model_folder()
    log(f"input CT: {ct_path}")
    log(f"model:    {model}")
    image = read_image(ct_path)
    uncertainty = "entropy" if has_uncertainty() else None
    result = segment(image, model=model, device=device, threads=threads, uncertainty=uncertainty,
                     return_probabilities=uncertainty is None, progress=progress)
    out_dir = Path(out_dir)
    stem = "sample_ct" if input_path is None else _stem(ct_path)
    written = write_result_files(result, out_dir, stem=stem, probabilities=result.probabilities is not None)
    written["preview"] = write_preview(image, result, out_dir / f"{stem}_preview.png")
    voxel_ml = float(np.prod(image.spacing)) / 1000.0
    values, counts = np.unique(result.labels.array, return_counts=True)
    names = {s.value: s.name for s in result.segments}
    found = [(names.get(int(v), str(v)), c * voxel_ml) for v, c in zip(values, counts) if v != 0]
    log(f"{len(found)} structures found: " + ", ".join(f"{n} {ml:.0f} ml" for n, ml in sorted(found, key=lambda t: -t[1])))
    for warning in result.warnings:
        log(f"warning: {warning}")
    log("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items()) + f" on {result.device}")
    if interactive and input_path is None:  # the sample has a reference label map to aim clicks at
        from .interactive.demo import clicks_to_dice
        from .sample_data import SAMPLE_LABELS

        reference = read_image(sample_ct(SAMPLE_LABELS, allow_download=allow_download, log=log))
        log("interactive: simulated clicks on the sample CT (TotalSegmentator's labels as the target; the click "
            "model saw this scan in training: held-out figures are in its model card)")
        clicks_to_dice(image, reference.array, log=log)
    if input_path is None:
        from .datasets.openkbp import FOLDER
        from .sample_data import data_dir

        if (data_dir() / FOLDER).is_dir():
            from .demo_head_neck import head_neck_demo

            written.update(head_neck_demo(out_dir, data_dir(), device=device, threads=threads, uncertainty=uncertainty,
                                          progress=progress, log=log))
        else:
            log(f"head and neck part skipped: no OpenKBP cases in {data_dir() / FOLDER}")
    return written


def _stem(p: Path) -> str:
    name = p.name
    for suf in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"):
        if name.endswith(suf):
            return name[: -len(suf)]
    return name or "input"


def register(sub) -> None:
    p = sub.add_parser("demo", help="segment a sample CT with the bundled model (works offline)",
                       description="Segment a sample CT (or --input) with MedSegAI's bundled demo model and write the "
                                   "segmentation (.seg.nrrd and NIfTI), uncertainty or probabilities, and a PNG preview.")
    p.add_argument("-o", "--output", type=Path, default=Path("medsegai-demo-output"), help="output folder")
    p.add_argument("-i", "--input", type=Path, default=None, help="your own CT instead of the sample")
    p.add_argument("-d", "--device", default="auto")
    p.add_argument("-nt", "--threads", type=int, default=None)
    p.add_argument("--no-download", action="store_true", help="fail instead of downloading the sample CT")
    p.add_argument("--no-interactive", action="store_true",
                   help="skip the interactive part (simulated clicks on the sample's organs, Dice per click)")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args) -> int:
    from .cli import ProgressPrinter

    printer = ProgressPrinter()
    try:
        written = run_demo(args.output, input_path=args.input, device=args.device, threads=args.threads,
                           allow_download=not args.no_download, interactive=not args.no_interactive, progress=printer,
                           log=lambda m: print(m, flush=True))
    finally:
        printer.close()
    print("outputs:")
    for kind, path in written.items():
        print(f"  {kind:<14} {Path(path).resolve()}")
    sys.stdout.flush()
    return 0
