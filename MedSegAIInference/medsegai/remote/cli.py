"""``--server URL`` for ``medsegai segment`` and ``medsegai interactive``: the same files, made remotely.

The options are checked and the server's protocol version is compared before the image is even
read; the image then goes up once, compressed, and the files come back into ``-o`` exactly as a
local run writes them. Ctrl+C cancels the remote job. DICOM SEG output stays local (the SEG must
reference the source slices, which are on this computer): convert the labels with ``medsegai convert``.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from ..errors import MedSegAIError


def _add_remote_options(p) -> None:
    g = p.add_argument_group("remote run (medsegai serve)")
    g.add_argument("--server", default=None, metavar="URL", help="run on this MedSegAI server instead of here")
    g.add_argument("--token", default=None, help="the server's token (default $MEDSEGAI_TOKEN)")
    g.add_argument("--ca-bundle", default=None, help="PEM certificate(s) of a private CA that signed the server's")


def extend(sub) -> None:
    """Add the remote options to the segment and interactive subcommands, if they are registered."""
    for name, remote in (("segment", _remote_segment), ("interactive", _remote_interactive)):
        parser = sub.choices.get(name)
        if parser is None:
            continue
        _add_remote_options(parser)
        local = parser.get_default("func")
        parser.set_defaults(func=_dispatch(local, remote))


def _dispatch(local, remote):
    def run(args) -> int:
        if getattr(args, "server", None):
            return remote(args)
        if getattr(args, "token", None) or getattr(args, "ca_bundle", None):
            raise MedSegAIError("--token and --ca-bundle are for remote runs; add --server URL.")
        return local(args)
    return run


def _client(args):
    from .client import RemoteClient

    return RemoteClient(args.server, args.token, ca_bundle=args.ca_bundle)


def _remote_segment(args) -> int:
    from ..cli import ProgressPrinter, _read_input, _request_from_args
    from ..outputs import DICOM_SEG_SUFFIX, output_target
    from .protocol import OutputOptions

    request = _request_from_args(args)
    target = output_target(args.output)
    if target.label_suffix == DICOM_SEG_SUFFIX or args.output_type == "dicom_seg" or args.send_to:
        raise MedSegAIError("A remote run does not write DICOM SEG (the SEG must reference the DICOM slices on this "
                            "computer); write the labels remotely, then: medsegai convert labels.seg.nrrd -o seg.dcm "
                            "--reference DICOM_FOLDER")
    if args.from_pacs or args.input is None:
        raise MedSegAIError("A remote run takes its image from -i PATH (fetch from a PACS first).")
    client = _client(args)
    client.check()  # protocol and token before the image is read or sent
    image, _ = _read_input(args, False)
    outputs = OutputOptions(stem=target.stem, label_suffix=target.label_suffix,
                            masks=not target.single_file and not args.ml, preview=args.preview,
                            probabilities=args.probabilities).validate()
    printer = ProgressPrinter(args.quiet)
    try:
        written, final = client.run(image, request, target.folder, outputs, progress=printer)
    finally:
        printer.close()
    if not args.quiet:
        shown = set()
        for rel, path in written.items():
            top = rel.split("/")[0]
            if "/" in rel:
                if top not in shown:
                    print(f"{top}: {target.folder / top}")
                    shown.add(top)
            else:
                print(f"file: {path}")
        timings = ", ".join(f"{k} {v:.1f}s" for k, v in (final.get("timings") or {}).items())
        print(f"server: {client.url}; job {final.get('job_id')}; device: {final.get('device')}; {timings}")
        for note in final.get("notes") or []:
            if note not in (final.get("warnings") or []):
                print(f"note: {note}")
    for warning in final.get("warnings") or []:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _apply_region(mask, reply) -> None:
    from ..service.regions import decode, region_of

    values, offset = decode(reply["region"])
    if values.size:
        mask[region_of(values, offset)] = values


def _remote_interactive(args) -> int:
    import numpy as np

    from ..interactive.cli import OUTPUT_SUFFIXES, _parsed
    from ..interactive.errors import InteractiveError
    from ..io.read import read_image
    from ..io.write import write_image
    from ..service.regions import encode

    if not str(args.output).lower().endswith(OUTPUT_SUFFIXES):
        raise InteractiveError(f"The output {args.output} must end in one of {', '.join(OUTPUT_SUFFIXES)}.")
    if not args.prompts:
        raise InteractiveError("No prompt given: add --point, --negative, --box, --text or --mask.")
    if args.model:
        raise InteractiveError("A remote session uses the server's engine model; leave out --model.")
    prompts = _parsed(args.prompts)
    client = _client(args)
    client.check()
    image = read_image(args.input)
    say = (lambda *_: None) if args.quiet else print
    opened = client.open_session(args.engine)
    sid = opened["session_id"]
    try:
        if opened.get("engine_note"):
            say(f"note: {opened['engine_note']}")
        client.session_image(sid, image)
        mask = np.zeros(image.shape, np.uint8)
        say(f"engine: {opened.get('engine')} on {client.url}; image {image.shape} (k, j, i)")
        for kind, value in prompts:
            t = time.perf_counter()
            if kind in ("point", "negative"):
                reply = client.session_edit(sid, "prompt", kind="point", point=list(value), positive=kind == "point")
            elif kind == "box":
                reply = client.session_edit(sid, "prompt", kind="box", box=[list(v) for v in value], positive=True)
            elif kind == "text":
                reply = client.session_edit(sid, "prompt", kind="text", text=value)
            else:
                start = read_image(value, validate=False).array
                reply = client.session_edit(sid, "set_mask", mask=encode((start != 0).astype(np.uint8)))
            _apply_region(mask, reply)
            say(f"{kind} {value}: {(time.perf_counter() - t) * 1000:.0f} ms; mask {int(mask.sum())} voxels")
        written = write_image(image.with_array(mask), Path(args.output))
    finally:
        try:
            client.close_session(sid)
        except MedSegAIError:
            pass  # the lease ends it anyway
    say(f"mask: {written}")
    return 0
