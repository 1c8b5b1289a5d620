"""The live webcam in Jupyter: an ipywidgets panel that recognises emotions on the browser's camera, the kernel's
camera, a video file or a generated clip; and a photo cell that boxes and classifies every face of a picture.

``cv2.imshow`` (every peer's demo) fails inside notebooks, and ``cv2.VideoCapture(0)`` on a remote kernel opens the
server's camera, not the user's. So the default source is the browser: a small anywidget (``webcam.js``) grabs
``getUserMedia`` frames, sends them to the kernel as JPEG bytes and draws the faces the kernel sends back.

Threading rules (ipykernel 7): background threads only set widget values (never write into an ``Output``
widget), and the browser's frame handler may run on another thread while a cell is busy, so all shared state is
behind locks. Every camera is released on Stop, on error and at interpreter exit.
"""

from __future__ import annotations

import atexit
import functools
import os
import platform
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import anywidget
import cv2
import ipywidgets as widgets
import numpy as np
import pandas as pd
import traitlets

from fer_utils.atomic import atomic_path, write_atomic
from fer_utils.detector import DEFAULT_DETECTOR
from fer_utils.loader import EMOTIONS, PROJECT_ROOT
from fer_utils.models import live_model_path, shipped_models
from fer_utils.recognizer import EmotionRecognizer, Face, annotate, read_image
from fer_utils.scenes import astronaut_bgr
from fer_utils.video import COLUMNS, FaceTracker, save_table

SOURCES = ("browser", "camera", "file", "clip")
_HERE = Path(__file__).parent
# One inference at a time: OpenCV's cascade classifier is not thread-safe, and on 2 cores parallel calls only
# fight over the CPU. Shared by the panel's loop, the browser handler and the photo cell.
_INFERENCE_LOCK = threading.Lock()
_LOOPS: weakref.WeakSet = weakref.WeakSet()


class CameraError(RuntimeError):
    """A camera or video could not be opened or stopped delivering frames; the message says why and what to do."""


# ----------------------------------------------------------------------------------------------- sources


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


class _KernelLoop:
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


# ----------------------------------------------------------------------------------------------- browser


class BrowserCamera(anywidget.AnyWidget):
    """The browser's camera as a widget: JPEG frames in, faces drawn over the video (see ``webcam.js``).

    ``on_frame(frame_bgr)`` is called for every frame the browser sends and returns the faces to draw. At most
    ``max_in_flight`` frames wait for the kernel; the browser drops the rest.
    """

    _esm = _HERE / "webcam.js"
    _css = _HERE / "webcam.css"
    running = traitlets.Bool(False).tag(sync=True)
    width = traitlets.Int(640).tag(sync=True)
    height = traitlets.Int(480).tag(sync=True)
    quality = traitlets.Float(0.8).tag(sync=True)
    max_fps = traitlets.Float(30.0).tag(sync=True)
    max_in_flight = traitlets.Int(2).tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)

    def __init__(self, on_frame: Callable[[np.ndarray, dict], list[Face]] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.on_frame = on_frame
        self.on_msg(self._on_browser_msg)  # not `_handle_msg`: that name is an ipywidgets internal

    def _on_browser_msg(self, _widget, content: dict, buffers: list) -> None:
        if not isinstance(content, dict) or content.get("type") != "frame":
            return
        reply = {"type": "result", "id": content.get("id"), "faces": []}
        try:
            if not buffers:
                raise ValueError("frame message without its JPEG buffer")
            frame = cv2.imdecode(np.frombuffer(buffers[0], np.uint8), cv2.IMREAD_COLOR)
            if frame is None:
                raise ValueError("the browser sent bytes that are not a JPEG image")
            reply["height"], reply["width"] = frame.shape[:2]
            if self.on_frame is not None:
                faces = self.on_frame(frame, content)
                reply["faces"] = [{"box": [int(v) for v in f.box], "emotion": f.emotion, "score": float(f.score)}
                                  for f in faces]
        except Exception as e:  # noqa: BLE001 - the panel shows it; the reply still frees the in-flight slot
            reply["error"] = f"{type(e).__name__}: {e}"
            self.error = reply["error"]
        self.send(reply)


# ----------------------------------------------------------------------------------------------- the panel


def _as_recognizer(model, detector: str = DEFAULT_DETECTOR) -> EmotionRecognizer:
    recognizer = model if isinstance(model, EmotionRecognizer) else EmotionRecognizer(model, detector)
    recognizer.classify(np.zeros((1, 48, 48), np.uint8))  # prepare the network now, not on the first live frame
    return recognizer


def _jpeg(frame: np.ndarray, quality: int = 80) -> bytes:
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("could not encode the frame as JPEG")
    return buf.tobytes()


def main_face(faces: list[Face]) -> Face | None:
    """The largest face (the one nearest the camera), or None."""
    return max(faces, key=lambda f: f.box[2] * f.box[3], default=None)


def probability_bars_html(probabilities: np.ndarray | None) -> str:
    """Seven horizontal bars (HTML) for one face's probabilities; empty bars when there is no face."""
    rows = []
    p = np.zeros(len(EMOTIONS)) if probabilities is None else np.asarray(probabilities, float)
    top = int(np.argmax(p)) if probabilities is not None else -1
    for i, name in enumerate(EMOTIONS):
        color = "#27ae60" if i == top else "#7f8c8d"
        rows.append(
            f"<div style='display:flex;align-items:center;gap:6px;font:13px sans-serif'>"
            f"<span style='width:62px;text-align:right'>{name}</span>"
            f"<span style='width:140px;height:12px;background:#ecf0f1;display:inline-block'>"
            f"<span style='width:{100 * p[i]:.0f}%;height:100%;background:{color};display:block'></span></span>"
            f"<span style='width:38px'>{100 * p[i]:.0f}%</span></div>")
    return "<div class='fer-bars'>" + "".join(rows) + "</div>"


class WebcamPanel(widgets.VBox):
    """Live emotion recognition: Start/Stop, source and model selectors, the annotated view, probability bars,
    frames per second and latency, snapshot, and a recording of every face of every frame (:meth:`results`).

    ``source`` is ``"browser"`` (the camera of the browser showing the notebook; works with remote kernels),
    ``"camera"`` (``cv2.VideoCapture(camera_index)`` on the kernel's machine), ``"file"`` (``video=path``) or
    ``"clip"`` (a generated clip of a real face; needs no camera). ``model`` is a ``.keras`` path, a shipped
    model's name, a ``keras.Model``, an :class:`EmotionRecognizer`, or None for the best shipped model.
    ``detector`` is ``"blazeface"`` by default: live faces are large, and it leaves more of each frame's time to
    the network than Haar; pass ``"haar"`` for faces under about 45 pixels.
    """

    def __init__(self, source: str = "browser", model=None, *, detector: str = "blazeface", video: str | os.PathLike | None = None,
                 camera_index: int = 0, max_fps: float | None = 30.0, width: int = 640, height: int = 480,
                 record: bool = True, out_dir: str | os.PathLike | None = None, loop_video: bool = True,
                 capture_factory: Callable = cv2.VideoCapture):
        if source not in SOURCES:
            if video is None and Path(str(source)).suffix:  # a path given as the source: the file source
                source, video = "file", source
            else:
                raise ValueError(f"source {source!r} is unknown; expected one of {SOURCES} or a video file path")
        self.video, self.camera_index, self.max_fps, self.loop_video = video, camera_index, max_fps, loop_video
        self.out_dir = Path(out_dir) if out_dir is not None else PROJECT_ROOT / "runs" / "webcam"
        self.capture_factory = capture_factory
        self._lock = threading.Lock()  # guards the stats, the recording and the last frame
        self._loop: _KernelLoop | None = None
        self._timer: threading.Timer | None = None
        self._rows: list[tuple] = []
        self._reset_stats()

        self._models = {name: str(path) for name, path in shipped_models().items()}
        if model is None and self._models:  # the best shipped model fast enough for live video
            model = str(live_model_path(self._models))
        elif isinstance(model, str) and model in self._models:  # a shipped model's name
            model = self._models[model]
        model_key = self._model_key(model)
        self.detector = detector
        self.recognizer = _as_recognizer(model, detector)

        self.start_button = widgets.Button(description="Start", icon="play", button_style="success")
        self.stop_button = widgets.Button(description="Stop", icon="stop", disabled=True)
        options = [("browser camera", "browser"), (f"kernel camera {camera_index}", "camera"),
                   ("generated clip", "clip")]
        if video is not None:
            options.insert(2, (f"file: {Path(video).name}", "file"))
        self.source_select = widgets.Dropdown(options=options, value=source, description="source",
                                              layout=widgets.Layout(width="230px"))
        model_options = [(name, name) for name in self._models] or []
        if model_key not in self._models:
            model_options.append((model_key, model_key))
        self.model_select = widgets.Dropdown(options=model_options, value=model_key, description="model",
                                             layout=widgets.Layout(width="230px"))
        self.snapshot_button = widgets.Button(description="Snapshot", icon="camera")
        self.record_box = widgets.Checkbox(value=record, description="record", indent=False,
                                           layout=widgets.Layout(width="80px"))
        self.csv_button = widgets.Button(description="Save CSV", icon="save")
        self.camera = BrowserCamera(on_frame=self._on_browser_frame, width=width, height=height,
                                    max_fps=float(max_fps or 0))
        self.image = widgets.Image(format="jpeg", layout=widgets.Layout(width=f"{width}px", max_width="100%"))
        self.bars = widgets.HTML(probability_bars_html(None))
        self.status = widgets.HTML()
        self.message = widgets.HTML()
        self.view = widgets.Box([self.camera if source == "browser" else self.image])

        self.start_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        self.snapshot_button.on_click(lambda _: self._guarded(self.snapshot))
        self.csv_button.on_click(lambda _: self._guarded(self.save_results))
        self.source_select.observe(self._on_source, names="value")
        self.model_select.observe(self._on_model, names="value")
        self.camera.observe(self._on_camera_error, names="error")
        self.camera.observe(self._on_camera_running, names="running")

        controls = widgets.HBox([self.start_button, self.stop_button, self.source_select, self.model_select,
                                 self.snapshot_button, self.record_box, self.csv_button],
                                layout=widgets.Layout(flex_flow="row wrap"))
        body = widgets.HBox([self.view, widgets.VBox([widgets.HTML("<b>main face</b>"), self.bars])])
        super().__init__([controls, body, self.status, self.message])
        self._show_status()

    # -------------------------------------------------------------------- public verbs

    @property
    def source(self) -> str:
        return self.source_select.value

    @property
    def running(self) -> bool:
        return (self._loop is not None and self._loop.alive) or self.camera.running

    def start(self, duration: float | None = None) -> None:
        """Start the selected source; with ``duration`` (seconds) it stops by itself."""
        if self.running:
            return
        self.message.value = ""
        self._reset_stats()
        self._set_running_ui(True)
        if self.source == "browser":
            self.camera.error = ""
            self.camera.running = True
            if duration is not None:
                self._timer = threading.Timer(duration, self.stop)
                self._timer.daemon = True
                self._timer.start()
        else:
            source = self.source
            self._loop = _KernelLoop(
                lambda: open_capture(source, camera_index=self.camera_index, video=self.video,
                                     factory=self.capture_factory),
                self._on_kernel_frame, self._show_error, self._on_loop_end, max_fps=self.max_fps,
                duration=duration, loop_file=self.loop_video, is_camera=source == "camera")
            self._loop.start()
        self._show_status()

    def stop(self) -> None:
        """Stop the source and release the camera (safe to call from any thread, and twice)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.camera.running = False
        if self._loop is not None:
            self._loop.stop()
        self._set_running_ui(False)
        self._show_status()

    def wait(self, timeout: float | None = None) -> None:
        """Block until a kernel-side source ends (its ``duration``, the end of a file, Stop or an error)."""
        if self._loop is not None:
            self._loop.thread.join(timeout)

    def run(self, duration: float) -> pd.DataFrame:
        """Headless runs: start, run for ``duration`` seconds, stop. Blocks for kernel-side sources; the browser
        source runs in the background (frames arrive only while the cell is idle)."""
        self.start(duration=duration)
        if self.source != "browser":
            self.wait(duration + 30)
            self.stop()
        return self.results()

    def stats(self) -> dict:
        """Frames processed, frames per second (last 2 s), end-to-end latency in ms (median, 90th percentile)."""
        with self._lock:
            times = list(self._times)
            latencies = np.array(self._latencies, float)
            frames, faces = self._frames, len(self._last_faces)
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
        return {"frames": frames, "fps": fps, "faces": faces,
                "latency_ms": float(np.median(latencies)) if len(latencies) else float("nan"),
                "latency_p90_ms": float(np.percentile(latencies, 90)) if len(latencies) else float("nan")}

    def results(self) -> pd.DataFrame:
        """The recording, one row per face per frame: the columns of :func:`fer_utils.video.analyze_video` (frame,
        timestamp_s, face_id followed across frames, x, y, w, h, the seven probabilities, emotion), then score,
        source and latency_ms (for the browser source, the latency the browser measured for its previous frame)."""
        with self._lock:
            rows = list(self._rows)
        return pd.DataFrame(rows, columns=[*COLUMNS, "score", "source", "latency_ms"])

    def clear_results(self) -> None:
        """Forget the recording."""
        with self._lock:
            self._rows.clear()

    def save_results(self, path: str | os.PathLike | None = None) -> Path:
        """Write the recording to ``path`` (.csv or .parquet; default ``runs/webcam/recording-<time>.csv``)
        atomically."""
        path = Path(path) if path is not None else self.out_dir / f"recording-{datetime.now():%Y%m%d-%H%M%S}.csv"
        table = self.results()
        save_table(table, path)
        self.message.value = f"saved {len(table)} rows to <code>{path}</code>"
        return path

    def snapshot(self, path: str | os.PathLike | None = None) -> Path:
        """Save the last annotated frame as PNG (default ``runs/webcam/snapshot-<time>.png``) atomically."""
        with self._lock:
            frame, faces = self._last_frame, list(self._last_faces)
        if frame is None:
            raise CameraError("no frame yet: press Start and wait for the first frame before taking a snapshot")
        path = Path(path) if path is not None else self.out_dir / f"snapshot-{datetime.now():%Y%m%d-%H%M%S-%f}.png"
        ok, buf = cv2.imencode(".png", annotate(frame, faces))
        if not ok:
            raise ValueError("could not encode the snapshot as PNG")
        write_atomic(path, buf.tobytes())
        self.message.value = f"saved snapshot <code>{path}</code>"
        return path

    def close(self) -> None:
        """Stop, release the camera and close every widget of the panel."""
        if hasattr(self, "camera"):  # also called by __del__ of a panel whose __init__ failed
            self.stop()
            for w in (self.camera, self.image, self.bars, self.status, self.message):
                w.close()
        super().close()

    # -------------------------------------------------------------------- frames

    def _infer(self, frame: np.ndarray) -> list[Face]:
        with _INFERENCE_LOCK:
            return self.recognizer.predict(frame)

    def _finish(self, frame: np.ndarray, faces: list[Face], latency_ms: float | None) -> None:
        """Book a processed frame: stats, the recording, and (at 5 Hz) the bars and the status line."""
        now = time.perf_counter()
        with self._lock:
            self._frames += 1
            self._times.append(now)
            if latency_ms is not None:
                self._latencies.append(latency_ms)
            self._last_frame, self._last_faces = frame, faces
            ids = self._tracker.update(self._frames - 1, np.array([f.box for f in faces], int))
            if self.record_box.value:
                t = round(now - self._t0, 4)
                for fid, f in zip(ids, faces, strict=True):
                    self._rows.append((self._frames - 1, t, fid, *map(int, f.box), *map(float, f.probabilities),
                                       f.emotion, float(f.score), self.source, latency_ms))
            refresh = now - self._last_refresh >= 0.2  # every widget update is a message to the browser
            if refresh:
                self._last_refresh = now
        if refresh:
            face = main_face(faces)
            self.bars.value = probability_bars_html(None if face is None else face.probabilities)
            self._show_status()

    def _on_browser_frame(self, frame: np.ndarray, content: dict) -> list[Face]:
        faces = self._infer(frame)
        latency = content.get("latency_ms")  # the browser's capture-to-answer time of its previous frame
        self._finish(frame, faces, float(latency) if latency is not None else None)
        return faces

    def _on_kernel_frame(self, frame: np.ndarray, t_capture: float) -> None:
        faces = self._infer(frame)
        self.image.value = _jpeg(annotate(frame, faces))
        self._finish(frame, faces, 1000 * (time.perf_counter() - t_capture))  # read + infer + draw + send

    # -------------------------------------------------------------------- widgets

    def _reset_stats(self) -> None:
        with self._lock:
            self._times: deque = deque(maxlen=60)
            self._latencies: deque = deque(maxlen=300)
            self._frames = 0
            self._t0 = time.perf_counter()
            self._last_refresh = 0.0
            self._last_frame, self._last_faces = None, []
            self._tracker = FaceTracker()

    def _model_key(self, model) -> str:
        if model is None:
            return next(iter(self._models), "default")
        if isinstance(model, str | os.PathLike):
            name = Path(model).stem if Path(model).suffix else str(model)
            return name
        return getattr(model, "name", None) or type(model).__name__

    def _set_running_ui(self, running: bool) -> None:
        self.start_button.disabled = running
        self.stop_button.disabled = not running
        self.source_select.disabled = running

    def _show_status(self) -> None:
        s = self.stats()
        face = main_face(self._last_faces)
        state = "running" if self.running else "stopped"
        what = f"{s['faces']} face{'s' if s['faces'] != 1 else ''}"
        if face is not None:
            what += f" · {face.emotion} {face.score:.2f}"
        latency = "–" if np.isnan(s["latency_ms"]) else f"{s['latency_ms']:.0f} ms"
        self.status.value = (f"<span class='fer-status' style='font:13px sans-serif'><b>{state}</b> · {self.source}"
                             f" · {what} · <span class='fer-fps'>{s['fps']:.1f} fps</span> · latency {latency}"
                             f" (median) · {s['frames']} frames</span>")

    def _show_error(self, error: BaseException) -> None:
        text = str(error) if isinstance(error, CameraError | FileNotFoundError | ValueError) else (
            f"{type(error).__name__}: {error}")
        self.message.value = f"<span class='fer-error' style='color:#c0392b;font:13px sans-serif'>⚠ {text}</span>"

    def _guarded(self, fn: Callable) -> None:
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - a button's error belongs in the panel
            self._show_error(e)

    def _on_loop_end(self) -> None:
        self._set_running_ui(False)
        self._show_status()

    def _on_source(self, change) -> None:
        self.view.children = [self.camera if change["new"] == "browser" else self.image]
        self._show_status()

    def _on_model(self, change) -> None:
        name = change["new"]
        if name not in self._models:
            return
        try:
            recognizer = _as_recognizer(self._models[name], self.detector)
        except Exception as e:  # noqa: BLE001
            self._show_error(e)
            return
        with _INFERENCE_LOCK:
            self.recognizer = recognizer
        self.message.value = f"model {name} loaded"

    def _on_camera_error(self, change) -> None:
        if change["new"]:
            self._show_error(CameraError(change["new"]))

    def _on_camera_running(self, change) -> None:
        if not change["new"]:  # the browser stopped by itself (error, unplugged camera)
            self._set_running_ui(self.running)
            self._show_status()


# ----------------------------------------------------------------------------------------------- photos


def _to_frame(image) -> np.ndarray:
    """A BGR frame from a path, encoded bytes (JPEG, PNG, ...) or an array."""
    if isinstance(image, np.ndarray):
        return image
    if isinstance(image, str | os.PathLike):
        return read_image(image)
    if isinstance(image, bytes | bytearray | memoryview):
        frame = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)
        if frame is None:
            raise ValueError("the image could not be decoded; upload a JPEG, PNG, BMP or WebP picture")
        return frame
    raise TypeError(f"image must be a path, encoded bytes or a numpy array, not {type(image).__name__}")


def recognize_photo(image, model=None) -> tuple[np.ndarray, pd.DataFrame]:
    """Every face of a picture: the annotated BGR image and a table (face, box, emotion, score, probabilities)."""
    recognizer = _as_recognizer(model)
    frame = _to_frame(image)
    with _INFERENCE_LOCK:
        faces = recognizer.predict(frame)
    table = pd.DataFrame(
        [(k, *map(int, f.box), f.emotion, float(f.score), *map(float, f.probabilities)) for k, f in enumerate(faces)],
        columns=["face_id", "x", "y", "w", "h", "emotion", "score", *EMOTIONS])
    return annotate(frame, faces), table


class PhotoPanel(widgets.VBox):
    """Upload a picture and see every face boxed and classified, with its seven probabilities."""

    def __init__(self, model=None, image=None, width: int = 640):
        self.recognizer = _as_recognizer(model)
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="Upload photo")
        self.image = widgets.Image(format="jpeg", layout=widgets.Layout(width=f"{width}px", max_width="100%"))
        self.table = widgets.HTML()
        self.faces = pd.DataFrame()
        self.upload.observe(self._on_upload, names="value")
        super().__init__([self.upload, self.image, self.table])
        if image is not None:
            self.show(image)

    def show(self, image) -> pd.DataFrame:
        """Recognise ``image`` (path, bytes or BGR array), display it, and return its faces table."""
        try:
            annotated, self.faces = recognize_photo(image, self.recognizer)
        except Exception as e:  # noqa: BLE001 - a bad upload is reported in the panel
            self.table.value = f"<span class='fer-error' style='color:#c0392b'>⚠ {e}</span>"
            raise
        self.image.value = _jpeg(annotated, 90)
        if self.faces.empty:
            self.table.value = "<p class='fer-photo-result'>no face found in this picture</p>"
        else:
            shown = self.faces.set_index("face_id").round(3)
            self.table.value = f"<div class='fer-photo-result'>{len(shown)} face(s){shown.to_html()}</div>"
        return self.faces

    def _on_upload(self, change) -> None:
        files = change["new"]
        if files:
            try:
                self.show(bytes(files[0]["content"]))
            except Exception:  # noqa: BLE001, S110 - already shown in the panel by show()
                pass
