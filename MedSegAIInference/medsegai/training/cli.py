"""``medsegai train``: the command-line face of :func:`medsegai.training.train`."""
from __future__ import annotations

import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "train", help="train a 3D segmentation model into an nnU-Net v2-style model folder",
        description="Train a 3D U-Net on image/label pairs (imagesTr/+labelsTr/ or images/+labels/, with labels.json "
                    "or dataset.json naming the label values). Writes <output>/MedSegAITrainer__nnUNetPlans__3d_fullres/, "
                    "which 'medsegai segment --model' runs.")
    p.add_argument("-i", "--input", required=True, type=Path, help="training folder")
    p.add_argument("-o", "--output", required=True, type=Path, help="output folder for the model folder")
    p.add_argument("--labels", type=Path, default=None, help="label-name JSON (default: labels.json/dataset.json in -i)")
    p.add_argument("--val", type=Path, default=None, help="held-out folder (same layout) for sliding-window validation")
    p.add_argument("--unlabelled", type=Path, default=None,
                   help="JSON mapping case names to the structures not contoured in them, which are then unknown "
                        "rather than background (default: unlabelled.json in -i, if present)")
    p.add_argument("--spacing", type=float, nargs=3, default=(3.0, 3.0, 3.0), metavar=("Z", "Y", "X"),
                   help="target spacing in mm (default 3 3 3)")
    p.add_argument("--patch", type=int, nargs=3, default=(48, 64, 64), metavar=("Z", "Y", "X"),
                   help="patch size in voxels (default 48 64 64)")
    p.add_argument("--features", type=int, nargs="+", default=[16, 32, 64, 128, 256],
                   help="features per U-Net stage (default 16 32 64 128 256)")
    p.add_argument("--dropout", type=float, default=0.1, help="Dropout3d probability after each conv (default 0.1)")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--iterations", type=int, default=1000)
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop and export after this many minutes (the learning-rate schedule follows the time)")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--val-every", type=int, default=0, help="validate every N iterations (default: only at the end)")
    p.add_argument("--checkpoint-every", type=int, default=25)
    p.add_argument("--resume", action="store_true", help="continue from <output>/.../fold_0/checkpoint_latest.pth")
    p.add_argument("--finetune", type=Path, default=None,
                   help="start from this model folder (e.g. a TotalSegmentator model) instead of random weights")
    p.add_argument("-d", "--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("-nt", "--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"],
                   help="fp32 (default), bf16 autocast (CPUs with AVX-512 BF16 or AMX, recent GPUs; about 2x faster), "
                        "or auto: bf16 where the hardware has bf16 arithmetic, else fp32")
    p.add_argument("--class-sampling", default="per-case", choices=["per-case", "per-class"],
                   help="per-case (default): pick a case, then a structure it has; per-class: pick a structure, then "
                        "a case that has it, so structures contoured in few cases are seen as often as the rest")
    p.add_argument("--mirror-lr", type=float, default=0.0, metavar="P",
                   help="probability of a left-right mirror with paired *_left/*_right labels swapped "
                        "(default 0: off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--memory-limit-gb", type=float, default=None,
                   help="memory a training step may use (default: 80%% of what is free)")
    p.add_argument("--elastic-p", type=float, default=0.1, help="probability of an elastic deformation per patch")
    p.add_argument("--limited-fov-p", type=float, default=0.3,
                   help="probability that a patch is cut to a short/narrow field of view (padding outside)")
    p.add_argument("--air-margin-mm", type=float, default=0.0,
                   help="CT: surround each training case in-plane with this much air (for tightly cropped scans)")
    p.add_argument("--body-region", nargs="+", default=None, metavar="REGION",
                   choices=["head_neck", "thorax", "abdomen_pelvis", "whole_body"],
                   help="body region(s) the training scans cover (head_neck, thorax, abdomen_pelvis, whole_body), "
                        "written to plans.json as medsegai_body_regions so the runner can warn on scans outside them")
    p.add_argument("--fp32-weights", action="store_true", help="save float32 weights (default float16, half the size)")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args) -> int:
    from .loop import TrainOptions, train
    from .plans_writer import ArchitectureOptions, write_body_regions

    opts = TrainOptions(
        data_dir=args.input, output_dir=args.output, labels_json=args.labels, val_dir=args.val,
        unlabelled_json=args.unlabelled,
        spacing=tuple(args.spacing), patch=tuple(args.patch), batch_size=args.batch_size,
        iterations=args.iterations, lr=args.lr,
        arch=ArchitectureOptions(features=list(args.features), dropout_p=args.dropout),
        device=args.device, threads=args.threads, val_every=args.val_every, checkpoint_every=args.checkpoint_every,
        resume=args.resume, finetune=args.finetune, seed=args.seed, max_minutes=args.max_minutes,
        elastic_p=args.elastic_p, limited_fov_p=args.limited_fov_p, air_margin_mm=args.air_margin_mm,
        memory_limit_gb=args.memory_limit_gb, fp16_weights=not args.fp32_weights, precision=args.precision,
        class_sampling=args.class_sampling, mirror_lr_p=args.mirror_lr,
    )
    summary = train(opts, log=lambda m: print(m, flush=True))
    # After training rather than in TrainOptions: the loop writes plans.json itself, and a resumed
    # run keeps the declaration the first run wrote.
    write_body_regions(summary.model_folder, args.body_region)
    for case, dice in summary.validation.items():
        print(f"validation Dice, case {case}:")
        for name, d in sorted(dice.items(), key=lambda kv: -kv[1]):
            print(f"  {name:<28} {d:.3f}")
    print(f"model: {summary.model_folder}", file=sys.stdout)
    return 0
