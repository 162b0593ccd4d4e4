"""``medsegai batch -i STUDIES -o OUT``: the run options of ``medsegai segment``, plus workers and Ray."""
from __future__ import annotations

import signal
import sys

from ..errors import CancelledError
from ..run_request import MODES, PRECISIONS, SPEEDS, UNCERTAINTY_METHODS


def register(sub) -> None:
    p = sub.add_parser("batch", help="segment many studies (resumable; local workers or Ray)",
                       description="Segment every study of a folder (image files and DICOM series folders) or a CSV "
                                   "manifest (columns path[,id]) into OUT/<study>/. A rerun skips finished studies.")
    p.add_argument("-i", "--input", required=True, help="folder of studies, or a CSV manifest")
    p.add_argument("-o", "--output", required=True, help="output folder (one sub-folder per study)")
    p.add_argument("-ta", "--task", default=None)
    p.add_argument("-m", "--model", default=None)
    q = p.add_mutually_exclusive_group()
    q.add_argument("--fast", action="store_true")
    q.add_argument("--fastest", action="store_true")
    p.add_argument("-rs", "--roi-subset", "--roi_subset", nargs="+", default=None, metavar="NAME")
    p.add_argument("--ml", action="store_true", help="no per-structure masks")
    p.add_argument("-d", "--device", default="auto")
    p.add_argument("-nt", "--threads", type=int, default=None, help="CPU threads per worker")
    p.add_argument("--folds", nargs="+", default=None)
    p.add_argument("--step-size", type=float, default=None)
    p.add_argument("--mode", choices=MODES, default="auto")
    p.add_argument("--precision", choices=PRECISIONS, default="auto")
    p.add_argument("--speed", choices=SPEEDS, default="exact", help="as for medsegai segment")
    p.add_argument("--probabilities", action="store_true")
    p.add_argument("--uncertainty", choices=UNCERTAINTY_METHODS, default=None)
    p.add_argument("--uncertainty-passes", type=int, default=8)
    p.add_argument("--preview", action="store_true")
    p.add_argument("--workers", type=int, default=1, help="worker processes (or Ray actors), each with the model")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on Ray: a local cluster, or the cluster at ADDRESS ('auto' for the one this node is in)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, help="with --ray: GPUs each actor reserves")
    p.add_argument("--num-parts", type=int, default=1, help="split the studies into this many parts")
    p.add_argument("--part-id", type=int, default=0, help="which part this run does (0-based)")
    p.add_argument("--jsonl", action="store_true", help="also print the JSON-lines events on stdout")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_batch)


def _cmd_batch(args) -> int:
    from ..cli import _request_from_args
    from ..errors import MedSegAIError
    from ..progress import CancelToken
    from .run import BatchOptions, run_batch, summary_table
    from .study import StudyOutputs

    if args.workers < 1:
        raise MedSegAIError("--workers must be at least 1.")
    request = _request_from_args(args)
    options = BatchOptions(workers=args.workers, ray=args.ray is not None, ray_address=args.ray or None,
                           gpus_per_worker=args.gpus_per_worker, num_parts=args.num_parts, part_id=args.part_id,
                           outputs=StudyOutputs(masks=not args.ml, probabilities=args.probabilities,
                                                preview=args.preview))
    cancel = CancelToken()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.cancel())
    try:
        summary = run_batch(args.input, args.output, request, options, echo_jsonl=sys.stdout if args.jsonl else None,
                            progress=None if args.quiet else sys.stderr, cancel=cancel)
    except CancelledError:
        raise CancelledError("The batch was interrupted; finished studies are kept, a rerun does the rest.") from None
    finally:
        signal.signal(signal.SIGINT, previous)
    print(summary_table(summary), file=sys.stderr if args.jsonl else sys.stdout)
    return 1 if summary["failed"] else 0
