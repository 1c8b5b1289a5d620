"""Frames through the recognizer, live: the kernel's capture thread, and one inference at a time.

Threading rules (ipykernel 7): background threads only set widget values (never write into an ``Output``
widget), and the browser's frame handler may run on another thread while a cell is busy, so all shared state is
behind locks. Every camera is released on Stop, on error and at interpreter exit.
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from collections.abc import Callable

import cv2
import numpy as np

from fer_utils.constants import SIDE
from fer_utils.detector import DEFAULT_DETECTOR
from fer_utils.recognizer import EmotionRecognizer
from fer_utils.webcam.sources import CameraError

# One inference at a time: OpenCV's cascade classifier is not thread-safe, and on 2 cores parallel calls only
# fight over the CPU. Shared by the panel's loop, the browser handler and the photo cell.
INFERENCE_LOCK = threading.Lock()
_LOOPS: weakref.WeakSet = weakref.WeakSet()


def as_recognizer(model, detector: str = DEFAULT_DETECTOR) -> EmotionRecognizer:
    """``model`` itself if it is an :class:`EmotionRecognizer`; else a new one, its network run once so that a
    broken model fails here and the first frame is not slow."""
    if isinstance(model, EmotionRecognizer):
        return model
    recognizer = EmotionRecognizer(model, detector)
    recognizer.classify(np.zeros((1, SIDE, SIDE), np.uint8))
    return recognizer


def jpeg(frame: np.ndarray, quality: int = 80) -> bytes:
    """The frame encoded as JPEG bytes (what image widgets and the browser take)."""
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("could not encode the frame as JPEG")
    return buf.tobytes()


class KernelLoop:
    """Reads a capture in a daemon thread at most ``max_fps`` times a second and hands each frame to ``on_frame``.

    The capture is opened inside the thread (a slow camera never blocks the kernel) and released in ``finally``:
    on stop, on error, at the end of a file, and at interpreter exit (``atexit``).
    """

    def __init__(self, open_fn: Callable, on_frame: Callable[[np.ndarray, float], None],
                 on_error: Callable[[BaseException], None], on_end: Callable[[], None],
                 max_fps: float | None = 30.0, duration: float | None = None, loop_file: bool = True,
                 is_camera: bool = False):
        self.open_fn, self.on_frame, self.on_error, self.on_end = open_fn, on_frame, on_error, on_end
        self.max_fps, self.duration, self.loop_file, self.is_camera = max_fps, duration, loop_file, is_camera
        self._stop = threading.Event()
        self._done = threading.Event()  # set before on_end, so on_end already sees the loop as stopped
        self.thread = threading.Thread(target=self._run, name="fer-webcam", daemon=True)
        _LOOPS.add(self)

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self.thread.is_alive() and not self._done.is_set()

    def _run(self) -> None:
        cap = None
        try:
            cap = self.open_fn()
            interval = 1.0 / self.max_fps if self.max_fps else 0.0
            start = due = time.perf_counter()
            failures = 0
            while not self._stop.is_set():
                t0 = time.perf_counter()
                if self.duration is not None and t0 - start >= self.duration:
                    break
                ok, frame = cap.read()
                if not ok or frame is None:
                    if not self.is_camera:
                        if self.loop_file and cap.set(cv2.CAP_PROP_POS_FRAMES, 0) and failures == 0:
                            failures += 1  # one rewind per end of file; a second failure in a row means unreadable
                            continue
                        break  # end of the video
                    failures += 1
                    if failures >= 20:
                        raise CameraError("the camera stopped delivering frames (unplugged, or taken by another "
                                          "application); plug it back in and press Start")
                    self._stop.wait(0.05)
                    continue
                failures = 0
                self.on_frame(frame, t0)
                due = max(due + interval, time.perf_counter() - interval)  # no burst after a slow frame
                self._stop.wait(max(0.0, due - time.perf_counter()))
        except BaseException as e:  # noqa: BLE001 - shown in the panel, never a silent dead thread
            self.on_error(e)
        finally:
            if cap is not None:
                cap.release()
            self._done.set()
            self.on_end()


@atexit.register
def _stop_all_loops() -> None:
    """Kernel shutdown: stop every loop so each camera is released before the process exits."""
    for loop in list(_LOOPS):
        loop.stop(timeout=2.0)
