"""Score a model on faces: probabilities (optionally with flip test-time augmentation) and the metrics researchers
report for FER2013: accuracy, macro-F1, per-emotion precision/recall/F1 and the confusion matrix."""

from __future__ import annotations

import keras
import numpy as np
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

from fer_utils.loader import EMOTIONS, FERData


def predict_proba(model: keras.Model, images: np.ndarray, *, tta: bool = False, batch_size: int = 512) -> np.ndarray:
    """Seven probabilities per face for uint8 ``(N, 48, 48)`` faces; ``tta`` averages in the mirrored faces."""
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (48, 48):
        raise ValueError(f"images must have shape (N, 48, 48); got {images.shape}")
    proba = model.predict(images, batch_size=batch_size, verbose=0)
    if tta:
        proba = (proba + model.predict(images[:, :, ::-1], batch_size=batch_size, verbose=0)) / 2
    return np.asarray(proba, np.float64)


def evaluate(model: keras.Model, data: FERData, split: str = "PublicTest", *, tta: bool = False) -> dict:
    """Metrics of ``model`` on one split of ``data``, as a JSON-ready dict."""
    part = data.split(split)
    if (part.emotions < 0).any():
        raise ValueError(f"split {split!r} of {data.source} has faces without an emotion; it cannot be scored")
    proba = predict_proba(model, part.images, tta=tta)
    return score(part.emotions, proba) | {"split": split, "tta": tta, "data": data.source, "synthetic": data.synthetic}


def score(emotions: np.ndarray, proba: np.ndarray) -> dict:
    """Accuracy, macro-F1, per-emotion precision/recall/F1/support and the confusion matrix of ``proba``."""
    pred = np.asarray(proba).argmax(axis=1)
    labels = list(range(len(EMOTIONS)))
    report = classification_report(emotions, pred, labels=labels, target_names=EMOTIONS, output_dict=True, zero_division=0)
    return {
        "n": int(len(emotions)),
        "accuracy": float(accuracy_score(emotions, pred)),
        "macro_f1": float(f1_score(emotions, pred, labels=labels, average="macro", zero_division=0)),
        "per_emotion": {
            e: {k: float(report[e][k]) for k in ("precision", "recall", "f1-score", "support")} for e in EMOTIONS
        },
        "confusion_matrix": confusion_matrix(emotions, pred, labels=labels).tolist(),
    }
