"""Image utilities shared by detection, recognition, video and the webcam: layouts to gray or BGR, FER-style face
crops, and reading image files. OpenCV and NumPy only.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from fer_utils.constants import SIDE


def to_gray(image: np.ndarray, color: str = "bgr") -> np.ndarray:
    """uint8 gray copy of a gray, BGR/RGB or BGRA/RGBA image; a clear ValueError for any other layout."""
    image = as_uint8(image)
    if image.ndim == 2:
        return image
    code = {("bgr", 3): cv2.COLOR_BGR2GRAY, ("rgb", 3): cv2.COLOR_RGB2GRAY,
            ("bgr", 4): cv2.COLOR_BGRA2GRAY, ("rgb", 4): cv2.COLOR_RGBA2GRAY}
    if image.shape[2] == 1:
        return image[:, :, 0]
    return cv2.cvtColor(image, code[_color(color), image.shape[2]])


def to_bgr(image: np.ndarray, color: str = "bgr") -> np.ndarray:
    """uint8 3-channel BGR version of a gray, BGR/RGB or BGRA/RGBA image (the input itself if already BGR uint8)."""
    image = as_uint8(image)
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    code = {("bgr", 3): None, ("rgb", 3): cv2.COLOR_RGB2BGR, ("bgr", 4): cv2.COLOR_BGRA2BGR, ("rgb", 4): cv2.COLOR_RGBA2BGR}
    c = code[_color(color), image.shape[2]]
    return image if c is None else cv2.cvtColor(image, c)


def as_uint8(image: np.ndarray) -> np.ndarray:
    """Check the layout (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); floats in [0, 1] are scaled to 0-255."""
    image = np.asarray(image)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)) or min(image.shape[:2]) == 0:
        raise ValueError(f"image must be (H, W) gray, (H, W, 3) BGR/RGB or (H, W, 4) BGRA/RGBA; got shape {image.shape}")
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.bool_ or not np.issubdtype(image.dtype, np.number):
        raise ValueError(f"image must be uint8 (0-255) or float (0-1); got dtype {image.dtype}")
    if np.issubdtype(image.dtype, np.floating) and image.size and np.nanmax(image) <= 1.0:
        image = image * 255.0
    return np.clip(np.nan_to_num(image), 0, 255).astype(np.uint8)


def _color(color: str) -> str:
    if color not in ("bgr", "rgb", "gray"):
        raise ValueError(f"color must be 'bgr', 'rgb' or 'gray'; got {color!r}")
    return "bgr" if color == "gray" else color


def crop_faces(gray: np.ndarray, boxes: np.ndarray, margin: float = 0.0, eyes: np.ndarray | None = None) -> np.ndarray:
    """uint8 (K, 48, 48) faces: each box squared around its centre, widened by ``margin`` of its side on every
    side, cut from ``gray`` (edges replicated where it leaves the frame) and resized. With ``eyes`` (K, 2, 2),
    each face is first rotated so its eyes are level.
    """
    gray = to_gray(gray)
    boxes = np.asarray(boxes, float).reshape(-1, 4)
    out = np.empty((len(boxes), SIDE, SIDE), np.uint8)
    for i, (x, y, w, h) in enumerate(boxes):
        side = max(w, h) * (1 + 2 * margin)
        cx, cy = x + w / 2, y + h / 2
        if eyes is None:
            out[i] = _cut(gray, cx, cy, side, SIDE)
            continue
        # rotate a larger cut so the corners stay filled, then keep its centre
        big = int(np.ceil(SIDE * 1.5))
        patch = _cut(gray, cx, cy, side * big / SIDE, big)
        (lx, ly), (rx, ry) = eyes[i]
        angle = np.degrees(np.arctan2(ry - ly, rx - lx))
        m = cv2.getRotationMatrix2D((big / 2, big / 2), angle, 1.0)
        patch = cv2.warpAffine(patch, m, (big, big), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        o = (big - SIDE) // 2
        out[i] = patch[o:o + SIDE, o:o + SIDE]
    return out


def _cut(gray: np.ndarray, cx: float, cy: float, side: float, size: int) -> np.ndarray:
    """Square of ``side`` pixels centred at (cx, cy), edge-replicated outside the frame, resized to ``size``."""
    s = max(1, round(side))
    x0, y0 = round(cx - s / 2), round(cy - s / 2)
    x1, y1 = x0 + s, y0 + s
    h, w = gray.shape
    patch = gray[max(y0, 0):min(y1, h), max(x0, 0):min(x1, w)]
    if patch.size == 0:  # box entirely outside the frame
        return np.zeros((size, size), np.uint8)
    pad = (max(0, -y0), max(0, y1 - h)), (max(0, -x0), max(0, x1 - w))
    if any(p for pair in pad for p in pair):
        patch = np.pad(patch, pad, mode="edge")
    interp = cv2.INTER_AREA if s > size else cv2.INTER_LINEAR
    return cv2.resize(patch, (size, size), interpolation=interp)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """A BGR uint8 image from a file; clear errors for a missing path or a file that is not an image."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image {path} does not exist")
    if path.is_dir():
        raise ValueError(f"image {path} is a directory; pass image files")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"image {path} could not be read: not an image format OpenCV reads (jpg, png, bmp, tiff, webp)")
    return image
