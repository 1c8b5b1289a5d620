"""fer_utils: facial expression recognition on FER2013, from loading to a live webcam."""

from fer_utils.loader import EMOTIONS, SPLITS, FERData, FERDataError, find_dataset, load_fer2013, load_or_synthesize
from fer_utils.synthetic import make_synthetic

__all__ = [
    "EMOTIONS",
    "SPLITS",
    "FERData",
    "FERDataError",
    "find_dataset",
    "load_fer2013",
    "load_or_synthesize",
    "make_synthetic",
]
__version__ = "0.1.0"
