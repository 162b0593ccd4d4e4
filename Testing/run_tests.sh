#!/usr/bin/env bash
# The whole test suite from a fresh checkout: set up .venv, then run every test. Used by .ci/run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash MedSegAIInference/setup_env.sh --test
export MEDSEGAI_DATA_DIR=${MEDSEGAI_DATA_DIR:-$(cd .. && pwd)/shared/data}
# Keep the user's real model cache and TotalSegmentator weights out of the tests.
export MEDSEGAI_HOME=$(mktemp -d)
trap 'rm -rf "$MEDSEGAI_HOME"' EXIT
unset TOTALSEG_WEIGHTS_PATH
.venv/bin/python -m pytest Testing/Python -q -p no:cacheprovider --durations=15 "$@"
