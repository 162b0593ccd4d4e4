#!/usr/bin/env bash
# Reproduce the shipped head-and-neck organ model (Resources/Models/medsegai_head_neck_oar) on the CPU.
#
#   Testing/Benchmarks/train_head_neck_model.sh [WORK_DIR]        # train into WORK_DIR (default /tmp/medsegai_head_neck)
#   INSTALL=1 Testing/Benchmarks/train_head_neck_model.sh         # ...and copy the result into Resources/
#   DEVICE=cuda MINUTES=15 Testing/Benchmarks/train_head_neck_model.sh   # on a GPU
#   RESUME=1 Testing/Benchmarks/train_head_neck_model.sh          # continue an interrupted run (same WORK_DIR)
#
# Data: $MEDSEGAI_DATA_DIR (default ../shared/data beside the repository): the 137 OpenKBP cases
# outside Resources/Splits/openkbp_validation.json. Training stops after $MINUTES (default 90)
# minutes on 2 CPU threads; the learning-rate schedule follows the time, so the iteration count
# depends on the machine (the shipped model's is in its card): bf16 autocast where the CPU has
# bf16 units (AVX-512 BF16 or AMX; about 2.3x the fp32 steps), fp32 elsewhere. Patches are
# centred on each organ equally often (--class-sampling per-class): the oesophagus and larynx are
# contoured in 47 and 62 of the 137 cases. Then evaluate the held-out split:
#   .venv/bin/python Testing/Benchmarks/eval_head_neck.py --model WORK_DIR/model/MedSegAITrainer__nnUNetPlans__3d_fullres
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="${PYTHON:-$REPO/.venv/bin/python}"
WORK="${1:-/tmp/medsegai_head_neck}"
export MEDSEGAI_DATA_DIR="${MEDSEGAI_DATA_DIR:-$REPO/../shared/data}"

"$PY" "$REPO/Testing/Benchmarks/prepare_head_neck_data.py" --data "$MEDSEGAI_DATA_DIR" --out "$WORK/data"
"$PY" -m medsegai.cli train -i "$WORK/data/train" -o "$WORK/model" \
    --spacing 2.5 3.906 3.906 --patch 48 80 80 --features 16 32 64 128 256 --dropout 0.1 \
    --batch-size 2 --iterations 100000 --max-minutes "${MINUTES:-90}" --limited-fov-p 0.15 \
    --body-region head_neck --threads 2 --seed 0 --device "${DEVICE:-cpu}" --precision auto \
    --class-sampling per-class ${RESUME:+--resume}

if [[ "${INSTALL:-0}" == "1" ]]; then
    SRC="$WORK/model/MedSegAITrainer__nnUNetPlans__3d_fullres"
    DST="$REPO/Resources/Models/medsegai_head_neck_oar/MedSegAITrainer__nnUNetPlans__3d_fullres"
    mkdir -p "$DST/fold_0"
    # Only what the runner needs: the resume checkpoint (fp32 + optimiser state) stays behind.
    cp "$SRC/plans.json" "$SRC/dataset.json" "$DST/"
    cp "$SRC/fold_0/checkpoint_final.pth" "$DST/fold_0/"
    echo "installed into $DST"
fi
