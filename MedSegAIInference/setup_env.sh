#!/usr/bin/env bash
# Creates ./.venv and installs the runner (and, with --test, everything the test suite needs).
# Idempotent: a second run only checks that everything is installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
PIP=(.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt)
# torch first and pinned: anything else that asks for torch must not pull a CUDA build.
"${PIP[@]}" torch==2.13.0
"${PIP[@]}" -e MedSegAIInference
if [ "${1:-}" = "--test" ]; then
  # A real PACS for the DICOM SEG tests (test_dicom_seg_pacs.py): Orthanc with its DICOMweb plugin, from
  # Debian. Only where we are root with apt-get; elsewhere those tests skip and say why.
  if ! command -v Orthanc >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends orthanc orthanc-dicomweb \
        >/dev/null 2>&1; then
      apt-get update -q >/dev/null 2>&1 || true
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends orthanc orthanc-dicomweb \
        >/dev/null || echo "setup_env.sh: could not install orthanc; the PACS tests will say so" >&2
    fi
  fi
  "${PIP[@]}" -r Testing/requirements-test.txt
  # the server and Ray extras, for test_server*.py, test_remote.py and test_batch.py
  "${PIP[@]}" -e "MedSegAIInference[server,batch]"
  # nnU-Net's own predictor and planner, for parity tests only: without their dependency chain
  # (timm -> torchvision), whose PyPI build does not import beside the CPU torch.
  "${PIP[@]}" --no-deps -r Testing/requirements-nnunet-nodeps.txt
fi
