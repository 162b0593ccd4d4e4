"""Runs the TotalSegmentator 2.18 CLI offline, in the benchmark venv (Testing/Benchmarks/work/venv).

  work/venv/bin/python Testing/Benchmarks/run_totalseg_offline.py -i CT.nii.gz -o seg.nii.gz --task total --fast --ml

Arguments are TotalSegmentator's own; this only prepares the process, then calls its CLI entry:

- Trainer lookup: nnU-Net finds a trainer class by importing every module under
  nnunetv2/training/nnUNetTrainer, some of which import torchvision, which the benchmark venv
  deliberately lacks (PyPI's torchvision does not import beside the CPU torch; see
  setup_bench_env.sh). The trainers the `total` models name are resolved directly instead:
  nnU-Net's own classes, imported from their modules (which import only nnUNetTrainer), or, if an
  nnU-Net version moved them, plain local nnUNetTrainer subclasses (they differ only in mirroring
  axes, which inference reads from the checkpoint; from the class it uses only the network builder).
- Weights: TOTALSEG_WEIGHTS_PATH must hold the model folders (make_random_model.py); the run is
  refused before TotalSegmentator starts if the folder for a requested task is missing, because
  TotalSegmentator would otherwise try to download it.
- Telemetry: TOTALSEG_HOME_DIR must hold config.json with "send_usage_stats": false.
- Network: connections to anything but the loopback are refused in this process (and in the
  workers it forks), so a code path we did not foresee fails loudly instead of reaching out.
"""
from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
os.environ.setdefault("TOTALSEG_WEIGHTS_PATH", str(HERE / "work" / "totalseg_weights"))
os.environ.setdefault("TOTALSEG_HOME_DIR", str(HERE / "work" / "totalseg_home"))

TASK_FOLDERS = {  # what `--task total` needs, per speed flag
    "--fast": ["Dataset297_TotalSegmentator_total_3mm_1559subj"],
    "--fastest": ["Dataset298_TotalSegmentator_total_6mm_1559subj"],
}


def block_network() -> None:
    real_connect = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and (host.startswith("127.") or host in ("localhost", "::1") or self.family == socket.AF_UNIX):
            return real_connect(self, address)
        raise OSError(f"run_totalseg_offline: network access refused ({address!r})")

    socket.socket.connect = connect


def check_offline_setup(argv) -> None:
    home = Path(os.environ["TOTALSEG_HOME_DIR"])
    cfg = home / "config.json"
    if not cfg.is_file() or json.loads(cfg.read_text()).get("send_usage_stats", True):
        sys.exit(f"{cfg} must exist with \"send_usage_stats\": false (run setup_bench_env.sh)")
    weights = Path(os.environ["TOTALSEG_WEIGHTS_PATH"])
    for flag, folders in TASK_FOLDERS.items():
        if flag in argv:
            for f in folders:
                if not (weights / f).is_dir():
                    sys.exit(f"{weights / f} missing: TotalSegmentator would try to download it "
                             f"(run make_random_model.py)")


def trainer_classes() -> dict:
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    try:
        from nnunetv2.training.nnUNetTrainer.variants.data_augmentation.nnUNetTrainerNoMirroring import \
            nnUNetTrainerNoMirroring
    except ImportError:
        # At inference the predictor takes the mirroring axes from the checkpoint
        # ("inference_allowed_mirroring_axes": None for these trainers) and from the trainer class
        # only build_network_architecture, which nnUNetTrainer's is: a plain subclass suffices.
        class nnUNetTrainerNoMirroring(nnUNetTrainer):  # noqa: N801 (nnU-Net's name)
            pass
    try:
        from nnunetv2.training.nnUNetTrainer.variants.training_length.nnUNetTrainer_Xepochs_NoMirroring import \
            nnUNetTrainer_4000epochs_NoMirroring
    except ImportError:
        class nnUNetTrainer_4000epochs_NoMirroring(nnUNetTrainerNoMirroring):  # noqa: N801
            pass
    return {"nnUNetTrainerNoMirroring": nnUNetTrainerNoMirroring,
            "nnUNetTrainer_4000epochs_NoMirroring": nnUNetTrainer_4000epochs_NoMirroring,
            "nnUNetTrainer": nnUNetTrainer}


def patch_trainer_lookup() -> None:
    """Must run before totalsegmentator.nnunet is imported: it wraps the lookup it finds then."""
    import nnunetv2.inference.predict_from_raw_data as pfrd
    import nnunetv2.utilities.find_objects as fo

    known = trainer_classes()
    original = fo.recursive_find_trainer_class_by_name

    def lookup(trainer_name: str):
        if trainer_name in known:
            return known[trainer_name]
        return original(trainer_name)  # anything else: nnU-Net's search (may need torchvision)

    fo.recursive_find_trainer_class_by_name = lookup
    pfrd.recursive_find_trainer_class_by_name = lookup


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    check_offline_setup(argv)
    block_network()
    patch_trainer_lookup()
    from totalsegmentator.bin.TotalSegmentator import main as ts_main

    sys.argv = ["TotalSegmentator"] + argv
    return ts_main() or 0


if __name__ == "__main__":
    raise SystemExit(main())
