"""``medsegai`` command line: flags a TotalSegmentator user recognises, plus the model manager."""
from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional

from . import __version__
from .errors import MedSegAIError, exit_status
from .progress import CancelToken, ProgressEvent
from .run_request import MODES, PRECISIONS, SPEEDS, UNCERTAINTY_METHODS, RunRequest


class ProgressPrinter:
    """One updating line per stage on stderr; plain lines when stderr is not a terminal."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.stage = None
        self.last = 0.0
        self.tty = sys.stderr.isatty()

    def __call__(self, ev: ProgressEvent) -> None:
        if self.quiet:
            return
        if ev.stage == "note":
            print(f"\nnote: {ev.message}", file=sys.stderr)
            return
        now = time.monotonic()
        new_stage = ev.stage != self.stage
        if not new_stage and ev.fraction < 1.0 and now - self.last < (0.2 if self.tty else 5.0):
            return
        self.last = now
        bar = "#" * int(ev.fraction * 30)
        line = f"{ev.stage:<10} [{bar:<30}] {ev.fraction * 100:5.1f}% {ev.message}"
        if self.tty:
            print(("\n" if new_stage and self.stage else "") + "\r" + line[:120].ljust(120), end="", file=sys.stderr,
                  flush=True)
        else:
            print(line, file=sys.stderr, flush=True)
        self.stage = ev.stage

    def close(self) -> None:
        if self.tty and not self.quiet and self.stage:
            print(file=sys.stderr)


def _add_segment_parser(sub) -> None:
    p = sub.add_parser("segment", help="segment a CT/MR volume", description="Segment a 3D CT or MR image.")
    p.add_argument("-i", "--input", default=None, help="NIfTI/NRRD/MHA file or DICOM series folder")
    p.add_argument("-o", "--output", required=True,
                   help="output folder, or one label file: a path ending in .seg.nrrd, .nii.gz, .nii, .nrrd or .dcm "
                        "(DICOM SEG)")
    p.add_argument("-ot", "--output-type", "--output_type", choices=("nifti", "dicom_seg"), default=None,
                   help="dicom_seg: also write a DICOM SEG (<stem>.dcm) referencing the input series (DICOM input only)")
    p.add_argument("--seg-type", choices=("binary", "labelmap"), default="binary",
                   help="DICOM SEG type: binary (default; what Slicer/dcmqi and most viewers read) or labelmap "
                        "(far smaller, newer)")
    p.add_argument("--series", default=None, metavar="UID",
                   help="SeriesInstanceUID to segment when the DICOM folder holds several series")
    p.add_argument("--from-pacs", default=None, metavar="DICOMWEB_URL",
                   help="fetch the input from a PACS over DICOMweb (WADO-RS), with --study UID (instead of -i)")
    p.add_argument("--study", default=None, metavar="UID", help="StudyInstanceUID to fetch with --from-pacs")
    p.add_argument("--send-to", default=None, metavar="DICOMWEB_URL",
                   help="store the DICOM SEG in a PACS over DICOMweb (STOW-RS) after writing it")
    p.add_argument("-ta", "--task", default=None, help="TotalSegmentator task, e.g. 'total' (default: bundled model)")
    p.add_argument("-m", "--model", default=None,
                   help="nnU-Net v2 result folder, a folder of model folders (with --task), or a catalogue id")
    q = p.add_mutually_exclusive_group()
    q.add_argument("--fast", action="store_true", help="3 mm model (TotalSegmentator --fast)")
    q.add_argument("--fastest", action="store_true", help="6 mm model (TotalSegmentator --fastest)")
    p.add_argument("-rs", "--roi-subset", "--roi_subset", nargs="+", default=None, metavar="NAME",
                   help="only these structures (multi-part tasks run only the parts needed)")
    p.add_argument("--ml", action="store_true", help="only the multi-label file (no per-structure masks)")
    p.add_argument("-d", "--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("-nt", "--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--folds", nargs="+", default=None, help="folds to ensemble (default: all present)")
    p.add_argument("--step-size", type=float, default=None, help="sliding-window tile step (0..1]")
    p.add_argument("--mode", choices=MODES, default="auto",
                   help="pipeline to match exactly: nnU-Net's predictor or TotalSegmentator's")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="auto: fp16 autocast on CUDA, fp32 on CPU; bf16 uses AVX-512/AMX on recent CPUs")
    p.add_argument("--speed", choices=SPEEDS, default="exact",
                   help="fast: the fastest path this machine has that keeps exact mode's labels (bf16 with the "
                        "full-resolution layers in fp32 on CPUs with "
                        "bf16 units, fp16 on CUDA; exact elsewhere); the run says which it chose")
    p.add_argument("--probabilities", action="store_true", help="also write per-class probabilities (.npz)")
    p.add_argument("--uncertainty", choices=UNCERTAINTY_METHODS, default=None,
                   help="write a voxel uncertainty map and a per-segment confidence CSV")
    p.add_argument("--uncertainty-passes", type=int, default=8, help="passes for tta / mcdropout")
    p.add_argument("--preview", action="store_true", help="write a PNG preview (axial/coronal/sagittal)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_segment)


def _request_from_args(args) -> RunRequest:
    quality = "fast" if args.fast else "fastest" if args.fastest else "normal"
    return RunRequest(
        task=args.task, model=args.model, quality=quality, roi_subset=args.roi_subset, folds=args.folds,
        device=args.device, threads=args.threads, tile_step=args.step_size, mode=args.mode,
        precision=args.precision, speed=args.speed, return_probabilities=args.probabilities, uncertainty=args.uncertainty,
        uncertainty_passes=args.uncertainty_passes,
    ).validate()


def _read_input(args, want_dicom_seg: bool):
    """(image, source slice files or None): a DICOM folder's series is chosen here so a SEG can reference it."""
    from .errors import InvalidImageError
    from .io.dicom_series_select import others_note
    from .io.image import Image, validate_image
    from .io.read import read_dicom_series, read_image

    source = Path(args.input)
    if not source.exists():
        raise InvalidImageError(f"Input not found: {source}")
    if not source.is_dir():
        if want_dicom_seg:
            from .io.dicom_seg_write import DicomSegError

            raise DicomSegError(f"DICOM SEG output needs a DICOM source series as input, and {source.name} is not a "
                                f"DICOM folder; segment the original series, or derive one first with: medsegai "
                                f"convert {source} -o {source.name.split('.')[0]}_dicom/")
        if args.series is not None:
            raise InvalidImageError(f"--series chooses among the series of a DICOM folder; {source.name} is a file.")
        return read_image(source), None
    img, chosen, others = read_dicom_series(source, args.series)
    image = Image.from_sitk(img)
    validate_image(image, name=f"The DICOM series {chosen.uid}")
    note = others_note(chosen, others)
    if note and not args.quiet:
        print(f"note: {note}", file=sys.stderr)
    if want_dicom_seg:  # before the model runs: an unreferenceable series would waste the whole run
        from .io.dicom_seg_write import check_referenceable, load_source_datasets

        check_referenceable(load_source_datasets(chosen.files))
    return image, chosen.files


def _cmd_segment(args) -> int:
    from .outputs import DICOM_SEG_SUFFIX, output_target

    request = _request_from_args(args)  # a bad option fails before the image is read
    target = output_target(args.output)
    want_seg = target.label_suffix == DICOM_SEG_SUFFIX or args.output_type == "dicom_seg"
    if args.output_type == "nifti" and target.label_suffix == DICOM_SEG_SUFFIX:
        raise MedSegAIError(f"-o {args.output} is a DICOM SEG file, but --output-type nifti was asked.")
    if (args.input is None) == (args.from_pacs is None):
        raise MedSegAIError("Give the input either as -i PATH or as --from-pacs URL --study UID.")
    if (args.from_pacs is None) != (args.study is None):
        raise MedSegAIError("--from-pacs and --study go together: the PACS's DICOMweb URL and the study to fetch.")
    if args.send_to is not None and not want_seg:
        raise MedSegAIError("--send-to stores the DICOM SEG: write one with -o NAME.dcm or --output-type dicom_seg.")
    with tempfile.TemporaryDirectory(prefix="medsegai-pacs-") as fetched:
        if args.from_pacs is not None:
            from .io.dicomweb import retrieve_study

            retrieve_study(args.from_pacs, args.study, Path(fetched))
            args.input = fetched
        return _segment(args, request, target, want_seg)


def _segment(args, request, target, want_seg: bool) -> int:
    from .outputs import DicomSegOutput, algorithm_info
    from .predictor import Predictor

    cancel = CancelToken()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.cancel())
    printer = ProgressPrinter(args.quiet)
    try:
        image, source_files = _read_input(args, want_seg)
        predictor = Predictor(request=request, progress=printer, cancel=cancel)
        result = predictor.predict(image, request=request, progress=printer, cancel=cancel)
    finally:
        signal.signal(signal.SIGINT, previous)
        printer.close()
    dicom_seg = (DicomSegOutput(source_files, algorithm_info(predictor), args.seg_type.upper())
                 if want_seg else None)
    written = _write_outputs(args, image, result, target, dicom_seg)
    if args.send_to is not None:
        from .io.dicomweb import stow

        from .io.dicomweb import PacsError

        try:
            stow(args.send_to, [written[k] for k in ("dicom_seg", "uncertainty_dicom") if k in written])
        except PacsError as exc:  # the run's files are complete and stay; only the sending failed
            raise PacsError(f"{exc} Nothing was sent; the results are in {target.folder}.") from None
        written["sent_to"] = args.send_to
    if not args.quiet:
        for kind, path in written.items():
            print(f"{kind}: {path}")
        t = ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items())
        print(f"device: {result.device}; {t}")
        for note in result.notes:
            if note not in result.warnings:  # printed below as warnings, also with --quiet
                print(f"note: {note}")
    for warning in result.warnings:  # also with --quiet: the result may be wrong
        print(f"warning: {warning}", file=sys.stderr)
    return 0



def _write_outputs(args, image, result, target, dicom_seg=None) -> dict:
    """Write every requested file; if any write fails or Ctrl-C arrives, remove what this run wrote.

    Each file is written atomically, but a run stopped between two files would otherwise leave a
    partial set (say the NIfTI without the .seg.nrrd, or half of the masks) that looks finished.
    """
    from .atomic import removing_new_outputs
    from .outputs import write_result_files, write_structure_masks

    out_dir, stem = target.folder, target.stem
    created_dir = not out_dir.exists()
    with removing_new_outputs(out_dir, created_dir):
        written = write_result_files(result, out_dir, stem=stem, probabilities=args.probabilities,
                                     label_suffix=target.label_suffix, dicom_seg=dicom_seg)
        if not target.single_file and not args.ml:
            written["masks"] = write_structure_masks(result, out_dir)
        if args.preview:
            from .preview import write_preview

            written["preview"] = write_preview(image, result, out_dir / f"{stem}_preview.png")
    return written


# Subcommand name -> the module that registers it (``register(subparsers)``).
SUBCOMMAND_MODULES = {"models": "medsegai.models.cli", "train": "medsegai.training.cli", "demo": "medsegai.demo",
                      "interactive": "medsegai.interactive.cli", "train-clicks": "medsegai.interactive.clicks.cli",
                      "convert": "medsegai.convert", "evaluate": "medsegai.evaluate",
                      "serve": "medsegai.server.cli",  # also adds --server to segment and interactive
                      "batch": "medsegai.batch.cli"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medsegai", description="MedSegAI model runner")
    parser.add_argument("--version", action="version", version=f"medsegai {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_segment_parser(sub)
    for name, module in SUBCOMMAND_MODULES.items():
        try:
            mod = __import__(module, fromlist=["register"])
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] == "medsegai":
                raise  # our own module is broken: that is a bug, not an optional part
            _register_unavailable(sub, name, exc.name)
            continue
        mod.register(sub)
    return parser


def _register_unavailable(sub, name: str, missing: str) -> None:
    """A subcommand whose third-party dependency is not installed says so when it is called."""
    def unavailable(_args) -> int:
        raise MedSegAIError(f"'medsegai {name}' needs the Python package '{missing}': pip install {missing}")

    p = sub.add_parser(name, help=f"(unavailable: needs {missing})", add_help=False)
    p.set_defaults(func=unavailable, unavailable=True)  # main() accepts any arguments for it


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "unavailable", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BaseException as exc:  # noqa: B902 - exit_status decides; anything else is a bug and raises
        status = exit_status(exc)
        if status is None:
            raise
        print(f"medsegai: {status[1]}", file=sys.stderr)
        return status[0]


if __name__ == "__main__":
    sys.exit(main())
