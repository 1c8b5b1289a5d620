"""Labelled face collections in other datasets' conventions (CK+, JAFFE, KDEF, RAF-DB, AffectNet, a study's own
recordings) as :class:`~fer_utils.loader.FERData`, to score a FER2013 model on other faces or fine-tune it.

A face's emotion comes from, first to last:

- a label file (``labels=``, or a ``labels.csv`` in the collection's folder): CSV, TSV or space-separated ``path
  label`` lines, or a header naming its path and label columns (AffectNet's ``subDirectory_filePath,...,expression``);
  names, or numeric codes in a named order (``convention=``: :data:`CONVENTIONS`);
- the nearest folder above the image named by an emotion, at any depth (``anger/``, ``Happiness/``, ``train/sad/``;
  numeric folders such as AffectNet's ``0/`` ... ``7/`` under a convention);
- the file-name codes of KDEF (``AF01ANS.JPG``: session, sex, id, expression, angle) and JAFFE (``KA.AN1.39.tiff``).

Emotions outside the seven (contempt; AffectNet's none, uncertain, non-face) are left out and counted, as are
images with no label among labelled ones ("unlabelled"; an unknown name beside emotion folders is an error). An image
that is not a 48x48 gray face is face-detected and cropped exactly as :class:`~fer_utils.recognizer.EmotionRecognizer`
crops (:func:`fer_utils.detector.locate_faces`), keeping the largest face where there are several. Many collections are
face crops already, with the face filling the frame, too tight for the detector, so where it finds none:

- it looks again in the image framed by a border (:data:`PAD` of its longer side, edges replicated);
- failing that, an image shaped like a face crop (:func:`is_crop_shaped`) is taken whole as the face.

These, and the largest of several faces, are kept and counted (``data.collection["kept"]``); an image with no face
that is not crop-shaped, or unreadable, is skipped and counted (``"skipped"``). ``crops=True`` (``--crops``) takes
every image whole, without detection, for collections known to be crops (RAF-DB aligned, AffectNet). Splits: under a
``train/`` or ``training/`` folder (or named ``train_*``, as RAF-DB names its files) Training, everything else Test.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from fer_utils.atomic import write_atomic
from fer_utils.constants import DOWNLOAD_HINT, EMOTIONS, SIDE
from fer_utils.detector import DEFAULT_DETECTOR, Detector, build_detector, locate_faces
from fer_utils.images import crop_faces, read_image, to_gray
from fer_utils.loader import FER2013_FILES, IMAGE_SUFFIXES, MERGED_TEST, FERData, FERDataError, load_fer2013

SPELLINGS = {
    "angry": ("angry", "anger"),
    "disgust": ("disgust", "disgusted"),
    "fear": ("fear", "fearful", "afraid"),
    "happy": ("happy", "happiness"),
    "sad": ("sad", "sadness"),
    "surprise": ("surprise", "surprised"),
    "neutral": ("neutral",),
}
LEFT_OUT = ("contempt", "none", "uncertain", "non-face")  # labelled, but none of the seven: counted, not scored
_NAMES = {s: e for e, spellings in SPELLINGS.items() for s in spellings} | {n: n for n in LEFT_OUT}

# numeric codes -> emotion, in each dataset's own order
CONVENTIONS = {
    "fer2013": dict(enumerate(EMOTIONS)),
    "rafdb": {1: "surprise", 2: "fear", 3: "disgust", 4: "happy", 5: "sad", 6: "angry", 7: "neutral"},
    "affectnet": {0: "neutral", 1: "happy", 2: "sad", 3: "surprise", 4: "fear", 5: "disgust", 6: "angry",
                  7: "contempt", 8: "none", 9: "uncertain", 10: "non-face"},
}
ACCEPTED = ("angry/anger, disgust/disgusted, fear/fearful/afraid, happy/happiness, sad/sadness, surprise/surprised, "
            "neutral (any case), contempt (left out), or numeric codes with a convention: fer2013 (0-6), rafdb (1-7), "
            "affectnet (0-7; 8-10 left out)")

_CODES = {"AF": "fear", "AN": "angry", "DI": "disgust", "FE": "fear", "HA": "happy", "NE": "neutral", "SA": "sad",
          "SU": "surprise"}
_KDEF = re.compile(r"^[AB][FM]\d\d(AF|AN|DI|HA|NE|SA|SU)(S|HL|HR|FL|FR)\.\w+$", re.IGNORECASE)
_JAFFE = re.compile(r"^[A-Z]{2}\.(AN|DI|FE|HA|NE|SA|SU)\d+\.\d+\.\w+$", re.IGNORECASE)

LABEL_FILE = "labels.csv"  # a collection's own label file, read without labels=
PATH_COLUMNS = ("path", "file", "filename", "file_name", "image", "image_path", "image_name", "img", "name",
                "subdirectory_filepath")
LABEL_COLUMNS = ("label", "emotion", "expression", "class", "category")
TRAIN_FOLDERS, TEST_FOLDERS = {"train", "training"}, {"test", "val", "valid", "validation"}
SKIP_REASONS = ("no face", "unreadable")  # no face in an image not shaped like a crop; not an image
KEPT_HOW = ("padded", "several faces", "whole image")  # faces kept, counted, that the detector alone gives no one of
MIN_FACE_SIZE = 40  # pixels, EmotionRecognizer's default; the smallest side of an image taken whole, too
# of the longer side, edges replicated: of the 1,651 tight 176-px crops of wild-faces where Haar finds no face, it then
# finds one in 1,290 (0.15: 1,261; 0.25: 1,269; 0.4: 1,280; 0.5: 1,272; a gray border 0.35: 1,271, mirrored: 1,197)
PAD = 0.35
# width / height of an image taken whole when no face is found: 4:5 to 5:4, so 4:3 and 3:4 photos are not
CROP_ASPECT = (0.8, 1.25)


def load_faces(path: str | os.PathLike, labels: str | os.PathLike | None = None, *, convention: str | None = None,
               detector: str | Detector = DEFAULT_DETECTOR, report_skipped: str | os.PathLike | None = None,
               crops: bool = False) -> FERData:
    """Every labelled face of a collection folder as 48x48 gray faces, with each face's file in ``files``.

    Args:
        path: the collection's folder (the one a label file's paths are relative to), or any FER2013 layout,
            which :func:`~fer_utils.loader.load_fer2013` reads unchanged.
        labels: a label file (CSV, TSV or ``path label`` lines); without it, the folder's own ``labels.csv`` if it
            has one, else folder names and file-name codes.
        convention: the order of numeric codes: ``"fer2013"``, ``"rafdb"`` or ``"affectnet"`` (names need none).
        detector: finds the face in images that are not 48x48 gray faces (a name or a Detector, as the recognizer).
        report_skipped: a CSV file to write the skipped images to (``file,reason``).
        crops: every image is a face crop already (RAF-DB aligned, AffectNet): no detection, each image taken whole.

    ``data.collection`` says the folder, the convention, ``crops``, what was left out and skipped, and the faces kept
    in other ways than the detector's one face (``"kept"``: :data:`KEPT_HOW`).
    """
    if convention is not None and convention not in CONVENTIONS:
        raise ValueError(f"convention {convention!r} is unknown; expected one of {list(CONVENTIONS)}")
    root = Path(path)
    if not root.exists():
        raise FERDataError(f"{root} not found: pass FER2013 (a file or folder) or a folder of labelled faces. "
                           f"{DOWNLOAD_HINT}")
    if labels is None and (root.is_file() or _is_fer2013(root)):
        if root.is_file():
            _refuse_label_file(root)
        data = load_fer2013(root)
        if report_skipped is not None:
            _write_skipped(report_skipped, [])  # FER2013's faces are crops already: none skipped
        return data
    if root.is_file():
        raise FERDataError(f"with a label file, the collection must be the folder its paths are relative to; {root} "
                           "is a file")
    if labels is None and (root / LABEL_FILE).is_file():
        labels = root / LABEL_FILE
    if labels is not None and not Path(labels).is_file():
        raise FERDataError(f"label file {labels} not found")
    images = sorted(f for f in root.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()
                    and not any(p.startswith(".") for p in f.relative_to(root).parts))
    if not images:
        raise FERDataError(f"{root}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in it or its folders")
    if labels is not None:
        named, how = _from_label_file(Path(labels), root, images, convention)
    else:
        named, how = _from_names(root, images, convention)
    info = {"root": str(root), "labels": None if labels is None else str(labels), "convention": how,
            "crops": crops, "left_out": dict(Counter(e for _, e in named if e not in EMOTIONS))}
    return _faces(root, [(f, e) for f, e in named if e in EMOTIONS], info, detector, report_skipped)


def _faces(root: Path, named: list[tuple[Path, str]], info: dict, detector: str | Detector,
           report_skipped: str | os.PathLike | None) -> FERData:
    """The collection's FERData from its labelled images: each read, and cropped where it is not a face already."""
    if not named:
        raise FERDataError(f"{root}: none of its labelled images shows one of the seven emotions (left out "
                           f"{', '.join(f'{n} {e}' for e, n in info['left_out'].items())})")
    faces, how = _read_faces([f for f, _ in named], None if info["crops"] else detector)
    skipped = [(f, why) for (f, _), face, why in zip(named, faces, how, strict=True) if face is None]
    info["kept"] = {k: sum(k == h for face, h in zip(faces, how, strict=True) if face is not None) for k in KEPT_HOW}
    info["skipped"] = {r: sum(r == why for _, why in skipped) for r in SKIP_REASONS}
    if report_skipped is not None:
        _write_skipped(report_skipped, [(f.relative_to(root).as_posix(), why) for f, why in skipped])
    keep = [k for k, face in enumerate(faces) if face is not None]
    if not keep:
        raise FERDataError(f"{root}: no face found in any of its {len(named)} labelled images ({summary(info)}); "
                           f"faces must be frontal and at least {MIN_FACE_SIZE} px, or already 48x48 gray crops")
    files = np.array([named[k][0].relative_to(root).as_posix() for k in keep])
    emotions = np.array([EMOTIONS.index(named[k][1]) for k in keep], np.int8)
    data = FERData(np.stack([faces[k] for k in keep]), emotions, np.array([_split(f) for f in files], "<U11"),
                   str(root), notes={"collection": info}, files=files)
    present = sorted(set(data.emotions.tolist()))
    print(f"{data.label}: {len(data)} faces of {len(present)} emotion{'s' * (len(present) > 1)} ({info['convention']}); "
          f"{summary(info)}")
    if len(present) == 1:
        print(f"warning: every face of {data.label} is {EMOTIONS[present[0]]}: accuracy is that emotion's recall, "
              "and macro-F1 covers it alone")
    return data


def summary(info: dict) -> str:
    """One line of what a collection left out, kept in other ways than the detector's one face, and skipped, from
    ``data.collection``."""
    out = ", ".join(f"{n} {label}" for label, n in sorted(info["left_out"].items()))
    skipped = {r: n for r, n in info["skipped"].items() if n}
    line = f"left out {out or 'nothing'}; "
    words = {"padded": "found once padded", "several faces": "with several faces: the largest kept",
             "whole image": "taken whole" + (" (crops)" if info.get("crops") else " (crop-shaped, no face found)")}
    if kept := [f"{n} {words[k]}" for k, n in info.get("kept", {}).items() if n]:
        line += ", ".join(kept) + "; "
    if not skipped:
        return line + "skipped nothing"
    return line + f"skipped {sum(skipped.values())} image(s): " + ", ".join(f"{n} {r}" for r, n in skipped.items())


# ----------------------------------------------------------------------------------------------- labels


def emotion_of(label: str, convention: str | None = None, where: str = "label") -> str:
    """The emotion a label names: one of the seven (``"anger"`` -> ``"angry"``), or one of :data:`LEFT_OUT`.
    Numbers are codes in ``convention``'s order; anything else is a FERDataError naming ``where``."""
    text = str(label).strip()
    if text.lower() in _NAMES:
        return _NAMES[text.lower()]
    code = _code(text)
    if code is None:
        raise FERDataError(f"{where}: label {text!r} is not an emotion; accepted: {ACCEPTED}")
    if convention is None:
        raise FERDataError(f"{where}: label {text!r} is a numeric code; say whose order with convention= "
                           f"(--convention): {', '.join(CONVENTIONS)}")
    if code not in CONVENTIONS[convention]:
        codes = sorted(CONVENTIONS[convention])
        raise FERDataError(f"{where}: code {text!r} is not in the {convention} order ({codes[0]}-{codes[-1]}); "
                           f"accepted: {ACCEPTED}")
    return CONVENTIONS[convention][code]


def _code(text: str) -> int | None:
    """An integer code from ``"3"``, ``"3.0"`` or ``"3.0000000e+00"`` (CK+'s files); None if not a number."""
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() and value >= 0 else None


def _from_label_file(labels: Path, root: Path, images: list[Path], convention: str | None
                     ) -> tuple[list[tuple[Path, str]], str]:
    rows = _label_rows(labels)
    by_path = {f.relative_to(root).as_posix(): f for f in images}
    by_name, by_stem = {}, {}
    for f in images:  # RAF-DB lists train_00001.jpg; its aligned faces are train_00001_aligned.jpg
        by_name.setdefault(f.name, []).append(f)
        by_stem.setdefault(f.stem.removesuffix("_aligned"), []).append(f)
    named, missing, seen, kinds = [], [], {}, {}
    for line, entry, label in rows:
        where = f"{labels} line {line} ({entry})"
        emotion = emotion_of(label, convention, where)
        kinds.setdefault("code" if _code(label.strip()) is not None else "name", (line, label))
        if len(kinds) > 1:
            (a, x), (b, y) = kinds["name"], kinds["code"]
            raise FERDataError(f"{labels}: mixed conventions: line {a} names {x!r}, line {b} gives the code {y!r}; "
                               "use names or one numeric convention throughout")
        found = _find(entry, root, by_path, by_name, by_stem, where)
        if found is None:
            missing.append((line, entry))
            continue
        if found in seen:
            raise FERDataError(f"{labels}: lines {seen[found]} and {line} both label {found.relative_to(root)}")
        seen[found] = line
        named.append((found, emotion))
    if missing:
        line, entry = missing[0]
        raise FERDataError(f"{labels}: {len(missing)} of its images are not under {root}, e.g. {entry!r} (line {line}); "
                           "pass the folder its paths are relative to as the collection (--data)")
    return sorted(named), (convention if "code" in kinds else "names")


def _label_rows(labels: Path) -> list[tuple[int, str, str]]:
    """(line number, path, label) of each row of a CSV, TSV or space-separated label file."""
    try:
        text = labels.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise FERDataError(f"label file {labels} cannot be read as text ({e})") from e
    lines = [(k, s) for k, s in enumerate(text.splitlines(), 1) if s.strip() and not s.lstrip().startswith("#")]
    if not lines:
        raise FERDataError(f"label file {labels} has no rows; expected 'path label' lines or a CSV with a header")
    sep = "," if "," in lines[0][1] else "\t" if "\t" in lines[0][1] else None

    def fields(s: str, n: int) -> list[str]:
        if sep:
            return [f.strip() for f in next(csv.reader([s], delimiter=sep))]
        return s.rsplit(None, 1) if n == 2 else s.split()  # with two fields, the path may hold spaces

    head = [f.lower() for f in fields(lines[0][1], 0)]
    n, cols = 2, (0, 1)  # no header: path, label
    if set(head) & set(LABEL_COLUMNS):
        label_col = next(i for i, h in enumerate(head) if h in LABEL_COLUMNS)
        path_cols = [i for i, h in enumerate(head) if h in PATH_COLUMNS] or ([1 - label_col] if len(head) == 2 else [])
        if not path_cols:
            raise FERDataError(f"{labels}: its header {head} has no path column; expected one of {list(PATH_COLUMNS)}")
        n, cols, lines = len(head), (path_cols[0], label_col), lines[1:]
    rows = []
    for k, s in lines:
        row = fields(s, n)
        if len(row) != n:
            raise FERDataError(f"{labels} line {k}: expected {n} fields ('path label', or the columns of a header "
                               f"naming {'/'.join(LABEL_COLUMNS[:3])} and {'/'.join(PATH_COLUMNS[:3])}); got {s[:80]!r}")
        rows.append((k, row[cols[0]], row[cols[1]]))
    return rows


def _find(entry: str, root: Path, by_path: dict, by_name: dict, by_stem: dict, where: str) -> Path | None:
    """The image a label file's entry names: by its path under ``root``, else by a file name (or stem) that is unique."""
    entry = entry.replace("\\", "/").removeprefix("./")
    if Path(entry).is_absolute():
        try:
            entry = Path(entry).relative_to(root.resolve()).as_posix()
        except ValueError:
            return None
    if entry in by_path:
        return by_path[entry]
    name = entry.rsplit("/", 1)[-1]
    for index, key in ((by_name, name), (by_stem, Path(name).stem)):
        hits = index.get(key, [])
        if len(hits) > 1:
            raise FERDataError(f"{where}: {len(hits)} images are named so under {root} ({hits[0].relative_to(root)}, "
                               f"{hits[1].relative_to(root)}); pass the folder that holds one of them")
        if hits:
            return hits[0]
    return None


def _from_names(root: Path, images: list[Path], convention: str | None) -> tuple[list[tuple[Path, str]], str]:
    """Labels from folder names (nearest first) and KDEF / JAFFE file names; they must agree where both exist."""
    named, unlabelled, label_parents, how = [], [], set(), set()
    for f in images:
        parts = f.relative_to(root).parts
        folder = _nearest_label_folder(parts, convention)
        code = _file_code(f.name)
        if folder and code and folder[1] != code[1]:
            raise FERDataError(f"{f}: mixed conventions: its folder {parts[folder[0]]!r} says {folder[1]}, its "
                               f"{code[0]} file name says {code[1]}")
        if folder:
            label_parents.add(parts[:folder[0]])
            how.add("folders" if _code(parts[folder[0]]) is None else f"folders:{convention}")
            named.append((f, folder[1]))
        elif code:
            how.add(code[0])
            named.append((f, code[1]))
        else:
            unlabelled.append(f)
    for f in unlabelled:
        parts = f.relative_to(root).parts
        for i, name in enumerate(parts[:-1]):
            if i == len(parts) - 2 and len(name) <= 2 and name.isdigit():  # AffectNet's 0/ ... 7/, say
                raise FERDataError(f"{root / Path(*parts[:i + 1])}: folder name {name!r} is a numeric code; say whose "
                                   f"order with convention= (--convention): {', '.join(CONVENTIONS)}")
            if parts[:i] in label_parents and name.lower() not in TRAIN_FOLDERS | TEST_FOLDERS:
                raise FERDataError(f"{root / Path(*parts[:i + 1])}: folder name {name!r} is not an emotion; "
                                   f"accepted: {ACCEPTED}")
    if not named:
        raise FERDataError(f"{root}: no image has a label: put them in folders named by emotion (angry/, happy/, ...), "
                           "give a label file (--labels), or keep KDEF's or JAFFE's file names")
    named += [(f, "unlabelled") for f in unlabelled]
    return named, "+".join(sorted(how))


def _nearest_label_folder(parts: tuple[str, ...], convention: str | None) -> tuple[int, str] | None:
    """(index in ``parts``, emotion) of the nearest folder above a file named by an emotion; None if none is."""
    for i in range(len(parts) - 2, -1, -1):
        if emotion := _folder_emotion(parts[i], convention):
            return i, emotion
    return None


def _folder_emotion(name: str, convention: str | None) -> str | None:
    key = name.strip().lower()
    if key in _NAMES:
        return _NAMES[key]
    code = _code(key)
    if convention is not None and code is not None and str(code) == key:  # "3", not a session folder like "003"
        return emotion_of(key, convention, f"folder {name!r}")
    return None


def _file_code(name: str) -> tuple[str, str] | None:
    """("kdef" or "jaffe", emotion) for a KDEF or JAFFE file name; None for any other name."""
    if m := _KDEF.match(name):
        return "kdef", _CODES[m.group(1).upper()]
    if m := _JAFFE.match(name):
        return "jaffe", _CODES[m.group(1).upper()]
    return None


def _split(file: str) -> str:
    """Training under a train/ folder (nearest of train/ and test/ wins) or for RAF-DB's train_* names; else Test."""
    *folders, name = file.lower().split("/")
    for folder in reversed(folders):
        if folder in TRAIN_FOLDERS:
            return "Training"
        if folder in TEST_FOLDERS:
            return MERGED_TEST
    return "Training" if name.startswith("train_") else MERGED_TEST


# ----------------------------------------------------------------------------------------------- faces


def _read_faces(files: list[Path], detector: str | Detector | None) -> tuple[list[np.ndarray | None], list[str | None]]:
    """Each file's 48x48 face (None where skipped) and :func:`face_of`'s note on it; ``detector`` None takes each
    image whole (``crops``). Threads, as OpenCV releases the GIL."""
    found = None if detector is None else build_detector(detector, min_size=MIN_FACE_SIZE)
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        results = list(pool.map(lambda f: face_of(f, found), files))
    return [face for face, _ in results], [how for _, how in results]


def face_of(path: str | os.PathLike, detector: Detector | None) -> tuple[np.ndarray | None, str | None]:
    """(the 48x48 gray face of an image file, how it was found) or (None, why it has none: one of
    :data:`SKIP_REASONS`). ``how`` is None for a 48x48 gray face or the detector's one face, else one of :data:`KEPT_HOW`.

    A 48x48 gray image (or three equal channels) is a face already. Any other is taken whole with ``detector`` None;
    else detected and cropped the recognizer's way (faces of at least 40 px, the largest of several), then, where
    there is none, detected again in the image framed by a border (:func:`locate_padded`), then taken whole if it is
    shaped like a face crop (:func:`is_crop_shaped`)."""
    try:
        image = read_image(path)  # BGR, as the recognizer reads photos
    except (ValueError, OSError):
        return None, "unreadable"
    if image.shape[:2] == (SIDE, SIDE) and np.ptp(image.astype(np.int16), axis=2).max() <= 4:  # gray, JPEG's rounding
        return to_gray(image), None
    if detector is None:
        return whole_face(image), "whole image"
    for pad in (0.0, PAD):
        _, crops = locate_padded(detector, image, pad)
        if len(crops):
            return crops[0], "several faces" if len(crops) > 1 else ("padded" if pad else None)
    if is_crop_shaped(image):
        return whole_face(image), "whole image"
    return None, "no face"


def locate_padded(detector: Detector, image: np.ndarray, pad: float = PAD) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~fer_utils.detector.locate_faces` (largest first, at least 40 px) on a BGR image framed by a border of
    ``pad`` times its longer side, edges replicated, so that a face filling the frame has the margin the detector
    needs. Boxes are in the image's own pixels (they may reach past its edges); the crops are cut from the framed
    image, which is what :func:`~fer_utils.images.crop_faces` cuts from the image itself (it replicates edges too)."""
    p = round(pad * max(image.shape[:2]))
    framed = cv2.copyMakeBorder(image, p, p, p, p, cv2.BORDER_REPLICATE) if p else image
    boxes, crops = locate_faces(detector, framed, min_face_size=MIN_FACE_SIZE)
    return boxes - np.array([p, p, 0, 0]), crops


def is_crop_shaped(image: np.ndarray) -> bool:
    """Shaped like a face crop: width / height within :data:`CROP_ASPECT` (4:5 to 5:4) and at least 40 px a side."""
    h, w = image.shape[:2]
    return min(h, w) >= MIN_FACE_SIZE and CROP_ASPECT[0] <= w / h <= CROP_ASPECT[1]


def whole_face(image: np.ndarray) -> np.ndarray:
    """A BGR image taken whole as a face: gray, squared about its centre (edges replicated) and resized to 48x48, as
    :func:`~fer_utils.images.crop_faces` crops a box the size of the image."""
    h, w = image.shape[:2]
    return crop_faces(image, np.array([[0, 0, w, h]]))[0]


def _write_skipped(path: str | os.PathLike, skipped: list[tuple[str, str]]) -> None:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["file", "reason"])
    writer.writerows(skipped)
    write_atomic(path, out.getvalue())


# ----------------------------------------------------------------------------------------------- FER2013 layouts


def _is_fer2013(folder: Path) -> bool:
    """A FER2013 layout: one of its CSVs, or train/ and test/ holding only FER2013's seven folders of 48x48 images."""
    if any((folder / name).is_file() for name in FER2013_FILES):
        return True
    csvs = sorted(folder.glob("*.csv")) + sorted(folder.glob("*.csv.gz"))
    if len(csvs) == 1 and "pixels" in _header(csvs[0]):
        return True
    subs = [s for part in ("train", "test") if (folder / part).is_dir() for s in (folder / part).iterdir() if s.is_dir()]
    if not subs or any(s.name.lower() not in EMOTIONS for s in subs):
        return False
    first = next((f for s in sorted(subs) for f in sorted(s.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES), None)
    try:
        return first is None or read_image(first).shape[:2] == (SIDE, SIDE)
    except ValueError:
        return True  # load_fer2013 names the unreadable image


def _header(file: Path) -> list[str]:
    try:
        with (gzip.open(file, "rt") if file.name.endswith(".gz") else open(file)) as f:
            return [c.strip() for c in f.readline(4096).split(",")]
    except (OSError, UnicodeDecodeError, EOFError):
        return []


def _refuse_label_file(file: Path) -> None:
    """A label file passed as the collection: say how to pass it, rather than load_fer2013's 'wrong columns'."""
    label_file = file.suffix.lower() in (".txt", ".tsv") or (
        file.suffix.lower() == ".csv" and (head := _header(file)) and "pixels" not in head)
    if label_file:
        raise FERDataError(f"{file} looks like a label file, not FER2013: pass it as labels= (--labels) and the folder "
                           "of its images as the collection (--data)")


# ----------------------------------------------------------------------------------------------- a generated one
