"""The bad-input corpus (see run_corpus.py and RESULTS.md)."""
