"""Errors the trainer raises before any training starts: bad data, bad options, too little memory."""
from ..errors import MedSegAIError


class TrainingDataError(MedSegAIError):
    """The training folder, a pair in it or the label-name map cannot be used as given."""


class TrainingConfigError(MedSegAIError):
    """The training options cannot work (patch too large for the memory, unknown device...)."""
