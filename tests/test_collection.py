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

from fer_utils.collection import load_faces
from fer_utils.constants import EMOTIONS
from fer_utils.loader import FERDataError, load_fer2013
from fer_utils.scenes import astronaut_bgr, cluttered_background, make_scene
from fer_utils.synthetic import draw_face, load_or_synthesize, write_ck_style_collection

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
    assert info["skipped"] == {"no face": 0, "several faces": 0, "unreadable": 0}
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
    assert data.files.tolist() == ["fear/face.png", "happy/astronaut.jpg", "neutral/scene.png"]
    recognizer = EmotionRecognizer(tiny_model_path, runtime="tensorflow")  # its crops, whatever runs the network
    for k, image in ((1, cv2.imread(str(tmp_path / "happy/astronaut.jpg"))), (2, scene)):
        boxes, crops = recognizer.locate(image)
        assert len(boxes) == 1
        np.testing.assert_array_equal(data.images[k], crops[0])
    assert data.collection["skipped"] == {"no face": 1, "several faces": 1, "unreadable": 1}
    with open(report) as f:
        assert sorted(csv.reader(f)) == sorted([["file", "reason"], ["neutral/clutter.png", "no face"],
                                                ["sad/two.png", "several faces"], ["sad/broken.jpg", "unreadable"]])


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
    via_default = load_or_synthesize(release)
    np.testing.assert_array_equal(via_default.images, data.images)
    assert load_or_synthesize("synthetic", synthetic_size=20).synthetic


SPLITS3 = ("Training", "PublicTest", "PrivateTest")


def test_load_or_synthesize_routes_a_given_collection(tmp_path):
    root = write_ck_style_collection(tmp_path / "ck", per_emotion=2)
    data = load_or_synthesize(root)
    assert data.collection["left_out"] == {"contempt": 2}
    assert data.collection["skipped"] == {"no face": 1, "several faces": 1, "unreadable": 0}
    assert len(data) == 2 * 6 + 1 and "neutral" not in labelled(data).values()


def test_evaluate_command_reports_on_a_collection(tmp_path, tiny_model_path, capsys):
    from fer_utils import evaluation as ev
    from fer_utils.__main__ import main
    from fer_utils.models import load_model

    root = write_ck_style_collection(tmp_path / "ck", per_emotion=3)
    skipped = tmp_path / "skipped.csv"
    assert main(["evaluate", "--model", str(tiny_model_path), "--data", str(root), "--json",
                 "--report-skipped", str(skipped)]) == 0
    out = capsys.readouterr().out
    result = json.loads(out[out.index("{"):])
    data = load_faces(root)
    proba = ev.predict_proba(load_model(tiny_model_path), data.images)
    present = ["angry", "disgust", "fear", "happy", "sad", "surprise"]  # CK+'s names, no neutral; contempt left out
    assert result["emotions"] == present and list(result["per_emotion"]) == present
    assert result["n"] == len(data) == 19 and result["split"] is None
    assert result["accuracy"] == pytest.approx((proba.argmax(1) == data.emotions).mean())
    assert result["accuracy_ci"] == pytest.approx(list(ev.accuracy_ci(data.emotions, proba)[1:]))
    labels = [EMOTIONS.index(e) for e in present]
    assert result["macro_f1"] == pytest.approx(f1_score(data.emotions, proba.argmax(1), labels=labels, average="macro",
                                                        zero_division=0))
    matrix = np.array(result["confusion_matrix"])
    assert matrix.shape == (6, 7) and matrix.sum() == 19 and matrix[:, EMOTIONS.index("neutral")].sum() == \
        (proba.argmax(1) == EMOTIONS.index("neutral")).sum(), "a neutral answer is a miss, counted in its column"
    assert result["collection"]["left_out"] == {"contempt": 3}
    assert skipped.read_text().splitlines()[1:] == ["happy/clutter.jpg,no face", "happy/two_faces.jpg,several faces"]
    assert main(["evaluate", "--model", str(tiny_model_path), "--data", str(root), "--tta"]) == 0
    text = capsys.readouterr().out
    assert "on every face of ck (n=19, flip TTA): accuracy" in text and "95% CI" in text and "over its 6 emotions" in text
    assert "  sad " in text and "  neutral " not in text.split("confusion matrix")[1]
    assert "left out 3 contempt; skipped 2 image(s): 1 no face, 1 several faces" in text.splitlines()[-1]
    assert main(["evaluate", "--model", str(tiny_model_path), "--labels", "x.csv"]) == 2
    assert capsys.readouterr().err.startswith("error: --labels, --convention and --report-skipped need --data")
