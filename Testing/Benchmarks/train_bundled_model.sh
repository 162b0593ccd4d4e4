#!/usr/bin/env bash
# Reproduce the bundled demo model (Resources/Models/medsegai_ct_demo) on the CPU, in under an hour.
#
#   Testing/Benchmarks/train_bundled_model.sh [WORK_DIR]          # train into WORK_DIR (default /tmp/medsegai_ct_demo)
#   INSTALL=1 Testing/Benchmarks/train_bundled_model.sh           # ...and copy the result into Resources/
#
# Data: $MEDSEGAI_DATA_DIR (default ../shared/data beside the repository). Training uses 2 CPU
# threads and stops after 45 minutes of training (the learning-rate schedule follows the time),
# so the number of iterations depends on the machine; the shipped model's count is in its card.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="${PYTHON:-$REPO/.venv/bin/python}"
WORK="${1:-/tmp/medsegai_ct_demo}"
export MEDSEGAI_DATA_DIR="${MEDSEGAI_DATA_DIR:-$REPO/../shared/data}"

"$PY" "$REPO/Testing/Benchmarks/prepare_bundled_data.py" --data "$MEDSEGAI_DATA_DIR" --out "$WORK/data"
"$PY" -m medsegai.cli train -i "$WORK/data/train" --val "$WORK/data/val" -o "$WORK/model" \
    --spacing 5 5 5 --patch 32 48 48 --features 16 32 64 128 256 --dropout 0.1 \
    --batch-size 1 --iterations 6000 --max-minutes 45 --val-every 1000 --air-margin-mm 80 --threads 2 --seed 0 --device "${DEVICE:-cpu}"

if [[ "${INSTALL:-0}" == "1" ]]; then
    SRC="$WORK/model/MedSegAITrainer__nnUNetPlans__3d_fullres"
    DST="$REPO/Resources/Models/medsegai_ct_demo/MedSegAITrainer__nnUNetPlans__3d_fullres"
    mkdir -p "$DST/fold_0"
    # Only what the runner needs: the resume checkpoint (fp32 + optimiser state) stays behind.
    cp "$SRC/plans.json" "$SRC/dataset.json" "$SRC/training_log.json" "$DST/"
    cp "$SRC/fold_0/checkpoint_final.pth" "$DST/fold_0/"
    echo "installed into $DST"
fi
