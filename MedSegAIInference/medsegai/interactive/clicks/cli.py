"""``medsegai train-clicks``: train MedSegAI's click model (the shipped one: the defaults, 55 minutes, 2 CPU threads)."""
from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("train-clicks", help="train MedSegAI's class-agnostic click model",
                       description="Train the interactive click model on the shared data folder "
                                   "($MEDSEGAI_DATA_DIR, default ../shared/data) with simulated prompts; "
                                   "writes a model folder (plans.json + checkpoint_final.pth) to -o.")
    p.add_argument("-o", "--output", required=True, type=Path)
    p.add_argument("--minutes", type=float, default=55.0, help="training time budget (default 55, what the shipped model had)")
    p.add_argument("--resume", action="store_true", help="continue from <output>/training/checkpoint_latest.pth")
    p.add_argument("--iterations", type=int, default=None, help="stop after N iterations instead of the time budget")
    p.add_argument("--limit-openkbp", type=int, default=None, help="use only the first N OpenKBP training cases")
    p.add_argument("--data", type=Path, default=None, help="data folder (default $MEDSEGAI_DATA_DIR or ../shared/data)")
    p.add_argument("-d", "--device", default="cpu")
    p.add_argument("-nt", "--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd)


def _cmd(args) -> int:
    from .train import train

    train(args.output, minutes=args.minutes, resume=args.resume, threads=args.threads, device=args.device,
          seed=args.seed, iterations=args.iterations, limit_openkbp=args.limit_openkbp, data_root=args.data,
          log=lambda m: print(m, flush=True))
    return 0
