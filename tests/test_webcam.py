"""The webcam panel driven directly: JPEG bytes into the browser handler, clips and fake cameras into the kernel
loop; plus the photo cell and the notebook, headless on the generated clip."""

from __future__ import annotations

import json
import threading
import time

import cv2
import nbformat
import numpy as np
import pandas as pd
import pytest

from fer_utils.constants import EMOTIONS, PROJECT_ROOT
from fer_utils.models import build_lenet, save_model
from fer_utils.recognizer import EmotionRecognizer
from fer_utils.scenes import astronaut_bgr
from fer_utils.video import COLUMNS
from fer_utils.webcam import (
    CameraError,
    ClipCapture,
    PhotoPanel,
    WebcamPanel,
    make_clip_frame,
    open_capture,
    save_clip,
)
from fer_utils.webcam.loop import _stop_all_loops

NOTEBOOK = PROJECT_ROOT / "notebooks" / "04_live_webcam.ipynb"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    return save_model(build_lenet(filters=(4, 8), units=(16,)), path, {"recipe": "untrained, for tests"})


@pytest.fixture(scope="module")
def recognizer(model_path):
    return EmotionRecognizer(model_path)


def jpeg(frame: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", frame)[1].tobytes()


def until(condition, timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


class FakeCapture:
    """A cv2.VideoCapture stand-in: ``frames`` good reads (None = endless), then failures, like an unplugged camera."""

    def __init__(self, index=0, frames: int | None = None, opened: bool = True):
        self.index, self.frames, self.opened = index, frames, opened
        self.reads = 0
        self.released = False

    def isOpened(self):  # noqa: N802
        return self.opened and not self.released

    def read(self):
        if self.released or (self.frames is not None and self.reads >= self.frames):
            return False, None
        self.reads += 1
        return True, make_clip_frame(self.reads)

    def set(self, prop, value):
        return False

    def release(self):
        self.released = True


def send_frames(panel: WebcamPanel, frames: list[np.ndarray], latency_ms=40.0) -> list[dict]:
    replies = []
    panel.camera.send = lambda content, buffers=None: replies.append(content)
    for i, frame in enumerate(frames):
        panel.camera._on_browser_msg(panel.camera, {"type": "frame", "id": i, "latency_ms": latency_ms}, [jpeg(frame)])
    return replies


# ----------------------------------------------------------------------------------------------- browser path


def test_a_slow_browser_path_sends_smaller_frames_until_it_is_fast_again(recognizer):
    from fer_utils.webcam.panel import ADAPTIVE_STEPS

    panel = WebcamPanel("browser", recognizer, width=640)
    panel.start()
    frame = make_clip_frame(0)
    sizes = []
    for latency in (150.0, 150.0, 150.0, 20.0, 20.0):
        send_frames(panel, [frame] * 30, latency_ms=latency)
        sizes.append((panel.camera.width, panel.camera.quality))
    (_, q0), (s1, q1), (s2, q2) = ADAPTIVE_STEPS
    assert sizes == [(round(640 * s1), q1), (round(640 * s2), q2), (round(640 * s2), q2), (round(640 * s1), q1),
                     (640, q0)]
    panel.stop()
    panel.start()  # every run starts at full size
    assert (panel.camera.width, panel.camera.quality) == (640, q0)
    panel.stop()


def test_browser_frames_get_faces_back(recognizer):
    panel = WebcamPanel("browser", recognizer)
    panel.start()
    assert panel.camera.running and panel.stop_button.disabled is False
    replies = send_frames(panel, [make_clip_frame(i) for i in range(0, 40, 4)])
    assert [r["id"] for r in replies] == list(range(10))
    assert all(r["type"] == "result" and "error" not in r for r in replies)
    found = [r for r in replies if r["faces"]]
    assert len(found) >= 8, "the astronaut's face is found in almost every frame"
    face = found[0]["faces"][0]
    assert face["emotion"] in EMOTIONS and 0 < face["score"] <= 1 and face["box"][2] >= 40
    assert (found[0]["width"], found[0]["height"]) == (640, 480)
    stats = panel.stats()
    assert stats["frames"] == 10 and stats["fps"] > 0 and stats["latency_ms"] == 40.0
    table = panel.results()
    assert len(table) == sum(len(r["faces"]) for r in replies)
    assert set(table.emotion) <= set(EMOTIONS)
    np.testing.assert_allclose(table[list(EMOTIONS)].sum(axis=1), 1, atol=1e-4)
    panel._show_status()
    assert "face" in panel.status.value and "fps" in panel.status.value
    assert any(e in panel.bars.value for e in EMOTIONS)
    panel.stop()
    assert not panel.camera.running and not panel.running


def test_browser_garbage_bytes_reply_with_error_and_show_it(recognizer):
    panel = WebcamPanel("browser", recognizer)
    replies = []
    panel.camera.send = lambda content, buffers=None: replies.append(content)
    panel.camera._on_browser_msg(panel.camera, {"type": "frame", "id": 7}, [b"not a jpeg"])
    panel.camera._on_browser_msg(panel.camera, {"type": "frame", "id": 8}, [])
    assert [r["id"] for r in replies] == [7, 8] and all("error" in r and r["faces"] == [] for r in replies)
    assert "fer-error" in panel.message.value
    panel.camera._on_browser_msg(panel.camera, {"type": "something else"}, [])
    assert len(replies) == 2


def test_browser_errors_from_javascript_show_in_panel(recognizer):
    panel = WebcamPanel("browser", recognizer)
    panel.start()
    panel.camera.error = "camera permission denied: allow the camera"
    panel.camera.running = False  # what webcam.js does after an error
    assert "permission denied" in panel.message.value
    assert not panel.running and panel.start_button.disabled is False


def test_browser_handler_is_thread_safe(recognizer):
    panel = WebcamPanel("browser", recognizer)
    replies, lock = [], threading.Lock()

    def record(content, buffers=None):
        with lock:
            replies.append(content)

    panel.camera.send = record
    data = jpeg(make_clip_frame(3))
    threads = [threading.Thread(target=lambda k=k: [panel.camera._on_browser_msg(
        panel.camera, {"type": "frame", "id": 10 * k + i}, [data]) for i in range(5)]) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r["id"] for r in replies) == sorted(10 * k + i for k in range(4) for i in range(5))
    assert all(len(r["faces"]) == 1 and "error" not in r for r in replies)
    assert panel.stats()["frames"] == 20 and len(panel.results()) == 20


def test_browser_source_stops_by_itself_after_duration(recognizer):
    panel = WebcamPanel("browser", recognizer)
    panel.start(duration=0.2)
    assert panel.camera.running
    assert until(lambda: not panel.camera.running, 5)
    assert panel.start_button.disabled is False


# ----------------------------------------------------------------------------------------------- kernel path


def test_clip_source_runs_headless(recognizer):
    panel = WebcamPanel("clip", recognizer, max_fps=None)
    panel.start()  # until 3 frames are in, not for a fixed time: a loaded CI machine may be slow
    assert until(lambda: panel.stats()["frames"] >= 3, timeout=120)
    panel.stop()
    table = panel.results()
    assert not panel.running and panel.start_button.disabled is False
    stats = panel.stats()
    assert stats["frames"] >= 3 and stats["fps"] > 0 and stats["latency_ms"] > 0
    assert table.frame.nunique() >= 0.8 * stats["frames"], "a face in (almost) every frame"
    assert set(table.emotion) <= set(EMOTIONS) and (table.source == "clip").all()
    shown = cv2.imdecode(np.frombuffer(panel.image.value, np.uint8), cv2.IMREAD_COLOR)
    assert shown.shape == (480, 640, 3)
    assert "stopped" in panel.status.value and "fps" in panel.status.value


def test_fake_camera_is_released_on_stop(recognizer):
    cams = []
    panel = WebcamPanel("camera", recognizer, max_fps=50,
                        capture_factory=lambda i: cams.append(FakeCapture(i)) or cams[-1])
    panel.start()
    assert until(lambda: panel.stats()["frames"] >= 3)
    assert panel.running and cams[0].index == 0 and not cams[0].released
    panel.stop()
    assert cams[0].released and not panel.running and not panel._loop.thread.is_alive()
    assert panel.message.value == ""


def test_unplugged_camera_shows_error_and_releases(recognizer):
    cams = []
    panel = WebcamPanel("camera", recognizer, capture_factory=lambda i: cams.append(FakeCapture(i, frames=3)) or cams[-1])
    panel.start()
    assert until(lambda: not panel.running)
    assert "stopped delivering frames" in panel.message.value
    assert cams[0].released and panel.start_button.disabled is False


def test_missing_camera_and_missing_file_are_reported(recognizer, tmp_path):
    cams = []
    panel = WebcamPanel("camera", recognizer, camera_index=3,
                        capture_factory=lambda i: cams.append(FakeCapture(i, opened=False)) or cams[-1])
    panel.start()
    assert until(lambda: not panel.running)
    assert "no camera at index 3" in panel.message.value and "browser camera" in panel.message.value
    assert cams[0].released
    panel = WebcamPanel("file", recognizer, video=tmp_path / "missing.mp4")
    panel.start()
    assert until(lambda: not panel.running)
    assert "does not exist" in panel.message.value
    with pytest.raises(ValueError, match="source 'webcam' is unknown"):
        WebcamPanel("webcam", recognizer)
    with pytest.raises(ValueError, match="needs video"):
        open_capture("file")
    with pytest.raises(CameraError, match="no camera at index 1"):
        open_capture("camera", camera_index=1, factory=lambda i: FakeCapture(i, opened=False))


def test_atexit_handler_releases_running_cameras(recognizer):
    cams = []
    panel = WebcamPanel("camera", recognizer, capture_factory=lambda i: cams.append(FakeCapture(i)) or cams[-1])
    panel.start()
    assert until(lambda: panel.stats()["frames"] >= 1)
    _stop_all_loops()
    assert cams[0].released and not panel.running


def test_file_source_plays_to_the_end(recognizer, tmp_path):
    video = save_clip(tmp_path / "clip.avi", n_frames=12)
    panel = WebcamPanel(str(video), recognizer, max_fps=None, loop_video=False)
    assert panel.source == "file"
    panel.start()
    panel.wait(60)
    assert not panel.running and panel.message.value == ""
    assert panel.stats()["frames"] == 12
    assert panel.results().frame.nunique() >= 8, "a face in most frames"


def test_snapshot_and_csv_are_written(recognizer, tmp_path):
    panel = WebcamPanel("browser", recognizer, out_dir=tmp_path)
    panel._guarded(panel.snapshot)
    assert "no frame yet" in panel.message.value
    send_frames(panel, [make_clip_frame(0), make_clip_frame(1)])
    shot = panel.snapshot()
    image = cv2.imread(str(shot))
    assert shot.parent == tmp_path and image.shape == (480, 640, 3)
    assert not np.array_equal(image, make_clip_frame(1)), "the snapshot is annotated"
    csv = panel.save_results()
    table = pd.read_csv(csv)
    assert len(table) == 2 and list(table.columns[:3]) == ["frame", "timestamp_s", "face_id"]
    assert table.face_id.tolist() == [0, 0], "the same face keeps its id from frame to frame"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "atomic writes leave no temp file"
    panel.record_box.value = False
    send_frames(panel, [make_clip_frame(2)])
    assert len(panel.results()) == 2
    panel.clear_results()
    assert panel.results().empty


# ----------------------------------------------------------------------------------------------- clips, photos


def test_generated_clips(tmp_path):
    y4m = save_clip(tmp_path / "clip.y4m", n_frames=3, width=320, height=240)
    data = y4m.read_bytes()
    header = b"YUV4MPEG2 W320 H240 F30:1 Ip A1:1 C420jpeg\n"
    assert data.startswith(header) and len(data) == len(header) + 3 * (6 + 320 * 240 * 3 // 2)
    cap = ClipCapture(width=320, height=240)
    ok, frame = cap.read()
    assert ok and frame.shape == (240, 320, 3) and frame.dtype == np.uint8
    cap.release()
    assert cap.read() == (False, None)
    with pytest.raises(ValueError, match=".y4m, .avi or .mp4"):
        save_clip(tmp_path / "clip.gif")


def test_photo_panel_boxes_every_face(recognizer):
    photo = astronaut_bgr()
    pair = np.concatenate([photo, photo[:, ::-1]], axis=1)  # two faces
    panel = PhotoPanel(recognizer, image=pair)
    assert len(panel.faces) == 2 and set(panel.faces.emotion) <= set(EMOTIONS)
    assert list(panel.faces.columns) == COLUMNS  # the one face table of videos, the webcam and photos
    assert sorted(panel.faces.x.tolist())[1] > 512
    assert "2 face(s)" in panel.table.value and panel.image.value[:2] == b"\xff\xd8"
    panel._on_upload({"new": ({"name": "a.jpg", "content": memoryview(jpeg(photo))},)})
    assert len(panel.faces) == 1
    panel._on_upload({"new": ({"name": "a.jpg", "content": memoryview(b"garbage")},)})
    assert "could not be decoded" in panel.table.value
    panel.show(np.full((200, 200, 3), 128, np.uint8))
    assert "no face found" in panel.table.value


def test_model_selector_switches_models_and_reports_bad_ones(model_path, tmp_path, monkeypatch):
    other = save_model(build_lenet(filters=(4, 4), units=(8,)), tmp_path / "other.keras")
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip")
    monkeypatch.setattr("fer_utils.webcam.panel.shipped_models", lambda: {"tiny": model_path, "other": other,
                                                                   "broken": broken})
    panel = WebcamPanel("browser")  # None: the first (best) shipped model
    assert panel.model_select.value == "tiny" and [v for _, v in panel.model_select.options] == ["tiny", "other",
                                                                                                  "broken"]
    first = panel.recognizer
    panel.model_select.value = "other"
    assert panel.recognizer is not first and panel.recognizer.model.count_params() < first.model.count_params()
    replies = send_frames(panel, [make_clip_frame(0)])
    assert replies[0]["faces"] and "error" not in replies[0]
    current = panel.recognizer
    panel.model_select.value = "broken"
    assert panel.recognizer is current and "corrupt" in panel.message.value
    panel = WebcamPanel("browser", str(model_path))
    assert panel.model_select.value == "tiny"


# ----------------------------------------------------------------------------------------------- notebook


@pytest.mark.slow
def test_notebook_runs_headless_on_the_clip(model_path, tmp_path):
    from fer_utils.workbook import HEADLESS_PARAMETERS, run_notebook

    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
    assert "parameters" in nb.cells[[c.cell_type for c in nb.cells].index("code")].metadata.get("tags", [])
    out = run_notebook(NOTEBOOK, tmp_path, {**HEADLESS_PARAMETERS[NOTEBOOK.name], "MODEL": str(model_path), "DURATION": 3}, html=False)
    executed = nbformat.read(out, as_version=4)
    text = json.dumps([c.get("outputs", []) for c in executed.cells])
    assert "Traceback" not in text and '"output_type": "error"' not in text
    assert "fps" in text and "face" in text
    recording = next(c for c in executed.cells if c.cell_type == "code" and "panel.results()" in c.source)
    assert any("image/png" in o.get("data", {}) for o in recording.outputs), "the timeline must show as a picture"



def test_the_live_default_is_the_best_model_as_fast_as_vgg8(model_path, tmp_path, monkeypatch):
    from fer_utils.shipped import LIVE_MAX_FLOPS, live_model_path

    big, fast = (save_model(build_lenet(filters=(4, 4), units=(8,)), tmp_path / f"{n}.keras") for n in ("big", "fast"))
    big.with_suffix(".json").write_text(json.dumps({"flops": 4 * LIVE_MAX_FLOPS}))
    fast.with_suffix(".json").write_text(json.dumps({"flops": LIVE_MAX_FLOPS / 2}))
    models = {"big": big, "tiny": model_path, "fast": fast}  # best first, as shipped_models orders them
    assert live_model_path(models) == fast
    assert live_model_path({"big": big, "tiny": model_path}) == big  # none carded as fast: the best
    monkeypatch.setattr("fer_utils.webcam.panel.shipped_models", lambda: models)
    assert WebcamPanel("browser").model_select.value == "fast"
