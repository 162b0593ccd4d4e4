"""Random-weight model folders with the architecture of TotalSegmentator's `total` --fast (297, 3 mm)
and --fastest (298, 6 mm) models, laid out as TotalSegmentator expects them under
TOTALSEG_WEIGHTS_PATH (and as `medsegai segment --task total --model DIR` reads them):

  <out>/Dataset297_TotalSegmentator_total_3mm_1559subj/nnUNetTrainer_4000epochs_NoMirroring__nnUNetPlans__3d_fullres/
  <out>/Dataset298_TotalSegmentator_total_6mm_1559subj/nnUNetTrainer_4000epochs_NoMirroring__nnUNetPlans__3d_fullres/

Real weights cannot be downloaded here; speed and memory depend only on the architecture, and label
agreement between tools needs only that every tool runs the same weights.

How the plans are made: nnU-Net's own fingerprint extractor and ExperimentPlanner run on real CT
from ../shared/data (Testing/Python/model_factory.plan_with_nnunet) with the 117 `total` class
names, so spacing handling, CT normalisation statistics and every other plans field are nnU-Net's.
The planner sizes the patch from the median image shape of the planning data; on the one small
example CT available here (122x101x112 at 3 mm) it proposes 5 stages, 32-64-128-256-320 features,
3x3x3 kernels, stride 2 (the real topology) but patch 112x112x128, not the 128x112x112 that
TotalSegmentator's planner got from 1559 subjects. So for 297 the patch is set explicitly to
128x112x112 (about 16.6 M parameters); the topology is (re)written explicitly too so that a
different planner version cannot change it. For 298 (6 mm) no reference patch is known here: it
keeps the planner's proposal. The script prints what the planner proposed and what was set. Plans are
written in the old format TotalSegmentator's folders use. The checkpoint is written by
model_factory.write_model_folder (nnU-Net's network class, He init, head scaled so that labels form
regions instead of noise).

Run with the repo's .venv (it has nnunetv2 for planning):
  .venv/bin/python Testing/Benchmarks/make_random_model.py --out Testing/Benchmarks/work/totalseg_weights [--with-298]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "Testing" / "Python"))

import model_factory  # noqa: E402  (reused, not copied: planning and folder writing)

DATA = Path(os.environ.get("MEDSEGAI_DATA_DIR", ROOT.parent / "shared" / "data"))
REF = DATA / "ct" / "totalsegmentator-examples" / "tests" / "reference_files"
CLASS_MAPS = ROOT / "MedSegAIInference" / "medsegai" / "totalseg" / "class_maps.json"
TRAINER = "nnUNetTrainer_4000epochs_NoMirroring"

# The real models' topology (TotalSegmentator v2 weights, see Testing/../shared/GUIDE.md section 2).
MODELS = {
    297: dict(folder="Dataset297_TotalSegmentator_total_3mm_1559subj", spacing=(3.0, 3.0, 3.0),
              patch=(128, 112, 112), features=(32, 64, 128, 256, 320)),
    298: dict(folder="Dataset298_TotalSegmentator_total_6mm_1559subj", spacing=(6.0, 6.0, 6.0),
              patch=None, features=(32, 64, 128, 256, 320)),  # None: the planner's patch
}


def total_labels() -> dict:
    names = json.loads(CLASS_MAPS.read_text())["tasks"]["total"]
    return {"background": 0, **{n: int(v) for v, n in sorted(names.items(), key=lambda kv: int(kv[0]))}}


def set_topology(plans: dict, patch, features, spacing) -> dict:
    """Patch and U-Net topology of the real model on top of nnU-Net's planned plans."""
    plans = json.loads(json.dumps(plans))
    conf = plans["configurations"]["3d_fullres"]
    kw = conf["architecture"]["arch_kwargs"]
    n = len(features)
    kw.update(n_stages=n, features_per_stage=list(features), kernel_sizes=[[3, 3, 3]] * n,
              strides=[[1, 1, 1]] + [[2, 2, 2]] * (n - 1), n_conv_per_stage=[2] * n,
              n_conv_per_stage_decoder=[2] * (n - 1))
    if patch is not None:
        conf["patch_size"] = list(patch)
    conf["spacing"] = list(spacing)
    return plans


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=HERE / "work" / "totalseg_weights")
    ap.add_argument("--with-298", action="store_true", help="also the 6 mm (--fastest) model")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--background-bias", type=float, default=6.0,
                    help="added to the background logit so structures cover part of the body, not all of it")
    args = ap.parse_args(argv)

    labels = total_labels()
    assert len(labels) == 118, len(labels)
    # Planning data: the real 3 mm abdomen CT and TotalSegmentator's own --fast labels for it
    # (example_seg_fast_force_split belongs to example_ct; example_seg_fast to example_ct_sm).
    cases = [(REF / "example_ct.nii.gz", REF / "example_seg_fast_force_split.nii.gz")]
    plans, dataset = model_factory.plan_with_nnunet(cases, labels, dataset_id=297, name="TotalSegmentator_total_3mm_1559subj")
    proposed = plans["configurations"]["3d_fullres"]
    pk = proposed["architecture"]["arch_kwargs"]
    print(f"nnU-Net planner on the available CT: patch {proposed['patch_size']}, spacing {proposed['spacing']}, "
          f"{pk['n_stages']} stages, features {pk['features_per_stage']}")
    dataset["labels"] = labels

    ids = [297] + ([298] if args.with_298 else [])
    for tid in ids:
        m = MODELS[tid]
        p = set_topology(plans, m["patch"], m["features"], m["spacing"])
        p["dataset_name"] = m["folder"]
        folder = model_factory.write_model_folder(args.out / m["folder"], p, dataset, trainer=TRAINER, seed=args.seed,
                                                  mirror_axes=None, old_format=True,
                                                  background_bias=args.background_bias)
        import torch
        sd = torch.load(folder / "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=False)["network_weights"]
        seen, n_params = set(), 0
        for k, v in sd.items():  # the same tensors appear under several keys (all_modules.*, decoder.encoder.*)
            if v.data_ptr() in seen:
                continue
            seen.add(v.data_ptr())
            if v.dtype.is_floating_point and "running" not in k:
                n_params += v.numel()
        print(f"{tid}: patch {p['configurations']['3d_fullres']['patch_size']}, spacing {list(m['spacing'])}, {len(m['features'])} stages "
              f"{list(m['features'])}, {n_params / 1e6:.2f} M parameters, 118 outputs -> {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
