"""EmotionRecognizer: real faces in, seven probabilities out, through the compiled network (never model.predict)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from fer_utils.constants import EMOTIONS
from fer_utils.models import build_lenet, save_model
from fer_utils.recognizer import EmotionRecognizer, Face, annotate, read_image
from fer_utils.scenes import astronaut_bgr, cluttered_background, make_scene
from fer_utils.video import iou

ASTRONAUT_FACE = np.array([[177, 66, 95, 95]])


@pytest.fixture(scope="module")
def tiny_model_path(tmp_path_factory):
    model = build_lenet(filters=(4, 8), units=(16,), seed=3)
    return save_model(model, tmp_path_factory.mktemp("models") / "tiny.keras")


@pytest.fixture(scope="module")
def recognizer(tiny_model_path):
    return EmotionRecognizer(tiny_model_path)


def test_astronaut_face_is_found_and_classified(recognizer):
    faces = recognizer.predict(astronaut_bgr())
    assert len(faces) == 1
    face = faces[0]
    assert iou(ASTRONAUT_FACE, np.array([face.box]))[0, 0] > 0.6
    assert face.probabilities.shape == (7,) and face.probabilities.dtype == np.float64
    assert abs(face.probabilities.sum() - 1) < 1e-5
    assert face.emotion == EMOTIONS[int(face.probabilities.argmax())] and face.score == face.probabilities.max()


def test_compiled_call_matches_keras_and_never_uses_predict(recognizer, monkeypatch):
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (70, 48, 48), dtype=np.uint8)  # more than the largest bucket
    expected = recognizer.model(crops, training=False).numpy()

    def no_predict(*a, **k):
        raise AssertionError("model.predict must not be used")

    monkeypatch.setattr(recognizer.model, "predict", no_predict)
    got = recognizer.classify(crops)
    assert got.shape == (70, 7)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    for n in (0, 1, 3):
        np.testing.assert_allclose(recognizer.classify(crops[:n]), expected[:n], atol=1e-5)
    assert len(recognizer.predict(astronaut_bgr())) == 1
    with pytest.raises(ValueError, match=r"faces must have shape \(K, 48, 48\)"):
        recognizer.classify(np.zeros((2, 64, 64), np.uint8))


def test_batch_sends_all_faces_of_all_frames_in_one_call(recognizer, monkeypatch):
    frames = [make_scene(3, seed=1)[0], cluttered_background(seed=5), astronaut_bgr()]
    single = [recognizer.predict(f) for f in frames]
    calls = []
    original = recognizer.classify
    monkeypatch.setattr(recognizer, "classify", lambda faces: calls.append(len(faces)) or original(faces))
    batch = recognizer.predict_batch(frames)
    assert calls == [4]
    assert [len(b) for b in batch] == [3, 0, 1]
    for got, want in zip(batch, single, strict=True):
        assert [f.box for f in got] == [f.box for f in want]
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-5)


def test_no_face_tiny_and_huge_frames(recognizer):
    assert recognizer.predict(cluttered_background(seed=2)) == []
    assert recognizer.predict(np.zeros((10, 10, 3), np.uint8)) == []
    assert recognizer.predict(np.zeros((10, 10), np.uint8)) == []
    huge = cluttered_background(3000, 4000, seed=6)
    huge[200:2760, 700:3260] = cv2.resize(astronaut_bgr(), (2560, 2560), interpolation=cv2.INTER_LINEAR)
    faces = recognizer.predict(huge)
    scaled = ASTRONAUT_FACE * 5 + np.array([700, 200, 0, 0])
    assert iou(scaled, np.array([faces[0].box]))[0, 0] > 0.6, "the face is found, and is the largest"


def test_every_layout_gives_the_same_face(recognizer):
    bgr = astronaut_bgr()
    ref = recognizer.predict(bgr)[0]
    layouts = [(bgr[:, :, ::-1].copy(), "rgb"), (cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), "bgr"),
               (cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA), "bgr"), (cv2.cvtColor(bgr, cv2.COLOR_BGR2RGBA), "rgb")]
    for image, color in layouts:
        faces = recognizer.predict(image, color)
        assert len(faces) == 1 and faces[0].box == ref.box
        # the network sees the gray crop, so every layout gives the same probabilities
        np.testing.assert_allclose(faces[0].probabilities, ref.probabilities, atol=1e-5)


def test_largest_only_and_min_face_size(tiny_model_path):
    frame, truth = make_scene(4, sizes=(60, 140), seed=4)
    everyone = EmotionRecognizer(tiny_model_path).predict(frame)
    assert len(everyone) == 4
    areas = [f.box[2] * f.box[3] for f in everyone]
    assert areas == sorted(areas, reverse=True), "largest first"
    largest = EmotionRecognizer(tiny_model_path, largest_only=True).predict(frame)
    assert len(largest) == 1 and largest[0].box == everyone[0].box
    cut = int(np.median(truth[:, 2]))
    big = EmotionRecognizer(tiny_model_path, min_face_size=cut).predict(frame)
    assert 0 < len(big) < 4 and all(min(f.box[2:]) >= cut for f in big)


def test_face_as_dict_is_json_ready():
    p = np.array([0.1, 0.05, 0.05, 0.5, 0.1, 0.1, 0.1])
    face = Face((1, 2, 30, 30), p)
    d = json.loads(json.dumps(face.as_dict()))
    assert d == {"box": [1, 2, 30, 30], "emotion": "happy", "score": 0.5,
                 "probabilities": dict(zip(EMOTIONS, p.tolist(), strict=True))}


def test_annotate_draws_on_a_copy(recognizer):
    frame = astronaut_bgr()
    before = frame.copy()
    faces = recognizer.predict(frame)
    out = annotate(frame, faces)
    np.testing.assert_array_equal(frame, before)
    assert out.shape == frame.shape and out.dtype == np.uint8
    x, y, w, h = faces[0].box
    assert (out[y, x:x + w] != frame[y, x:x + w]).any(), "box drawn"
    np.testing.assert_array_equal(annotate(frame, []), frame)
    gray = annotate(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), faces)
    assert gray.shape == frame.shape
    edge = annotate(frame, [Face((480, 480, 40, 40), faces[0].probabilities)])  # face at the corner: no error
    assert edge.shape == frame.shape


def test_read_image_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png does not exist"):
        read_image(tmp_path / "nope.png")
    junk = tmp_path / "junk.jpg"
    junk.write_text("not an image")
    with pytest.raises(ValueError, match="junk.jpg could not be read"):
        read_image(junk)
    with pytest.raises(ValueError, match="is a directory"):
        read_image(tmp_path)
    good = tmp_path / "a.png"
    cv2.imwrite(str(good), astronaut_bgr())
    np.testing.assert_array_equal(read_image(good), astronaut_bgr())


def test_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        EmotionRecognizer(tmp_path / "missing.keras")
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupt"):
        EmotionRecognizer(bad)


@pytest.mark.parametrize("detector", ["mtcnn", "blazeface"])
def test_eye_landmarks_with_alignment(tiny_model_path, detector):
    rec = EmotionRecognizer(tiny_model_path, detector=detector, align=True)
    faces = rec.predict(astronaut_bgr())
    assert len(faces) == 1 and iou(ASTRONAUT_FACE, np.array([faces[0].box]))[0, 0] > 0.6
    assert abs(faces[0].probabilities.sum() - 1) < 1e-5


def test_the_tflite_beside_the_model_is_what_runs(tiny_model_path, tmp_path, monkeypatch):
    import fer_utils.models

    monkeypatch.setenv("FER_UTILS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(fer_utils.models, "export_litert", lambda *a, **k: pytest.fail("nothing is exported"))
    crops = np.random.default_rng(1).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    fast = EmotionRecognizer(tiny_model_path)
    assert fast.runtime == "litert" and fast._call.path == tiny_model_path.with_suffix(".tflite")
    assert fast._model is None  # the Keras model is never loaded to recognise faces
    np.testing.assert_allclose(fast.classify(crops), fast.model(crops, training=False).numpy(), atol=1e-5)
    also = EmotionRecognizer(tiny_model_path.with_suffix(".tflite"))  # the LiteRT file itself works too
    np.testing.assert_array_equal(also.classify(crops), fast.classify(crops))
    with pytest.raises(ValueError, match="is a LiteRT file; pass its .keras"):
        _ = also.model
    damaged = tmp_path / "damaged.tflite"
    damaged.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="could not be read.*python -m fer_utils export"):
        EmotionRecognizer(damaged)


def test_a_model_without_tflite_is_exported_once_into_the_cache(tmp_path, monkeypatch):
    import fer_utils.models

    monkeypatch.setenv("FER_UTILS_CACHE_DIR", str(tmp_path / "cache"))
    path = save_model(build_lenet(filters=(4, 8), units=(16,), seed=4), tmp_path / "own.keras", litert=False)
    assert not path.with_suffix(".tflite").exists()
    crops = np.random.default_rng(1).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    fast = EmotionRecognizer(path)
    assert fast.runtime == "litert"
    (exported,) = (tmp_path / "cache").glob("*.tflite")
    slow = EmotionRecognizer(path, runtime="tensorflow")
    np.testing.assert_allclose(fast.classify(crops), slow.classify(crops), atol=1e-6)
    np.testing.assert_allclose(fast.classify(crops), slow.model(crops, training=False).numpy(), atol=1e-6)

    real_export = fer_utils.models.export_litert
    monkeypatch.setattr(fer_utils.models, "export_litert", lambda *a, **k: pytest.fail("the cached export is reused"))
    np.testing.assert_allclose(EmotionRecognizer(path).classify(crops), slow.classify(crops), atol=1e-6)

    exported.write_bytes(b"damaged")  # a damaged cache is made again, never trusted
    monkeypatch.setattr(fer_utils.models, "export_litert", real_export)
    np.testing.assert_allclose(EmotionRecognizer(path).classify(crops), slow.classify(crops), atol=1e-6)
    assert exported.stat().st_size > 1000
    with pytest.raises(ValueError, match="runtime 'onnx' is unknown"):
        EmotionRecognizer(path, runtime="onnx")

    from fer_utils.__main__ import main  # the fix the light install names: `export` writes the .tflite beside it

    assert main(["export", "--model", str(path)]) == 0
    beside = EmotionRecognizer(path)
    assert beside._call.path == path.with_suffix(".tflite")
    np.testing.assert_allclose(beside.classify(crops), slow.classify(crops), atol=1e-6)
    assert main(["export", "--model", str(tmp_path / "missing.keras")]) == 2


def test_each_thread_gets_its_own_interpreter(recognizer):
    from concurrent.futures import ThreadPoolExecutor

    crops = np.random.default_rng(2).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    expected = recognizer.classify(crops)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: recognizer.classify(crops), range(40)))
    for got in results:
        np.testing.assert_allclose(got, expected, atol=1e-6)


def test_recognising_faces_needs_neither_tensorflow_nor_keras(tmp_path):
    """The inference path of a fresh clone: shipped .tflite files, LiteRT and OpenCV only."""
    import subprocess
    import sys

    photo, clip = tmp_path / "photo.jpg", tmp_path / "clip.avi"
    cv2.imwrite(str(photo), astronaut_bgr())
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (512, 512))
    for _ in range(5):
        writer.write(astronaut_bgr())
    writer.release()
    own = save_model(build_lenet(filters=(4, 8), units=(16,)), tmp_path / "own.keras", litert=False)
    code = f"""
import sys
sys.modules["tensorflow"] = sys.modules["keras"] = None  # any attempt to import them raises ImportError
import fer_utils, fer_utils.detector, fer_utils.recognizer, fer_utils.shipped, fer_utils.video, fer_utils.webcam
import fer_utils.audit, fer_utils.plots  # the exploration notebook's modules: data plots need no TensorFlow either
from fer_utils.__main__ import main
panel = fer_utils.webcam.WebcamPanel({str(clip)!r}, record=False)  # the live panel with its default model
assert panel.recognizer.model_path.stem == fer_utils.shipped.LIVE_NETWORK  # the cards choose the network PACKAGED names
assert main(["predict", {str(photo)!r}, "--json"]) == 0
assert main(["video", {str(clip)!r}, "--csv", {str(tmp_path / "faces.csv")!r}]) == 0
assert main(["predict", {str(photo)!r}, "--model", {str(own)!r}]) == 2
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert '"emotion": "happy"' in run.stdout  # the astronaut smiles
    assert (tmp_path / "faces.csv").read_text().count("\n") == 6  # a header and one face in each of 5 frames
    error = run.stderr.strip().splitlines()[-1]
    assert error.startswith("error: ") and "own.keras has no own.tflite beside it" in error
    assert "pip install -e '.[train]'" in error and "python -m fer_utils export" in error
    assert "absl" not in run.stderr and "XNNPACK" not in run.stderr
