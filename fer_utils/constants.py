"""What every module shares: the seven emotions, the splits, the face size, and where things live.

A leaf: it imports nothing of fer_utils, so the detector, the recognizer and the webcam need not import the data
loader to know what an emotion is.
"""

from __future__ import annotations

import os
from pathlib import Path

EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
SPLITS = ("Training", "PublicTest", "PrivateTest")
SIDE = 48  # FER2013 faces are 48x48 gray pixels
PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_DIR = PROJECT_ROOT / "models"  # the shipped .keras models and their cards: in a clone, not in a wheel
NETWORKS_DIR = Path(__file__).resolve().parent / "networks"  # their .tflite networks: package data, in any install
DOWNLOAD_HINT = (
    "Get FER2013 from Kaggle: the challenge's fer2013.csv "
    "(https://www.kaggle.com/c/challenges-in-representation-learning-facial-expression-recognition-challenge/data) "
    "or the image-folder release (https://www.kaggle.com/datasets/msambare/fer2013), "
    "then put it in data/ or set FER2013_PATH to its path."
)


def cache_dir() -> Path:
    """Where fer_utils keeps what it can rebuild: ``$FER_UTILS_CACHE_DIR``, else ``~/.cache/fer_utils``."""
    env = os.environ.get("FER_UTILS_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "fer_utils"
