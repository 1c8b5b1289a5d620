"""Where live frames come from, on the kernel's side: a camera, a video file, or a generated clip of a real face
(which needs no camera, for tests, headless runs and demos)."""

from __future__ import annotations

import functools
import os
import platform
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from fer_utils.atomic import atomic_path
from fer_utils.scenes import astronaut_bgr

SOURCES = ("browser", "camera", "file", "clip")


class CameraError(RuntimeError):
    """A camera or video could not be opened or stopped delivering frames; the message says why and what to do."""


_astronaut = functools.cache(astronaut_bgr)  # one real face (scikit-image's public-domain astronaut photo)


def make_clip_frame(i: int, width: int = 640, height: int = 480, n_frames: int = 150) -> np.ndarray:
    """Frame ``i`` of a generated clip: the astronaut's face drifting and zooming over a gray background (BGR)."""
    phase = 2 * np.pi * (i % n_frames) / n_frames
    photo = _astronaut()
    scale = 0.8 + 0.12 * np.sin(phase)  # the face (95 px in the photo) stays between 65 and 90 px
    src = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = np.full((height, width, 3), 90, np.uint8)
    # keep the face (centre ~ (225, 113) in the photo) near the middle, drifting sideways
    cx = width // 2 + int(0.25 * width * np.sin(phase)) - int(225 * scale)
    cy = height // 3 - int(113 * scale)
    x0, y0 = max(cx, 0), max(cy, 0)
    x1, y1 = min(cx + src.shape[1], width), min(cy + src.shape[0], height)
    frame[y0:y1, x0:x1] = src[y0 - cy : y1 - cy, x0 - cx : x1 - cx]
    return frame


class ClipCapture:
    """A ``cv2.VideoCapture`` look-alike playing the generated clip (:func:`make_clip_frame`), looping forever."""

    def __init__(self, width: int = 640, height: int = 480, n_frames: int = 150, fps: float = 30.0):
        self.width, self.height, self.n_frames, self.fps = width, height, n_frames, fps
        self._i = 0
        self._open = True

    def isOpened(self) -> bool:  # noqa: N802 - the cv2.VideoCapture name
        return self._open

    def read(self) -> tuple[bool, np.ndarray | None]:
        if not self._open:
            return False, None
        frame = make_clip_frame(self._i, self.width, self.height, self.n_frames)
        self._i += 1
        return True, frame

    def get(self, prop: int) -> float:
        return {cv2.CAP_PROP_FPS: self.fps, cv2.CAP_PROP_FRAME_WIDTH: self.width,
                cv2.CAP_PROP_FRAME_HEIGHT: self.height}.get(prop, 0.0)

    def set(self, prop: int, value: float) -> bool:
        if prop == cv2.CAP_PROP_POS_FRAMES:
            self._i = int(value)
            return True
        return False

    def release(self) -> None:
        self._open = False


def save_clip(path: str | os.PathLike, n_frames: int = 90, width: int = 640, height: int = 480,
              fps: int = 30) -> Path:
    """Write the generated clip to ``path`` atomically: ``.y4m`` (Chromium's fake camera), ``.avi`` or ``.mp4``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".y4m", ".avi", ".mp4"):
        raise ValueError(f"clip path {str(path)!r} must end in .y4m, .avi or .mp4")
    with atomic_path(path) as tmp:
        if suffix == ".y4m":
            with open(tmp, "wb") as f:
                f.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
                for i in range(n_frames):
                    f.write(b"FRAME\n")
                    f.write(cv2.cvtColor(make_clip_frame(i, width, height, n_frames), cv2.COLOR_BGR2YUV_I420).tobytes())
        else:
            fourcc = cv2.VideoWriter_fourcc(*("MJPG" if suffix == ".avi" else "mp4v"))
            writer = cv2.VideoWriter(tmp, fourcc, fps, (width, height))
            if not writer.isOpened():
                raise CameraError(f"OpenCV cannot write {suffix} videos here; save the clip as .avi instead")
            for i in range(n_frames):
                writer.write(make_clip_frame(i, width, height, n_frames))
            writer.release()
    return path


def open_capture(source: str, *, camera_index: int = 0, video: str | os.PathLike | None = None,
                 factory: Callable = cv2.VideoCapture):
    """Open a kernel-side source (``"camera"``, ``"file"`` or ``"clip"``) as a VideoCapture-like object.

    ``factory`` builds the capture (``cv2.VideoCapture`` unless a test passes a fake). Failures raise
    :class:`CameraError` or ``FileNotFoundError`` with the reason and the fix.
    """
    if source == "clip":
        return ClipCapture()
    if source == "file":
        if video is None:
            raise ValueError("source 'file' needs video=<path to a video file>")
        path = Path(video)
        if not path.is_file():
            raise FileNotFoundError(f"video file {path} does not exist; pass an existing file as video=")
        cap = factory(str(path))
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"video file {path} could not be opened by OpenCV; convert it to .mp4 or .avi (MJPG)")
        return cap
    if source == "camera":
        cap = factory(int(camera_index))
        if not cap.isOpened():
            cap.release()
            device = Path(f"/dev/video{int(camera_index)}")
            if device.exists() and not os.access(device, os.R_OK | os.W_OK):
                raise CameraError(f"permission denied on {device}: add your user to the 'video' group "
                                  "(sudo usermod -aG video $USER), log in again, and restart the kernel")
            raise CameraError(
                f"no camera at index {camera_index} on the kernel's machine ({platform.node()}): plug one in or try "
                "another index; if the kernel runs on a server, choose the browser camera instead")
        return cap
    raise ValueError(f"source {source!r} is not a kernel source; expected 'camera', 'file' or 'clip'")
