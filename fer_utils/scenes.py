"""Generated scenes and videos with real faces, for tests, benchmarks and demos (no download, no FER2013).

The faces are scikit-image's LFW subset (``skimage.data.lfw_subset()``: 100 tightly cropped 25x25 faces that ship
in its wheel), upscaled and pasted onto a cluttered background (random shapes, lines, text and noise), so a
detector has to find them among distractors. Every function is deterministic for a given ``seed``.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np


def lfw_faces() -> np.ndarray:
    """uint8 (100, 25, 25) gray faces from scikit-image's LFW subset (its other 100 images are not faces)."""
    from skimage.data import lfw_subset  # scikit-image: the notebooks' and tests' extra, not the package's

    return np.round(lfw_subset()[:100] * 255).astype(np.uint8)


def astronaut_bgr() -> np.ndarray:
    """scikit-image's astronaut photo (one real face, 512x512) as BGR uint8."""
    from skimage.data import astronaut  # scikit-image, as above

    return cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR)


def cluttered_background(height: int = 480, width: int = 640, seed: int = 0) -> np.ndarray:
    """BGR uint8 clutter: a gradient, random rectangles, circles, lines, text and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = (60 + 120 * (xx / width) * 0.5 + 60 * (yy / height)).astype(np.uint8)
    img = np.dstack([base, np.roll(base, width // 3, 1), base[::-1]]).copy()
    for _ in range(30):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = rng.integers(4)
        x, y = int(rng.integers(width)), int(rng.integers(height))
        if kind == 0:
            cv2.rectangle(img, (x, y), (x + int(rng.integers(10, 120)), y + int(rng.integers(10, 120))), color, -1)
        elif kind == 1:
            cv2.circle(img, (x, y), int(rng.integers(5, 50)), color, int(rng.choice([-1, 2])))
        elif kind == 2:
            cv2.line(img, (x, y), (int(rng.integers(width)), int(rng.integers(height))), color, int(rng.integers(1, 5)))
        else:
            cv2.putText(img, "FER 2013", (x, y), cv2.FONT_HERSHEY_SIMPLEX, float(rng.uniform(0.5, 1.5)), color, 2)
    noise = rng.standard_normal(img.shape, dtype=np.float32) * 8
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def paste_face(frame: np.ndarray, face: np.ndarray, x: int, y: int, size: int) -> tuple[int, int, int, int]:
    """Paste a gray face upscaled to ``size`` pixels at (x, y) into a BGR frame (in place); returns its box."""
    big = cv2.resize(face, (size, size), interpolation=cv2.INTER_CUBIC)
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + size, w), min(y + size, h)
    if x1 > x0 and y1 > y0:
        frame[y0:y1, x0:x1] = big[y0 - y:y1 - y, x0 - x:x1 - x, None]
    return x, y, size, size


# faces of the LFW subset that are frontal enough for both detectors at 80-160 px (checked by tests)
FRONTAL = (0, 1, 2, 3, 5, 6, 8, 9, 10, 12)


def make_scene(n_faces: int = 3, height: int = 480, width: int = 640, sizes: tuple[int, int] = (90, 140),
               seed: int = 0, faces: tuple[int, ...] = FRONTAL) -> tuple[np.ndarray, np.ndarray]:
    """A cluttered BGR frame with ``n_faces`` non-overlapping real faces; returns (frame, boxes (K, 4) x, y, w, h)."""
    rng = np.random.default_rng(seed)
    frame = cluttered_background(height, width, seed)
    lfw = lfw_faces()
    boxes: list[tuple[int, int, int, int]] = []
    for k in range(n_faces):
        for _ in range(1000):
            s = int(rng.integers(sizes[0], sizes[1] + 1))
            x, y = int(rng.integers(0, width - s)), int(rng.integers(0, height - s))
            gap = s // 4  # keep faces apart so each is seen whole
            if all(x + s + gap < bx or bx + bs + gap < x or y + s + gap < by or by + bs + gap < y
                   for bx, by, bs, _ in boxes):
                break
        else:
            raise ValueError(f"cannot fit {n_faces} faces of {sizes} px in {width}x{height}")
        boxes.append(paste_face(frame, lfw[faces[k % len(faces)]], x, y, s))
    return frame, np.array(boxes, int).reshape(-1, 4)


def make_video(n_frames: int = 60, n_faces: int = 2, height: int = 480, width: int = 640, seed: int = 0,
               sizes: tuple[int, int] = (100, 130), speed: float = 3.0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream (BGR frame, true boxes) of faces drifting across a fixed cluttered background and changing size.

    Faces move ``speed`` px a frame along fixed, well separated lanes and grow/shrink slowly; generated on the
    fly, so a long video costs no memory.
    """
    rng = np.random.default_rng(seed)
    background = cluttered_background(height, width, seed)
    lfw = lfw_faces()
    lane = width // max(1, n_faces)
    starts = [(k * lane + 10, int(rng.integers(10, max(11, height - sizes[1] - 10)))) for k in range(n_faces)]
    dirs = [rng.choice([-1, 1]) for _ in range(n_faces)]
    for t in range(n_frames):
        frame = background.copy()
        boxes = []
        for k, (x0, y0) in enumerate(starts):
            phase = np.sin(2 * np.pi * t / max(n_frames, 30))
            s = int(round((sizes[0] + sizes[1]) / 2 + (sizes[1] - sizes[0]) / 2 * phase))
            span = max(1, lane - s - 20)
            x = x0 + int(abs((t * speed) % (2 * span) - span)) if lane > s + 20 else x0
            y = int(np.clip(y0 + dirs[k] * speed * 0.5 * t, 0, height - s)) if height > s else 0
            boxes.append(paste_face(frame, lfw[FRONTAL[k % len(FRONTAL)]], x, y, s))
        yield frame, np.array(boxes, int).reshape(-1, 4)
