"""Generated video corpora: clips whose face follows a script of expressions, in two conditions (notebook 06, the
corpus tests and benchmark). SYNTHETIC: real LFW faces (scikit-image's) pasted on clutter, not real recordings.

An LFW photo cannot change its expression, so a script step shows, for its emotion, one of the LFW faces that the
recognizer reads as that emotion on its own (:func:`faces_by_emotion`): what a clip "shows" is what the model would
say of each face, which makes the corpus a check of the pipeline (tables, timelines, summaries, conditions), not of
the model.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from fer_utils.atomic import atomic_path
from fer_utils.recognizer import EmotionRecognizer
from fer_utils.scenes import cluttered_background, lfw_faces, paste_face
from fer_utils.video import save_table

# the two conditions' scripts: (emotion, seconds), repeated to the clip's length; None = no face (looking away)
SCRIPTS = {"comedy": [("neutral", 2.0), ("happy", 3.0), ("neutral", 1.0), ("surprise", 1.0), ("happy", 2.0),
                      (None, 1.0)],
           "drama": [("neutral", 2.0), ("sad", 3.0), ("angry", 1.0), ("neutral", 1.0), ("sad", 2.0), (None, 1.0)]}
SIZE = (320, 240)  # width, height: small frames keep the generated corpus quick to write and to analyse
FACE_SIDE = 130


def write_clip(path: str | os.PathLike, frames, fps: float = 10.0) -> Path:
    """Write BGR frames (an iterable) as an mp4 (mp4v) atomically; returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        writer = None
        for frame in frames:
            if writer is None:
                writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), fps, (frame.shape[1], frame.shape[0]))
            writer.write(frame)
        if writer is None:
            raise ValueError(f"no frames to write to {path}")
        writer.release()
    return path


@lru_cache(maxsize=4)
def faces_by_emotion(model: str | None = None, detector: str = "blazeface") -> dict[str, tuple[int, ...]]:
    """LFW face indices the recognizer finds alone in a scene and reads as each emotion, surest first."""
    recognizer, lfw = EmotionRecognizer(model, detector), lfw_faces()
    background = cluttered_background(SIZE[1], SIZE[0], 0)
    found: dict[str, list[tuple[float, int]]] = {}
    for i, face in enumerate(lfw):
        frame = background.copy()
        paste_face(frame, face, 95, 55, FACE_SIDE)
        faces = recognizer.predict(frame)
        if len(faces) == 1:
            found.setdefault(faces[0].emotion, []).append((-faces[0].score, i))
    return {e: tuple(i for _, i in sorted(v)) for e, v in found.items()}


def scripted_frames(script: list[tuple[str | None, float]], seconds: float, fps: float = 10.0, seed: int = 0,
                    faces: dict[str, tuple[int, ...]] | None = None):
    """Stream the BGR frames of a clip of ``seconds`` whose one face follows ``script`` (repeated), drifting slowly
    on a cluttered background; ``seed`` picks the background, the path and which face shows each emotion."""
    faces = faces_by_emotion() if faces is None else faces
    missing = sorted({e for e, _ in script if e is not None} - set(faces))
    if missing:
        raise ValueError(f"no generated face reads as {missing[0]}; use a script of {sorted(faces)}")
    rng = np.random.default_rng(seed)
    background, lfw = cluttered_background(SIZE[1], SIZE[0], seed), lfw_faces()
    pick = {e: v[int(rng.integers(min(3, len(v))))] for e, v in faces.items()}
    ends = np.cumsum([s for _, s in script])
    x0, y0 = int(rng.integers(20, SIZE[0] - FACE_SIDE - 20)), int(rng.integers(10, SIZE[1] - FACE_SIDE - 10))
    for t in range(round(seconds * fps)):
        emotion = script[int(np.searchsorted(ends, (t / fps) % ends[-1], side="right"))][0]
        frame = background.copy()
        if emotion is not None:
            dx, dy = 12 * np.sin(t / fps * 0.7), 6 * np.cos(t / fps * 0.5)  # a slow drift, as a seated person's
            paste_face(frame, lfw[pick[emotion]], int(x0 + dx), int(y0 + dy), FACE_SIDE)
        yield frame


def write_corpus(folder: str | os.PathLike, participants: int = 4, seconds: float = 20.0, fps: float = 10.0,
                 seed: int = 0) -> Path:
    """Write a SYNTHETIC corpus: ``participants`` people, each filmed in both conditions (comedy, drama) for
    ``seconds``, as ``folder/P<k>_<condition>.mp4``, and the list ``folder/videos.csv`` (path, participant,
    condition, session) that ``corpus`` reads; returns the list's path."""
    folder = Path(folder)
    faces = faces_by_emotion()
    rows = []
    for k in range(participants):
        for c, condition in enumerate(SCRIPTS):
            name = f"P{k + 1:02d}_{condition}.mp4"
            write_clip(folder / name, scripted_frames(SCRIPTS[condition], seconds, fps, seed + 10 * k + c, faces), fps)
            rows.append({"path": name, "participant": f"P{k + 1:02d}", "condition": condition, "session": c + 1})
    save_table(pd.DataFrame(rows), folder / "videos.csv")
    return folder / "videos.csv"
