"""A corpus of videos -> one per-frame table per video, a manifest and a summary, on every core or a Dask cluster.

``python -m fer_utils corpus INPUT... --out DIR`` (or :func:`analyze_corpus`). The client (this process) lists the
videos, skips those already done with the same settings, and sends two kinds of task to Dask workers: ``probe``
(frame rate and count of one video) and ``segment`` (one stretch of ``segment_s`` seconds of a video, analysed as
``video`` analyses a clip). A long video is therefore spread over every worker. The client alone writes, each file
atomically (temp name, then rename): ``frames/<video_id>.parquet`` once all of a video's segments are in,
``manifest.csv`` after each video, ``summary.csv`` at the end. Since tasks only return values, a task Dask retries
after its worker died cannot write anything twice, and Ctrl-C leaves no half-written file.

Face ids are joined across segments: each segment tracks faces on its own, then the client continues a face of one
segment in the next when its first box there overlaps (IoU >= 0.3) the box it was last seen at, within the tracker's
``max_missing`` frames of the boundary - what one pass over the video would do.

Workers run one task at a time on one thread (OpenCV, BLAS and LiteRT each set to one thread), so N workers use N
cores without fighting over them; each worker process loads the recognizer once per settings and keeps it.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import hashlib
import logging
import math
import os
import re
import sys
import time
from array import array
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import cv2
import dask
import numpy as np
import pandas as pd
from distributed import Client, LocalCluster, as_completed
from tqdm.auto import tqdm

from fer_utils.constants import EMOTIONS
from fer_utils.detector import DETECTORS, LIVE_DETECTOR
from fer_utils.recognizer import EmotionRecognizer
from fer_utils.shipped import default_model_path
from fer_utils.video import COLUMNS, FaceTable, iou, iter_analysis, save_table

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".mts", ".3gp")
PATH_COLUMNS = ("path", "video", "file", "filename")  # the column of a CSV list that names the videos
# seconds of video a task analyses: a 1-hour video is 180 tasks, spread over every worker. Short enough that the
# last tasks of a run end close together (a run waits for its slowest worker), long enough that a segment's seek
# costs little (measured: 4 segments of a 40-s clip against 1, within 1-3% CPU)
SEGMENT_S = 20.0
MAX_MISSING = 15  # the tracker's: a face unseen for this many analysed frames is a new face
MIN_IOU = 0.3  # the tracker's: a box continues a face it overlaps this much
FACE_COLUMNS = ["face_id", "x", "y", "w", "h"]
FRAME_COLUMNS = ["video_id", "frame", "timestamp_s", *FACE_COLUMNS, *EMOTIONS, "emotion"]
SETTING_COLUMNS = ["model", "detector", "sampling", "min_face_size", "largest_only"]
MANIFEST_COLUMNS = ["path", "video_id", "status", "error", "frames_read", "frames_analysed", "faces", "face_rows",
                    "duration_s", "fps", "seconds", "size_bytes", "mtime_ns", *SETTING_COLUMNS]
# One thread per worker process: set before the worker spawns (the libraries read them when they load)
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                     "NUMEXPR_NUM_THREADS": "1", "VECLIB_MAXIMUM_THREADS": "1", "FER_UTILS_LITERT_THREADS": "1"}
# Dask's housekeeping at its defaults takes about 7% of a 2-core machine (each server's event loop ticked every 20 ms,
# a profiler sampling each worker every 10 ms, memory read every 100 ms); a worker here is one core's whole share, so
# a local cluster runs them at a batch job's pace (memory limits still hold; the dashboard's profile page stays empty).
# Its scheduler hands a worker the next segment only as it finishes one: none waits behind another while a worker idles
LOCAL_CLUSTER_CONFIG = {"distributed.admin.tick.interval": "1s", "distributed.admin.system-monitor.interval": "5s",
                        "distributed.worker.memory.monitor-interval": "1s", "distributed.worker.profile.enabled": False,
                        "distributed.scheduler.worker-saturation": 1.0}


@dataclass(frozen=True)
class Settings:
    """What decides a video's rows: the recognizer and the sampling. A rerun skips a video done with equal ones."""

    model: str  # resolved path of the network
    detector: str = LIVE_DETECTOR
    fps: float | None = None  # analyse the first frame at or after every 1/fps seconds
    every: int = 1  # else every N-th frame
    min_face_size: int = 40
    largest_only: bool = False

    @property
    def sampling(self) -> str:
        return f"fps {self.fps:g}" if self.fps else f"every {self.every}"

    def record(self) -> dict:
        """The manifest's settings columns."""
        return {"model": self.model, "detector": self.detector, "sampling": self.sampling,
                "min_face_size": self.min_face_size, "largest_only": self.largest_only}


def sampled(index: int, rate: float, settings: Settings) -> bool:
    """Whether frame ``index`` of a video at ``rate`` frames per second is analysed."""
    if settings.fps is None:
        return index % settings.every == 0
    if settings.fps >= rate:
        return True
    step = settings.fps / rate  # a frame is analysed when it starts a new 1/fps interval
    return index == 0 or math.floor(index * step + 1e-9) > math.floor((index - 1) * step + 1e-9)


# ---------------------------------------------------------------------------------------------- the inputs

def find_videos(inputs: list[str | os.PathLike]) -> pd.DataFrame:
    """One row per video (path, video_id, and a CSV list's other columns) from folders (searched recursively for
    :data:`VIDEO_SUFFIXES`), files, globs and CSV lists of videos. Paths are absolute; duplicates are dropped."""
    rows: list[dict] = []
    for item in map(str, inputs):
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
            if not found:
                raise ValueError(f"no videos ({', '.join(VIDEO_SUFFIXES[:5])}, ...) in folder {path}")
            rows += [{"path": p} for p in found]
        elif path.suffix.lower() == ".csv" and path.is_file():
            rows += _read_list(path)
        elif path.exists() or not glob.has_magic(item):
            rows.append({"path": path})  # a file, or one that is missing: an error row, the others go on
        else:
            found = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not found:
                raise ValueError(f"no file matches {item!r}")
            rows += [{"path": p} for p in found]
    table = pd.DataFrame(rows)
    table["path"] = [str(Path(p).absolute()) for p in table["path"]]
    table = table.drop_duplicates("path").reset_index(drop=True)
    if "video_id" not in table:
        table["video_id"] = None
    table["video_id"] = _video_ids(table["path"], table["video_id"])
    if table["video_id"].duplicated().any():
        raise ValueError(f"video_id {table['video_id'][table['video_id'].duplicated()].iloc[0]!r} is given twice in "
                         "the list; make the list's video_id column unique")
    return table[["path", "video_id", *[c for c in table.columns if c not in ("path", "video_id")]]]


def _read_list(path: Path) -> list[dict]:
    """The rows of a CSV list of videos: a path column (relative paths are from the list's folder) and metadata."""
    table = pd.read_csv(path)
    column = next((c for c in PATH_COLUMNS if c in table.columns), None)
    if column is None:
        raise ValueError(f"list {path} has no column naming the videos; name it one of {', '.join(PATH_COLUMNS)}")
    outputs = set(MANIFEST_COLUMNS) | set(FRAME_COLUMNS) | {"dominant"}
    clash = sorted(set(table.columns) & outputs - {column, "video_id"})
    if clash:
        raise ValueError(f"list {path}: column {clash[0]!r} is also an output column; rename it (e.g. {clash[0]}_)")
    table = table.rename(columns={column: "path"})
    table["path"] = [p if Path(p).is_absolute() else path.parent / p for p in table["path"].astype(str)]
    return table.to_dict("records")


def _video_ids(paths: pd.Series, given: pd.Series) -> list[str]:
    """A file-name-safe id per video: the list's video_id, else the file's stem; stems that collide get a hash of the
    path, so the same inputs always give the same ids (what a rerun finds its outputs by)."""
    stems = [re.sub(r"[^A-Za-z0-9._-]+", "_", Path(p).stem) or "video" for p in paths]
    counts = pd.Series(stems).value_counts()
    ids = []
    for path, stem, own in zip(paths, stems, given, strict=True):
        if isinstance(own, str) and own:
            if not re.fullmatch(r"[A-Za-z0-9._-]+", own):
                raise ValueError(f"video_id {own!r} must be letters, digits, '.', '_' or '-' (it names a file)")
            ids.append(own)
        else:
            ids.append(stem if counts[stem] == 1 else f"{stem}-{hashlib.sha1(path.encode()).hexdigest()[:8]}")
    return ids


# ---------------------------------------------------------------------------------------------- on the workers

_RECOGNIZERS: dict[tuple, object] = {}  # one per settings, per worker process: loaded once, not once per video


@functools.cache  # once per worker process, not once per probe
def _prepare_worker() -> None:
    """One thread for OpenCV, BLAS and LiteRT in this (worker) process, since the cluster has one process per core;
    and freed frames kept in the heap (see :func:`_keep_freed_memory`)."""
    for key, value in SINGLE_THREAD_ENV.items():
        os.environ.setdefault(key, value)
    cv2.setNumThreads(1)
    _keep_freed_memory()


def _keep_freed_memory() -> None:
    """Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which fixes glibc's mmap threshold at 128 kB:
    every decoded frame is then a fresh mmap whose pages fault in and go back to the OS (hundreds of page faults a
    frame; 12% of a worker's time at 640x480). A worker's frames are all one size, so its heap keeps them instead;
    its memory stays flat (benchmarks/bench_corpus.py measures it). glibc only: elsewhere nothing to do."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD: blocks under 32 MB come from the heap (glibc's largest dynamic one)
    libc.mallopt(-1, 64 << 20)  # M_TRIM_THRESHOLD: keep up to 64 MB freed at the heap's top


def _recognizer(settings: Settings):
    key = (settings.model, settings.detector, settings.min_face_size, settings.largest_only)
    if key not in _RECOGNIZERS:
        _prepare_worker()
        _RECOGNIZERS[key] = EmotionRecognizer(settings.model, settings.detector, largest_only=settings.largest_only,
                                              min_face_size=settings.min_face_size)
    return _RECOGNIZERS[key]


def _open(path: str):
    # FFmpeg decodes on as many threads as there are cores unless told: a worker is one thread, decoding included
    cap = cv2.VideoCapture(path, cv2.CAP_ANY, [cv2.CAP_PROP_N_THREADS, 1])
    return cap if cap.isOpened() else None


def as_value(task):
    """A task that returns its error as ``{"error": "one line"}`` rather than raising: a damaged video is the
    video's fault, not the worker's, so Dask neither logs a traceback for it nor retries it."""
    def run(*args):
        try:
            return task(*args)
        except Exception as e:  # noqa: BLE001 (any failure of one video becomes its error row)
            return {"error": _one_line(e)}
    run.__name__ = task.__name__
    return run


def probe(path: str) -> dict:
    """Frame rate and frame count (0: unknown) of a video, which must decode; runs on a worker."""
    _prepare_worker()
    if not Path(path).is_file():
        raise FileNotFoundError(f"video {path} does not exist")
    cap = _open(path)
    ok = cap is not None and cap.read()[0]
    if not ok:
        size = Path(path).stat().st_size
        raise ValueError(f"video {path} could not be read ({'empty file' if size == 0 else f'{size} bytes'}): not a "
                         "video OpenCV/FFmpeg decodes (mp4, avi, mkv, mov), or damaged")
    rate, count = cap.get(cv2.CAP_PROP_FPS) or 30.0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    return {"fps": float(rate), "frame_count": max(count, 0)}


def analyze_segment(path: str, start: int, stop: int | None, rate: float, settings: Settings) -> dict:
    """Frames ``start`` to ``stop`` (None: the end) of a video, analysed as ``video`` analyses a clip; runs on a worker.

    Returns the segment's rows (frame, timestamp_s, face columns, probabilities, emotion; a frame without a face has
    one row with empty face columns) with this segment's own face ids, frames read and analysed, and seconds spent.
    """
    t0 = time.perf_counter()
    recognizer = _recognizer(settings)
    cap = _open(path)
    if cap is None:
        raise ValueError(f"video {path} could not be opened again: was it moved or changed during the run?")
    if start:
        cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        if int(cap.get(cv2.CAP_PROP_POS_FRAMES)) != start:  # a container without frame seeking: read up to it
            cap.release()
            cap = _open(path)
            for _ in range(start):
                cap.grab()
    read, order, empty, table = 0, deque(), array("q"), FaceTable()

    def frames():
        nonlocal read
        index = start
        try:
            while stop is None or index < stop:
                if sampled(index, rate, settings):
                    ok, frame = cap.read()
                    if not ok:
                        return
                    order.append(index)
                    yield frame
                elif not cap.grab():  # skipped frames are demuxed but never converted: much cheaper
                    return
                read += 1
                index += 1
        finally:
            cap.release()

    # the batch size of analyze_video: the same network calls, so the same probabilities to the last bit
    for _, _, ids, faces in iter_analysis(frames(), recognizer, batch_frames=4):
        index = order.popleft()
        if faces:
            table.add(index, index / rate, ids, faces)
        else:
            empty.append(index)
    rows = table.to_frame()
    none = pd.DataFrame({"frame": np.array(empty, np.int64), "timestamp_s": np.array(empty, np.float64) / rate})
    rows = pd.concat([rows, none.reindex(columns=COLUMNS)], ignore_index=True) if len(none) else rows
    rows = rows.sort_values("frame", kind="stable", ignore_index=True)
    return {"rows": _typed(rows), "frames_read": read, "frames_analysed": int(rows["frame"].nunique()),
            "seconds": time.perf_counter() - t0}


_probe, _analyze_segment = as_value(probe), as_value(analyze_segment)


def _typed(rows: pd.DataFrame) -> pd.DataFrame:
    """Face columns as nullable integers and emotion as text: a frame without a face has them empty, not NaN floats."""
    for c in FACE_COLUMNS:
        rows[c] = rows[c].astype("Int64")
    for e in EMOTIONS:
        rows[e] = rows[e].astype("float64")
    rows["emotion"] = rows["emotion"].astype("string")
    return rows


# ---------------------------------------------------------------------------------------------- joining segments

def join_segments(segments: list[pd.DataFrame], stride: float) -> pd.DataFrame:
    """The segments of one video, in order, as one table whose face ids run across them (see the module's doc).
    ``stride``: frames between analysed frames (the tracker forgets a face after ``MAX_MISSING`` of those)."""
    gap = MAX_MISSING * stride
    out, next_id, last = [], 0, pd.DataFrame()
    for seg in segments:
        faces = seg.dropna(subset=["face_id"])
        first = faces.groupby("face_id", sort=True).head(1)
        mapping: dict[int, int] = {}
        if len(last) and len(first):
            boundary = int(seg["frame"].min())
            old = last[last["frame"] >= boundary - gap]
            new = first[first["frame"] <= boundary + gap]
            if len(old) and len(new):
                overlap = iou(new[["x", "y", "w", "h"]].to_numpy(float), old[["x", "y", "w", "h"]].to_numpy(float))
                for flat in np.argsort(-overlap, axis=None, kind="stable"):
                    i, j = divmod(int(flat), len(old))
                    if overlap[i, j] < MIN_IOU:
                        break
                    local, glob_id = int(new["face_id"].iloc[i]), int(old["face_id"].iloc[j])
                    if local not in mapping and glob_id not in mapping.values():
                        mapping[local] = glob_id
        for local in first["face_id"].astype(int):  # the others are new faces, numbered in order of appearance
            if local not in mapping:
                mapping[local], next_id = next_id, next_id + 1
        seg = seg.copy()
        seg["face_id"] = seg["face_id"].map(mapping, na_action="ignore").astype("Int64")
        last = seg.dropna(subset=["face_id"]).groupby("face_id").tail(1)
        out.append(seg)
    table = pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=FRAME_COLUMNS[1:])
    return _typed(table)


# ---------------------------------------------------------------------------------------------- the summary

def summarize(frames: pd.DataFrame) -> pd.DataFrame:
    """Per video (face_id empty: all its faces) and per face: analysed frames, share of them with the face(s), mean
    probability and share of frames as the top emotion for each of the seven, and the dominant emotion."""
    rows = []
    for video_id, video in frames.groupby("video_id", sort=False):
        analysed = video["frame"].nunique()
        faces = video.dropna(subset=["face_id"])
        groups = [(pd.NA, faces)] + [(fid, part) for fid, part in faces.groupby("face_id", sort=True)]
        for fid, part in groups:
            seen = part["frame"].nunique()
            row = {"video_id": video_id, "face_id": fid, "frames_analysed": analysed, "frames_with_face": seen,
                   "face_share": seen / analysed if analysed else np.nan}
            means = part[list(EMOTIONS)].mean() if len(part) else pd.Series(np.nan, index=list(EMOTIONS))
            for e in EMOTIONS:
                row[f"mean_{e}"] = float(means[e])
            for e in EMOTIONS:
                row[f"top_{e}"] = float((part["emotion"] == e).mean()) if len(part) else np.nan
            row["dominant"] = str(means.idxmax()) if len(part) else pd.NA
            rows.append(row)
    table = pd.DataFrame(rows)
    if len(table):
        table["face_id"] = table["face_id"].astype("Int64")
    return table


def smoothed(frames: pd.DataFrame, seconds: float) -> pd.DataFrame:
    """The rows with a face, each emotion's probability a rolling median over ``seconds`` per video and face (robust
    to a single odd frame; the window counts analysed frames, from the median step between them)."""
    faces = frames.dropna(subset=["face_id"]).sort_values(["video_id", "face_id", "timestamp_s"]).copy()

    def median(part: pd.DataFrame) -> pd.DataFrame:
        step = float(np.median(np.diff(part["timestamp_s"]))) if len(part) > 1 else 1.0
        window = max(1, round(seconds / step)) if step > 0 else 1
        return part[list(EMOTIONS)].rolling(window, center=True, min_periods=1).median()

    for _, part in faces.groupby(["video_id", "face_id"], sort=False):
        faces.loc[part.index, list(EMOTIONS)] = median(part)
    return faces.astype({"face_id": int})


def emotion_shares(summary: pd.DataFrame) -> pd.DataFrame:
    """Per video (rows) the share of its face frames where each emotion (columns) was the top one, all faces together."""
    whole = summary[summary["face_id"].isna()].set_index("video_id")
    return whole[[f"top_{e}" for e in EMOTIONS]].set_axis(list(EMOTIONS), axis=1)


def compare_conditions(summary: pd.DataFrame, column: str, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per value of the list's ``column`` (e.g. condition) and emotion: the mean over videos of the emotion's share
    of face frames, with a 95% bootstrap interval that resamples videos (the recorded unit; frames are far from
    independent)."""
    if column not in summary.columns:
        raise ValueError(f"column {column!r} is not in the summary; the list's columns are carried into it "
                         f"(here: {[c for c in summary.columns if not c.startswith(('mean_', 'top_'))]})")
    whole = summary[summary["face_id"].isna()]
    rng = np.random.default_rng(seed)
    rows = []
    for value, part in whole.groupby(column, sort=True):
        shares = part[[f"top_{e}" for e in EMOTIONS]].to_numpy(float)
        boot = shares[rng.integers(0, len(shares), (n_boot, len(shares)))].mean(axis=1)
        low, high = np.nanpercentile(boot, [2.5, 97.5], axis=0)
        for k, e in enumerate(EMOTIONS):
            rows.append({column: value, "emotion": e, "videos": len(shares), "share": float(np.nanmean(shares[:, k])),
                         "ci_low": float(low[k]), "ci_high": float(high[k])})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------- the result

@dataclass
class CorpusResult:
    """What :func:`analyze_corpus` wrote in ``out``: the manifest and the summary, and the per-frame tables."""

    out: Path
    manifest: pd.DataFrame
    summary: pd.DataFrame

    @property
    def failed(self) -> int:
        """Videos whose status is error."""
        return int((self.manifest["status"] == "error").sum()) if len(self.manifest) else 0

    def frames(self, video_ids: list[str] | None = None) -> pd.DataFrame:
        """The per-frame rows of these videos (default: every video done), read from ``frames/*.parquet``."""
        done = self.manifest.loc[self.manifest["status"] == "done", "video_id"]
        ids = list(done) if video_ids is None else list(video_ids)
        parts = [pd.read_parquet(self.out / "frames" / f"{v}.parquet") for v in ids]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=FRAME_COLUMNS)


def _stat(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
        return st.st_size, st.st_mtime_ns
    except OSError:
        return -1, -1


def _previous(out: Path, settings: Settings) -> dict[str, dict]:
    """The done rows of the last run's manifest, by path, whose file and settings are unchanged and whose table is
    there: what a rerun skips."""
    path = out / "manifest.csv"
    if not path.is_file():
        return {}
    old = pd.read_csv(path, dtype=str, keep_default_na=False)
    if not set(MANIFEST_COLUMNS) <= set(old.columns):
        return {}
    wanted = {k: str(v) for k, v in settings.record().items()}
    keep = {}
    for row in old.to_dict("records"):
        size, mtime = _stat(row["path"])
        if (row["status"] == "done" and row["size_bytes"] == str(size) and row["mtime_ns"] == str(mtime)
                and all(row[k] == v for k, v in wanted.items())
                and (out / "frames" / f"{row['video_id']}.parquet").is_file()):
            keep[row["path"]] = row
    return keep


# ---------------------------------------------------------------------------------------------- the run

def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def connect(scheduler: str | None = None, workers: int | None = None, dashboard_address: str | None = ":8787"):
    """(Dask client, local cluster or None): a running cluster at ``scheduler`` (``tcp://`` or ``tls://``; the TLS
    files come from Dask's config), else a local one of ``workers`` (default: one per core) single-threaded worker
    processes."""
    if scheduler:
        try:
            client = Client(scheduler, timeout="30s")
        except OSError as e:
            raise ValueError(f"cannot reach the Dask scheduler at {scheduler} ({e}); start it (`dask scheduler`) or "
                             "check the address") from e
        try:
            client.wait_for_workers(1, timeout=60)
        except TimeoutError as e:
            client.close()
            raise ValueError(f"no worker joined the scheduler at {scheduler} in 60 s; start one with "
                             f"`dask worker {scheduler} --nthreads 1`") from e
        return client, None
    n = workers or _cores()
    if n < 1:
        raise ValueError(f"--workers must be >= 1; got {n}")
    with dask.config.set(LOCAL_CLUSTER_CONFIG):  # read as the servers start; each worker process gets a copy
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, env=SINGLE_THREAD_ENV,
                               dashboard_address=dashboard_address, silence_logs=logging.CRITICAL)
        return Client(cluster), cluster


def analyze_corpus(inputs: list[str | os.PathLike], out: str | os.PathLike, *, model: str | os.PathLike | None = None,
                   detector: str = LIVE_DETECTOR, fps: float | None = None, every: int = 1,
                   min_face_size: int = 40, largest_only: bool = False, segment_s: float = SEGMENT_S,
                   workers: int | None = None, scheduler: str | None = None, client=None, force: bool = False,
                   progress: bool = True, dashboard_address: str | None = ":8787") -> CorpusResult:
    """Analyse every video of ``inputs`` (folders, files, globs, CSV lists) into ``out`` (see the module's doc).

    ``fps`` or ``every`` samples frames; ``segment_s`` is the longest stretch one task analyses; ``workers`` local
    worker processes (default one per core), or the cluster at ``scheduler``, or a Dask ``client`` of your own.
    Videos done before with the same file and settings are skipped unless ``force``. A video that fails gets an
    ``error`` row and the others go on: check ``result.failed``.
    """
    settings = _settings(model, detector, fps, every, min_face_size, largest_only)
    if segment_s <= 0:
        raise ValueError(f"--segment must be > 0 seconds; got {segment_s}")
    run = _Run(find_videos(inputs), Path(out), settings, segment_s, force)
    own_client = client is None
    cluster = None
    if own_client:
        client, cluster = connect(scheduler, workers, dashboard_address)
    try:
        where = scheduler or f"local cluster of {len(client.scheduler_info()['workers'])} single-threaded workers"
        if progress:
            print(f"{len(run.videos)} videos, {len(run.videos) - len(run.todo)} done before (skipped); {where}; "
                  f"dashboard {client.dashboard_link}", flush=True)
        run.analyze(client, progress)
    except KeyboardInterrupt:  # what is written is whole; say how to finish
        print(f"\ninterrupted: {len(run.manifest)} of {len(run.videos)} videos written in {out}; rerun the same "
              "command to finish the rest", file=sys.stderr, flush=True)
        raise
    finally:
        if own_client:
            client.close()
            if cluster is not None:
                cluster.close()
    return run.result()


def _settings(model, detector: str, fps: float | None, every: int, min_face_size: int,
              largest_only: bool) -> Settings:
    """The run's :class:`Settings`, each checked, with the model resolved to its file."""
    if fps is not None and fps <= 0:
        raise ValueError(f"--fps must be > 0; got {fps}")
    if fps is not None and every != 1:
        raise ValueError("pass --fps or --every, not both")
    if every < 1:
        raise ValueError(f"--every must be >= 1; got {every}")
    if detector not in DETECTORS:
        raise ValueError(f"detector {detector!r} is unknown; expected one of {list(DETECTORS)}")
    model_path = Path(model) if model is not None else default_model_path()
    if not model_path.is_file():
        raise FileNotFoundError(f"model {model_path} does not exist; pass --model PATH (a .keras or .tflite)")
    return Settings(str(model_path.resolve()), detector, fps, every, min_face_size, largest_only)


class _Run:
    """One run over a corpus: what is done, what each video still waits for, and the writes (the client's alone)."""

    def __init__(self, videos: pd.DataFrame, out: Path, settings: Settings, segment_s: float, force: bool):
        self.videos, self.out, self.settings, self.segment_s = videos, out, settings, segment_s
        self.meta_columns = [c for c in videos.columns if c not in ("path", "video_id")]
        self.meta = {row["video_id"]: {c: row[c] for c in self.meta_columns} for row in videos.to_dict("records")}
        (out / "frames").mkdir(parents=True, exist_ok=True)
        done_before = {} if force else _previous(out, settings)
        self.manifest: dict[str, dict] = {}  # by video_id, filled as videos finish
        for row in videos.to_dict("records"):
            if row["path"] in done_before:
                old = done_before[row["path"]]
                self.manifest[row["video_id"]] = {**{c: old[c] for c in MANIFEST_COLUMNS}, "video_id": row["video_id"]}
        self.todo = videos[~videos["video_id"].isin(self.manifest)]
        self.summaries: dict[str, pd.DataFrame] = {}
        self.pending: dict[str, dict] = {}  # video_id -> its probe, segments and results
        self.by_key: dict[str, tuple[str, int]] = {}  # future key -> (video_id, segment index or -1 for the probe)
        self.failed = 0

    def analyze(self, client, progress: bool) -> None:
        """Probe every video still to do, then analyse its segments, writing each video as its last one comes in."""
        self.client, self.tasks = client, as_completed()
        self.bar = tqdm(total=0, unit="frame", desc="corpus", disable=not progress or not len(self.todo),
                        dynamic_ncols=True)
        try:
            for row in self.todo.to_dict("records"):
                size, mtime = _stat(row["path"])
                self.pending[row["video_id"]] = {"path": row["path"], "size_bytes": size, "mtime_ns": mtime,
                                                 "results": {}}
                self._submit(row["video_id"], -1, _probe, row["path"])
            for future in self.tasks:
                self._handle(future)
        finally:
            self.bar.close()

    def _submit(self, video_id: str, part: int, task, *args) -> None:
        future = self.client.submit(task, *args, pure=False)
        self.by_key[future.key] = (video_id, part)
        self.tasks.add(future)

    def _handle(self, future) -> None:
        video_id, part = self.by_key.pop(future.key)
        if video_id not in self.pending:  # the video failed already; a late segment is dropped
            return
        if future.status != "finished":  # erred (the video's fault), or its worker died every time
            self._finish(video_id, "error", _one_line(future.exception() if future.status == "error" else None))
            return
        result = future.result()
        if "error" in result:
            self._finish(video_id, "error", result["error"])
        elif part == -1:
            self._segment(video_id, result)
        else:
            p = self.pending[video_id]
            p["results"][part] = result
            self.bar.update(result["frames_analysed"])
            if len(p["results"]) == p["segments"]:
                self._write(video_id)

    def _segment(self, video_id: str, probed: dict) -> None:
        """Send a probed video's segments; the last reads to the end, whatever the frame count said."""
        p = self.pending[video_id]
        p.update(probed)
        length, count = max(1, round(self.segment_s * probed["fps"])), probed["frame_count"]
        starts = list(range(0, count, length)) if count > length else [0]
        p["segments"] = len(starts)
        fps = self.settings.fps
        p["stride"] = self.settings.every if fps is None else max(1.0, probed["fps"] / fps)
        self.bar.total += max(1, round((count or 1) / p["stride"]))
        self.bar.refresh()
        for k, start in enumerate(starts):
            stop = starts[k + 1] if k + 1 < len(starts) else None
            self._submit(video_id, k, _analyze_segment, p["path"], start, stop, probed["fps"], self.settings)

    def _write(self, video_id: str) -> None:
        """A video whose segments are all in: its per-frame table, once, then its manifest row."""
        p = self.pending[video_id]
        parts = [p["results"][k] for k in range(p["segments"])]
        frames = join_segments([r["rows"] for r in parts], p["stride"])
        frames.insert(0, "video_id", video_id)
        for c in self.meta_columns:
            frames[c] = self.meta[video_id][c]
        save_table(frames, self.out / "frames" / f"{video_id}.parquet")
        self.summaries[video_id] = summarize(frames)
        frames_read = sum(r["frames_read"] for r in parts)
        self._finish(video_id, "done", frames_read=frames_read,
                     frames_analysed=sum(r["frames_analysed"] for r in parts), faces=int(frames["face_id"].nunique()),
                     face_rows=int(frames["face_id"].notna().sum()), duration_s=round(frames_read / p["fps"], 3),
                     fps=p["fps"], seconds=round(sum(r["seconds"] for r in parts), 3))

    def _finish(self, video_id: str, status: str, error: str = "", **fields) -> None:
        p = self.pending.pop(video_id)
        self.manifest[video_id] = {"path": p["path"], "video_id": video_id, "status": status, "error": error,
                                   "size_bytes": p["size_bytes"], "mtime_ns": p["mtime_ns"],
                                   **self.settings.record(), **fields}
        self._write_manifest()
        self.failed += status == "error"
        finished = len(self.todo) - len(self.pending)
        self.bar.set_postfix_str(f"videos {finished}/{len(self.todo)}" + (f", {self.failed} failed" if self.failed else ""))

    def _write_manifest(self) -> None:
        rows = [{**self.manifest[v], **self.meta[v]} for v in self.videos["video_id"] if v in self.manifest]
        save_table(pd.DataFrame(rows, columns=[*MANIFEST_COLUMNS, *self.meta_columns]), self.out / "manifest.csv")

    def result(self) -> CorpusResult:
        """The manifest and the summary, written, of every video (skipped ones' summaries from their tables)."""
        self._write_manifest()
        for video_id, row in self.manifest.items():
            if row["status"] == "done" and video_id not in self.summaries:
                self.summaries[video_id] = summarize(pd.read_parquet(self.out / "frames" / f"{video_id}.parquet"))
        order = [v for v in self.videos["video_id"] if v in self.summaries]
        summary = pd.concat([self.summaries[v] for v in order], ignore_index=True) if order else pd.DataFrame()
        for c in self.meta_columns:
            summary[c] = summary["video_id"].map(lambda v, c=c: self.meta[v][c]) if len(summary) else []
        save_table(summary, self.out / "summary.csv")
        return CorpusResult(self.out, pd.read_csv(self.out / "manifest.csv"), summary)


def _one_line(error: BaseException | None) -> str:
    """An error as one line, for the manifest: a worker that died every time it tried the video says so."""
    if error is None:
        return "unknown error"
    if type(error).__name__ == "KilledWorker":
        return f"a worker process died each time it analysed this video ({error}); try it alone with `video`"
    text = " ".join(str(error).split())
    return text if isinstance(error, (ValueError, FileNotFoundError, OSError)) else f"{type(error).__name__}: {text}"
