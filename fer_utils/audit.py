"""Data-quality audit: exact duplicate faces within and across splits, conflicting emotions, near-blank faces.

A test face whose exact copy is in Training inflates test accuracy; a duplicate whose copies disagree on the
emotion caps it. Both are counted here so results can be read with them in mind.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fer_utils.loader import FERData


@dataclass
class DuplicateReport:
    """Groups of identical faces: ``groups`` has one row per face that has at least one exact copy."""

    groups: pd.DataFrame  # columns: group, row (in the data), split, emotion
    n_faces: int

    def summary(self) -> dict:
        """Counts, JSON-ready."""
        g = self.groups
        if g.empty:
            return {"faces_with_copies": 0, "duplicate_groups": 0, "redundant_copies": 0, "cross_split_groups": 0,
                    "conflicting_emotion_groups": 0, "within_split_groups": {}}
        per = g.groupby("group")
        n_splits = per["split"].nunique()
        within = {s: int((sub.groupby("group").size() > 1).sum()) for s, sub in g.groupby("split")}
        return {
            "faces_with_copies": len(g),
            "duplicate_groups": int(per.ngroups),
            "redundant_copies": int(len(g) - per.ngroups),
            "cross_split_groups": int((n_splits > 1).sum()),
            "conflicting_emotion_groups": int((per["emotion"].nunique() > 1).sum()),
            "within_split_groups": within,
        }

    def describe(self) -> str:
        """One paragraph for people."""
        s = self.summary()
        within = ", ".join(f"{k} {v}" for k, v in s["within_split_groups"].items()) or "none"
        return (
            f"exact duplicates: {s['faces_with_copies']} faces in {s['duplicate_groups']} groups "
            f"({s['redundant_copies']} redundant copies of {self.n_faces}); groups within one split: {within}; "
            f"groups across splits: {s['cross_split_groups']}; groups whose copies disagree on the emotion: "
            f"{s['conflicting_emotion_groups']}"
        )


def find_duplicates(data: FERData) -> DuplicateReport:
    """Exact duplicate faces (identical 48x48 bytes), grouped, with the split and emotion of every copy."""
    flat = np.ascontiguousarray(data.images.reshape(len(data), -1))
    digests = np.array([hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in flat])
    _, inverse, counts = np.unique(digests, return_inverse=True, return_counts=True)
    dup = np.flatnonzero(counts[inverse] > 1)
    groups = pd.DataFrame(
        {"group": inverse[dup], "row": dup, "split": data.splits[dup], "emotion": data.emotions[dup].astype(int)}
    )
    if len(groups):
        groups["group"] = pd.factorize(groups["group"])[0]
    return DuplicateReport(groups.sort_values(["group", "row"]).reset_index(drop=True), len(data))


def find_blank(data: FERData, max_std: float = 3.0) -> np.ndarray:
    """Indices of near-constant faces (pixel standard deviation at most ``max_std``): blanks, not faces."""
    return np.flatnonzero(data.images.reshape(len(data), -1).std(axis=1) <= max_std)


def audit(data: FERData, max_std: float = 3.0) -> pd.DataFrame:
    """The data-quality audit as one table of counts: duplicates within and across splits, leaked test faces
    (a test face with an exact copy in Training), conflicting emotions and near-blank faces."""
    report = find_duplicates(data)
    s = report.summary()
    rows = {"faces": len(data), "faces with an exact copy": s["faces_with_copies"],
            "duplicate groups": s["duplicate_groups"], "redundant copies": s["redundant_copies"]}
    for split, n in s["within_split_groups"].items():
        rows[f"groups with copies within {split}"] = n
    rows["groups spanning splits"] = s["cross_split_groups"]
    g = report.groups
    in_training = set(g.loc[g["split"] == "Training", "group"])
    for split in data.split_names:
        if split != "Training":
            rows[f"{split} faces with a copy in Training"] = int(((g["split"] == split) & g["group"].isin(in_training)).sum())
    rows["groups whose copies disagree on the emotion"] = s["conflicting_emotion_groups"]
    rows[f"near-blank faces (pixel std <= {max_std:g})"] = len(find_blank(data, max_std))
    return pd.DataFrame({"count": rows})
