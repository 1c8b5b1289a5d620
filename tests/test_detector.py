"""Face detectors on real faces (scikit-image's astronaut photo and LFW faces pasted into cluttered scenes)."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from fer_utils.detector import DETECTORS, BlazeFaceDetector, HaarDetector, build_detector, crop_faces, to_gray
from fer_utils.scenes import astronaut_bgr, cluttered_background, lfw_faces, make_scene, paste_face
from fer_utils.video import iou

ASTRONAUT_FACE = np.array([[177, 66, 95, 95]])  # Haar box at full resolution, checked by eye


@pytest.fixture(scope="module")
def detectors():
    return {name: build_detector(name) for name in DETECTORS}


def matched(truth: np.ndarray, found: np.ndarray, min_iou: float = 0.4) -> np.ndarray:
    """For each true box, whether some found box overlaps it."""
    if len(found) == 0:
        return np.zeros(len(truth), bool)
    return iou(truth, found).max(axis=1) >= min_iou


@pytest.mark.parametrize("name", DETECTORS)
def test_finds_the_astronaut(detectors, name):
    boxes = detectors[name].detect(astronaut_bgr())
    assert boxes.dtype.kind == "i" and boxes.shape == (1, 4)
    assert iou(ASTRONAUT_FACE, boxes)[0, 0] > 0.6
    assert boxes[0, 2] == boxes[0, 3], "boxes are square, like FER2013 crops"


@pytest.mark.parametrize("name, seeds, size", [("blazeface", range(6), 384), ("haar", range(6), 640), ("mtcnn", range(2), 640)])
def test_misses_no_face_in_a_cluttered_scene(detectors, name, seeds, size):
    # blazeface sees the frame at 192 px and misses some of these bare LFW crops at 640x480 (not real heads with
    # hair and ears around them): its scene is smaller, so the faces are 1/4 to 1/3 of it, as in a webcam
    for seed in seeds:
        frame, truth = make_scene(4 if size == 640 else 2, height=size * 3 // 4, width=size, seed=seed)
        found = detectors[name].detect(frame)
        assert matched(truth, found).all(), f"seed {seed}: missed {truth[~matched(truth, found)]}"
        assert len(found) <= len(truth) + 1


@pytest.mark.parametrize("name", DETECTORS)
def test_no_face_gives_empty_boxes(detectors, name):
    for image in (cluttered_background(seed=3), np.zeros((480, 640, 3), np.uint8), np.full((10, 10), 200, np.uint8)):
        boxes = detectors[name].detect(image)
        assert boxes.shape == (0, 4)


def test_every_image_layout_finds_the_same_face(detectors):
    bgr = astronaut_bgr()
    rgb = bgr[:, :, ::-1].copy()
    layouts = {
        "bgr": (bgr, "bgr"), "rgb": (rgb, "rgb"), "gray": (cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), "bgr"),
        "gray1": (cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)[:, :, None], "bgr"),
        "bgra": (cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA), "bgr"), "rgba": (cv2.cvtColor(bgr, cv2.COLOR_BGR2RGBA), "rgb"),
        "float": (bgr / 255.0, "bgr"),
    }
    for name, det in detectors.items():
        for layout, (image, color) in layouts.items():
            boxes = det.detect(image, color)
            assert len(boxes) == 1 and iou(ASTRONAUT_FACE, boxes)[0, 0] > 0.6, (name, layout, boxes)


def test_huge_frame_maps_boxes_back(detectors):
    huge = cluttered_background(3000, 4000, seed=1)
    truth = np.array([paste_face(huge, lfw_faces()[0], 2500, 1200, 600)])
    for name, det in detectors.items():
        boxes = det.detect(huge)
        assert matched(truth, boxes).all(), (name, boxes)


@pytest.mark.parametrize("name", DETECTORS)
def test_min_size_is_respected(name):
    # a 640x480 frame, or for blazeface (which misses small bare LFW crops) a 320x240 one
    wide = name != "blazeface"
    frame = cluttered_background(480 if wide else 240, 640 if wide else 320, seed=2)
    small = np.array([paste_face(frame, lfw_faces()[1], 100 if wide else 10, 100 if wide else 60, 60 if wide else 70)])
    big = np.array([paste_face(frame, lfw_faces()[0], 350 if wide else 150, 150 if wide else 50, 140)])
    assert matched(np.concatenate([small, big]), build_detector(name, min_size=40).detect(frame)).all()
    found = build_detector(name, min_size=100).detect(frame)
    assert matched(big, found).all() and not matched(small, found).any()


def test_bad_layouts_and_names_are_clear_errors():
    det = build_detector("haar")
    for bad in (np.zeros((4, 4, 2), np.uint8), np.zeros((2, 4, 4, 3), np.uint8), np.zeros((0, 5), np.uint8),
                np.zeros((5, 5), bool)):
        with pytest.raises(ValueError, match="image must be"):
            det.detect(bad)
    with pytest.raises(ValueError, match="color must be"):
        det.detect(np.zeros((50, 50, 3), np.uint8), color="hsv")
    with pytest.raises(ValueError, match="detector 'yolo' is unknown"):
        build_detector("yolo")


@pytest.mark.parametrize("make", [HaarDetector, BlazeFaceDetector])
def test_detector_is_safe_across_threads(make):
    det = make()
    frames = [make_scene(3, seed=s)[0] for s in range(4)]
    expected = [det.detect(f) for f in frames]
    results: dict[int, list] = {}

    def work(k):
        results[k] = [det.detect(frames[(k + i) % 4]) for i in range(6)]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, got in results.items():
        for i, boxes in enumerate(got):
            np.testing.assert_array_equal(boxes, expected[(k + i) % 4])


def test_crop_faces_squares_cuts_and_resizes():
    gray = np.tile(np.arange(200, dtype=np.uint8), (100, 1))  # brightness = x
    crops = crop_faces(gray, np.array([[50, 10, 80, 80], [60, 20, 40, 60]]))
    assert crops.shape == (2, 48, 48) and crops.dtype == np.uint8
    assert abs(int(crops[0, :, 0].mean()) - 50) <= 2 and abs(int(crops[0, :, -1].mean()) - 129) <= 2
    # the 40x60 box becomes a 60x60 square around the same centre: x from 50 to 110
    assert abs(int(crops[1, :, 0].mean()) - 50) <= 2 and abs(int(crops[1, :, -1].mean()) - 109) <= 2
    wide = crop_faces(gray, np.array([[50, 10, 80, 80]]), margin=0.25)  # 40 px wider: x from 30 to 150
    assert abs(int(wide[0, :, 0].mean()) - 30) <= 2 and abs(int(wide[0, :, -1].mean()) - 149) <= 2
    edge = crop_faces(gray, np.array([[-40, -40, 80, 80], [500, 500, 20, 20]]))  # outside: replicated, no error
    assert edge.shape == (2, 48, 48) and edge[0, :, :20].max() == 0
    assert crop_faces(gray, np.empty((0, 4))).shape == (0, 48, 48)


def test_alignment_levels_the_eyes():
    image = np.full((200, 200), 255, np.uint8)
    left, right = (70, 90), (130, 110)  # eyes on a line tilted by 18 degrees
    for x, y in (left, right):
        cv2.circle(image, (x, y), 6, 0, -1)
    box = np.array([[40, 40, 120, 120]])
    tilted = crop_faces(image, box)
    level = crop_faces(image, box, eyes=np.array([[left, right]], float))

    def eye_rows(face):
        ys, xs = np.nonzero(face < 128)
        return ys[xs < 24].mean(), ys[xs >= 24].mean()

    a, b = eye_rows(tilted[0])
    assert b - a > 5
    a, b = eye_rows(level[0])
    assert abs(b - a) < 1.5


def test_blazeface_gives_level_eyes_and_finds_a_turned_face():
    det = BlazeFaceDetector()
    boxes, eyes = det.detect_landmarks(astronaut_bgr())
    (lx, ly), (rx, ry) = eyes[0]
    x, y, w, _ = boxes[0]
    assert x < lx < rx < x + w, "eyes inside the box, image-left eye first"
    assert abs(ry - ly) < 0.1 * w, "the astronaut holds her head level"
    # the cameraman looks down and to the side: Haar's frontal cascade misses him, BlazeFace does not
    from skimage.data import camera

    cameraman = np.ascontiguousarray(camera())
    assert len(HaarDetector().detect(cameraman)) == 0
    found = det.detect(cameraman)
    assert len(found) == 1 and iou(np.array([[195, 120, 80, 80]]), found)[0, 0] > 0.5, found


def test_blazeface_missing_or_corrupt_model_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(BlazeFaceDetector, "MODEL", tmp_path / "gone.tflite")
    with pytest.raises(FileNotFoundError, match="gone.tflite is missing"):
        BlazeFaceDetector()
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a model" * 100)
    monkeypatch.setattr(BlazeFaceDetector, "MODEL", junk)
    with pytest.raises(ValueError, match="junk.tflite could not be read"):
        BlazeFaceDetector()


def test_to_gray_matches_opencv():
    bgr = astronaut_bgr()
    np.testing.assert_array_equal(to_gray(bgr), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    np.testing.assert_array_equal(to_gray(bgr[:, :, ::-1].copy(), "rgb"), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
