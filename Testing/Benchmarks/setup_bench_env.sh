#!/usr/bin/env bash
# Creates Testing/Benchmarks/work/venv: TotalSegmentator 2.18.0 and nnU-Net v2 for side-by-side
# benchmarks against our runner. A SEPARATE venv on purpose: these are the tools we compare with,
# never runtime dependencies of the product (the product's .venv stays as setup_env.sh makes it).
#
# Why --no-deps: dynamic-network-architectures 0.4.4 requires timm, which requires torchvision.
# PyPI's torchvision does not import beside the CPU torch 2.13.0 we pin (and a broken torchvision
# breaks packages that probe for it at import time), while the U-Net modules nnU-Net and
# TotalSegmentator use never import timm. So the five packages whose dependency chain reaches
# timm are installed with --no-deps and their other requirements (copied from their METADATA,
# minus timm) are listed explicitly below. torch is installed first from the constraints file
# (torch==2.13.0, the CPU wheel on local disk) so nothing can pull a CUDA build.
#
# Idempotent: a second run only checks what is installed. Usage: bash setup_bench_env.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
WORK="$HERE/work"
VENV="$WORK/venv"
PY=${PYTHON:-python3}
mkdir -p "$WORK"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$ROOT/constraints.txt")

"${PIP[@]}" torch==2.13.0
# The packages whose requirements lead to timm -> torchvision.
"${PIP[@]}" --no-deps totalsegmentator==2.18.0 nnunetv2==2.8.1 dynamic-network-architectures==0.4.4 \
    acvl-utils==0.2.6 batchgeneratorsv2==0.3.6
# Their other requirements (totalsegmentator 2.18.0, nnunetv2 2.8.1, acvl-utils, batchgeneratorsv2,
# dynamic-network-architectures without timm). fury/dipy/imgkit/xvfbwrapper only serve previews
# and reports, but python_api imports some of them at module level, so they are here too.
"${PIP[@]}" numpy scipy SimpleITK 'nibabel>=2.3.0' 'tqdm>=4.45.0' requests dicom2nifti pyarrow xmltodict \
    blosc imgkit jinja2 Pillow 'scikit-image>=0.19.3' matplotlib networkx pandas scikit-learn 'fury<2' dipy \
    xvfbwrapper 'batchgenerators>=0.25.1' graphviz tifffile seaborn imagecodecs yacs einops 'blosc2>=3.3.2' \
    connected-components-3d psutil

# Checks: torch stays the CPU build, torchvision/timm are absent, the tools import.
"$VENV/bin/python" - <<'EOF'
import importlib.util, torch
assert torch.__version__.startswith("2.13.0") and "+cpu" in torch.__version__, torch.__version__
for bad in ("torchvision", "timm"):
    assert importlib.util.find_spec(bad) is None, f"{bad} must not be installed (see setup_bench_env.sh)"
import nnunetv2.inference.predict_from_raw_data  # noqa: F401
import totalsegmentator.python_api  # noqa: F401
print("bench venv OK: torch", torch.__version__)
EOF

# TotalSegmentator's home: config.json with telemetry off. Written only if absent, so that a
# config TotalSegmentator itself updated (prediction counter) is kept.
HOME_DIR="$WORK/totalseg_home"
mkdir -p "$HOME_DIR" "$WORK/totalseg_weights"
if [ ! -f "$HOME_DIR/config.json" ]; then
  cat > "$HOME_DIR/config.json" <<'EOF'
{"totalseg_id": "totalseg_medsegai_bench", "send_usage_stats": false, "prediction_counter": 0}
EOF
fi
# Debian's GNU time for peak RSS (-v); the benchmark falls back to psutil polling without it.
if [ ! -x /usr/bin/time ]; then
  echo "note: /usr/bin/time missing; install it with: apt-get install -y time" >&2
fi
echo "TOTALSEG_HOME_DIR=$HOME_DIR"
echo "TOTALSEG_WEIGHTS_PATH=$WORK/totalseg_weights"
