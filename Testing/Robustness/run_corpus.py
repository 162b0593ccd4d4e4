#!/usr/bin/env python
"""The bad-input and fault corpus: every case through every entry point that can receive it.

    .venv/bin/python Testing/Robustness/run_corpus.py --fast        # the CI subset
    .venv/bin/python Testing/Robustness/run_corpus.py --details     # all cases, every row's message
    .venv/bin/python Testing/Robustness/run_corpus.py --only 'dicom_' --entries api cli

Exit code 1 when any row fails. Inputs are generated from $MEDSEGAI_DATA_DIR into a temporary folder.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # Testing/: the Robustness package

from Robustness.runner import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
