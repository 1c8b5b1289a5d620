"""The photo cell: every face of a picture boxed and classified, with the face table videos and the webcam use."""

from __future__ import annotations

import os

import cv2
import ipywidgets as widgets
import numpy as np
import pandas as pd

from fer_utils.images import read_image
from fer_utils.recognizer import annotate
from fer_utils.video import FaceTable
from fer_utils.webcam.loop import INFERENCE_LOCK, as_recognizer, jpeg


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
    """Every face of a picture: the annotated BGR image and its face table (the columns of videos' tables, with
    frame and timestamp 0), largest face first."""
    recognizer = as_recognizer(model)
    frame = _to_frame(image)
    with INFERENCE_LOCK:
        faces = recognizer.predict(frame)
    table = FaceTable()
    table.add(0, 0.0, list(range(len(faces))), faces)
    return annotate(frame, faces), table.to_frame()


class PhotoPanel(widgets.VBox):
    """Upload a picture and see every face boxed and classified, with its seven probabilities."""

    def __init__(self, model=None, image=None, width: int = 640):
        self.recognizer = as_recognizer(model)
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
        self.image.value = jpeg(annotated, 90)
        if self.faces.empty:
            self.table.value = "<p class='fer-photo-result'>no face found in this picture</p>"
        else:
            shown = self.faces.drop(columns=["frame", "timestamp_s"]).set_index("face_id").round(3)
            self.table.value = f"<div class='fer-photo-result'>{len(shown)} face(s){shown.to_html()}</div>"
        return self.faces

    def _on_upload(self, change) -> None:
        files = change["new"]
        if files:
            try:
                self.show(bytes(files[0]["content"]))
            except Exception:  # noqa: BLE001, S110 - already shown in the panel by show()
                pass
