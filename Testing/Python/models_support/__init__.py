"""Helpers for the model catalogue/download tests: a local HTTP(S) server and model archives."""
