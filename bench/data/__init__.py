"""The data layer: typed records, named datasets, readers with located errors, seeded splits."""

from .errors import DataError, Skips
from .records import EvalPrompt, Messages, PreferencePair, RevisionTriple, as_preference, user
from .sets import DATASETS, load
from .splits import train_val_split

__all__ = [
    "DATASETS", "DataError", "EvalPrompt", "Messages", "PreferencePair", "RevisionTriple", "Skips",
    "as_preference", "load", "train_val_split", "user",
]
