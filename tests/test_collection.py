"""Labelled face collections in other datasets' conventions: folders, label files in each code order, KDEF and
JAFFE names, full-size photos cropped the recognizer's way, what is left out and skipped, and the evaluate report."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
from conftest import pixels_text
from sklearn.metrics import f1_score

from fer_utils.collection import load_faces, summary
from fer_utils.constants import EMOTIONS
from fer_utils.data import load_data
from fer_utils.detector import Detector, build_detector, locate_faces
from fer_utils.images import crop_faces
from fer_utils.loader import FERDataError, load_fer2013
from fer_utils.scenes import astronaut_bgr, cluttered_background, lfw_faces, make_scene
from fer_utils.synthetic import draw_face, write_ck_style_collection

# each dataset's numeric order, written out here from its documentation rather than taken from the code under test
RAFDB = {1: "surprise", 2: "fear", 3: "disgust", 4: "happy", 5: "sad", 6: "angry", 7: "neutral"}
AFFECTNET = {0: "neutral", 1: "happy", 2: "sad", 3: "surprise", 4: "fear", 5: "disgust", 6: "angry"}  # 7-10 left out
FER2013 = dict(enumerate(["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]))


def face(emotion: str, seed: int = 0) -> np.ndarray:
    return draw_face(EMOTIONS.index(emotion), np.random.default_rng(seed))


def write(root, rel: str, image: np.ndarray):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


def labelled(data) -> dict[str, str]:
    return {f: EMOTIONS[e] for f, e in zip(data.files, data.emotions, strict=True)}


def test_emotion_folders_in_every_spelling_at_any_depth(tmp_path, capsys):
    truth = {"train/Anger/a.png": "angry", "train/S005/disgusted/b.png": "disgust", "train/fearful/c.png": "fear",
             "test/HAPPINESS/d.png": "happy", "val/sadness/e.png": "sad", "surprised/f.png": "surprise",
             "x/y/neutral/z/g.png": "neutral", "afraid/h.png": "fear", "Happy/i.png": "happy"}
    for k, (rel, emotion) in enumerate(truth.items()):
        write(tmp_path, rel, face(emotion, k))
    write(tmp_path, "contempt/j.png", face("neutral", 20))
    write(tmp_path, "train/contempt/k.png", face("neutral", 21))
    three = cv2.cvtColor(face("sad", 30), cv2.COLOR_GRAY2BGR)  # a gray face stored as three equal channels
    write(tmp_path, "sad/l.png", three)
    truth["sad/l.png"] = "sad"
    data = load_faces(tmp_path)
    assert labelled(data) == truth
    assert data.images.shape == (len(truth), 48, 48) and data.images.dtype == np.uint8
    # 48x48 gray images are the faces, untouched: no detection, no resizing
    np.testing.assert_array_equal(data.images[list(data.files).index("train/Anger/a.png")], face("angry", 0))
    np.testing.assert_array_equal(data.images[list(data.files).index("sad/l.png")], face("sad", 30))
    splits = dict(zip(data.files, data.splits, strict=True))
    assert {f for f, s in splits.items() if s == "Training"} == {"train/Anger/a.png", "train/S005/disgusted/b.png",
                                                                  "train/fearful/c.png"}
    assert set(data.splits) == {"Training", "Test"}
    info = data.collection
    assert info["left_out"] == {"contempt": 2} and info["convention"] == "folders" and info["root"] == str(tmp_path)
    assert info["skipped"] == {"no face": 0, "unreadable": 0} and not info["crops"]
    assert info["kept"] == {"padded": 0, "several faces": 0, "whole image": 0}
    assert data.source == str(tmp_path) and data.label == tmp_path.name and not data.synthetic
    printed = capsys.readouterr().out
    assert f"{tmp_path.name}: 10 faces of 7 emotions (folders); left out 2 contempt; skipped nothing" in printed
    # files are sliced with the faces
    part = data.split("Training")
    assert len(part.files) == 3 and all(f.startswith("train/") for f in part.files)
    assert data.take(np.array([1, 0])).files.tolist() == data.files[[1, 0]].tolist()


def test_the_ck_plus_layouts_once_refused_now_load(tmp_path):
    for root in (tmp_path / "flat", tmp_path / "under_train" / "train"):
        for k, name in enumerate(("anger", "contempt", "sadness", "surprise")):
            write(root, f"{name}/S{k:03d}_001.png", face({"anger": "angry", "sadness": "sad"}.get(name, "surprise"), k))
    flat = load_faces(tmp_path / "flat")
    assert sorted(set(labelled(flat).values())) == ["angry", "sad", "surprise"]
    assert flat.collection["left_out"] == {"contempt": 1}
    nested = load_faces(tmp_path / "under_train")
    assert set(nested.splits) == {"Training"} and len(nested) == 3


@pytest.mark.parametrize("layout", ["csv_header", "tsv", "space", "affectnet_csv"])
@pytest.mark.parametrize("convention", ["fer2013", "rafdb", "affectnet", "names"])
def test_label_files_with_each_code_order(tmp_path, convention, layout):
    order = {"fer2013": FER2013, "rafdb": RAFDB, "affectnet": AFFECTNET,
             "names": {"Anger": "angry", "disgusted": "disgust", "AFRAID": "fear", "happiness": "happy",
                       "sadness": "sad", "surprised": "surprise", "neutral": "neutral"}}[convention]
    rows, truth = [], {}
    for k, (code, emotion) in enumerate(order.items()):
        rel = f"img/{k:05d} {emotion}.png" if layout == "space" else f"img/{k:05d}.png"  # a space in a path
        write(tmp_path, rel, face(emotion, k))
        rows.append((rel, str(code)))
        truth[rel] = emotion
    if convention == "affectnet":  # contempt, none, uncertain, non-face: left out, counted
        for k, code in enumerate((7, 7, 8, 9, 10)):
            write(tmp_path, f"img/x{k}.png", face("neutral", 50 + k))
            rows.append((f"img/x{k}.png", str(code)))
    labels = tmp_path / "labels.txt"
    if layout == "csv_header":
        labels.write_text("file,emotion\n" + "".join(f"{p},{c}\n" for p, c in rows))
    elif layout == "tsv":
        labels.write_text("".join(f"{p}\t{c}\n" for p, c in rows))
    elif layout == "space":
        labels.write_text("# path label\n" + "".join(f"{p} {c}\n" for p, c in rows))
    else:  # AffectNet's own CSV: the path and expression columns among others, a quoted field with commas
        labels.write_text("subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,"
                          "valence,arousal\n" + "".join(f'{p},0,0,48,48,"1.0,2.0;3.0",{c},0.1,0.2\n' for p, c in rows))
    data = load_faces(tmp_path, labels, convention=None if convention == "names" else convention)
    assert labelled(data) == truth
    info = data.collection
    assert info["convention"] == convention
    expected_left_out = {"contempt": 2, "none": 1, "uncertain": 1, "non-face": 1} if convention == "affectnet" else {}
    assert info["left_out"] == expected_left_out


def test_a_collections_own_labels_csv_is_read_without_labels(tmp_path):
    """wild-faces' layout: images/ and labels.csv beside it, paths by file name; no --labels needed."""
    for k, emotion in enumerate(("happy", "neutral", "sad")):
        write(tmp_path, f"images/p{k}.png", face(emotion, k))
    (tmp_path / "labels.csv").write_text("path,label\np0.png,happiness\np1.png,neutral\np2.png,sadness\n")
    data = load_faces(tmp_path)
    assert labelled(data) == {"images/p0.png": "happy", "images/p1.png": "neutral", "images/p2.png": "sad"}
    assert data.collection["labels"] == str(tmp_path / "labels.csv")
    (tmp_path / "labels.csv").unlink()
    with pytest.raises(FERDataError, match="no image has a label"):
        load_faces(tmp_path)


def test_rafdb_list_finds_aligned_files_and_its_splits(tmp_path):
    write(tmp_path, "aligned/train_00001_aligned.jpg", face("happy", 1))
    write(tmp_path, "aligned/test_0001_aligned.jpg", face("angry", 2))
    labels = tmp_path / "list_patition_label.txt"
    labels.write_text("train_00001.jpg 4\ntest_0001.jpg 6\n")
    data = load_faces(tmp_path / "aligned", labels, convention="rafdb")
    assert labelled(data) == {"train_00001_aligned.jpg": "happy", "test_0001_aligned.jpg": "angry"}
    assert dict(zip(data.files, data.splits, strict=True)) == {"train_00001_aligned.jpg": "Training",
                                                               "test_0001_aligned.jpg": "Test"}


def test_numeric_folders_under_a_convention(tmp_path):
    for code, emotion in AFFECTNET.items():
        write(tmp_path, f"train/{code}/a.png", face(emotion, code))
    write(tmp_path, "train/7/b.png", face("neutral", 9))
    with pytest.raises(FERDataError, match="folder name '0' is a numeric code; say whose order with convention="):
        load_faces(tmp_path)
    data = load_faces(tmp_path, convention="affectnet")
    assert labelled(data) == {f"train/{c}/a.png": e for c, e in AFFECTNET.items()}
    assert data.collection["left_out"] == {"contempt": 1}


def test_kdef_and_jaffe_file_names(tmp_path):
    kdef = {"AF01AFS.JPG": "fear", "AM02ANHL.JPG": "angry", "BF03DIHR.JPG": "disgust", "BM04HAS.JPG": "happy",
            "AF05NEFL.JPG": "neutral", "AF06SAS.JPG": "sad", "BM07SUFR.JPG": "surprise"}
    jaffe = {"KA.AN1.39.tiff": "angry", "KL.DI2.42.tiff": "disgust", "KM.FE3.47.tiff": "fear",
             "NA.HA1.202.tiff": "happy", "TM.NE1.177.tiff": "neutral", "UY.SA3.145.tiff": "sad",
             "YM.SU2.59.tiff": "surprise"}
    for k, (name, emotion) in enumerate({**kdef, **jaffe}.items()):
        write(tmp_path, f"{'KDEF/AF01' if name in kdef else 'jaffe'}/{name}", face(emotion, k))
    write(tmp_path, "happy/BM08HAS.JPG", face("happy", 40))  # a KDEF face sorted into a folder that agrees
    data = load_faces(tmp_path)
    assert labelled(data) == ({f"KDEF/AF01/{n}": e for n, e in kdef.items()} | {f"jaffe/{n}": e for n, e in jaffe.items()}
                              | {"happy/BM08HAS.JPG": "happy"})
    assert data.collection["convention"] == "folders+jaffe+kdef"
    write(tmp_path, "sad/BM09HAS.JPG", face("happy", 41))
    with pytest.raises(FERDataError, match=r"BM09HAS.JPG: mixed conventions: its folder 'sad' says sad, its kdef"):
        load_faces(tmp_path)


@pytest.fixture(scope="module")
def tiny_model_path(tmp_path_factory):
    from fer_utils.models import build_lenet, save_model

    return save_model(build_lenet(filters=(4, 8), units=(16,), seed=3), tmp_path_factory.mktemp("m") / "tiny.keras",
                      litert=False)


def test_photos_are_cropped_as_the_recognizer_crops_and_the_rest_counted(tmp_path, tiny_model_path):
    from fer_utils.recognizer import EmotionRecognizer

    scene = make_scene(1, seed=3)[0]
    write(tmp_path, "happy/astronaut.jpg", astronaut_bgr())
    write(tmp_path, "neutral/scene.png", scene)
    write(tmp_path, "neutral/clutter.png", cluttered_background(seed=2))
    write(tmp_path, "sad/two.png", make_scene(2, seed=1)[0])
    (tmp_path / "sad" / "broken.jpg").write_bytes(b"half a download")
    write(tmp_path, "fear/face.png", face("fear"))
    report = tmp_path / "out" / "skipped.csv"
    data = load_faces(tmp_path, report_skipped=report)
    assert data.files.tolist() == ["fear/face.png", "happy/astronaut.jpg", "neutral/scene.png", "sad/two.png"]
    recognizer = EmotionRecognizer(tiny_model_path, runtime="tensorflow")  # its crops, whatever runs the network
    for k, image in ((1, cv2.imread(str(tmp_path / "happy/astronaut.jpg"))), (2, scene)):
        boxes, crops = recognizer.locate(image)
        assert len(boxes) == 1
        np.testing.assert_array_equal(data.images[k], crops[0])
    assert data.collection["skipped"] == {"no face": 1, "unreadable": 1}  # a 640x480 photo is not taken whole
    assert data.collection["kept"] == {"padded": 0, "several faces": 1, "whole image": 0}  # the photos: unpadded
    with open(report) as f:
        assert sorted(csv.reader(f)) == sorted([["file", "reason"], ["neutral/clutter.png", "no face"],
                                                ["sad/broken.jpg", "unreadable"]])


def filling(k: int, size: int = 176) -> np.ndarray:
    """LFW face ``k`` (a tight 25-px crop) scaled to ``size``: a face filling the frame, as in tightly cropped sets."""
    return cv2.cvtColor(cv2.resize(lfw_faces()[k], (size, size), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR)


TIGHT = (2, 14, 16)  # LFW faces Haar misses at 176 px until a border is added (14's box then passes the edges)


def test_a_face_filling_the_frame_is_found_once_padded(tmp_path, monkeypatch, capsys):
    from fer_utils import collection

    for k in TIGHT:
        write(tmp_path, f"happy/{k}.png", filling(k))
    detector = build_detector("haar", min_size=40)
    data = load_faces(tmp_path)
    assert data.collection["kept"] == {"padded": 3, "several faces": 0, "whole image": 0}
    assert "3 found once padded; skipped nothing" in capsys.readouterr().out
    assert sorted(data.files) == sorted(f"happy/{k}.png" for k in TIGHT)
    for k, crop in zip((int(f[6:-4]) for f in data.files), data.images, strict=True):
        assert len(locate_faces(detector, filling(k), min_face_size=40)[0]) == 0  # unpadded, the detector finds none
        boxes, _ = collection.locate_padded(detector, filling(k))
        x, y, w, h = boxes[0]
        assert len(boxes) == 1 and 0.8 * 176 < w == h < 1.1 * 176 and -30 < x < 20 and -40 < y < 20  # the image's face
        # the crop of the box in the image's own pixels, edges replicated where it passes them, as the recognizer cuts
        np.testing.assert_array_equal(crop, crop_faces(cv2.cvtColor(filling(k), cv2.COLOR_BGR2GRAY), boxes[:1])[0])
        assert np.abs(crop.astype(int) - whole(filling(k))).mean() > 1, "the detector's crop, not the whole image"
    assert (collection.locate_padded(detector, filling(14))[0][0, :2] < 0).all()  # its box passes the top-left edges
    monkeypatch.setattr(collection, "PAD", 0.0)
    assert load_faces(tmp_path).collection["kept"] == {"padded": 0, "several faces": 0, "whole image": 3}


def whole(image: np.ndarray) -> np.ndarray:
    """A square image taken whole, written out here rather than taken from the code under test."""
    return cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (48, 48), interpolation=cv2.INTER_AREA)


def test_of_several_faces_the_largest_is_kept_and_counted(tmp_path, capsys):
    scene, truth = make_scene(2, 300, 400, sizes=(70, 140), seed=11)
    assert truth[1, 2] > truth[0, 2] + 15  # the larger face is not the first pasted
    write(tmp_path, "sad/two.png", scene)
    write(tmp_path, "sad/one.png", face("sad"))
    report = tmp_path / "skipped.csv"
    data = load_faces(tmp_path, report_skipped=report)
    assert data.files.tolist() == ["sad/one.png", "sad/two.png"]
    boxes, crops = locate_faces(build_detector("haar", min_size=40), scene, min_face_size=40)
    assert len(boxes) == 2 and boxes[0, 2] == max(boxes[:, 2])
    big = truth[np.argmax(truth[:, 2])]  # the larger pasted face
    assert np.abs(boxes[0, :2] + boxes[0, 2:] / 2 - big[:2] - big[2:] / 2).max() < 0.15 * big[2]
    np.testing.assert_array_equal(data.images[1], crops[0])
    assert data.collection["kept"] == {"padded": 0, "several faces": 1, "whole image": 0}
    assert data.collection["skipped"] == {"no face": 0, "unreadable": 0}
    assert report.read_text().splitlines() == ["file,reason"]
    assert "left out nothing; 1 with several faces: the largest kept; skipped nothing" in capsys.readouterr().out


def test_crops_takes_every_image_whole_without_detection(tmp_path, capsys):
    class NoDetection(Detector):
        def detect_landmarks(self, image, color="bgr"):
            raise AssertionError("crops=True detects nothing")

    photo = astronaut_bgr()  # a face the detector would find and crop
    wide = cluttered_background(100, 300, seed=1)
    write(tmp_path, "happy/photo.png", photo)
    write(tmp_path, "happy/wide.png", wide)
    write(tmp_path, "sad/face.png", face("sad"))
    data = load_faces(tmp_path, crops=True, detector=NoDetection())
    assert data.collection["crops"] and data.collection["kept"] == {"padded": 0, "several faces": 0, "whole image": 2}
    np.testing.assert_array_equal(data.images[0], whole(photo))
    assert data.images[1].shape == (48, 48)  # squared about its centre, edges replicated
    band = cv2.resize(cv2.cvtColor(wide, cv2.COLOR_BGR2GRAY), (48, 16), interpolation=cv2.INTER_AREA)
    assert np.abs(data.images[1][16:32].astype(int) - band).max() <= 1  # the whole image, in the middle
    np.testing.assert_array_equal(data.images[2], face("sad"))  # a 48x48 gray face as ever
    assert "2 taken whole (crops); skipped nothing" in capsys.readouterr().out
    assert not np.array_equal(load_faces(tmp_path).images[0], data.images[0])  # without crops: the detector's face


def test_only_crop_shaped_images_are_taken_whole(tmp_path):
    shapes = {"square": (176, 176), "five_four": (160, 200), "four_five": (200, 160), "four_three": (240, 320),
              "three_four": (320, 240), "wide": (100, 300), "tiny": (30, 30)}
    for name, (h, w) in shapes.items():
        write(tmp_path, f"neutral/{name}.png", cluttered_background(h, w, seed=h + w))
    for k in (4, 13):  # LFW faces Haar misses even once padded
        write(tmp_path, f"happy/lfw{k}.png", filling(k))
    report = tmp_path / "skipped.csv"
    data = load_faces(tmp_path, report_skipped=report)
    assert data.files.tolist() == ["happy/lfw13.png", "happy/lfw4.png", "neutral/five_four.png",
                                   "neutral/four_five.png", "neutral/square.png"]
    np.testing.assert_array_equal(data.images[0], whole(filling(13)))
    assert data.collection["kept"] == {"padded": 0, "several faces": 0, "whole image": 5}
    assert data.collection["skipped"] == {"no face": 4, "unreadable": 0}
    assert sorted(report.read_text().splitlines()[1:]) == [f"neutral/{n}.png,no face" for n in
                                                           ("four_three", "three_four", "tiny", "wide")]
    assert summary(data.collection) == ("left out nothing; 5 taken whole (crop-shaped, no face found); skipped 4 "
                                        "image(s): 4 no face")


def test_one_emotion_and_unlabelled_images_are_counted_warnings(tmp_path, capsys):
    write(tmp_path, "happy/a.png", face("happy"))
    write(tmp_path, "b.png", face("sad"))  # in no emotion folder, with no code: left out, counted
    data = load_faces(tmp_path)
    assert len(data) == 1 and data.collection["left_out"] == {"unlabelled": 1}
    printed = capsys.readouterr().out
    assert "1 faces of 1 emotion (folders); left out 1 unlabelled; skipped nothing" in printed
    assert "warning: every face of" in printed and "is happy" in printed


def bad_input_cases():
    def empty(root):
        (root / "happy").mkdir()
        (root / "notes.txt").write_text("no images here")

    def joy(root):
        write(root, "happy/a.png", face("happy"))
        write(root, "joy/b.png", face("happy", 1))

    def label(content: str, convention=None):
        def make(root):
            write(root, "a.png", face("happy"))
            write(root, "b.png", face("sad"))
            (root / "labels.csv").write_text(content)
            return {"labels": root / "labels.csv", "convention": convention}
        return make

    def no_face(root):
        write(root, "happy/clutter.png", cluttered_background(seed=4))

    def unlabelled(root):
        write(root, "photos/a.png", face("happy"))

    return {
        "empty folder": (empty, r"no images \(.bmp, .jpeg"),
        "unknown folder": (joy, r"joy: folder name 'joy' is not an emotion; accepted: angry/anger"),
        "unknown label": (label("a.png,joyful\nb.png,sad\n"), r"labels.csv line 1 \(a.png\): label 'joyful' is not an "
                                                              "emotion; accepted: angry/anger"),
        "codes without convention": (label("a.png 3\nb.png 4\n"), "label '3' is a numeric code; say whose order"),
        "code out of its order": (label("a.png 0\nb.png 4\n", "rafdb"), r"line 1 \(a.png\): code '0' is not in the "
                                                                          r"rafdb order \(1-7\)"),
        "mixed names and codes": (label("a.png happy\nb.png 4\n", "rafdb"), "mixed conventions: line 1 names 'happy', "
                                                                            "line 2 gives the code '4'"),
        "missing images": (label("a.png happy\nc.png sad\nd.png sad\n"), r"labels.csv: 2 of its images are not under"
                                                                         r" .*, e.g. 'c.png' \(line 2\)"),
        "too many fields": (label("a.png,happy,extra\n"), r"labels.csv line 1: expected 2 fields"),
        "no face anywhere": (no_face, "no face found in any of its 1 labelled images .*skipped 1 image"),
        "no label": (unlabelled, "no image has a label: put them in folders named by emotion"),
        "only contempt": (lambda root: write(root, "contempt/a.png", face("neutral")) and None,
                          "none of its labelled images shows one of the seven emotions \\(left out 1 contempt\\)"),
    }


@pytest.mark.parametrize("case", list(bad_input_cases()))
def test_bad_input_is_a_one_line_error(tmp_path, case):
    make, message = bad_input_cases()[case]
    kwargs = make(tmp_path) or {}
    with pytest.raises(FERDataError, match=message) as err:
        load_faces(tmp_path, **kwargs)
    assert "\n" not in str(err.value)


def test_other_bad_paths(tmp_path):
    with pytest.raises(FERDataError, match="nope not found: pass FER2013"):
        load_faces(tmp_path / "nope")
    (tmp_path / "labels.txt").write_text("a.png happy\n")
    with pytest.raises(FERDataError, match="looks like a label file, not FER2013: pass it as labels="):
        load_faces(tmp_path / "labels.txt")
    with pytest.raises(FERDataError, match="label file .*missing.txt not found"):
        load_faces(tmp_path, tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="convention 'kdef' is unknown"):
        load_faces(tmp_path, convention="kdef")


def test_fer2013_layouts_are_handed_to_load_fer2013(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 48, 48), dtype=np.uint8)
    csv_file = tmp_path / "fer2013.csv"
    csv_file.write_text("emotion,pixels,Usage\n" + "".join(f"{e},{pixels_text(im)},{s}\n" for e, im, s in
                                                           zip((0, 3, 6), images, SPLITS3, strict=True)))
    for path in (csv_file, tmp_path):
        data = load_faces(path)
        want = load_fer2013(csv_file)
        np.testing.assert_array_equal(data.images, want.images)
        assert data.files is None and data.collection is None and data.split_names == want.split_names
    release = tmp_path / "release"
    for k, e in enumerate(("happy", "sad")):
        write(release, f"train/{e}/{k}.png", images[k])
        write(release, f"test/{e}/PublicTest_{k}.png", images[k])
    data = load_faces(release)
    assert data.collection is None and data.split_names == ["Training", "PublicTest"]
    via_default = load_data(release)
    np.testing.assert_array_equal(via_default.images, data.images)
    assert load_data("synthetic", synthetic_size=20).synthetic


SPLITS3 = ("Training", "PublicTest", "PrivateTest")


def test_load_data_routes_a_given_collection(tmp_path):
    root = write_ck_style_collection(tmp_path / "ck", per_emotion=2)
    data = load_data(root)
    assert data.collection["left_out"] == {"contempt": 2}
    assert data.collection["skipped"] == {"no face": 1, "unreadable": 0}
    assert data.collection["kept"] == {"padded": 0, "several faces": 1, "whole image": 0}  # two_faces.jpg: the largest
    assert len(data) == 2 * 6 + 2 and "neutral" not in labelled(data).values()


def test_evaluate_command_reports_on_a_collection(tmp_path, tiny_model_path, capsys):
    from fer_utils import evaluation as ev
    from fer_utils.__main__ import main
    from fer_utils.models import load_model, predict_proba

    root = write_ck_style_collection(tmp_path / "ck", per_emotion=3)
    skipped = tmp_path / "skipped.csv"
    assert main(["evaluate", "--model", str(tiny_model_path), "--data", str(root), "--json",
                 "--report-skipped", str(skipped)]) == 0
    printed = capsys.readouterr()
    result = json.loads(printed.out)  # the JSON alone: the collection's line for people goes to standard error
    assert "left out 3 contempt" in printed.err
    data = load_faces(root)
    proba = predict_proba(load_model(tiny_model_path), data.images)
    present = ["angry", "disgust", "fear", "happy", "sad", "surprise"]  # CK+'s names, no neutral; contempt left out
    assert result["emotions"] == present and list(result["per_emotion"]) == present
    assert result["n"] == len(data) == 20 and result["split"] is None  # 18 drawn faces, the astronaut, two_faces.jpg
    assert result["accuracy"] == pytest.approx((proba.argmax(1) == data.emotions).mean())
    assert result["accuracy_ci"] == pytest.approx(list(ev.accuracy_ci(data.emotions, proba)[1:]))
    labels = [EMOTIONS.index(e) for e in present]
    assert result["macro_f1"] == pytest.approx(f1_score(data.emotions, proba.argmax(1), labels=labels, average="macro",
                                                        zero_division=0))
    matrix = np.array(result["confusion_matrix"])
    assert matrix.shape == (6, 7) and matrix.sum() == 20 and matrix[:, EMOTIONS.index("neutral")].sum() == \
        (proba.argmax(1) == EMOTIONS.index("neutral")).sum(), "a neutral answer is a miss, counted in its column"
    assert result["collection"]["left_out"] == {"contempt": 3}
    assert skipped.read_text().splitlines()[1:] == ["happy/clutter.jpg,no face"]
    assert main(["evaluate", "--model", str(tiny_model_path), "--data", str(root), "--tta"]) == 0
    text = capsys.readouterr().out
    assert "on every face of ck (n=20, flip TTA): accuracy" in text and "95% CI" in text and "over its 6 emotions" in text
    assert "  sad " in text and "  neutral " not in text.split("confusion matrix")[1]
    assert text.splitlines()[-1] == ("left out 3 contempt; 1 with several faces: the largest kept; skipped 1 image(s): "
                                     "1 no face")
    assert main(["evaluate", "--model", str(tiny_model_path), "--labels", "x.csv"]) == 2
    assert capsys.readouterr().err.startswith("error: labels need path=COLLECTION (--data FOLDER)")  # load_data's
