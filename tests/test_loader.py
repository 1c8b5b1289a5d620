"""The loader reads every FER2013 layout into the same arrays, caches them, and rejects bad input clearly."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import time
import zipfile

import cv2
import numpy as np
import pytest
from conftest import pixels_text
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fer_utils.constants import EMOTIONS, SPLITS
from fer_utils.data import load_data
from fer_utils.loader import FERDataError, find_dataset, load_fer2013, parse_pixels

SPLIT_OF = ["Training", "Training", "PublicTest", "PrivateTest", "Training", "PublicTest"]


@pytest.fixture
def faces():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (6, 48, 48), dtype=np.uint8), np.array([0, 1, 2, 3, 4, 6], np.int8)


def write_kaggle(path, images, emotions, splits=SPLIT_OF, opener=open):
    with opener(path, "wt") as f:
        f.write("emotion,pixels,Usage\n")
        for img, e, s in zip(images, emotions, splits, strict=True):
            f.write(f"{e},{pixels_text(img)},{s}\n")


def test_kaggle_csv_round_trips(tmp_path, faces):
    images, emotions = faces
    write_kaggle(tmp_path / "fer2013.csv", images, emotions)
    data = load_fer2013(tmp_path / "fer2013.csv")
    assert data.images.dtype == np.uint8 and data.images.shape == (6, 48, 48)
    np.testing.assert_array_equal(data.images, images)
    np.testing.assert_array_equal(data.emotions, emotions)
    assert list(data.splits) == SPLIT_OF
    assert data.split("PublicTest").emotions.tolist() == [2, 4 + 2]


def test_gzip_csv_and_folder_path(tmp_path, faces):
    images, emotions = faces
    write_kaggle(tmp_path / "fer2013.csv.gz", images, emotions, opener=gzip.open)
    np.testing.assert_array_equal(load_fer2013(tmp_path / "fer2013.csv.gz").images, images)
    np.testing.assert_array_equal(load_fer2013(tmp_path).images, images)  # a folder holding the CSV


def test_icml_layout(tmp_path, faces):
    images, emotions = faces
    with open(tmp_path / "icml_face_data.csv", "w") as f:
        f.write("emotion, Usage, pixels\n")
        for img, e, s in zip(images, emotions, SPLIT_OF, strict=True):
            f.write(f"{e},{s},{pixels_text(img)}\n")
    data = load_fer2013(tmp_path / "icml_face_data.csv")
    np.testing.assert_array_equal(data.images, images)
    assert list(data.splits) == SPLIT_OF


def test_challenge_train_and_test_csv(tmp_path, faces):
    images, emotions = faces
    with open(tmp_path / "train.csv", "w") as f:
        f.write("emotion,pixels\n")
        for img, e in zip(images[:4], emotions[:4], strict=True):
            f.write(f"{e},{pixels_text(img)}\n")
    with open(tmp_path / "test.csv", "w") as f:
        f.write("pixels\n")
        for img in images[4:]:
            f.write(f"{pixels_text(img)}\n")
    data = load_fer2013(tmp_path / "train.csv")
    np.testing.assert_array_equal(data.images, images)
    assert data.emotions.tolist() == [0, 1, 2, 3, -1, -1]
    assert data.counts().loc["unknown", "PublicTest"] == 2
    alone = load_fer2013(tmp_path / "test.csv")
    assert len(alone) == 2 and (alone.emotions == -1).all()


def test_image_folder_with_prefixes_and_conversions(tmp_path, faces, capsys):
    images, emotions = faces
    names = ["a.jpg", "b.png", "PublicTest_1.png", "PrivateTest_2.png", "c.png", "d.png"]
    for i, (img, e, name) in enumerate(zip(images, emotions, names, strict=True)):
        part = "train" if i in (0, 1, 4) else "test"
        folder = tmp_path / part / EMOTIONS[e]
        folder.mkdir(parents=True, exist_ok=True)
        out = cv2.resize(img, (96, 96)) if i == 4 else img  # another size: resized
        if i == 5:  # colour (a warm tint): converted to gray
            out = cv2.cvtColor(out, cv2.COLOR_GRAY2BGR) // np.array([2, 1, 1], np.uint8)
        cv2.imwrite(str(folder / name), out)
    data = load_fer2013(tmp_path)
    assert len(data) == 6 and data.images.shape == (6, 48, 48)
    assert sorted(data.splits.tolist()) == sorted(["Training"] * 3 + ["PublicTest", "PrivateTest", "Test"])
    png = data.images[data.splits == "PublicTest"][0]
    np.testing.assert_array_equal(png, images[2])  # lossless formats round-trip exactly
    assert "converted 1 colour" in capsys.readouterr().out


def test_cache_is_used_and_invalidated(tmp_path, faces):
    images, emotions = faces
    src = tmp_path / "fer2013.csv"
    write_kaggle(src, images, emotions)
    load_fer2013(src)
    caches = list((tmp_path.parent).rglob("*.npz"))
    assert caches, "a cache file was written"
    # change the source: the cache must not be served
    images2 = images.copy()
    images2[0, 0, 0] ^= 0xFF
    time.sleep(0.01)
    write_kaggle(src, images2, emotions)
    os.utime(src, ns=(time.time_ns(), time.time_ns()))
    np.testing.assert_array_equal(load_fer2013(src).images, images2)


def test_corrupt_cache_is_rebuilt(tmp_path, faces, monkeypatch):
    images, emotions = faces
    src = tmp_path / "fer2013.csv"
    write_kaggle(src, images, emotions)
    cache_dir = tmp_path / "c"
    monkeypatch.setenv("FER_UTILS_CACHE_DIR", str(cache_dir))
    load_fer2013(src)
    (cache_file,) = cache_dir.glob("*.npz")
    cache_file.write_bytes(b"garbage")
    np.testing.assert_array_equal(load_fer2013(src).images, images)


@pytest.mark.parametrize("damage", ["truncated", "one byte flipped"])
def test_damaged_cache_is_rebuilt_not_trusted(tmp_path, faces, monkeypatch, damage):
    images, emotions = faces
    src = tmp_path / "fer2013.csv"
    write_kaggle(src, images, emotions)
    monkeypatch.setenv("FER_UTILS_CACHE_DIR", str(tmp_path / "c"))
    load_fer2013(src)
    (cache_file,) = (tmp_path / "c").glob("*.npz")
    raw = bytearray(cache_file.read_bytes())
    if damage == "truncated":
        del raw[len(raw) // 2 :]
    else:  # the faces are most of the file: the middle byte is a pixel, which only the zip's CRC-32 can vouch for
        raw[len(raw) // 2] ^= 0xFF
    cache_file.write_bytes(bytes(raw))
    np.testing.assert_array_equal(load_fer2013(src).images, images)
    assert cache_file.read_bytes() != bytes(raw), "the damaged cache was replaced"


def seed_parse(texts: list[str]) -> np.ndarray:
    """The seed notebook's way, a Python int() per pixel: the reference the vectorised parser must match."""
    return np.array([[int(p) for p in t.split()] for t in texts], np.uint8).reshape(-1, 48, 48)


@pytest.mark.parametrize("block_bytes, rows_per_chunk", [(20_000, 64), (1 << 24, 3)])
@pytest.mark.parametrize("opener", [open, gzip.open])
def test_csv_in_many_blocks_and_chunks_parses_as_the_seed_did(tmp_path, monkeypatch, opener, block_bytes,
                                                              rows_per_chunk):
    """Lines cut across blocks (a plain file reads its unfinished line again, a gzipped one carries it over), rows
    parsed a few at a time, CRLF line ends, stray spaces, quoted fields, a blank line and a last line without a
    line break: the same faces, emotions and splits as the seed's parse."""
    rng = np.random.default_rng(1)
    n = 40
    images = rng.integers(0, 256, (n, 48, 48), dtype=np.uint8)
    images[0], images[1] = 0, 255
    emotions = rng.integers(0, len(EMOTIONS), n)
    splits = rng.choice(SPLITS, n)
    texts = [pixels_text(img) for img in images]
    texts[5] = "  " + texts[5].replace(" ", "   ", 100) + " "
    lines = [f"{e},{t},{s}" for e, t, s in zip(emotions, texts, splits, strict=True)]
    lines[7] = f'{emotions[7]},"{texts[7]}","{splits[7]}"'
    src = tmp_path / ("fer2013.csv.gz" if opener is gzip.open else "fer2013.csv")
    with opener(src, "wt", newline="") as f:
        f.write("emotion,pixels,Usage\r\n" + "\r\n".join(lines[:20]) + "\r\n\r\n" + "\n".join(lines[20:]))
    monkeypatch.setattr("fer_utils.loader._BLOCK_BYTES", block_bytes)  # a line is about 8 kB
    monkeypatch.setattr("fer_utils.loader._ROWS_PER_CHUNK", rows_per_chunk)
    data = load_fer2013(src, cache=False)
    np.testing.assert_array_equal(data.images, seed_parse(texts))
    np.testing.assert_array_equal(data.images, images)
    assert data.emotions.tolist() == emotions.tolist() and data.splits.tolist() == splits.tolist()


@pytest.mark.parametrize(
    "row, line, message",
    [
        (17, "1,{px},Training,extra", r"malformed CSV \(data row 17 \(line 18\) has 4 fields"),
        (23, "1,{short},Training", "data row 23: 2303 pixel values"),
        (26, "8,{px},Training", r"data row 26 \(line 27\): emotion '8'"),
        (29, "1,{px} 300,Training", "data row 29: 2305 pixel values"),
        (31, "1,{short} 300,Training", "data row 31, pixel 2304: value 300 is out of range"),
        (33, "1,{short} 1000,Training", "data row 33, pixel 2304: value 1000 is out of range"),
        (35, "1,{short} 2x,Training", "data row 35: non-numeric pixel near ' 7 7 7 2x'"),
        (37, "1,{px},Test", r"data row 37 \(line 38\): Usage 'Test'"),
    ],
)
def test_errors_name_the_row_in_any_block(tmp_path, monkeypatch, row, line, message):
    px = " ".join(["7"] * 2304)
    rows = [f"1,{px},Training"] * 40
    rows[row - 1] = line.format(px=px, short=" ".join(["7"] * 2303))
    src = tmp_path / "fer2013.csv"
    src.write_text("emotion,pixels,Usage\n" + "\n".join(rows) + "\n")
    monkeypatch.setattr("fer_utils.loader._BLOCK_BYTES", 30_000)
    monkeypatch.setattr("fer_utils.loader._ROWS_PER_CHUNK", 2)
    with pytest.raises(FERDataError, match=message):
        load_fer2013(src, cache=False)


def test_loading_imports_neither_pandas_nor_pyarrow(tmp_path, faces):
    """pandas alone took a third of a load from the cache; the CSV parser needs neither."""
    images, emotions = faces
    write_kaggle(tmp_path / "fer2013.csv", images, emotions)
    code = ("import sys; from fer_utils import load_fer2013; load_fer2013(sys.argv[1]); load_fer2013(sys.argv[1]); "
            "print([m for m in ('pandas', 'pyarrow') if m in sys.modules])")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "fer2013.csv")], capture_output=True, text=True,
                         check=True)
    assert run.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda rows: rows.__setitem__(2, rows[2].replace(",Training", ",Training,extra")), "malformed CSV"),
        (lambda rows: rows.__setitem__(2, "1," + " ".join(["7"] * 2303) + ",Training"), "2303 pixel values, expected 2304"),
        (lambda rows: rows.__setitem__(3, "1," + " ".join(["7"] * 2303) + " x9,Training"), "non-numeric pixel"),
        (lambda rows: rows.__setitem__(1, "1," + " ".join(["7"] * 2303) + " 256,Training"), "256 is out of range"),
        (lambda rows: rows.__setitem__(1, "1," + " ".join(["7"] * 2303) + " 1000,Training"), "out of range"),
        (lambda rows: rows.__setitem__(2, "9," + " ".join(["7"] * 2304) + ",Training"), "emotion '9' is not an integer 0-6"),
        (lambda rows: rows.__setitem__(2, "1," + " ".join(["7"] * 2304) + ",Validation"), "Usage 'Validation'"),
        (lambda rows: rows.__setitem__(0, "label,pixels,Usage"), "unexpected column"),
        (lambda rows: rows.__setitem__(0, "emotion,image,Usage"), "wrong columns"),
        (lambda rows: rows.__delitem__(slice(1, None)), "no rows"),
    ],
)
def test_bad_csv_gets_a_clear_error(tmp_path, faces, mutate, message):
    images, emotions = faces
    src = tmp_path / "fer2013.csv"
    write_kaggle(src, images, emotions)
    rows = src.read_text().splitlines()
    mutate(rows)
    src.write_text("\n".join(rows) + "\n")
    with pytest.raises(FERDataError, match=message) as err:
        load_fer2013(src, cache=False)
    assert str(src) in str(err.value)


def test_bad_row_is_named(tmp_path, faces):
    images, emotions = faces
    src = tmp_path / "fer2013.csv"
    write_kaggle(src, images, emotions)
    rows = src.read_text().splitlines()
    rows[5] = "1," + " ".join(["7"] * 2000) + ",Training"
    src.write_text("\n".join(rows) + "\n")
    with pytest.raises(FERDataError, match=r"data row 5 \(|data row 5:"):
        load_fer2013(src, cache=False)


def test_a_binary_file_is_named_as_not_a_csv_not_dumped(tmp_path):
    model = tmp_path / "model.keras"  # e.g. a model passed where the data goes: a zip archive
    with zipfile.ZipFile(model, "w") as z:
        z.writestr("config.json", '{"module": "keras"}' * 50)
    with pytest.raises(FERDataError, match="model.keras is not a CSV text file") as err:
        load_fer2013(model, cache=False)
    assert len(str(err.value)) < 300 and "PK" not in str(err.value)


def test_missing_file_says_where_to_download(tmp_path):
    with pytest.raises(FERDataError, match="kaggle.com"):
        load_fer2013(tmp_path / "nope.csv")


def test_image_folder_errors(tmp_path):
    (tmp_path / "train" / "happy").mkdir(parents=True)
    with pytest.raises(FERDataError, match="no images found"):
        load_fer2013(tmp_path)
    (tmp_path / "train" / "happy" / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(FERDataError, match="bad.jpg: unreadable image"):
        load_fer2013(tmp_path)
    (tmp_path / "train" / "happy" / "bad.jpg").unlink()
    (tmp_path / "train" / "joyful").mkdir()
    with pytest.raises(FERDataError, match="'joyful' is not an emotion"):
        load_fer2013(tmp_path)


def test_truncated_gzip(tmp_path, faces):
    images, emotions = faces
    src = tmp_path / "fer2013.csv.gz"
    write_kaggle(src, images, emotions, opener=gzip.open)
    src.write_bytes(src.read_bytes()[:200])
    with pytest.raises(FERDataError, match="fer2013.csv.gz"):
        load_fer2013(src, cache=False)


def test_find_dataset_and_synthetic_fallback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FER2013_PATH", str(tmp_path / "x.csv"))
    assert find_dataset() == tmp_path / "x.csv"
    monkeypatch.delenv("FER2013_PATH")
    monkeypatch.setattr("fer_utils.loader.PROJECT_ROOT", tmp_path)
    assert find_dataset() is None
    data = load_data(synthetic_size=50)
    assert data.synthetic and "SYNTHETIC" in data.label and len(data) == 50
    assert "SYNTHETIC" in capsys.readouterr().out


@settings(max_examples=30, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 5), st.just(48), st.just(48))), st.sampled_from([" ", "  "]))
def test_parse_pixels_round_trips(images, sep):
    texts = [pixels_text(img) for img in images]
    if sep != " ":  # stray spaces around and between values are tolerated
        texts = [" " + t.replace(" ", sep) + " " for t in texts]
    np.testing.assert_array_equal(parse_pixels(texts), images)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.integers(0, 2303), st.sampled_from(["-1", "1.5", "abc", "300", "", "99999"]))
def test_parse_pixels_rejects_bad_values(n, where, bad):
    rows = [["10"] * 2304 for _ in range(n)]
    rows[-1][where] = bad
    with pytest.raises(FERDataError, match=f"data row {n}"):
        parse_pixels([" ".join(r) for r in rows])


@pytest.mark.realdata
def test_real_fer2013_counts():
    path = os.environ.get("FER2013_PATH")
    if not path or not os.path.exists(path):
        pytest.skip("FER2013_PATH does not point at a real FER2013 file")
    counts = load_fer2013(path).counts()
    assert counts.loc["total", "Training"] == 28709
    assert counts.loc["disgust", "Training"] == 436
