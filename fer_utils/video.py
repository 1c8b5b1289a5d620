"""Recorded video -> a table of faces and emotions over time (and optionally an annotated copy of the video).

Frames are streamed (never all held in memory) and classified a few frames at a time; faces are followed from
frame to frame by box overlap (IoU), so each row carries a ``face_id``. With ``detect_every=N`` the detector runs
on every N-th frame and faces are followed in between by template matching, which is much cheaper.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from fer_utils.atomic import atomic_path, temp_beside
from fer_utils.constants import EMOTIONS
from fer_utils.detector import LIVE_DETECTOR
from fer_utils.images import to_gray
from fer_utils.recognizer import EmotionRecognizer, Face, annotate

COLUMNS = ["frame", "timestamp_s", "face_id", "x", "y", "w", "h", *EMOTIONS, "emotion"]
TABLE_SUFFIXES = (".csv", ".parquet")


# ---------------------------------------------------------------------------------------------- reading frames

def read_frames(source: str | os.PathLike | Iterable[np.ndarray], fps: float | None = None
                ) -> tuple[Iterator[np.ndarray], float, int | None]:
    """(frame iterator, frames per second, frame count or None) of a video file or an iterable of frames.

    A file is read with OpenCV one frame at a time; an iterable (list, generator, webcam) is used as is, at
    ``fps`` (default 30) for the timestamps.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"video {path} does not exist")
        cap = cv2.VideoCapture(str(path))
        ok, first = cap.read() if cap.isOpened() else (False, None)
        if not ok:
            cap.release()
            raise ValueError(f"video {path} could not be read: not a video format OpenCV/FFmpeg decodes (mp4, avi, mkv, mov)")
        rate = fps or cap.get(cv2.CAP_PROP_FPS) or 30.0
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None

        def frames():
            try:
                frame = first
                while frame is not None:
                    yield frame
                    ok, frame = cap.read()
                    frame = frame if ok else None
            finally:
                cap.release()

        return frames(), float(rate), count
    if isinstance(source, np.ndarray) and source.ndim == 2:
        raise ValueError("source is a single gray image; pass a video path or a list/generator of frames")
    count = len(source) if hasattr(source, "__len__") else None
    return iter(source), float(fps or 30.0), count


# ---------------------------------------------------------------------------------------------- tracking

def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in ``a`` (N, 4) with every box in ``b`` (M, 4), as (N, M)."""
    a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
    ax1, ay1, ax2, ay2 = a[:, 0:1], a[:, 1:2], a[:, 0:1] + a[:, 2:3], a[:, 1:2] + a[:, 3:4]
    bx1, by1, bx2, by2 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    inter = np.clip(np.minimum(ax2, bx2) - np.maximum(ax1, bx1), 0, None) * \
        np.clip(np.minimum(ay2, by2) - np.maximum(ay1, by1), 0, None)
    union = a[:, 2:3] * a[:, 3:4] + b[:, 2] * b[:, 3] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


@dataclass
class _Track:
    box: np.ndarray
    last_seen: int
    template: np.ndarray | None = None
    proba: np.ndarray | None = None  # smoothed probabilities


@dataclass
class FaceTracker:
    """Gives each face a stable id across frames: a box continues the track it overlaps most (IoU >= ``min_iou``);
    a track not seen for ``max_missing`` frames ends. ``smoothing`` in [0, 1) is the weight of the past in an
    exponential moving average of each face's probabilities (0 = no smoothing).
    """

    min_iou: float = 0.3
    max_missing: int = 15
    smoothing: float = 0.0
    tracks: dict[int, _Track] = field(default_factory=dict)
    next_id: int = 0

    def __post_init__(self):
        if not 0 <= self.smoothing < 1:
            raise ValueError(f"smoothing must be in [0, 1) (weight of the past); got {self.smoothing}")

    def update(self, frame_index: int, boxes: np.ndarray) -> list[int]:
        """Face ids for this frame's boxes (K, 4), matched greedily by IoU to the live tracks."""
        boxes = np.asarray(boxes, int).reshape(-1, 4)
        for tid in [t for t, tr in self.tracks.items() if frame_index - tr.last_seen > self.max_missing]:
            del self.tracks[tid]
        ids = [-1] * len(boxes)
        tids = list(self.tracks)
        if tids and len(boxes):
            overlap = iou(boxes, np.array([self.tracks[t].box for t in tids]))
            for flat in np.argsort(-overlap, axis=None):
                i, j = divmod(int(flat), len(tids))
                if overlap[i, j] < self.min_iou:
                    break
                if ids[i] == -1 and tids[j] is not None:
                    ids[i], tids[j] = tids[j], None
        for i, box in enumerate(boxes):
            if ids[i] == -1:
                ids[i], self.next_id = self.next_id, self.next_id + 1
                self.tracks[ids[i]] = _Track(box, frame_index)
            tr = self.tracks[ids[i]]
            tr.box, tr.last_seen, tr.template = box, frame_index, None
        return ids

    def smooth(self, face_id: int, proba: np.ndarray) -> np.ndarray:
        """The face's probabilities after exponential smoothing with its past frames."""
        tr = self.tracks[face_id]
        if self.smoothing and tr.proba is not None:
            proba = self.smoothing * tr.proba + (1 - self.smoothing) * proba
        tr.proba = proba
        return proba

    def follow(self, gray: np.ndarray, frame_index: int) -> tuple[np.ndarray, list[int]]:
        """Move the tracks seen on the previous frame to this frame by template matching (no detector run)."""
        boxes, ids = [], []
        for tid, tr in self.tracks.items():
            if tr.last_seen != frame_index - 1:
                continue
            box = _match(gray, tr)
            if box is not None:
                tr.box, tr.last_seen = box, frame_index
                boxes.append(box)
                ids.append(tid)
        return np.array(boxes, int).reshape(-1, 4), ids

    def remember(self, gray: np.ndarray) -> None:
        """Store each current track's face as the template to follow on the next frame."""
        for tr in self.tracks.values():
            if tr.template is None:
                tr.template = _patch(gray, tr.box)


_T = 32  # template side: matching on small patches is cheap and still locates a face well


def _patch(gray, box):
    x, y, w, h = (int(v) for v in box)
    p = gray[max(y, 0):y + h, max(x, 0):x + w]
    return cv2.resize(p, (_T, _T), interpolation=cv2.INTER_AREA) if p.size else None


def _match(gray, tr: _Track):
    if tr.template is None:
        return None
    x, y, w, h = (int(v) for v in tr.box)
    s = _T / w
    pad = w // 2  # the face may move up to half its size between frames
    x0, y0 = max(0, x - pad), max(0, y - pad)
    x1, y1 = min(gray.shape[1], x + w + pad), min(gray.shape[0], y + h + pad)
    region = gray[y0:y1, x0:x1]
    if region.shape[0] < h or region.shape[1] < w:
        return None
    small = cv2.resize(region, (max(_T, round(region.shape[1] * s)), max(_T, round(region.shape[0] * s))),
                       interpolation=cv2.INTER_AREA)
    res = cv2.matchTemplate(small, tr.template, cv2.TM_CCOEFF_NORMED)
    _, best, _, (mx, my) = cv2.minMaxLoc(res)
    if best < 0.5:  # lost: let the next detection pick it up again
        return None
    return np.array([x0 + round(mx / s), y0 + round(my / s), w, h], int)


# ---------------------------------------------------------------------------------------------- analysis

class FrameAnalyzer:
    """The per-frame step that videos and the webcam share: find the faces of each frame (the detector every
    ``detect_every`` frames, template tracking in between), give each a stable ``face_id``, and classify them, with
    each face's probabilities optionally smoothed over time (``smoothing``: the weight of the past, 0 = off).
    """

    def __init__(self, recognizer: EmotionRecognizer, *, color: str = "bgr", detect_every: int = 1,
                 smoothing: float = 0.0):
        if detect_every < 1:
            raise ValueError(f"detect_every must be >= 1; got {detect_every}")
        self.recognizer, self.color, self.detect_every = recognizer, color, int(detect_every)
        self.tracker = FaceTracker(smoothing=smoothing)
        self.index = 0  # of the next frame

    def locate(self, frame: np.ndarray) -> tuple[int, list[int], np.ndarray, np.ndarray]:
        """(frame index, face ids, boxes (K, 4), crops (K, 48, 48)) of the next frame; no network call yet."""
        index, self.index = self.index, self.index + 1
        gray = to_gray(frame, self.color)  # once per frame, for the detector, the crops and the tracker
        if index % self.detect_every == 0:
            boxes, crops = self.recognizer.locate(frame, self.color, gray=gray)
            ids = self.tracker.update(index, boxes)
        else:
            boxes, ids = self.tracker.follow(gray, index)
            crops = self.recognizer.crops(gray, boxes, "gray")
        if self.detect_every > 1:
            self.tracker.remember(gray)
        return index, ids, boxes, crops

    def faces(self, ids: list[int], boxes: np.ndarray, proba: np.ndarray) -> list[Face]:
        """The faces of one located frame, given their probabilities (smoothed per face id)."""
        return [Face(tuple(int(v) for v in box), self.tracker.smooth(fid, p) if fid in self.tracker.tracks else p)
                for fid, box, p in zip(ids, boxes, proba, strict=True)]

    def __call__(self, frame: np.ndarray) -> tuple[int, list[int], list[Face]]:
        """One frame start to finish, with no batching (live video: no frame waits for the next)."""
        index, ids, boxes, crops = self.locate(np.asarray(frame))
        return index, ids, self.faces(ids, boxes, self.recognizer.classify(crops))


def iter_analysis(frames: Iterable[np.ndarray], recognizer: EmotionRecognizer, *, color: str = "bgr",
                  detect_every: int = 1, smoothing: float = 0.0,
                  batch_frames: int = 4) -> Iterator[tuple[int, np.ndarray, list[int], list[Face]]]:
    """Stream (frame index, frame, face ids, faces) for each frame, through a :class:`FrameAnalyzer`;
    ``batch_frames`` frames are located, then all their faces classified in one network call."""
    analyzer = FrameAnalyzer(recognizer, color=color, detect_every=detect_every, smoothing=smoothing)
    batch: list[tuple[np.ndarray, int, list[int], np.ndarray, np.ndarray]] = []

    def flush():
        crops = [c for *_, c in batch]
        proba = recognizer.classify(np.concatenate(crops)) if crops else np.empty((0, len(EMOTIONS)))
        k = 0
        for frame, index, ids, boxes, _ in batch:
            yield index, frame, ids, analyzer.faces(ids, boxes, proba[k:k + len(ids)])
            k += len(ids)
        batch.clear()

    for frame in frames:
        frame = np.asarray(frame)
        batch.append((frame, *analyzer.locate(frame)))
        if len(batch) >= batch_frames:
            yield from flush()
    yield from flush()


class FaceTable:
    """Faces over frames, as the one table videos, the webcam and photos share (:data:`COLUMNS`): rows are kept
    in growable C arrays (about 120 bytes a row), so a long video's table grows by its data, not by Python objects.
    """

    def __init__(self):
        self._ints, self._floats = array("q"), array("d")

    def add(self, index: int, timestamp_s: float, ids: list[int], faces: list[Face]) -> None:
        """The faces of one frame."""
        for fid, face in zip(ids, faces, strict=True):
            self._ints.extend((index, fid, *face.box))
            self._floats.append(timestamp_s)
            self._floats.extend(face.probabilities)

    def __len__(self) -> int:
        return len(self._ints) // 6

    def clear(self) -> None:
        """Forget every row."""
        del self._ints[:], self._floats[:]

    def to_frame(self) -> pd.DataFrame:
        """The rows as a DataFrame with :data:`COLUMNS`."""
        # copies: a view would stop the arrays from growing while a recording goes on
        ints = np.array(self._ints, np.int64).reshape(-1, 6)
        floats = np.array(self._floats, np.float64).reshape(-1, 8)
        df = pd.DataFrame(ints, columns=["frame", "face_id", "x", "y", "w", "h"])
        df.insert(1, "timestamp_s", floats[:, 0])
        for k, e in enumerate(EMOTIONS):
            df[e] = floats[:, 1 + k]
        df["emotion"] = np.array(EMOTIONS, dtype=object)[floats[:, 1:].argmax(axis=1)] if len(df) else np.array([], dtype=object)
        return df[COLUMNS]


def analyze_video(source: str | os.PathLike | Iterable[np.ndarray], recognizer: EmotionRecognizer | None = None, *,
                  model=None, detector: str = LIVE_DETECTOR, color: str = "bgr", fps: float | None = None,
                  detect_every: int = 1, smoothing: float = 0.0, largest_only: bool = False, min_face_size: int = 40,
                  out: str | os.PathLike | None = None, table: str | os.PathLike | None = None,
                  progress: bool = True, max_frames: int | None = None, batch_frames: int = 4) -> pd.DataFrame:
    """Emotions of every face in every frame of a video file (or an iterable of frames), as a DataFrame.

    Columns: frame, timestamp_s, face_id, x, y, w, h, the seven probabilities (one column per emotion), emotion.
    ``out`` writes an annotated mp4 copy; ``table`` saves the DataFrame as .csv or .parquet (both atomically).
    ``smoothing`` averages each face's probabilities over time (weight of the past, 0 = off).
    """
    if table is not None and Path(table).suffix.lower() not in TABLE_SUFFIXES:
        raise ValueError(f"table {str(table)!r} must end in .csv or .parquet")
    if out is not None and Path(out).suffix.lower() not in (".mp4", ".avi"):
        raise ValueError(f"out {str(out)!r} must end in .mp4 (or .avi)")
    frames, rate, count = read_frames(source, fps)
    if recognizer is None:
        recognizer = EmotionRecognizer(model, detector, largest_only=largest_only, min_face_size=min_face_size)
    if max_frames is not None:
        frames = (f for i, f in zip(range(max_frames), frames, strict=False))
        count = min(count, max_frames) if count else max_frames
    writer, tmp_video = None, None
    rows = FaceTable()
    bar = _progress(count, progress)
    try:
        for index, frame, ids, faces in iter_analysis(frames, recognizer, color=color, detect_every=detect_every,
                                                       smoothing=smoothing, batch_frames=batch_frames):
            rows.add(index, index / rate, ids, faces)
            if out is not None:
                drawn = annotate(frame, faces, color, labels=[f"#{i}" for i in ids])
                if writer is None:
                    writer, tmp_video = _open_writer(Path(out), rate, drawn.shape)
                writer.write(drawn)
            if bar is not None:
                bar.update(1)
        if writer is not None:
            writer.release()
            writer = None
            os.replace(tmp_video, out)
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.release()
        if tmp_video is not None and os.path.exists(tmp_video):
            os.unlink(tmp_video)
    df = rows.to_frame()
    if table is not None:
        save_table(df, table)
    return df


def _progress(total, enabled):
    if not enabled:
        return None
    return tqdm(total=total, unit="frame", desc="analyze_video")


def _open_writer(path: Path, fps: float, shape) -> tuple[cv2.VideoWriter, str]:
    tmp = temp_beside(path)
    fourcc = cv2.VideoWriter_fourcc(*("mp4v" if path.suffix.lower() == ".mp4" else "MJPG"))
    writer = cv2.VideoWriter(tmp, fourcc, fps, (shape[1], shape[0]))
    if not writer.isOpened():
        os.unlink(tmp)
        raise ValueError(f"cannot write video {path}: OpenCV has no {path.suffix} encoder here")
    return writer, tmp


def save_table(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Save a DataFrame as .csv or .parquet atomically (temp file, then rename)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise ValueError(f"table {str(path)!r} must end in .csv or .parquet")
    with atomic_path(path) as tmp:
        if suffix == ".csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)
    return path
