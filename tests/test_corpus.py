"""fer_utils.corpus on real Dask processes (no mocks): a local cluster of worker processes, a `dask scheduler` and
`dask worker`s started as separate processes, a worker killed mid-video, Ctrl-C and reruns, on generated clips."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import dask
import pandas as pd
import pytest

from fer_utils.__main__ import main
from fer_utils.constants import EMOTIONS
from fer_utils.corpus import (
    FRAME_COLUMNS,
    MANIFEST_COLUMNS,
    Settings,
    analyze_corpus,
    analyze_segment,
    compare_conditions,
    connect,
    emotion_shares,
    smoothed,
)
from fer_utils.scenes import cluttered_background, make_video
from fer_utils.scripted import write_clip, write_corpus
from fer_utils.shipped import default_model_path
from fer_utils.video import COLUMNS, analyze_video

BIN = Path(sys.executable).parent
FPS = 10.0


def drifting(path: Path, frames: int, n_faces: int = 1, seed: int = 0) -> Path:
    return write_clip(path, (f for f, _ in make_video(frames, n_faces, 240, 320, seed, sizes=(90, 110))), FPS)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Two clips with faces (one of two faces), one without a face, an empty file and a damaged one."""
    d = tmp_path_factory.mktemp("clips")
    drifting(d / "one.mp4", 25)
    drifting(d / "sub" / "two.mp4", 18, n_faces=2, seed=1)
    write_clip(d / "noface.mp4", (cluttered_background(240, 320, 3) for _ in range(8)), FPS)
    (d / "empty.mp4").write_bytes(b"")
    (d / "damaged.mp4").write_bytes((d / "one.mp4").read_bytes()[:600])  # a cut-off download
    return d


def stray_files(out: Path) -> list[Path]:
    """Temporary files left behind (atomic writes use hidden temp names beside the target)."""
    return [p for p in out.rglob(".*")]


def face_rows(frames: pd.DataFrame, video_id: str, like: pd.DataFrame) -> pd.DataFrame:
    """The rows of one video that have a face, with the dtypes of ``like`` (what `video` gives)."""
    rows = frames[(frames["video_id"] == video_id) & frames["face_id"].notna()]
    return rows[COLUMNS].astype(like.dtypes.to_dict()).reset_index(drop=True)


@pytest.fixture(scope="module")
def local_run(clips, tmp_path_factory):
    """The folder through the command, on a local cluster of 2 worker processes, 1-second segments."""
    out = tmp_path_factory.mktemp("local")
    t0 = time.perf_counter()
    code = main(["corpus", str(clips), "--out", str(out), "--workers", "2", "--segment", "1", "--quiet"])
    return out, code, time.perf_counter() - t0


def test_rows_match_video_csv_through_a_local_cluster(clips, local_run, tmp_path):
    out, _, _ = local_run
    frames = pd.concat([pd.read_parquet(p) for p in sorted((out / "frames").glob("*.parquet"))], ignore_index=True)
    assert list(frames.columns) == FRAME_COLUMNS
    for video_id, path in (("one", clips / "one.mp4"), ("two", clips / "sub" / "two.mp4")):
        analyze_video(path, table=tmp_path / f"{video_id}.csv", progress=False)  # what `video --csv` writes
        expected = pd.read_csv(tmp_path / f"{video_id}.csv")
        got = face_rows(frames, video_id, expected)
        assert len(expected) > 0 and expected["frame"].nunique() > 15
        # 1-second segments: frames 0-9, 10-19, 20-24 analysed by different tasks, face ids joined across them
        pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-12)
    assert frames.loc[frames["video_id"] == "two", "face_id"].nunique() == 2


def test_damaged_empty_and_face_free_files_and_a_rerun_that_skips(clips, local_run, capsys):
    out, code, _ = local_run
    assert code == 1  # some failed: the command says so and exits non-zero
    assert list(pd.read_csv(out / "manifest.csv").columns) == MANIFEST_COLUMNS
    manifest = pd.read_csv(out / "manifest.csv").set_index("video_id")
    assert manifest["status"].to_dict() == {"damaged": "error", "empty": "error", "noface": "done", "one": "done",
                                            "two": "done"}
    assert "empty file" in manifest.loc["empty", "error"] and "\n" not in manifest.loc["damaged", "error"]
    assert manifest.loc["one", "frames_read"] == 25 and manifest.loc["one", "duration_s"] == 2.5
    assert manifest.loc["one", "sampling"] == "every 1" and manifest.loc["one", "detector"] == "blazeface"
    noface = pd.read_parquet(out / "frames" / "noface.parquet")
    assert len(noface) == 8 and noface["face_id"].isna().all() and noface[list(EMOTIONS)].isna().all().all()
    summary = pd.read_csv(out / "summary.csv")
    assert summary.loc[summary["video_id"] == "noface", "face_share"].tolist() == [0.0]
    whole = summary[summary["video_id"] == "one"].iloc[0]
    assert whole["face_share"] == 1.0 and whole["dominant"] in EMOTIONS
    assert abs(sum(whole[f"top_{e}"] for e in EMOTIONS) - 1) < 1e-9
    assert not stray_files(out)

    before = {p.name: p.stat().st_mtime_ns for p in (out / "frames").glob("*.parquet")}
    t0 = time.perf_counter()
    code = main(["corpus", str(clips), "--out", str(out), "--workers", "1", "--quiet", "--json"])
    printed = capsys.readouterr()
    assert code == 1 and "2 of 5 videos failed" in printed.err
    record = json.loads(printed.out)  # the JSON alone on standard output
    assert (record["videos"], record["done"], record["failed"]) == (5, 3, 2)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "frames").glob("*.parquet")} == before  # skipped
    again = pd.read_csv(out / "manifest.csv").set_index("video_id")
    pd.testing.assert_frame_equal(again.drop(index=["damaged", "empty"]), manifest.drop(index=["damaged", "empty"]))
    print(f"rerun that skips: {time.perf_counter() - t0:.1f} s")

    # a changed file is redone; --every changes the settings, so everything is redone
    os.utime(clips / "one.mp4")
    main(["corpus", str(clips / "one.mp4"), str(clips / "noface.mp4"), "--out", str(out), "--workers", "1",
         "--quiet"])
    assert (out / "frames" / "one.parquet").stat().st_mtime_ns > before["one.parquet"]
    assert (out / "frames" / "noface.parquet").stat().st_mtime_ns == before["noface.parquet"]


def test_a_local_worker_spends_its_core_on_frames(clips):
    """Dask's housekeeping runs at a batch job's pace in a local cluster's workers, and a worker's frames reuse freed
    memory: a third pass over a clip faults in almost no new pages (measured: 0.4 a frame), where Dask's
    MALLOC_TRIM_THRESHOLD_ alone makes every 320x240 frame fault in fresh ones (about 360 a frame)."""
    client, cluster = connect(None, 1, ":0")
    try:
        config = client.run(lambda: [dask.config.get(k) for k in ("distributed.worker.profile.enabled",
                                                                  "distributed.admin.tick.interval")])
        assert list(config.values()) == [[False, "1s"]]
        assert list(client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_")).values()) == ["65536"]  # Dask's
        task = (analyze_segment, str(clips / "one.mp4"), 0, None, FPS, Settings(str(default_model_path().resolve())))
        for _ in range(2):  # loads the recognizer; the heap grows to what a frame needs
            client.submit(*task, pure=False).result()

        def faults():
            return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

        before = list(client.run(faults).values())[0]
        frames = client.submit(*task, pure=False).result()["frames_analysed"]
        after = list(client.run(faults).values())[0]
        assert frames == 25 and (after - before) / frames < 10, f"{(after - before) / frames:.0f} page faults a frame"
    finally:
        client.close()
        cluster.close()


def test_a_csv_list_reaches_the_summary_and_fps_samples(tmp_path):
    videos = write_corpus(tmp_path / "videos", participants=1, seconds=3, fps=FPS)
    result = analyze_corpus([videos], tmp_path / "out", fps=4, workers=1, progress=False, dashboard_address=":0")
    assert result.failed == 0
    m = result.manifest.set_index("video_id")
    assert set(m.index) == {"P01_comedy", "P01_drama"} and m["condition"].to_dict()["P01_drama"] == "drama"
    assert (m["frames_read"] == 30).all() and (m["frames_analysed"] == 12).all() and (m["sampling"] == "fps 4").all()
    frames = result.frames(["P01_comedy"])
    assert frames["frame"].unique().tolist() == [0, 3, 5, 8, 10, 13, 15, 18, 20, 23, 25, 28]  # first frame of each 0.25 s
    assert (frames["participant"] == "P01").all() and (frames["session"] == 1).all()
    s = result.summary
    assert {"participant", "condition", "session"} <= set(s.columns)
    assert s.loc[s["video_id"] == "P01_drama", "condition"].eq("drama").all()
    assert pd.read_csv(tmp_path / "out" / "summary.csv")["condition"].tolist() == s["condition"].tolist()


def test_bad_options_are_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="no videos"):
        analyze_corpus([tmp_path], tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match="--every must be >= 1"):
        analyze_corpus([tmp_path / "x.mp4"], tmp_path / "out", every=0, progress=False)
    (tmp_path / "list.csv").write_text("name,condition\na.mp4,x\n")
    with pytest.raises(ValueError, match="no column naming the videos"):
        analyze_corpus([tmp_path / "list.csv"], tmp_path / "out", progress=False)


# ------------------------------------------------------------------------------------- a cluster of separate processes

@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A `dask scheduler` and two `dask worker`s (one thread each, no nanny: a killed worker stays dead)."""
    d = tmp_path_factory.mktemp("cluster")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--dashboard-address", ":0", "--scheduler-file", str(d / "scheduler.json")],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for _ in range(300):
            if (d / "scheduler.json").is_file() and (d / "scheduler.json").stat().st_size:
                break
            time.sleep(0.1)
        address = pd.read_json(d / "scheduler.json", typ="series")["address"]
        workers = [subprocess.Popen([str(BIN / "dask"), "worker", address, "--nthreads", "1", "--no-nanny",
                                     "--no-dashboard", "--host", "127.0.0.1"], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
        procs += workers
        from distributed import Client

        with Client(address, timeout="30s") as c:
            c.wait_for_workers(2, timeout=60)
        yield address, workers
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:  # a worker without a nanny may hang on to its comms
                p.kill()
                p.wait()


def test_a_running_scheduler_gives_the_same_outputs(clips, local_run, cluster, tmp_path):
    address, _ = cluster
    inputs = [str(clips / "one.mp4"), str(clips / "sub" / "two.mp4"), str(clips / "noface.mp4")]
    code = main(["corpus", *inputs, "--out", str(tmp_path), "--scheduler", address, "--segment", "1",
                 "--quiet"])
    assert code == 0
    for name in ("one", "two", "noface"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "frames" / f"{name}.parquet"),
                                      pd.read_parquet(local_run[0] / "frames" / f"{name}.parquet"))


def test_a_worker_killed_mid_video_loses_nothing(clips, cluster, tmp_path):
    address, workers = cluster
    for k in range(3):
        drifting(tmp_path / "in" / f"long{k}.mp4", 40, seed=k)
    reference = {k: analyze_video(tmp_path / "in" / f"long{k}.mp4", progress=False) for k in range(3)}
    from distributed import Client

    victim = workers[1]
    killed = threading.Event()

    def kill_when_busy():
        with Client(address, timeout="30s") as c:
            pid_of = c.run(os.getpid)
            worker = next(w for w, pid in pid_of.items() if pid == victim.pid)
            for _ in range(600):
                if any("analyze_segment" in str(k) for k in c.processing().get(worker, ())):
                    victim.send_signal(signal.SIGKILL)  # in the middle of a segment of a video
                    killed.set()
                    return
                time.sleep(0.02)

    thread = threading.Thread(target=kill_when_busy)
    thread.start()
    result = analyze_corpus([tmp_path / "in"], tmp_path / "out", scheduler=address, segment_s=1.0, progress=False)
    thread.join()
    assert killed.is_set() and victim.wait(timeout=10) == -signal.SIGKILL
    assert result.manifest["status"].tolist() == ["done"] * 3 and len(result.manifest) == 3
    assert sorted(p.name for p in (tmp_path / "out" / "frames").iterdir()) == [f"long{k}.parquet" for k in range(3)]
    assert not stray_files(tmp_path / "out")
    for k in range(3):  # every frame once: a retried segment is not written twice
        frames = result.frames([f"long{k}"])
        assert frames["frame"].tolist() == list(range(40))
        pd.testing.assert_frame_equal(face_rows(frames, f"long{k}", reference[k]), reference[k], check_exact=False, rtol=1e-12)


# ------------------------------------------------------------------------------------- Ctrl-C

def test_ctrl_c_leaves_no_half_written_file_and_a_rerun_finishes(tmp_path):
    for k in range(4):
        drifting(tmp_path / "in" / f"clip{k}.mp4", 60, seed=k)
    # the command as typed at a terminal, where Ctrl-C raises KeyboardInterrupt: a test run started in the background
    # (`make test &`) ignores SIGINT, and its children would inherit that
    terminal = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
                "runpy.run_module('fer_utils', run_name='__main__', alter_sys=True)")
    argv = [sys.executable, "-c", terminal, "corpus", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
            "--workers", "1", "--quiet"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(1200):
        if (tmp_path / "out" / "manifest.csv").is_file() or proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "rerun the same command" in err
    assert not stray_files(tmp_path / "out")
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv")
    done = set(manifest["video_id"])
    assert 1 <= len(done) < 4 and (manifest["status"] == "done").all()
    assert {p.stem for p in (tmp_path / "out" / "frames").glob("*.parquet")} == done
    before = {v: (tmp_path / "out" / "frames" / f"{v}.parquet").stat().st_mtime_ns for v in done}

    result = analyze_corpus([tmp_path / "in"], tmp_path / "out", workers=1, progress=False, dashboard_address=":0")
    assert result.manifest["status"].tolist() == ["done"] * 4
    assert all((tmp_path / "out" / "frames" / f"{v}.parquet").stat().st_mtime_ns == t for v, t in before.items())
    whole = result.summary[result.summary["face_id"].isna()]
    assert whole["video_id"].tolist() == [f"clip{k}" for k in range(4)] and (whole["face_share"] > 0.5).all()


# ------------------------------------------------------------------------------------- the notebook

@pytest.mark.slow
def test_video_corpus_notebook_runs(tmp_path):
    import nbformat

    from fer_utils.workbook import NOTEBOOKS, run_notebook

    out = run_notebook(NOTEBOOKS / "06_video_corpus.ipynb", tmp_path / "run",
                       {"GENERATED": str(tmp_path / "videos"), "OUT": str(tmp_path / "out"), "PARTICIPANTS": 2,
                        "SECONDS": 4, "WORKERS": 2, "N_BOOT": 100}, html=True, timeout=600)
    text, images = [], 0
    for cell in nbformat.read(out, as_version=4).cells:
        for o in cell.get("outputs", []):
            assert o.output_type != "error", f"cell failed: {o.get('ename')}: {o.get('evalue')}"
            assert o.get("name") != "stderr", f"a cell printed to stderr: {o.get('text', '')[:300]}"
            text += [o.get("text", ""), str(o.get("data", {}).get("text/html", ""))]
            images += "image/png" in o.get("data", {})
    text = "\n".join(text)
    assert "SYNTHETIC DATA" in text and "4 of 4 videos done, 0 failed" in text
    assert images >= 4  # two timelines, the heatmap, the conditions compared
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv")
    assert set(manifest["condition"]) == {"comedy", "drama"} and (manifest["frames_analysed"] == 40).all()


# ------------------------------------------------------------------------------------- what the notebook draws


def test_smoothing_removes_one_odd_frame_and_conditions_get_intervals_over_videos():
    t = [k / 10 for k in range(21)]
    probs = {e: [0.0] * 21 for e in EMOTIONS}
    probs["happy"] = [1.0] * 21
    probs["happy"][10], probs["sad"][10] = 0.0, 1.0  # one odd frame in the middle
    frames = pd.DataFrame({"video_id": "v", "frame": range(21), "timestamp_s": t, "face_id": pd.array([0] * 21, "Int64"),
                           **probs})
    smooth = smoothed(frames, seconds=0.5)  # 5 analysed frames
    assert smooth["happy"].tolist() == [1.0] * 21 and smooth["sad"].tolist() == [0.0] * 21

    rows = []
    for k in range(6):
        happy = 0.8 if k < 3 else 0.2  # comedy's videos are mostly happy, drama's mostly not
        rows.append({"video_id": f"v{k}", "face_id": pd.NA, "condition": "comedy" if k < 3 else "drama",
                     **{f"top_{e}": 0.0 for e in EMOTIONS}, "top_happy": happy + 0.01 * k, "top_sad": 1 - happy})
    comparison = compare_conditions(pd.DataFrame(rows), "condition", n_boot=500).set_index(["condition", "emotion"])
    comedy, drama = comparison.loc[("comedy", "happy")], comparison.loc[("drama", "happy")]
    assert comedy["videos"] == 3 and comedy["ci_low"] <= comedy["share"] <= comedy["ci_high"]
    assert comedy["ci_low"] > drama["ci_high"]  # a difference this clear: the intervals do not overlap
    assert emotion_shares(pd.DataFrame(rows)).loc["v0", "happy"] == 0.8
    with pytest.raises(ValueError, match="column 'session' is not in the summary"):
        compare_conditions(pd.DataFrame(rows), "session")
