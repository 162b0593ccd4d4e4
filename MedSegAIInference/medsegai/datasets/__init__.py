"""Readers for the public data sets MedSegAI trains and validates on (never shipped with it)."""
