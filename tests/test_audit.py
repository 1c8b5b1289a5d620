"""The data-quality audit on generated faces with planted copies and blanks."""

import os

import numpy as np
import pytest

from fer_utils.audit import audit, find_blank, find_duplicates
from fer_utils.loader import FERData, load_fer2013
from fer_utils.synthetic import make_synthetic


@pytest.fixture(scope="module")
def planted() -> tuple[FERData, dict]:
    base = make_synthetic(80, seed=3)
    images, emotions, splits = base.images.copy(), base.emotions.copy(), base.splits.copy()
    train = np.flatnonzero(splits == "Training")
    public = np.flatnonzero(splits == "PublicTest")
    private = np.flatnonzero(splits == "PrivateTest")
    # group A: a copy within Training, same emotion
    a = train[:2]
    images[a[1]], emotions[a[1]] = images[a[0]], emotions[a[0]]
    # group B: a Training face copied into PublicTest with another emotion (leak and conflict)
    b = (train[2], public[0])
    images[b[1]], emotions[b[1]] = images[b[0]], (emotions[b[0]] + 1) % 7
    # group C: three copies across PublicTest and PrivateTest, same emotion
    c = (public[1], public[2], private[0])
    for i in c[1:]:
        images[i], emotions[i] = images[c[0]], emotions[c[0]]
    # two near-blank faces that differ from each other (not duplicates)
    rng = np.random.default_rng(0)
    blanks = train[3:5]
    images[blanks[0]] = 128
    images[blanks[1]] = 40 + rng.integers(0, 3, (48, 48))
    return FERData(images, emotions, splits, "planted", synthetic=True), {"A": a, "B": b, "C": c, "blanks": blanks}


def test_duplicates_groups_and_counts(planted):
    data, where = planted
    report = find_duplicates(data)
    s = report.summary()
    assert s["faces_with_copies"] == 2 + 2 + 3
    assert s["duplicate_groups"] == 3
    assert s["redundant_copies"] == 1 + 1 + 2
    assert s["cross_split_groups"] == 2  # B and C
    assert s["conflicting_emotion_groups"] == 1  # B
    assert s["within_split_groups"]["Training"] == 1  # A
    assert s["within_split_groups"]["PublicTest"] == 1  # two copies of C
    groups = [set(g["row"]) for _, g in report.groups.groupby("group")]
    assert sorted(map(sorted, groups)) == sorted(sorted(map(int, v)) for k, v in where.items() if k != "blanks")


def test_blank_faces(planted):
    data, where = planted
    assert find_blank(data).tolist() == sorted(where["blanks"].tolist())
    assert find_blank(data, max_std=0.0).tolist() == [where["blanks"][0]]


def test_audit_table(planted):
    data, _ = planted
    t = audit(data)["count"]
    assert t["faces"] == len(data)
    assert t["PublicTest faces with a copy in Training"] == 1
    assert t["PrivateTest faces with a copy in Training"] == 0
    assert t["groups whose copies disagree on the emotion"] == 1
    assert t["near-blank faces (pixel std <= 3)"] == 2


def test_clean_data_has_no_findings():
    data = make_synthetic(40, seed=1)
    assert find_duplicates(data).summary()["faces_with_copies"] == 0
    assert audit(data)["count"].drop("faces").sum() == 0


@pytest.mark.realdata
@pytest.mark.skipif(not os.environ.get("FER2013_PATH"), reason="set FER2013_PATH to a real FER2013 file")
def test_real_fer2013_has_leaks_conflicts_and_blanks():
    data = load_fer2013(os.environ["FER2013_PATH"])
    t = audit(data)["count"]
    assert t["groups spanning splits"] > 0
    assert t["PublicTest faces with a copy in Training"] > 0
    assert t["groups whose copies disagree on the emotion"] > 0
    assert t["near-blank faces (pixel std <= 3)"] > 0
