"""The one way in to data, and the one rule for its splits.

:func:`load_data` reads whatever a user points at: FER2013 in any layout (:func:`fer_utils.loader.load_fer2013`), a
labelled face collection (:func:`fer_utils.collection.load_faces`), ``"synthetic"``, or nothing: ``$FER2013_PATH``
or ``data/``, else the embedded synthetic default, said so.

Splits: models learn on Training and their epoch is chosen on PublicTest (:func:`validation_split`); a collection
of your own faces has no PublicTest, so its test/ folder, else a seeded hold-out of its faces, chooses the epoch
instead. A report without a split asked for is on PublicTest (:func:`report_split`): the split the shipped models
were chosen on and carded on, so every figure a user reruns matches a card; PrivateTest, the held-out test, is
scored only when asked for (``--split PrivateTest``), so that it stays untouched until a model is final.
"""

from __future__ import annotations

import os
import re
import warnings

import numpy as np

from fer_utils.collection import load_faces
from fer_utils.constants import DOWNLOAD_HINT, EMOTIONS
from fer_utils.loader import MERGED_TEST, FERData, FERDataError, find_dataset, load_fer2013
from fer_utils.synthetic import make_synthetic

HOLDOUT = "hold-out"  # the split name of the faces of a collection that chose the epoch and that its card is on


def load_data(path: str | os.PathLike | None = None, labels: str | os.PathLike | None = None, *,
              convention: str | None = None, report_skipped: str | os.PathLike | None = None, crops: bool = False,
              synthetic_size: int = 3500, seed: int = 0) -> FERData:
    """FER2013 or a labelled face collection at ``path``; ``"synthetic"`` for the embedded default; None: the
    FER2013 :func:`~fer_utils.loader.find_dataset` finds, else the embedded default (``synthetic_size`` faces drawn
    with ``seed``). ``labels``, ``convention``, ``report_skipped`` and ``crops`` are those of
    :func:`~fer_utils.collection.load_faces` and need a ``path``."""
    if path is not None and str(path) != "synthetic":
        return load_faces(path, labels, convention=convention, report_skipped=report_skipped, crops=crops)
    given = [k for k, v in (("labels", labels), ("convention", convention), ("report_skipped", report_skipped),
                            ("crops", crops)) if v]
    if given:
        raise ValueError(f"{', '.join(given)} need path=COLLECTION (--data FOLDER), the folder of the faces")
    found = find_dataset() if path is None else None
    if found is not None:
        return load_fer2013(found)
    opening = "No FER2013 found: using" if path is None else "Using"
    # standard output, as every line of the package for people (a notebook shows standard error as a warning);
    # a command with --json sends it to standard error
    print(f"{opening} the SYNTHETIC embedded default ({synthetic_size} generated faces). {DOWNLOAD_HINT}")
    return make_synthetic(synthetic_size, seed=seed)


# ----------------------------------------------------------------------------------------------- splits


def report_split(data: FERData) -> str | None:
    """The split a report is on when none is asked for: PublicTest (the merged Test of the image-folder release,
    which has no PublicTest of its own), or every face (None) of a collection."""
    if data.collection is not None:
        return None
    for name in ("PublicTest", MERGED_TEST):
        if name in data.split_names:
            return name
    raise FERDataError(f"{data.label} has no PublicTest (only {data.split_names}); pass a split, e.g. --split "
                       f"{data.split_names[-1]}")


def _validation_kind(data: FERData) -> str:
    """Which faces choose the epoch: the one branch behind :func:`validation_split` and :func:`validation_name`."""
    if "PublicTest" in data.split_names:
        return "PublicTest"
    if data.collection is None:
        return "Training tenth"
    if {"Training", MERGED_TEST} <= set(data.split_names):
        return "test folder"
    return HOLDOUT


def validation_split(data: FERData, seed: int = 0, *, holdout: float = 0.2,
                     group_by: str | None = None) -> tuple[FERData, FERData]:
    """(train, validation): Training and PublicTest. For a labelled face collection, its train/ and test/ folders
    where it has both, else its faces less a seeded ``holdout`` share of them (:func:`holdout_mask`: stratified by
    emotion; with ``group_by``, whole people, see :func:`people`). Other data without PublicTest: a seeded 10% of
    Training."""
    if group_by is not None and data.files is None:
        raise ValueError(f"group_by={group_by!r} needs the faces' file names, which {data.label} has not: it applies "
                         "to a collection of your own faces (--data FOLDER)")
    kind = _validation_kind(data)
    if kind == "PublicTest":
        return data.split("Training"), data.split("PublicTest")
    if kind == "Training tenth":
        train = data.split("Training")
        hold = np.zeros(len(train), bool)
        hold[np.random.default_rng(seed).permutation(len(train))[: max(1, len(train) // 10)]] = True
        return train.take(~hold), train.take(hold)
    present = np.unique(data.emotions[data.emotions >= 0])
    if len(present) < 2:
        raise ValueError(f"{data.label} has faces of one emotion only ({', '.join(EMOTIONS[e] for e in present)}): "
                         "training needs at least two emotions; add folders of the others")
    if kind == "test folder":
        if group_by is not None:
            warnings.warn(f"group_by={group_by!r} is not used: the collection's test/ folder is the hold-out",
                          stacklevel=2)
        return data.split("Training"), data.split(MERGED_TEST)
    hold = holdout_mask(data.emotions, holdout, seed, None if group_by is None else people(data.files, group_by))
    return data.take(~hold), data.take(hold)


def validation_name(data: FERData, holdout: float = 0.2, group_by: str | None = None) -> str:
    """What chooses the epoch in :func:`validation_split`, in words that follow "chosen on"."""
    kind = _validation_kind(data)
    if kind == "test folder":
        return "the collection's test/ folder"
    if kind == HOLDOUT:
        grouped = f", grouped by person (group_by {group_by})" if group_by else ""
        return f"a {holdout:.0%} {HOLDOUT} of the collection, stratified by emotion{grouped}"
    return "10% of Training" if kind == "Training tenth" else kind


def holdout_mask(emotions: np.ndarray, fraction: float, seed: int = 0, groups: np.ndarray | None = None) -> np.ndarray:
    """Which faces to hold out (a boolean mask): about ``fraction`` of each emotion's faces, seeded. With ``groups``
    (the person of each face) whole people: the first of ``round(1 / fraction)`` folds of scikit-learn's
    StratifiedGroupKFold, so that no person is on both sides. Every emotion is on both sides, or a ValueError says
    which is not and what to add."""
    emotions = np.asarray(emotions)
    present, counts = np.unique(emotions, return_counts=True)
    if (counts < 2).any():
        e, n = EMOTIONS[present[counts < 2][0]], counts[counts < 2][0]
        raise ValueError(f"too few faces for a hold-out of every emotion: {e} has {n}; each emotion needs at least 2 "
                         f"(one to learn from, one to test on): add faces of {e}, or move them out of the collection")
    hold = np.zeros(len(emotions), bool)
    if groups is None:
        rng = np.random.default_rng(seed)
        for e, n in zip(present, counts, strict=True):
            rows = rng.permutation(np.flatnonzero(emotions == e))
            hold[rows[: min(max(1, round(fraction * n)), n - 1)]] = True
        return hold
    # scikit-learn takes a second to import: only a hold-out of whole people needs it, not every load of data
    from sklearn.model_selection import StratifiedGroupKFold

    groups = np.asarray(groups)
    n_folds, n_people = max(2, round(1 / fraction)), len(np.unique(groups))
    if n_people < n_folds:
        raise ValueError(f"too few people for a hold-out of whole people: group_by found {n_people}, a {fraction:.0%} "
                         f"hold-out needs at least {n_folds}; add faces of more people, or raise holdout")
    folds = StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # an emotion with fewer faces than folds: checked below, where it matters
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        hold[next(folds.split(emotions, emotions, groups))[1]] = True
    for side, name in ((hold, "hold-out"), (~hold, "faces to learn from")):
        missing = np.setdiff1d(present, emotions[side])
        if len(missing):
            e = EMOTIONS[missing[0]]
            raise ValueError(f"too few faces for a hold-out of every emotion: grouped by person, the {name} have no "
                             f"{e} face; add {e} faces of more people")
    return hold


def people(files: np.ndarray, pattern: str) -> np.ndarray:
    """The person of each face: the first group of the regex ``pattern`` (else its whole match) searched in the
    face's file path. A path it does not match is a person of its own (counted in a warning); none matched is an
    error."""
    regex = re.compile(pattern)
    found = [regex.search(f) for f in files]
    unmatched = [str(f) for f, m in zip(files, found, strict=True) if m is None]
    if len(unmatched) == len(files):
        raise ValueError(f"group_by={pattern!r} matches none of the {len(files)} file names (e.g. {str(files[0])!r});"
                         r" its first group, or the whole match, names the person: e.g. '^(\w+?)_' for anna_happy_1.jpg")
    if unmatched:
        warnings.warn(f"group_by={pattern!r} matches {len(files) - len(unmatched)} of {len(files)} file names; the "
                      f"other {len(unmatched)} (e.g. {unmatched[0]!r}) count as a person each", stacklevel=2)
    first = 1 if regex.groups else 0
    return np.array([f"file {f}" if m is None else m.group(first) or m.group(0) for f, m in zip(files, found, strict=True)])
