"""The live panel: Start/Stop, source and model, the annotated view, probability bars, frames per second and
latency, snapshots and a recording of every face of every frame."""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import cv2
import ipywidgets as widgets
import numpy as np
import pandas as pd

from fer_utils.atomic import write_atomic
from fer_utils.constants import EMOTIONS, PROJECT_ROOT, SHIPPED_DIR
from fer_utils.detector import LIVE_DETECTOR
from fer_utils.recognizer import Face, annotate
from fer_utils.shipped import live_model_path, shipped_models
from fer_utils.video import FaceTable, FrameAnalyzer, save_table
from fer_utils.webcam.browser import BrowserCamera
from fer_utils.webcam.loop import INFERENCE_LOCK, KernelLoop, as_recognizer, jpeg
from fer_utils.webcam.sources import SOURCES, CameraError, open_capture

# the browser's frames, by step: width as a share of the requested one, JPEG quality. 0.75 keeps a face of 60 px
# at 640 above the recognizer's 40-pixel minimum.
ADAPTIVE_STEPS = ((1.0, 0.8), (0.85, 0.7), (0.75, 0.6))


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
    model's name, a ``keras.Model``, an :class:`EmotionRecognizer`, or None for the live webcam's default.
    ``detector`` is ``"blazeface"`` by default: live faces are large, and it leaves more of each frame's time to
    the network than Haar; pass ``"haar"`` for faces under about 45 pixels.
    """

    def __init__(self, source: str = "browser", model=None, *, detector: str = LIVE_DETECTOR, video: str | os.PathLike | None = None,
                 camera_index: int = 0, max_fps: float | None = 30.0, width: int = 640, height: int = 480,
                 record: bool = True, out_dir: str | os.PathLike | None = None, loop_video: bool = True,
                 capture_factory: Callable = cv2.VideoCapture):
        source, video = _source_and_video(source, video)
        self.video, self.camera_index, self.max_fps, self.loop_video = video, camera_index, max_fps, loop_video
        # the clone's runs/; an installed package's root is site-packages, so there the current folder's runs/
        runs = PROJECT_ROOT / "runs" if SHIPPED_DIR.is_dir() else Path.cwd() / "runs"
        self.out_dir = Path(out_dir) if out_dir is not None else runs / "webcam"
        self.capture_factory = capture_factory
        self._lock = threading.Lock()  # guards the stats, the recording and the last frame
        self._loop: KernelLoop | None = None
        self._timer: threading.Timer | None = None
        self._table, self._row_extras = FaceTable(), []  # the recording; (source, latency) per row
        self._models = {name: str(path) for name, path in shipped_models().items()}
        if model is None and self._models:  # the live webcam's default (live_model_path())
            model = str(live_model_path(self._models))
        elif isinstance(model, str) and model in self._models:  # a shipped model's name
            model = self._models[model]
        self.detector = detector
        self.recognizer = as_recognizer(model, detector)
        self._reset_stats()
        controls = self._make_controls(source, self._model_key(model), record)
        self.camera = BrowserCamera(on_frame=self._on_browser_frame, width=width, height=height,
                                    max_fps=float(max_fps or 0))
        self._width, self._step = width, 0  # the adaptive step of the browser's frames (ADAPTIVE_STEPS)
        self.image = widgets.Image(format="jpeg", layout=widgets.Layout(width=f"{width}px", max_width="100%"))
        self.bars = widgets.HTML(probability_bars_html(None))
        self.status = widgets.HTML()
        self.message = widgets.HTML()
        self.view = widgets.Box([self.camera if source == "browser" else self.image])
        self._wire()
        body = widgets.HBox([self.view, widgets.VBox([widgets.HTML("<b>main face</b>"), self.bars])])
        super().__init__([controls, body, self.status, self.message])
        self._show_status()

    def _make_controls(self, source: str, model_key: str, record: bool) -> widgets.HBox:
        """The row of buttons, choosers and the record box."""
        self.start_button = widgets.Button(description="Start", icon="play", button_style="success")
        self.stop_button = widgets.Button(description="Stop", icon="stop", disabled=True)
        options = [("browser camera", "browser"), (f"kernel camera {self.camera_index}", "camera"),
                   ("generated clip", "clip")]
        if self.video is not None:
            options.insert(2, (f"file: {Path(self.video).name}", "file"))
        self.source_select = widgets.Dropdown(options=options, value=source, description="source",
                                              layout=widgets.Layout(width="230px"))
        model_options = [(name, name) for name in self._models]
        if model_key not in self._models:
            model_options.append((model_key, model_key))
        self.model_select = widgets.Dropdown(options=model_options, value=model_key, description="model",
                                             layout=widgets.Layout(width="230px"))
        self.snapshot_button = widgets.Button(description="Snapshot", icon="camera")
        self.record_box = widgets.Checkbox(value=record, description="record", indent=False,
                                           layout=widgets.Layout(width="80px"))
        self.csv_button = widgets.Button(description="Save CSV", icon="save")
        return widgets.HBox([self.start_button, self.stop_button, self.source_select, self.model_select,
                             self.snapshot_button, self.record_box, self.csv_button],
                            layout=widgets.Layout(flex_flow="row wrap"))

    def _wire(self) -> None:
        """What each button, chooser and the browser camera's state changes call."""
        self.start_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        self.snapshot_button.on_click(lambda _: self._guarded(self.snapshot))
        self.csv_button.on_click(lambda _: self._guarded(self.save_results))
        self.source_select.observe(self._on_source, names="value")
        self.model_select.observe(self._on_model, names="value")
        self.camera.observe(self._on_camera_error, names="error")
        self.camera.observe(self._on_camera_running, names="running")

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
        self._step, self.camera.width, self.camera.quality = 0, self._width, ADAPTIVE_STEPS[0][1]
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
            self._loop = KernelLoop(
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
            table, extras = self._table.to_frame(), list(self._row_extras)
        table["score"] = table[list(EMOTIONS)].max(axis=1)
        table["source"] = [source for source, _ in extras]
        table["latency_ms"] = np.array([np.nan if ms is None else ms for _, ms in extras], float)
        return table

    def clear_results(self) -> None:
        """Forget the recording."""
        with self._lock:
            self._table.clear()
            self._row_extras.clear()

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

    def _infer(self, frame: np.ndarray) -> tuple[list[int], list[Face]]:
        with INFERENCE_LOCK:
            _, ids, faces = self._analyzer(frame)
        return ids, faces

    def _finish(self, frame: np.ndarray, ids: list[int], faces: list[Face], latency_ms: float | None) -> None:
        """Book a processed frame: stats, the recording, and (at 5 Hz) the bars and the status line."""
        now = time.perf_counter()
        with self._lock:
            self._frames += 1
            self._times.append(now)
            if latency_ms is not None:
                self._latencies.append(latency_ms)
            self._last_frame, self._last_faces = frame, faces
            if self.record_box.value:
                self._table.add(self._frames - 1, round(now - self._t0, 4), ids, faces)
                self._row_extras.extend([(self.source, latency_ms)] * len(faces))
            refresh = now - self._last_refresh >= 0.2  # every widget update is a message to the browser
            if refresh:
                self._last_refresh = now
        if refresh:
            face = main_face(faces)
            self.bars.value = probability_bars_html(None if face is None else face.probabilities)
            self._show_status()

    def _on_browser_frame(self, frame: np.ndarray, content: dict) -> list[Face]:
        ids, faces = self._infer(frame)
        latency = content.get("latency_ms")  # the browser's capture-to-answer time of its previous frame
        self._finish(frame, ids, faces, float(latency) if latency is not None else None)
        self._adapt()
        return faces

    def _adapt(self) -> None:
        """Keep the browser path under the latency target on a slow machine: every 30 frames, step the frames the
        browser sends down (smaller, more compressed JPEGs: less to encode, send and decode) while the median
        latency is over 90 ms, and back up while it is under 50 ms."""
        with self._lock:
            if self._frames % 30 or len(self._latencies) < 30:
                return
            median = float(np.median(list(self._latencies)[-30:]))
        step = self._step + (median > 90) - (median < 50)
        step = min(max(step, 0), len(ADAPTIVE_STEPS) - 1)
        if step != self._step:
            self._step = step
            scale, quality = ADAPTIVE_STEPS[step]
            self.camera.width, self.camera.quality = round(self._width * scale), quality

    def _on_kernel_frame(self, frame: np.ndarray, t_capture: float) -> None:
        ids, faces = self._infer(frame)
        self.image.value = jpeg(annotate(frame, faces))
        self._finish(frame, ids, faces, 1000 * (time.perf_counter() - t_capture))  # read + infer + draw + send

    # -------------------------------------------------------------------- widgets

    def _reset_stats(self) -> None:
        with self._lock:
            self._times: deque = deque(maxlen=60)
            self._latencies: deque = deque(maxlen=300)
            self._frames = 0
            self._t0 = time.perf_counter()
            self._last_refresh = 0.0
            self._last_frame, self._last_faces = None, []
            self._analyzer = FrameAnalyzer(self.recognizer)  # face ids start again at 0

    def _model_key(self, model) -> str:
        if model is None:
            return next(iter(self._models), "default")
        if isinstance(model, str | os.PathLike):
            return Path(model).stem if Path(model).suffix else str(model)
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
            recognizer = as_recognizer(self._models[name], self.detector)
        except Exception as e:  # noqa: BLE001
            self._show_error(e)
            return
        with INFERENCE_LOCK:
            self.recognizer = self._analyzer.recognizer = recognizer
        self.message.value = f"model {name} loaded"

    def _on_camera_error(self, change) -> None:
        if change["new"]:
            self._show_error(CameraError(change["new"]))

    def _on_camera_running(self, change) -> None:
        if not change["new"]:  # the browser stopped by itself (error, unplugged camera)
            self._set_running_ui(self.running)
            self._show_status()


def _source_and_video(source: str, video: str | os.PathLike | None) -> tuple[str, str | os.PathLike | None]:
    """A path given as the source means the file source; any other unknown source is an error."""
    if source in SOURCES:
        return source, video
    if video is None and Path(str(source)).suffix:
        return "file", source
    raise ValueError(f"source {source!r} is unknown; expected one of {SOURCES} or a video file path")
