"""Recorded-video analysis on generated clips of real faces: table, face ids, timestamps, files; and the CLI."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest

from fer_utils.__main__ import main
from fer_utils.constants import EMOTIONS
from fer_utils.models import build_lenet, save_model
from fer_utils.plots import plot_timeline
from fer_utils.recognizer import EmotionRecognizer
from fer_utils.scenes import astronaut_bgr, cluttered_background, make_video
from fer_utils.video import COLUMNS, FaceTable, FaceTracker, FrameAnalyzer, analyze_video, iou


@pytest.fixture(scope="module")
def tiny_model_path(tmp_path_factory):
    return save_model(build_lenet(filters=(4, 8), units=(16,), seed=5), tmp_path_factory.mktemp("m") / "tiny.keras")


@pytest.fixture(scope="module")
def recognizer(tiny_model_path):
    return EmotionRecognizer(tiny_model_path)


@pytest.fixture(scope="module")
def clip():
    """30 frames: two faces moving and changing size, and the true boxes."""
    frames, truth = zip(*make_video(30, n_faces=2, seed=1), strict=True)
    return list(frames), list(truth)


@pytest.fixture(scope="module")
def clip_file(clip, tmp_path_factory):
    path = tmp_path_factory.mktemp("v") / "clip.mp4"
    frames = clip[0]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15, frames[0].shape[1::-1])
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def check_tracks(df: pd.DataFrame, truth: list[np.ndarray], min_iou: float = 0.5) -> None:
    """Every true face found on every frame, each under one face_id for the whole clip."""
    assert list(df.columns) == COLUMNS
    assert len(df) == sum(len(t) for t in truth)
    owner: dict[int, int] = {}
    for row in df.itertuples():
        overlaps = iou(np.array([[row.x, row.y, row.w, row.h]]), truth[row.frame])[0]
        k = int(overlaps.argmax())
        assert overlaps[k] >= min_iou, f"frame {row.frame}: box off by IoU {overlaps[k]:.2f}"
        assert owner.setdefault(row.face_id, k) == k, f"face_id {row.face_id} jumped to another face"
    assert df["face_id"].nunique() == truth[0].shape[0]
    np.testing.assert_allclose(df[list(EMOTIONS)].sum(axis=1), 1, atol=1e-5)
    assert (df["emotion"] == df[list(EMOTIONS)].idxmax(axis=1)).all()


def test_iterable_of_frames_gives_a_consistent_table(recognizer, clip):
    frames, truth = clip
    df = analyze_video(iter(frames), recognizer, fps=10, progress=False)
    check_tracks(df, truth)
    np.testing.assert_allclose(df["timestamp_s"], df["frame"] / 10)
    assert df["frame"].is_monotonic_increasing


def test_one_frame_at_a_time_as_the_webcam_gives_the_batched_table(recognizer, clip):
    frames, _ = clip
    batched = analyze_video(frames, recognizer, detect_every=3, smoothing=0.5, fps=10, progress=False)
    analyzer, table = FrameAnalyzer(recognizer, detect_every=3, smoothing=0.5), FaceTable()
    for frame in frames:
        index, ids, faces = analyzer(frame)
        table.add(index, index / 10, ids, faces)
    pd.testing.assert_frame_equal(table.to_frame(), batched, atol=1e-6)
    assert len(table) == len(batched)
    table.clear()
    assert table.to_frame().empty and list(table.to_frame().columns) == COLUMNS


def test_detect_every_n_tracks_in_between(recognizer, clip):
    frames, truth = clip
    every = analyze_video(frames, recognizer, detect_every=5, progress=False)
    check_tracks(every, truth)


def test_tracking_follows_fast_faces_between_detections(recognizer):
    # 10 px a frame: a box held still for 5 frames would fall to IoU ~0.4; the tracker must move it
    frames, truth = zip(*make_video(18, n_faces=2, seed=2, speed=10), strict=True)
    df = analyze_video(frames, recognizer, detect_every=6, progress=False)
    check_tracks(df, list(truth), min_iou=0.5)
    tracked, stale = [], []
    for row in df[df["frame"] % 6 != 0].itertuples():
        held = df[(df.face_id == row.face_id) & (df.frame == row.frame - row.frame % 6)][["x", "y", "w", "h"]]
        tracked.append(iou([[row.x, row.y, row.w, row.h]], truth[row.frame]).max())
        stale.append(iou(held.to_numpy(), truth[row.frame]).max())
    assert np.mean(tracked) > np.mean(stale) + 0.15, (np.mean(tracked), np.mean(stale))


def test_smoothing_steadies_probabilities(recognizer, clip):
    frames, _ = clip
    raw = analyze_video(frames, recognizer, progress=False)
    smooth = analyze_video(frames, recognizer, smoothing=0.8, progress=False)
    for fid in raw["face_id"].unique():
        a = raw[raw.face_id == fid][list(EMOTIONS)].to_numpy()
        b = smooth[smooth.face_id == fid][list(EMOTIONS)].to_numpy()
        np.testing.assert_allclose(a[0], b[0])  # nothing to smooth with on the first frame
        np.testing.assert_allclose(b[1], 0.8 * a[0] + 0.2 * a[1], atol=1e-9)
        assert np.abs(np.diff(b, axis=0)).sum() < np.abs(np.diff(a, axis=0)).sum()
    with pytest.raises(ValueError, match="smoothing must be in"):
        analyze_video(frames, recognizer, smoothing=1.5, progress=False)


def test_file_in_annotated_video_and_tables_out(recognizer, clip, clip_file, tmp_path):
    _, truth = clip
    out, csv, parquet = tmp_path / "out" / "annotated.mp4", tmp_path / "faces.csv", tmp_path / "faces.parquet"
    df = analyze_video(clip_file, recognizer, out=out, table=csv, progress=True)
    check_tracks(df, truth, min_iou=0.4)  # mp4v compression blurs the faces a little
    np.testing.assert_allclose(df["timestamp_s"], df["frame"] / 15)
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == len(truth)
    ok, first = cap.read()
    cap.release()
    assert ok and first.shape == (480, 640, 3)
    pd.testing.assert_frame_equal(pd.read_csv(csv), df, check_exact=False, rtol=1e-6)
    analyze_video(clip_file, recognizer, table=parquet, progress=False, max_frames=5)
    assert pd.read_parquet(parquet)["frame"].max() == 4
    leftovers = [p.name for p in tmp_path.rglob(".*")]
    assert leftovers == [], f"temp files left behind: {leftovers}"


def test_generator_is_streamed(recognizer):
    def endless():
        background = cluttered_background(seed=0)
        while True:
            yield background

    df = analyze_video(endless(), recognizer, max_frames=12, progress=False)
    assert df.empty and list(df.columns) == COLUMNS


def test_bad_inputs_are_clear_errors(recognizer, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.mp4 does not exist"):
        analyze_video(tmp_path / "missing.mp4", recognizer, progress=False)
    junk = tmp_path / "junk.mp4"
    junk.write_text("not a video")
    with pytest.raises(ValueError, match="junk.mp4 could not be read"):
        analyze_video(junk, recognizer, progress=False)
    frames = [astronaut_bgr()]
    with pytest.raises(ValueError, match="must end in .csv or .parquet"):
        analyze_video(frames, recognizer, table=tmp_path / "t.xlsx", progress=False)
    with pytest.raises(ValueError, match="must end in .mp4"):
        analyze_video(frames, recognizer, out=tmp_path / "v.gif", progress=False)
    with pytest.raises(ValueError, match="detect_every must be >= 1"):
        analyze_video(frames, recognizer, detect_every=0, progress=False)


def test_tracker_keeps_ids_and_ends_lost_tracks():
    t = FaceTracker(max_missing=2)
    assert t.update(0, [[0, 0, 50, 50], [200, 0, 50, 50]]) == [0, 1]
    assert t.update(1, [[205, 2, 50, 50], [4, 3, 50, 50]]) == [1, 0]
    assert t.update(2, [[8, 5, 50, 50]]) == [0]
    assert t.update(5, [[210, 0, 50, 50], [10, 5, 50, 50]]) == [2, 3], "both were gone too long: new ids"
    assert t.update(6, []) == []


def test_iou():
    a = np.array([[0, 0, 10, 10]])
    np.testing.assert_allclose(iou(a, [[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5]]), [[1, 50 / 150, 0]])


def test_plot_timeline(recognizer, clip):
    df = analyze_video(clip[0][:6], recognizer, progress=False)
    fig = plot_timeline(df)
    assert len(fig.axes) == 2
    assert len(fig.axes[0].lines) == len(EMOTIONS)
    empty = plot_timeline(df.iloc[:0])
    assert len(empty.axes) == 1
    with pytest.raises(ValueError, match="missing columns"):
        plot_timeline(pd.DataFrame({"a": [1]}))


def test_cli_predict_finds_the_astronaut(tiny_model_path, tmp_path, capsys):
    image = tmp_path / "astronaut.png"
    cv2.imwrite(str(image), astronaut_bgr())
    assert main(["predict", str(image), "--json", "--model", str(tiny_model_path)]) == 0
    result = json.loads(capsys.readouterr().out)
    (face,) = result[str(image)]
    assert iou(np.array([[177, 66, 95, 95]]), np.array([face["box"]]))[0, 0] > 0.6
    assert face["emotion"] in EMOTIONS and abs(sum(face["probabilities"].values()) - 1) < 1e-5
    for detector in ("blazeface", "mtcnn"):
        assert main(["predict", str(image), "--model", str(tiny_model_path), "--detector", detector]) == 0
        assert "1 face" in capsys.readouterr().out
    assert main(["predict", str(tmp_path / "none.png"), "--model", str(tiny_model_path)]) == 2
    assert "none.png does not exist" in capsys.readouterr().err


def test_cli_video_writes_mp4_and_csv(tiny_model_path, clip_file, tmp_path, capsys):
    out, csv = tmp_path / "out.mp4", tmp_path / "out.csv"
    code = main(["video", str(clip_file), "--out", str(out), "--csv", str(csv), "--model", str(tiny_model_path),
                 "--quiet", "--detect-every", "3"])
    assert code == 0, capsys.readouterr().err
    assert "2 faces tracked" in capsys.readouterr().out
    df = pd.read_csv(csv)
    assert list(df.columns) == COLUMNS and df["face_id"].nunique() == 2 and df["frame"].max() == 29
    cap = cv2.VideoCapture(str(out))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 30
    cap.release()
    assert main(["video", str(clip_file), "--model", str(tiny_model_path)]) == 2
    assert "nothing to write" in capsys.readouterr().err
