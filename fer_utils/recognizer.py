"""Faces in, emotions out: detect every face in a frame, crop it like FER2013, classify all crops in one call.

The network runs through LiteRT from the model's ``.tflite`` (``litert_path``: every shipped model has one, and an
installed package carries the default ones), so this module, and everything that recognises faces, needs neither
TensorFlow nor Keras: XNNPACK classifies one face 2-3x faster than TensorFlow on these CPUs (vgg8: 2.5 ms vs
7.2 ms), and ``model.predict``'s 65 ms of set-up per call would cost more than the network itself. A Keras model with
no ``.tflite`` (one of your own) is exported once into ``~/.cache/fer_utils`` (keyed by its weights), which needs
TensorFlow; ``runtime="tensorflow"`` calls the Keras model through a ``tf.function`` instead. Either way crops are
padded to a handful of batch sizes, so each size is prepared once.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from fer_utils.constants import EMOTIONS, SIDE, cache_dir
from fer_utils.detector import DEFAULT_DETECTOR, Detector, build_detector, locate_faces
from fer_utils.images import as_uint8, crop_faces, read_image, to_bgr, to_gray  # noqa: F401 (read_image: public name)
from fer_utils.litert import LiteRTNetwork, litert_path
from fer_utils.shipped import default_model_path

if TYPE_CHECKING:
    import keras

BUCKETS = (1, 2, 4, 8, 16, 32, 64)  # crops are padded to one of these batch sizes: few traces, little waste
RUNTIMES = ("litert", "tensorflow")


@dataclass(frozen=True)
class Face:
    """One face found in a frame: its box (x, y, w, h in the frame's pixels) and seven probabilities."""

    box: tuple[int, int, int, int]
    probabilities: np.ndarray  # (7,) in the order of EMOTIONS, full precision

    @property
    def emotion(self) -> str:
        """The most probable emotion."""
        return EMOTIONS[int(np.argmax(self.probabilities))]

    @property
    def score(self) -> float:
        """The probability of :attr:`emotion`."""
        return float(np.max(self.probabilities))

    def as_dict(self) -> dict:
        """JSON-ready: box, emotion, score and probabilities {emotion: p}."""
        return {
            "box": [int(v) for v in self.box],
            "emotion": self.emotion,
            "score": self.score,
            "probabilities": {e: float(p) for e, p in zip(EMOTIONS, self.probabilities, strict=True)},
        }


class EmotionRecognizer:
    """Detect faces and classify their emotion.

    Args:
        model: a ``.keras`` or ``.tflite`` path, a ``keras.Model``, or None for the shipped default
            (``default_model_path()``).
        detector: ``"haar"`` (default), ``"blazeface"`` (fast; faces of 45 px or more), ``"mtcnn"`` or a :class:`~fer_utils.detector.Detector`.
        largest_only: keep only the largest face of each frame.
        min_face_size: ignore faces smaller than this many pixels (box side).
        margin: extra border around each box, as a fraction of its side, when cropping (0 = FER2013 framing).
        align: level the eyes before classifying (needs a detector with landmarks: ``"blazeface"``, ``"mtcnn"``).
        runtime: ``"litert"`` (default; fastest here) or ``"tensorflow"``; the same network and probabilities either way.
    """

    def __init__(self, model: str | os.PathLike | keras.Model | None = None, detector: str | Detector = DEFAULT_DETECTOR,
                 *, largest_only: bool = False, min_face_size: int = 40, margin: float = 0.0, align: bool = False,
                 runtime: str = "litert"):
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime {runtime!r} is unknown; expected one of {list(RUNTIMES)}")
        model = default_model_path() if model is None else model
        self.model_path = Path(model) if isinstance(model, str | os.PathLike) else None
        self._model = None if self.model_path else model  # the keras.Model, loaded only when needed
        if self.model_path and not self.model_path.is_file():
            raise FileNotFoundError(f"model file {self.model_path} does not exist; leave it out for the shipped default "
                                    "model")
        if isinstance(detector, Detector):
            self.detector = detector
        else:
            self.detector = build_detector(detector, min_size=min_face_size)
        self.largest_only, self.min_face_size = bool(largest_only), int(min_face_size)
        self.margin, self.align = float(margin), bool(align)
        self.runtime = runtime
        if runtime == "litert":
            beside = litert_path(self.model_path) if self.model_path else None
            if beside and beside.is_file():
                self._call = LiteRTNetwork(beside)
            else:
                try:
                    self._call = _exported(self.model)
                except Exception as e:  # a layer LiteRT cannot convert: the TensorFlow path runs every Keras model
                    warnings.warn(f"model {self.model.name!r} could not be exported to LiteRT ({type(e).__name__}: "
                                  f"{e}); using runtime='tensorflow'", stacklevel=2)
                    self.runtime = "tensorflow"
        if self.runtime == "tensorflow":
            self._call = _tensorflow_call(self.model)

    @property
    def model(self) -> keras.Model:
        """The ``keras.Model`` (loaded on first use: recognising faces through LiteRT never needs it)."""
        if self._model is None:
            if self.model_path.suffix == ".tflite":
                raise ValueError(f"{self.model_path} is a LiteRT file; pass its .keras for the Keras model")
            try:
                from fer_utils.models import load_model  # Keras and TensorFlow: only for a model with no .tflite
            except ImportError as e:
                raise ImportError(
                    f"{self.model_path} has no {litert_path(self.model_path).name} beside it, and a .keras model needs "
                    f"TensorFlow ({e}): pip install -e '.[train]', or run `python -m fer_utils export "
                    f"--model {self.model_path}` where TensorFlow is installed") from None
            self._model = load_model(self.model_path)
            if tuple(self._model.input_shape[1:]) != (SIDE, SIDE) or self._model.output_shape[-1] != len(EMOTIONS):
                raise ValueError(f"model must map (N, {SIDE}, {SIDE}) faces to {len(EMOTIONS)} probabilities; got "
                                 f"{self._model.input_shape} -> {self._model.output_shape}")
        return self._model

    # ------------------------------------------------------------------ classification
    def classify(self, faces: np.ndarray) -> np.ndarray:
        """Seven probabilities (K, 7) float64 for uint8 (K, 48, 48) face crops, through the compiled network."""
        faces = np.asarray(faces)
        if faces.ndim != 3 or faces.shape[1:] != (SIDE, SIDE):
            raise ValueError(f"faces must have shape (K, {SIDE}, {SIDE}); got {faces.shape}")
        faces = as_uint8(faces) if faces.dtype != np.uint8 else faces
        out = np.empty((len(faces), len(EMOTIONS)), np.float64)
        start, step = 0, BUCKETS[-1]
        while start < len(faces):
            chunk = faces[start:start + step]
            size = next(b for b in BUCKETS if b >= len(chunk))
            if size > len(chunk):
                chunk = np.concatenate([chunk, np.zeros((size - len(chunk), SIDE, SIDE), np.uint8)])
            proba = self._call(chunk)
            n = min(step, len(faces) - start)
            out[start:start + n] = proba[:n]
            start += n
        return out

    def warmup(self) -> EmotionRecognizer:
        """Prepare the network for every batch size now, so the first frames are not slow."""
        for b in BUCKETS:
            self._call(np.zeros((b, SIDE, SIDE), np.uint8))
        return self

    # ------------------------------------------------------------------ frames
    def locate(self, frame: np.ndarray, color: str = "bgr", *, gray: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (K, 4) of the kept faces of one frame (largest first) and their 48x48 crops (K, 48, 48); ``gray``
        is the frame made gray, when the caller has it already. The crop path of labelled face collections too."""
        return locate_faces(self.detector, frame, color, gray=gray, min_face_size=self.min_face_size,
                            largest_only=self.largest_only, margin=self.margin, align=self.align)

    def crops(self, frame: np.ndarray, boxes: np.ndarray, color: str = "bgr") -> np.ndarray:
        """48x48 crops of given boxes (e.g. tracked ones), framed like detected faces."""
        return crop_faces(to_gray(frame, color), boxes, self.margin)

    def predict(self, frame: np.ndarray, color: str = "bgr") -> list[Face]:
        """Every face of one frame (gray, BGR, RGB, BGRA or RGBA; any size), largest first; [] when none."""
        return self.predict_batch([frame], color)[0]

    def predict_batch(self, frames, color: str = "bgr") -> list[list[Face]]:
        """Faces of each frame; all faces of all frames go through the network in one call."""
        located = [self.locate(f, color) for f in frames]
        crops = [c for _, c in located]
        proba = self.classify(np.concatenate(crops) if crops else np.empty((0, SIDE, SIDE), np.uint8))
        result, i = [], 0
        for boxes, _ in located:
            result.append([Face(tuple(int(v) for v in b), proba[i + k]) for k, b in enumerate(boxes)])
            i += len(boxes)
        return result


def _exported(model) -> LiteRTNetwork:
    """A Keras model with no ``.tflite`` of its own, exported once into :func:`cache_dir`, named by a hash of its
    architecture, weights and TensorFlow version (vgg8: 5-8 s the first time); a damaged cache file is made again."""
    # TensorFlow: only a Keras model without its .tflite needs it; the recognizer itself runs on LiteRT alone
    import tensorflow as tf

    from fer_utils.models import export_litert  # Keras: as TensorFlow above

    key = hashlib.sha256(f"{tf.__version__}\n{model.to_json()}".encode())
    for w in model.get_weights():
        key.update(np.ascontiguousarray(w).tobytes())
    path = cache_dir() / f"{model.name}.{key.hexdigest()[:16]}.tflite"
    if not path.exists():
        export_litert(model, path)
    try:
        return LiteRTNetwork(path)
    except ValueError:
        export_litert(model, path)
        return LiteRTNetwork(path)


def _tensorflow_call(model):
    """uint8 faces -> probabilities through one ``tf.function`` (no ``predict`` set-up per call)."""
    import tensorflow as tf  # runtime="tensorflow" only: by default the recognizer runs on LiteRT alone

    # one trace for every batch size: a trace per bucket would make TensorFlow warn of "excessive retracing"
    call = tf.function(lambda x: model(x, training=False), input_signature=[tf.TensorSpec([None, SIDE, SIDE], tf.uint8)])
    return lambda faces: call(tf.constant(faces)).numpy()


# ---------------------------------------------------------------------------------------------- drawing

_GREEN, _WHITE, _DARK = (60, 200, 60), (255, 255, 255), (40, 40, 40)


def annotate(frame: np.ndarray, faces: list[Face], color: str = "bgr", *, labels: list[str] | None = None) -> np.ndarray:
    """Copy of the frame (as BGR) with each face's box, top emotion and score, and a bar chart of its probabilities.

    ``labels`` optionally prefixes each face's caption (e.g. ``"#3"`` for a tracked face id).
    """
    out = to_bgr(frame, color).copy()
    h, w = out.shape[:2]
    font, fs = cv2.FONT_HERSHEY_SIMPLEX, max(0.35, min(w, h) / 1200)
    th = max(1, round(fs * 2))
    for i, face in enumerate(faces):
        x, y, bw, bh = face.box
        cv2.rectangle(out, (x, y), (x + bw, y + bh), _GREEN, max(1, round(min(w, h) / 300)))
        caption = f"{labels[i] + ' ' if labels else ''}{face.emotion} {face.score:.2f}"
        (tw, tht), base = cv2.getTextSize(caption, font, fs, th)
        ty = y - 4 if y - tht - 6 >= 0 else y + bh + tht + 4
        cv2.rectangle(out, (x, ty - tht - 3), (x + tw + 4, ty + base - 1), _DARK, -1)
        cv2.putText(out, caption, (x + 2, ty - 1), font, fs, _WHITE, th, cv2.LINE_AA)
        # bar chart beside the box: one row per emotion, on the side with more room
        row = max(8, round(bh / 9))
        bar_w = max(40, bw // 2)
        bx = x + bw + 4 if x + bw + 4 + bar_w + 60 * fs * 2 < w else max(0, x - bar_w - round(100 * fs) - 4)
        for k, (name, p) in enumerate(zip(EMOTIONS, face.probabilities, strict=True)):
            by = y + k * row
            cv2.rectangle(out, (bx, by), (bx + bar_w, by + row - 2), _DARK, -1)
            cv2.rectangle(out, (bx, by), (bx + round(bar_w * float(p)), by + row - 2), _GREEN, -1)
            cv2.putText(out, name, (bx + bar_w + 3, by + row - 3), font, fs * 0.8, _WHITE, 1, cv2.LINE_AA)
    return out
