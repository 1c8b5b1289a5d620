"""Find faces in a frame and crop them the way FER2013 was cropped.

Three detectors whose models ship inside a wheel (nothing is downloaded at run time):

- ``haar``: OpenCV 4's frontal-face Haar cascade, scanned on a downscaled frame. The default: it finds frontal
  faces down to ``min_size`` pixels anywhere in the frame.
- ``blazeface``: MediaPipe's full-range BlazeFace, a small CNN run by LiteRT (TensorFlow Lite's runtime) on the whole
  frame shrunk to 192x192; its weights ship in this package (``fer_utils/blazeface/``). Several times faster than Haar, finds
  turned and tilted faces Haar misses, gives eye landmarks. The live webcam uses it.
- ``mtcnn``: the ``mtcnn`` package (TensorFlow). The slowest; robust to pose and light, with eye landmarks.

All return square boxes framed like the Haar box, because that is how FER2013 faces are framed: run on upscaled
FER2013 images, the Haar box is centred and covers 98% of the 48x48 image (median of 1,221 faces). So the default
crop is the box itself (``margin=0``), turned gray and resized to 48x48. Eye landmarks let
:func:`~fer_utils.images.crop_faces` level the eyes.
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from fer_utils.images import as_uint8, crop_faces, to_bgr, to_gray  # noqa: F401 (as_uint8: a public name)
from fer_utils.litert import litert_interpreter

DETECTORS = ("haar", "blazeface", "mtcnn")
DEFAULT_DETECTOR = "haar"  # photos: the surest on tightly cropped faces
# videos and the live webcam: 3x the frame rate of Haar on a 640x480 single-face clip (56 vs 17 fps with vgg8x2 on
# the slowest 2-core CPU), and better with turned faces; `make bench` measures both
LIVE_DETECTOR = "blazeface"


def _downscale(image: np.ndarray, scale: float) -> np.ndarray:
    if scale >= 1.0:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


class Detector:
    """Finds faces: ``detect(image)`` -> int array (K, 4) of square boxes x, y, w, h in the image's pixels."""

    min_size: int = 40
    gray_input: bool = False  # True: give it the gray frame, which the recognizer makes anyway

    def detect(self, image: np.ndarray, color: str = "bgr") -> np.ndarray:
        """Boxes (K, 4) int x, y, w, h of the faces in a gray, BGR, RGB or BGRA image; (0, 4) when none."""
        return self.detect_landmarks(image, color)[0]

    def detect_landmarks(self, image: np.ndarray, color: str = "bgr") -> tuple[np.ndarray, np.ndarray | None]:
        """Boxes (K, 4) and eye centres (K, 2, 2) as (left eye, right eye) x, y; eyes are None if not known."""
        raise NotImplementedError


class HaarDetector(Detector):
    """OpenCV's frontal-face Haar cascade, run on a downscaled copy of the frame for speed.

    The frame is shrunk so its longer side is at most ``max_side`` pixels (but never so far that a ``min_size``
    face falls below the cascade's 24-pixel window); boxes are mapped back to the input's pixels. Huge frames are
    scanned at no more than ``max_scan`` pixels, so in a 4000-pixel photo faces under about 75 pixels are missed.
    ``cv2.CascadeClassifier`` is not thread-safe, so each thread gets its own.
    """

    gray_input = True

    def __init__(self, min_size: int = 40, *, max_side: int = 320, max_scan: int = 1280, scale_factor: float = 1.2,
                 min_neighbors: int = 5, cascade: str = "haarcascade_frontalface_default.xml"):
        if min_size < 1 or max_side < 24:
            raise ValueError(f"min_size must be >= 1 and max_side >= 24; got {min_size} and {max_side}")
        self.min_size, self.max_side, self.max_scan = int(min_size), int(max_side), int(max_scan)
        self.scale_factor, self.min_neighbors = scale_factor, min_neighbors
        self.cascade_path = cv2.data.haarcascades + cascade
        if cv2.CascadeClassifier(self.cascade_path).empty():
            raise FileNotFoundError(f"Haar cascade {self.cascade_path} not found; reinstall opencv-python-headless<5")
        self._local = threading.local()

    def _cascade(self) -> cv2.CascadeClassifier:
        if not hasattr(self._local, "cascade"):
            self._local.cascade = cv2.CascadeClassifier(self.cascade_path)
        return self._local.cascade

    def detect_landmarks(self, image, color="bgr"):
        gray = to_gray(image, color)
        scale = min(1.0, max(self.max_side / max(gray.shape), 24 / self.min_size), self.max_scan / max(gray.shape))
        small = _downscale(gray, scale)
        min_px = max(24, round(self.min_size * scale))
        if min(small.shape) < min_px:
            return np.empty((0, 4), int), None
        boxes = self._cascade().detectMultiScale(small, self.scale_factor, self.min_neighbors, minSize=(min_px, min_px))
        boxes = np.asarray(boxes, float).reshape(-1, 4) / scale
        return _left_to_right(np.round(boxes).astype(int)), None


class MTCNNDetector(Detector):
    """MTCNN (``mtcnn`` package, TensorFlow; weights ship in its wheel), with eye landmarks.

    MTCNN's boxes are taller than wide (brow to chin); they are turned into squares of side 0.965 x height around
    the same centre, which is how MTCNN frames upscaled FER2013 faces (median of 136). The frame is downscaled so
    a ``min_size`` face becomes MTCNN's smallest (20 px); ``mtcnn`` 1.0's own ``min_face_size`` option is not used
    because it returns no faces for values other than 20.
    """

    def __init__(self, min_size: int = 40, *, min_confidence: float = 0.9, max_side: int = 1280):
        from mtcnn import MTCNN  # TensorFlow-heavy: only when asked for

        self.min_size, self.min_confidence, self.max_side = int(min_size), float(min_confidence), int(max_side)
        self._mtcnn = MTCNN()
        self._lock = threading.Lock()

    def detect_landmarks(self, image, color="bgr"):
        rgb = cv2.cvtColor(to_bgr(image, color), cv2.COLOR_BGR2RGB)
        scale = min(1.0, max(20 / self.min_size, 0), self.max_side / max(rgb.shape[:2]))
        small = _downscale(rgb, scale)
        if min(small.shape[:2]) < 20:
            return np.empty((0, 4), int), np.empty((0, 2, 2))
        with self._lock:
            found = self._mtcnn.detect_faces(small)
        found = [f for f in found if f["confidence"] >= self.min_confidence]
        boxes, eyes = np.empty((0, 4), int), np.empty((0, 2, 2))
        if found:
            xywh = np.array([f["box"] for f in found], float) / scale
            side = 0.965 * xywh[:, 3]
            cx, cy = xywh[:, 0] + xywh[:, 2] / 2, xywh[:, 1] + xywh[:, 3] / 2
            boxes = np.round(np.stack([cx - side / 2, cy - side / 2, side, side], 1)).astype(int)
            eyes = np.array([[f["keypoints"]["left_eye"], f["keypoints"]["right_eye"]] for f in found], float) / scale
            keep = boxes[:, 2] >= self.min_size
            boxes, eyes = boxes[keep], eyes[keep]
            order = np.lexsort((boxes[:, 1], boxes[:, 0]))
            boxes, eyes = boxes[order], eyes[order]
        return boxes, eyes


class BlazeFaceDetector(Detector):
    """MediaPipe's full-range BlazeFace (192x192 input, 2,304 anchors) through LiteRT, with eye landmarks.

    The frame is padded to a square and shrunk to 192x192 in one resize. Real faces with their head around them
    are found down to about 45 px in a 640x480 frame (Grace Hopper's portrait pasted into clutter: 42 px; Haar
    needs 82), but bare face crops less well: of 240 LFW tight crops pasted into clutter at 90-130 px in 640x480
    (the benchmark's scenes) it finds 231, with 13 false detections (Haar: 236, none false).
    BlazeFace's box runs from brow to chin; it is mapped to the Haar framing FER2013 was cropped with
    (:data:`FRAMING`). A LiteRT interpreter is not thread-safe, so each thread gets its own. LiteRT's XNNPACK kernels
    run this model about 2.8 times faster than OpenCV's DNN module here.
    """

    SIDE = 192
    MODEL = Path(__file__).parent / "blazeface" / "face_detection_full_range.tflite"
    # Haar box = BlazeFace box scaled by FRAMING[0] about its centre, then moved down by FRAMING[1] of its side.
    # Medians where both fire: 791 FER2013 PublicTest faces upscaled to 144 px 1.106/-0.032, Grace Hopper's
    # portrait (matplotlib's sample, 8 scales and flips) 1.135/-0.040, the astronaut 0.92/-0.069.
    FRAMING = (1.1, -0.04)

    def __init__(self, min_size: int = 40, *, min_confidence: float = 0.5, nms_iou: float = 0.3):
        if not 0 < min_confidence < 1:
            raise ValueError(f"min_confidence must be in (0, 1); got {min_confidence}")
        self.min_size, self.min_confidence, self.nms_iou = int(min_size), float(min_confidence), float(nms_iou)
        if not self.MODEL.exists():
            raise FileNotFoundError(f"BlazeFace model {self.MODEL} is missing; reinstall fer_utils (pip install -e .)")
        centres = (np.arange(self.SIDE // 4) + 0.5) / (self.SIDE // 4)  # one anchor per 4x4 cell
        yy, xx = np.meshgrid(centres, centres, indexing="ij")
        self._anchors = np.stack([xx.ravel(), yy.ravel()], 1)
        self._local = threading.local()
        self._run(np.zeros((1, self.SIDE, self.SIDE, 3), np.float32))  # fail now if the model cannot be read

    def _run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scores (2304,), raw boxes and landmarks (2304, 16)) for one (1, 192, 192, 3) RGB input in [-1, 1]."""
        if not hasattr(self._local, "interpreter"):
            try:
                interpreter, self._local.input = litert_interpreter(self.MODEL.read_bytes())
            except ValueError as e:
                raise ValueError(f"BlazeFace model {self.MODEL} could not be read ({e}); "
                                 "reinstall fer_utils (pip install -e .) or use detector='haar'") from e
            self._local.interpreter = interpreter
            # output order is the file's: scores (2304, 1) first, then boxes and landmarks (2304, 16)
            details = sorted(interpreter.get_output_details(), key=lambda d: d["shape"][-1])
            self._local.outputs = [d["index"] for d in details]
        interpreter = self._local.interpreter
        interpreter.set_tensor(self._local.input, x)
        interpreter.invoke()
        scores, raw = (interpreter.get_tensor(i)[0] for i in self._local.outputs)
        return scores[:, 0], raw

    def detect_landmarks(self, image, color="bgr"):
        bgr = to_bgr(image, color)
        h, w = bgr.shape[:2]
        side = max(h, w)
        # shrink first, then pad to the square the model wants: padding the full frame would copy it once more
        small = np.zeros((self.SIDE, self.SIDE, 3), np.uint8)
        sh, sw = max(1, round(h * self.SIDE / side)), max(1, round(w * self.SIDE / side))
        # bilinear, as MediaPipe feeds this model: INTER_AREA costs 2.5 ms for 640x480 (bilinear 0.2 ms) and, blurring
        # more, finds fewer faces in the benchmark's scenes (227 of 240 vs 231) with fewer false ones (8 vs 13)
        small[:sh, :sw] = cv2.resize(bgr, (sw, sh), interpolation=cv2.INTER_LINEAR)
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)[None].astype(np.float32)
        scores, raw = self._run(rgb * np.float32(1 / 127.5) - np.float32(1))
        scores = 1 / (1 + np.exp(-np.clip(scores.astype(np.float64), -50, 50)))
        keep = np.flatnonzero(scores >= self.min_confidence)
        if len(keep) == 0:
            return np.empty((0, 4), int), np.empty((0, 2, 2))
        r, a = raw[keep] / self.SIDE, self._anchors[keep]
        centre = (r[:, :2] + a) * side
        size = np.sqrt(r[:, 2] * r[:, 3]) * side * self.FRAMING[0]
        centre[:, 1] += self.FRAMING[1] * size
        xywh = np.column_stack([centre - size[:, None] / 2, size, size])
        eyes = (r[:, 4:8].reshape(-1, 2, 2) + a[:, None, :]) * side  # the subject's right eye first: image-left
        picked = np.asarray(cv2.dnn.NMSBoxes(xywh.tolist(), scores[keep].tolist(), self.min_confidence, self.nms_iou),
                            int).ravel()
        boxes = np.round(xywh[picked]).astype(int)
        ok = boxes[:, 2] >= self.min_size
        boxes, eyes = boxes[ok], eyes[picked][ok]
        order = np.lexsort((boxes[:, 1], boxes[:, 0]))
        return boxes[order], eyes[order]


def _left_to_right(boxes: np.ndarray) -> np.ndarray:
    """Boxes sorted by x then y: OpenCV's parallel scan returns them in no fixed order."""
    return boxes[np.lexsort((boxes[:, 1], boxes[:, 0]))] if len(boxes) else boxes.reshape(0, 4)


def locate_faces(detector: Detector, frame: np.ndarray, color: str = "bgr", *, gray: np.ndarray | None = None,
                 min_face_size: int = 40, largest_only: bool = False, margin: float = 0.0, align: bool = False
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (K, 4) of the faces of one frame that are at least ``min_face_size`` pixels, largest first, and their
    FER-style 48x48 crops (K, 48, 48): the one crop path of the recognizer and of labelled face collections
    (:func:`fer_utils.collection.load_faces`). ``gray`` is the frame made gray, when the caller has it already;
    ``align`` levels the eyes where the detector gives them."""
    gray = to_gray(frame, color) if gray is None else gray
    if detector.gray_input:  # made gray once per frame, not once more inside the detector
        boxes, eyes = detector.detect_landmarks(gray, "gray")
    else:
        boxes, eyes = detector.detect_landmarks(frame, color)
    boxes = np.asarray(boxes, int).reshape(-1, 4)
    keep = np.minimum(boxes[:, 2], boxes[:, 3]) >= min_face_size
    order = np.argsort(-(boxes[:, 2] * boxes[:, 3]) * keep, kind="stable")[: int(keep.sum())]
    if largest_only:
        order = order[:1]
    boxes = boxes[order]
    eyes = eyes[order] if (align and eyes is not None and len(eyes)) else None
    return boxes, crop_faces(gray, boxes, margin, eyes)


def build_detector(name: str = DEFAULT_DETECTOR, **kwargs) -> Detector:
    """A face detector by name: ``"haar"`` (default), ``"blazeface"`` or ``"mtcnn"``; kwargs go to its class."""
    if isinstance(name, Detector):
        return name
    if name == "blazeface":
        return BlazeFaceDetector(**kwargs)
    if name == "haar":
        return HaarDetector(**kwargs)
    if name == "mtcnn":
        return MTCNNDetector(**kwargs)
    raise ValueError(f"detector {name!r} is unknown; expected one of {list(DETECTORS)}")
