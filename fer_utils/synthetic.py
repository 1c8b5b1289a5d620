"""The embedded default: synthetic FER-shaped faces, drawn procedurally, so everything runs without FER2013;
and :func:`load_or_synthesize`, which picks FER2013 when one is found and this default otherwise.

Each emotion is a cartoon recipe (mouth curve and opening, eye opening, brow height and slant) blurred by random
pose, lighting, noise and per-face jitter so that the classes overlap a little, like real expressions do.
These are NOT real faces: anything trained or measured on them says nothing about FER2013.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from fer_utils.constants import DOWNLOAD_HINT, EMOTIONS, SIDE
from fer_utils.loader import FERData, find_dataset, load_fer2013

# Class proportions of FER2013's Training split (angry ... neutral).
FER2013_PROPORTIONS = np.array([3995, 436, 4097, 7215, 4830, 3171, 4965], float) / 28709
SPLIT_FRACTIONS = {"Training": 0.8, "PublicTest": 0.1, "PrivateTest": 0.1}

# mouth curve (+ smile), mouth opening, mouth width, eye opening, brow raise, brow slant (+ inner ends down)
_RECIPES = {
    "angry": (-0.15, 0.05, 0.85, 0.75, -1.0, 1.0),
    "disgust": (-0.45, 0.15, 0.75, 0.55, -0.6, 0.6),
    "fear": (-0.25, 0.55, 1.15, 1.35, 0.9, -0.7),
    "happy": (1.0, 0.3, 1.15, 0.8, 0.0, 0.0),
    "sad": (-0.85, 0.0, 0.8, 0.7, 0.1, -1.0),
    "surprise": (0.0, 1.0, 0.6, 1.5, 1.4, 0.0),
    "neutral": (0.0, 0.0, 0.9, 1.0, 0.0, 0.0),
}
_UP = 4  # draw at 4x and downsample, for anti-aliased 48x48 faces


def draw_face(emotion: int, rng: np.random.Generator, jitter: float = 0.25) -> np.ndarray:
    """One synthetic 48x48 uint8 face showing ``EMOTIONS[emotion]``."""
    curve, opening, width, eye, brow, slant = np.array(_RECIPES[EMOTIONS[emotion]]) + rng.normal(0, jitter, 6)
    s = SIDE * _UP
    bg = rng.uniform(20, 200)
    img = np.full((s, s), bg, np.float32)
    cx, cy = s / 2, s / 2 + 4 * _UP
    skin = float(np.clip(bg + rng.choice([-1, 1]) * rng.uniform(40, 110), 60, 235))
    cv2.ellipse(img, (int(cx), int(cy)), (int(17 * _UP), int(22 * _UP)), 0, 0, 360, skin, -1)
    hair = float(np.clip(skin - rng.uniform(50, 120), 0, 255))
    cv2.ellipse(img, (int(cx), int(cy - 14 * _UP)), (int(18 * _UP), int(10 * _UP)), 0, 180, 360, hair, -1)
    ink = float(np.clip(skin - rng.uniform(70, 130), 0, 255))
    thick = 2 * _UP
    for side in (-1, 1):
        ex, ey = cx + side * 7 * _UP, cy - 6 * _UP
        cv2.ellipse(img, (int(ex), int(ey)), (int(3.5 * _UP), max(1, int(1.6 * _UP * max(eye, 0.15)))), 0, 0, 360, ink, -1)
        inner = (ex - side * 4 * _UP, ey - (5 + 2 * brow - 1.5 * slant) * _UP)
        outer = (ex + side * 4 * _UP, ey - (5 + 2 * brow + 1.5 * slant) * _UP)
        cv2.line(img, tuple(int(v) for v in inner), tuple(int(v) for v in outer), ink, thick)
    if EMOTIONS[emotion] == "disgust":  # wrinkled nose
        for dx in (-2, 2):
            cv2.line(img, (int(cx + dx * _UP), int(cy)), (int(cx + 2 * dx * _UP), int(cy + 2 * _UP)), ink, _UP)
    mx, my, half = cx, cy + 10 * _UP, 7 * _UP * max(width, 0.3)
    xs = np.linspace(-1, 1, 24)
    lip = np.stack([mx + xs * half, my - curve * 3.5 * _UP * (xs**2 - 0.3)], axis=1)
    gap = max(opening, 0) * 4 * _UP
    if gap > _UP:
        lower = lip + np.stack([np.zeros_like(xs), gap * (1 - xs**2)], axis=1)
        cv2.fillPoly(img, [np.concatenate([lip, lower[::-1]]).astype(np.int32)], ink * 0.6)
    cv2.polylines(img, [lip.astype(np.int32)], False, ink, thick)
    # pose, lighting and sensor noise
    m = cv2.getRotationMatrix2D((s / 2, s / 2), rng.normal(0, 8), rng.uniform(0.85, 1.1))
    m[:, 2] += rng.normal(0, 2.5 * _UP, 2)
    img = cv2.warpAffine(img, m, (s, s), borderMode=cv2.BORDER_REPLICATE)
    img = cv2.resize(img, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    gy, gx = np.mgrid[0:SIDE, 0:SIDE] / SIDE - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    img = img * rng.uniform(0.7, 1.2) + rng.uniform(-40, 40) * (np.cos(angle) * gx + np.sin(angle) * gy)
    img += rng.normal(0, rng.uniform(2, 10), img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_synthetic(n: int = 3500, seed: int = 0) -> FERData:
    """``n`` synthetic faces with FER2013's emotion proportions and a 80/10/10 Training/PublicTest/PrivateTest split.

    Deterministic: the same ``n`` and ``seed`` give the same bytes.
    """
    if n < len(EMOTIONS):
        raise ValueError(f"n={n} is too small: need at least {len(EMOTIONS)} faces, one per emotion")
    rng = np.random.default_rng(seed)
    emotions = rng.choice(len(EMOTIONS), size=n, p=FER2013_PROPORTIONS).astype(np.int8)
    emotions[: len(EMOTIONS)] = np.arange(len(EMOTIONS))  # every emotion present, even for tiny n
    images = np.stack([draw_face(int(e), rng) for e in emotions])
    names = list(SPLIT_FRACTIONS)
    splits = np.array(names, "<U11")[rng.choice(3, size=n, p=list(SPLIT_FRACTIONS.values()))]
    for i, name in enumerate(names):  # every split non-empty
        splits[len(EMOTIONS) + i] = name
    return FERData(images, emotions, splits, f"synthetic(n={n}, seed={seed})", synthetic=True)


def load_or_synthesize(path: str | os.PathLike | None = None, *, synthetic_size: int = 3500, seed: int = 0) -> FERData:
    """Real FER2013 when one is found (see :func:`find_dataset`), else the clearly labelled synthetic default.

    ``path="synthetic"`` asks for the synthetic default even when a dataset is present.
    """
    found = None if str(path) == "synthetic" else find_dataset(path)
    if found is not None:
        return load_fer2013(found)
    print(f"No FER2013 found: using the SYNTHETIC embedded default ({synthetic_size} generated faces). {DOWNLOAD_HINT}")
    return make_synthetic(synthetic_size, seed=seed)
