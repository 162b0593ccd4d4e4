"""``medsegai interactive``: prompts from the command line, one mask out (scripts, tests, benchmarks).

Prompts are applied in the order they are given, e.g.
``medsegai interactive -i ct.nii.gz --text liver --negative 60,200,310 -o liver.nii.gz``.
Every value is checked before the image is read; the mask is written once, atomically, on the
input's exact grid, only when every prompt succeeded.
"""
from __future__ import annotations

import argparse
import time
from typing import List, Tuple

from .errors import InteractiveError

OUTPUT_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")
_FORMS = {"point": 3, "negative": 3, "box": 6}


class _InOrder(argparse.Action):
    """Collect every prompt option into one list, in command-line order (--point and --negative interleave)."""

    def __call__(self, parser, namespace, value, option_string=None):
        prompts = list(getattr(namespace, "prompts", None) or [])
        prompts.append((self.dest, value))
        namespace.prompts = prompts


def register(sub) -> None:
    p = sub.add_parser("interactive", help="segment one structure from points, boxes or a name (scripted)",
                       description="Run interactive-segmentation prompts on an image and write the resulting mask. "
                                   "Voxel coordinates are array indices k,j,i (slice, row, column).")
    p.add_argument("-i", "--input", required=True, help="NIfTI/NRRD/MHA file or DICOM series folder")
    p.add_argument("-o", "--output", required=True, help=f"mask file ({', '.join(OUTPUT_SUFFIXES)})")
    p.add_argument("--point", action=_InOrder, metavar="K,J,I", help="positive click (repeatable)")
    p.add_argument("--negative", action=_InOrder, metavar="K,J,I", help="negative click (repeatable)")
    p.add_argument("--box", action=_InOrder, metavar="K0,K1,J0,J1,I0,I1",
                   help="half-open box; one axis of length 1 is a 2D box on that slice")
    p.add_argument("--text", action=_InOrder, metavar="NAME", help="structure name, e.g. liver or 'left kidney'")
    p.add_argument("--mask", action=_InOrder, metavar="FILE", help="start from this mask (on the input's grid)")
    p.add_argument("--engine", default="auto", help="auto | classical | nninteractive | clicks (default auto)")
    p.add_argument("-m", "--model", default=None, help="model folder of the engine (nnInteractive)")
    p.add_argument("-d", "--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("-nt", "--threads", type=int, default=None)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_interactive, prompts=None)


def parse_ints(kind: str, text: str) -> Tuple[int, ...]:
    n = _FORMS[kind]
    parts = [t.strip() for t in str(text).split(",")]
    try:
        values = tuple(int(t) for t in parts)
    except ValueError:
        values = ()
    if len(values) != n:
        form = "K,J,I" if n == 3 else "K0,K1,J0,J1,I0,I1"
        raise InteractiveError(f"--{kind} {text!r}: expected {n} whole numbers {form}.")
    return values


def _parsed(prompts) -> List[Tuple[str, object]]:
    out = []
    for kind, value in prompts:
        if kind in _FORMS:
            v = parse_ints(kind, value)
            out.append((kind, v if kind != "box" else (v[0:2], v[2:4], v[4:6])))
        else:
            out.append((kind, value))
    return out


def _apply(session, kind: str, value):
    if kind == "point":
        return session.add_point(value, positive=True)
    if kind == "negative":
        return session.add_point(value, positive=False)
    if kind == "box":
        return session.add_box(value)
    if kind == "text":
        return session.add_text(value)
    import numpy as np

    from ..io.read import read_image

    mask = read_image(value, validate=False)
    if mask.array.dtype.kind == "f" and np.isin(mask.array, (0, 1)).all():  # a 0/1 mask saved as float
        mask = mask.with_array(mask.array.astype(np.uint8))
    return session.set_mask(mask)


def _cmd_interactive(args) -> int:
    from ..io.write import write_image
    from .session import InteractiveSession

    if not str(args.output).lower().endswith(OUTPUT_SUFFIXES):
        raise InteractiveError(f"The output {args.output} must end in one of {', '.join(OUTPUT_SUFFIXES)}.")
    if not args.prompts:
        raise InteractiveError("No prompt given: add --point, --negative, --box, --text or --mask.")
    prompts = _parsed(args.prompts)
    session = InteractiveSession(engine=args.engine, model=args.model, device=args.device, threads=args.threads)
    say = (lambda *_: None) if args.quiet else print
    if session.engine_note:
        say(f"note: {session.engine_note}")
    try:
        session.set_image(args.input)
        image = session.image
        voxel_ml = float(image.spacing[0] * image.spacing[1] * image.spacing[2]) / 1000.0
        say(f"engine: {session.engine.name}; image {image.shape} (k, j, i)")
        for kind, value in prompts:
            t = time.perf_counter()
            _apply(session, kind, value)
            dt = time.perf_counter() - t
            n = int(session.mask.sum())
            extra = f" -> {', '.join(session.text_structures)}" if kind == "text" else ""
            say(f"{kind} {value}{extra}: {dt * 1000:.0f} ms; mask {n} voxels ({n * voxel_ml:.1f} ml)")
        written = write_image(image.with_array(session.mask.copy()), args.output)
    finally:
        session.close()
    say(f"mask: {written}")
    return 0
