"""The browser's camera as a widget: ``webcam.js`` grabs ``getUserMedia`` frames, sends them to the kernel as
JPEG bytes, and draws the faces the kernel sends back (so it works when the kernel runs on a server)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anywidget
import cv2
import numpy as np
import traitlets

from fer_utils.recognizer import Face

_HERE = Path(__file__).parent


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
