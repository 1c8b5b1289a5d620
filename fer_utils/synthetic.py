"""The embedded default: synthetic FER-shaped faces, drawn procedurally, so everything runs without FER2013
(:func:`fer_utils.data.load_data` picks FER2013 when one is found and this default otherwise).

Each emotion is a cartoon recipe (mouth curve and opening, eye opening, brow height and slant) blurred by random
pose, lighting, noise and per-face jitter so that the classes overlap a little, like real expressions do.
These are NOT real faces: anything trained or measured on them says nothing about FER2013.

:func:`write_shifted_collection` writes another look of such faces as a labelled collection on disk (folders named by
emotion, several faces per generated person): what fine-tuning a FER2013 model on faces of your own is shown with.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np

from fer_utils.atomic import atomic_folder
from fer_utils.constants import EMOTIONS, SIDE
from fer_utils.loader import FERData

# Class proportions of FER2013's Training split (angry ... neutral).
FER2013_PROPORTIONS = np.array([3995, 436, 4097, 7215, 4830, 3171, 4965], float) / 28709
SPLIT_FRACTIONS = {"Training": 0.8, "PublicTest": 0.1, "PrivateTest": 0.1}

# mouth curve (+ smile), mouth opening, mouth width, eye opening, brow raise, brow slant (+ inner ends down)
_RECIPES = {
    "angry": (-0.15, 0.05, 0.85, 0.75, -1.0, 1.0),
    "disgust": (-0.45, 0.15, 0.75, 0.55, -0.6, 0.6),
    "fear": (-0.25, 0.55, 1.15, 1.35, 0.9, -0.7),
    "happy": (1.0, 0.3, 1.15, 0.8, 0.0, 0.0),
    "sad": (-0.85, 0.0, 0.8, 0.7, 0.1, -1.0),
    "surprise": (0.0, 1.0, 0.6, 1.5, 1.4, 0.0),
    "neutral": (0.0, 0.0, 0.9, 1.0, 0.0, 0.0),
}
_UP = 4  # draw at 4x and downsample, for anti-aliased 48x48 faces


def draw_face(emotion: int, rng: np.random.Generator, jitter: float = 0.25) -> np.ndarray:
    """One synthetic 48x48 uint8 face showing ``EMOTIONS[emotion]``."""
    curve, opening, width, eye, brow, slant = np.array(_RECIPES[EMOTIONS[emotion]]) + rng.normal(0, jitter, 6)
    s = SIDE * _UP
    bg = rng.uniform(20, 200)
    img = np.full((s, s), bg, np.float32)
    cx, cy = s / 2, s / 2 + 4 * _UP
    skin = float(np.clip(bg + rng.choice([-1, 1]) * rng.uniform(40, 110), 60, 235))
    cv2.ellipse(img, (int(cx), int(cy)), (int(17 * _UP), int(22 * _UP)), 0, 0, 360, skin, -1)
    hair = float(np.clip(skin - rng.uniform(50, 120), 0, 255))
    cv2.ellipse(img, (int(cx), int(cy - 14 * _UP)), (int(18 * _UP), int(10 * _UP)), 0, 180, 360, hair, -1)
    ink = float(np.clip(skin - rng.uniform(70, 130), 0, 255))
    thick = 2 * _UP
    for side in (-1, 1):
        ex, ey = cx + side * 7 * _UP, cy - 6 * _UP
        cv2.ellipse(img, (int(ex), int(ey)), (int(3.5 * _UP), max(1, int(1.6 * _UP * max(eye, 0.15)))), 0, 0, 360, ink, -1)
        inner = (ex - side * 4 * _UP, ey - (5 + 2 * brow - 1.5 * slant) * _UP)
        outer = (ex + side * 4 * _UP, ey - (5 + 2 * brow + 1.5 * slant) * _UP)
        cv2.line(img, tuple(int(v) for v in inner), tuple(int(v) for v in outer), ink, thick)
    _nose_and_mouth(img, emotion, cx, cy, (10, 7 * max(width, 0.3), 3.5 * curve, 4 * max(opening, 0)), ink,
                    (ink * 0.6, ink), thick)
    # pose, lighting and sensor noise
    m = cv2.getRotationMatrix2D((s / 2, s / 2), rng.normal(0, 8), rng.uniform(0.85, 1.1))
    m[:, 2] += rng.normal(0, 2.5 * _UP, 2)
    img = cv2.warpAffine(img, m, (s, s), borderMode=cv2.BORDER_REPLICATE)
    img = cv2.resize(img, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    gy, gx = np.mgrid[0:SIDE, 0:SIDE] / SIDE - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    img = img * rng.uniform(0.7, 1.2) + rng.uniform(-40, 40) * (np.cos(angle) * gx + np.sin(angle) * gy)
    img += rng.normal(0, rng.uniform(2, 10), img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _nose_and_mouth(img: np.ndarray, emotion: int, cx: float, cy: float, mouth: tuple[float, float, float, float],
                    ink: float, colours: tuple[float, float], thick: int) -> None:
    """A wrinkled nose for disgust, and the mouth: ``mouth`` is (drop below the centre, half width, bend, opening)
    in units of ``_UP``; ``colours`` are the open mouth's fill and the lips' line."""
    if EMOTIONS[emotion] == "disgust":
        for dx in (-2, 2):
            cv2.line(img, (int(cx + dx * _UP), int(cy)), (int(cx + 2 * dx * _UP), int(cy + 2 * _UP)), ink, _UP)
    drop, half, bend, gap = (v * _UP for v in mouth)
    xs = np.linspace(-1, 1, 24)
    lip = np.stack([cx + xs * half, cy + drop - bend * (xs**2 - 0.3)], axis=1)
    if gap > _UP:
        lower = lip + np.stack([np.zeros_like(xs), gap * (1 - xs**2)], axis=1)
        cv2.fillPoly(img, [np.concatenate([lip, lower[::-1]]).astype(np.int32)], colours[0])
    cv2.polylines(img, [lip.astype(np.int32)], False, colours[1], thick)


def make_synthetic(n: int = 3500, seed: int = 0) -> FERData:
    """``n`` synthetic faces with FER2013's emotion proportions and a 80/10/10 Training/PublicTest/PrivateTest split.

    Deterministic: the same ``n`` and ``seed`` give the same bytes.
    """
    if n < len(EMOTIONS):
        raise ValueError(f"n={n} is too small: need at least {len(EMOTIONS)} faces, one per emotion")
    rng = np.random.default_rng(seed)
    emotions = rng.choice(len(EMOTIONS), size=n, p=FER2013_PROPORTIONS).astype(np.int8)
    emotions[: len(EMOTIONS)] = np.arange(len(EMOTIONS))  # every emotion present, even for tiny n
    images = np.stack([draw_face(int(e), rng) for e in emotions])
    names = list(SPLIT_FRACTIONS)
    splits = np.array(names, "<U11")[rng.choice(3, size=n, p=list(SPLIT_FRACTIONS.values()))]
    for i, name in enumerate(names):  # every split non-empty
        splits[len(EMOTIONS) + i] = name
    return FERData(images, emotions, splits, f"synthetic(n={n}, seed={seed})", synthetic=True)


# ----------------------------------------------------------------------------------------------- a shifted collection

GENERATED_MARKER = "GENERATED.json"  # written into a generated collection: cards and notebooks say it is not real faces


def draw_portrait(emotion: int, person: dict, rng: np.random.Generator, jitter: float = 0.2) -> np.ndarray:
    """One 48x48 uint8 face of ``person`` (see :func:`_person`) showing ``EMOTIONS[emotion]``, in another look than
    :func:`draw_face`'s and FER2013's: a bigger face with outlines, white eyes, glasses on some people, each person's
    own resting expression, and a hard light from one side."""
    curve, opening, width, eye, brow, slant = (np.array(_RECIPES[EMOTIONS[emotion]]) + person["resting"]
                                               + rng.normal(0, jitter, 6))
    s = SIDE * _UP
    img = np.full((s, s), person["background"], np.float32)
    cx, cy, u = s / 2, s / 2 + 5 * _UP, _UP
    face_w, skin, hair = 21 * u * person["width"], person["skin"], person["hair"]
    ink = 0.25 * skin
    cv2.ellipse(img, (int(cx), int(cy)), (int(face_w), 27 * u), 0, 0, 360, skin, -1)
    cv2.ellipse(img, (int(cx), int(cy)), (int(face_w), 27 * u), 0, 0, 360, ink, int(1.2 * u))
    cv2.ellipse(img, (int(cx), int(cy - 17 * u)), (int(face_w + u), 12 * u), 0, 180, 360, hair, -1)
    thick = int(2.2 * u)
    for side in (-1, 1):
        ex, ey = cx + side * 8 * u * person["eye_gap"], cy - 7 * u
        cv2.ellipse(img, (int(ex), int(ey)), (4 * u, int(2.6 * u * max(eye, 0.2))), 0, 0, 360, 245.0, -1)
        cv2.circle(img, (int(ex), int(ey)), int(1.6 * u * min(max(eye, 0.3), 1.2)), ink, -1)
        if person["glasses"]:
            cv2.circle(img, (int(ex), int(ey)), int(5.5 * u), ink, u)
        inner = (ex - side * 4.5 * u, ey - (6 + 2.2 * brow - 1.6 * slant) * u)
        outer = (ex + side * 4.5 * u, ey - (6 + 2.2 * brow + 1.6 * slant) * u)
        cv2.line(img, tuple(int(v) for v in inner), tuple(int(v) for v in outer), hair, thick)
    _nose_and_mouth(img, emotion, cx, cy, (11, 8 * max(width, 0.3), 4 * curve, 5 * max(opening, 0)), ink,
                    (0.3 * skin, 0.5 * skin), thick)
    m = cv2.getRotationMatrix2D((s / 2, s / 2), rng.normal(0, 6), rng.uniform(0.95, 1.1))
    m[:, 2] += rng.normal(0, 1.5 * u, 2)
    img = cv2.warpAffine(img, m, (s, s), borderMode=cv2.BORDER_REPLICATE)
    img = cv2.resize(img, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    gy, gx = np.mgrid[0:SIDE, 0:SIDE] / SIDE - 0.5
    angle = person["light"] + rng.normal(0, 0.3)
    img *= 1 + 1.2 * (np.cos(angle) * gx + np.sin(angle) * gy)  # one side lit, the other in shadow
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _person(rng: np.random.Generator) -> dict:
    """What stays the same across one generated person's faces."""
    return {"skin": rng.uniform(90, 220), "hair": rng.uniform(10, 90), "background": rng.uniform(0, 255),
            "width": rng.uniform(0.9, 1.1), "eye_gap": rng.uniform(0.85, 1.15), "glasses": bool(rng.random() < 0.5),
            "light": rng.uniform(0, 2 * np.pi), "resting": rng.normal(0, 0.1, 6)}


def write_shifted_collection(folder: str | os.PathLike, people: int = 20, per_emotion: int = 3, seed: int = 0) -> Path:
    """Write a labelled face collection whose look differs from FER2013's (see :func:`draw_portrait`) and return
    its folder: ``per_emotion`` faces of each of ``people`` generated people for each emotion, as 48x48 gray PNGs in
    folders named by emotion, ``<emotion>/person<NN>_<k>.png`` (``--group-by 'person(\\d+)'`` keeps a person on one
    side of a hold-out). A model trained on FER2013 does poorly on them: what fine-tuning is for.

    Deterministic for ``seed``. Written whole or not at all (into a temp folder beside ``folder``, then renamed);
    a ``folder`` that already holds this very collection is left as it is. NOT real faces: the folder holds
    :data:`GENERATED_MARKER`, and cards of models trained on it say so.
    """
    folder = Path(folder)
    if people < 2 or per_emotion < 1:
        raise ValueError(f"people={people}, per_emotion={per_emotion}: need at least 2 people and 1 face each")
    about = {"generator": "fer_utils.synthetic.write_shifted_collection", "people": people,
             "per_emotion": per_emotion, "seed": seed, "note": "generated cartoon faces, not real ones"}
    if folder.exists():
        marker = folder / GENERATED_MARKER
        if marker.is_file() and json.loads(marker.read_text()) == about:
            return folder
        raise ValueError(f"{folder} exists and is not this generated collection; pass a new folder or delete it")
    rng = np.random.default_rng(seed)
    persons = [_person(rng) for _ in range(people)]
    with atomic_folder(folder) as tmp:
        for emotion in EMOTIONS:
            (tmp / emotion).mkdir()
            for p, person in enumerate(persons):
                for k in range(per_emotion):
                    face = draw_portrait(EMOTIONS.index(emotion), person, rng)
                    if not cv2.imwrite(str(tmp / emotion / f"person{p:02d}_{k}.png"), face):
                        raise OSError(f"could not write a PNG into {tmp / emotion}")
        (tmp / GENERATED_MARKER).write_text(json.dumps(about, indent=1))
    return folder


def write_ck_style_collection(folder: str | os.PathLike, per_emotion: int = 6, seed: int = 0) -> Path:
    """Write a small generated collection in CK+'s folder names (anger/, contempt/, ... sadness/, surprise/; no
    neutral) and return its folder: ``per_emotion`` synthetic 48x48 faces in each, plus three full-size photos in
    happy/: the astronaut (one real face, smiling: detected and cropped), clutter with no face (skipped and counted)
    and a scene with two faces (the largest kept, counted). Deterministic for a given ``seed``. NOT real expressions."""
    from fer_utils.scenes import astronaut_bgr, cluttered_background, make_scene  # scikit-image: the notebooks' extra

    folder = Path(folder)
    rng = np.random.default_rng(seed)
    names = {"anger": "angry", "contempt": "neutral", "disgust": "disgust", "fear": "fear", "happy": "happy",
             "sadness": "sad", "surprise": "surprise"}  # contempt has no synthetic recipe: neutral faces, left out
    for name, emotion in names.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for k in range(per_emotion):
            cv2.imwrite(str(folder / name / f"{name}_{k:03d}.png"), draw_face(EMOTIONS.index(emotion), rng))
    cv2.imwrite(str(folder / "happy" / "astronaut.jpg"), astronaut_bgr())
    cv2.imwrite(str(folder / "happy" / "clutter.jpg"), cluttered_background(240, 320, seed))
    cv2.imwrite(str(folder / "happy" / "two_faces.jpg"), make_scene(2, 240, 320, sizes=(90, 100), seed=seed)[0])
    return folder
