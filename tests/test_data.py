"""The one way in to data (fer_utils.data.load_data), the one rule for splits, and the small weight files
(fer_utils.resume) and folders (fer_utils.atomic) that are written whole or not at all."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from fer_utils.atomic import atomic_folder
from fer_utils.collection import load_faces
from fer_utils.constants import EMOTIONS
from fer_utils.data import HOLDOUT, load_data, report_split, validation_name, validation_split
from fer_utils.loader import FERDataError
from fer_utils.resume import from_bfloat16, read_arrays, to_bfloat16, write_arrays
from fer_utils.synthetic import draw_face, make_synthetic, write_shifted_collection


def test_load_data_reads_synthetic_and_refuses_collection_flags_without_a_collection(capsys):
    data = load_data("synthetic", synthetic_size=40, seed=3)
    assert data.synthetic and len(data) == 40
    np.testing.assert_array_equal(data.images, make_synthetic(40, seed=3).images)
    assert "SYNTHETIC" in capsys.readouterr().out  # said to people (a command with --json sends it to stderr)
    for flag in ({"labels": "labels.csv"}, {"convention": "rafdb"}, {"crops": True}):
        with pytest.raises(ValueError, match=f"{next(iter(flag))} need path=COLLECTION"):
            load_data(None, **flag)


def test_load_data_reads_a_collection_as_load_faces_does(tmp_path):
    rng = np.random.default_rng(0)
    for e in ("happy", "sad"):
        (tmp_path / e).mkdir()
        for k in range(3):
            cv2.imwrite(str(tmp_path / e / f"{k}.png"), draw_face(EMOTIONS.index(e), rng))
    data = load_data(tmp_path)
    np.testing.assert_array_equal(data.images, load_faces(tmp_path).images)
    assert data.collection is not None and sorted(set(data.emotions.tolist())) == [3, 4]


def test_reports_are_on_publictest_and_on_every_face_of_a_collection(tmp_path):
    data = make_synthetic(60, seed=0)  # Training, PublicTest and PrivateTest
    assert report_split(data) == "PublicTest"  # PrivateTest only when asked for
    merged = data.take(data.splits != "PublicTest")
    merged = type(data)(merged.images, merged.emotions, np.where(merged.splits == "PrivateTest", "Test", merged.splits),
                        merged.source)
    assert report_split(merged) == "Test"  # the image-folder release's merged test folder
    with pytest.raises(FERDataError, match="no PublicTest"):
        report_split(data.split("Training"))
    collection = load_faces(write_shifted_collection(tmp_path / "c", people=4, per_emotion=1))
    assert report_split(collection) is None


def test_what_chooses_the_epoch_is_named_by_the_same_rule_that_chooses_it(tmp_path):
    data = make_synthetic(80, seed=0)
    train, val = validation_split(data)
    assert set(val.splits) == {"PublicTest"} and validation_name(data) == "PublicTest"
    train, val = validation_split(data.split("Training"), seed=1)
    assert len(val) == len(data.split("Training")) // 10 and validation_name(data.split("Training")) == "10% of Training"
    faces = load_faces(write_shifted_collection(tmp_path / "c", people=10, per_emotion=1))
    train, val = validation_split(faces, holdout=0.2, group_by=r"person(\d+)")
    assert len(train) + len(val) == len(faces) and 0 < len(val) < len(faces) / 2
    name = validation_name(faces, 0.2, r"person(\d+)")
    assert name.startswith(f"a 20% {HOLDOUT} of the collection") and "grouped by person" in name


def test_weight_files_round_trip_floats_to_half_precision_and_integers_exactly(tmp_path):
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=7).astype(np.float32)]
    state = [np.array(123456789, np.int64), rng.normal(size=(2, 2)).astype(np.float32)]
    write_arrays(tmp_path / "m.resume.npz", {"w": weights, "o": state}, {"epoch": 3})
    groups, record = read_arrays(tmp_path / "m.resume.npz")
    assert record == {"epoch": 3} and [len(groups["w"]), len(groups["o"])] == [2, 2]
    for got, want in zip(groups["w"] + groups["o"][1:], weights + state[1:], strict=True):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=2**-8)  # bfloat16 keeps 8 bits of mantissa
    assert groups["o"][0] == 123456789 and groups["o"][0].dtype == np.int64
    many = [np.full(1, i, np.float32) for i in range(12)]  # w10 and w11 come after w9
    write_arrays(tmp_path / "h.npz", {"w": many}, {}, precision="float16")
    assert [float(w[0]) for w in read_arrays(tmp_path / "h.npz")[0]["w"]] == list(range(12))
    with pytest.raises(ValueError, match="float16's range"):
        write_arrays(tmp_path / "big.npz", {"w": [np.array([1e6], np.float32)]}, {}, precision="float16")
    assert not (tmp_path / "big.npz").exists()
    (tmp_path / "bad.npz").write_bytes(b"half a download")
    with pytest.raises(ValueError, match="not a weights file"):
        read_arrays(tmp_path / "bad.npz")


def test_bfloat16_rounds_to_nearest_even():
    x = np.array([1.0, 1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-12, -2.5], np.float32)
    # halfway between two bfloat16 numbers: to the even one (1.0, 1 + 2**-6); just past halfway: up
    want = np.array([1.0, 1.0, 1 + 2**-6, 1 + 2**-7, -2.5], np.float32)
    np.testing.assert_array_equal(from_bfloat16(to_bfloat16(x)), want)


def test_a_folder_appears_whole_or_not_at_all(tmp_path):
    with atomic_folder(tmp_path / "out") as tmp:
        (tmp / "a.txt").write_text("a")
        assert not (tmp_path / "out").exists()
    assert (tmp_path / "out" / "a.txt").read_text() == "a"
    assert oct((tmp_path / "out").stat().st_mode & 0o777) == oct(0o777 & ~_umask())
    with pytest.raises(RuntimeError), atomic_folder(tmp_path / "half") as tmp:
        (tmp / "a.txt").write_text("a")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no half folder, no temp folder left


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
