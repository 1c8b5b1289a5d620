"""The corpus command: scaling over worker processes, against `video` on each clip in turn, and a worker's memory.

    .venv/bin/python benchmarks/bench_corpus.py [--clips 6] [--seconds 40] [--fps 15] [--workers N] [--repeats 4] [--tiny]

Baselines measured in the same run, on the same generated clips (640x480, one or two faces drifting on clutter):

1. Scaling: ``analyze_corpus`` with ``--workers 1``, then with N (default: one per core), start-up counted (the
   cluster's start and every worker loading the recognizer). Target (issue 35): N workers reach >= 85% of N times
   one worker's frames per second (on 2 cores: >= 1.7x).
2. Against ``video``: ``analyze_video`` on each clip in turn in this process (its LiteRT threads as it sets them),
   paired with the N-worker corpus ``--repeats`` times, which of the two goes first alternating: a shared machine's
   speed drifts by several percent from one minute to the next (the spread of the video runs shows how much). Each
   pair's ratio, their median and the lowest. Target: the corpus is not slower (median ratio >= 1; the lowest says
   whether a slower pair is within that drift). Per-frame cost: CPU seconds a frame of one worker against
   ``video``'s; target <= 1.
3. Hours of video one worker analyses in an hour, to size a cluster (docs/corpus.md).
4. Memory: a 1-minute and a 10-minute clip (320x240, every 5th frame analysed, all decoded), each on a fresh
   one-worker cluster: the worker's peak RSS. Target: flat (the 10-minute clip within 10% + 20 MB of the 1-minute).

``--tiny`` checks that it runs (2 clips of 4 s, one pair, 0.1- and 0.5-minute clips); its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fer_utils.corpus import analyze_corpus, connect  # noqa: E402
from fer_utils.scenes import make_video  # noqa: E402
from fer_utils.scripted import write_clip  # noqa: E402
from fer_utils.video import analyze_video  # noqa: E402

TARGETS = {"scaling": 0.85, "vs_video": 1.0, "cost": 1.0}


def write_clips(folder: Path, clips: int, seconds: float, fps: float, size=(640, 480)) -> list[Path]:
    return [write_clip(folder / f"clip{k}.mp4", (f for f, _ in make_video(round(seconds * fps), 1 + k % 2, size[1],
                                                                           size[0], seed=k)), fps)
            for k in range(clips)]


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def corpus_run(clips: list[Path], out: Path, workers: int) -> tuple[float, int, float, float]:
    """(wall seconds with start-up, frames analysed, worker seconds, hours of video) of one corpus run."""
    t0 = time.perf_counter()
    result = analyze_corpus(clips, out, workers=workers, progress=False, force=True, dashboard_address=":0")
    wall = time.perf_counter() - t0
    m = result.manifest
    assert result.failed == 0, m[["video_id", "error"]]
    return wall, int(m["frames_analysed"].sum()), float(m["seconds"].sum()), float(m["duration_s"].sum()) / 3600


def worker_peak_rss(clip: Path, out: Path) -> float:
    """Peak RSS (MB) of a fresh single worker after analysing ``clip`` (every 5th frame)."""
    client, cluster = connect(None, 1, ":0")
    try:
        analyze_corpus([clip], out, every=5, client=client, progress=False, force=True)
        peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        return max(peaks.values()) / 1024
    finally:
        client.close()
        cluster.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clips", type=int, default=6)
    p.add_argument("--seconds", type=float, default=40.0)
    p.add_argument("--fps", type=float, default=15.0, help="frame rate of the generated clips")
    p.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--repeats", type=int, default=4, help="pairs of video-in-turn and corpus runs")
    p.add_argument("--minutes", default="1,10", help="lengths of the memory clips, minutes")
    p.add_argument("--tiny", action="store_true", help="a quick check that it runs (numbers mean nothing)")
    a = p.parse_args()
    if a.tiny:
        a.clips, a.seconds, a.minutes, a.repeats = 2, 4.0, "0.1,0.5", 1
    minutes = [float(m) for m in a.minutes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        clips = write_clips(tmp / "clips", a.clips, a.seconds, a.fps)
        print(f"{a.clips} clips of {a.seconds:g} s at {a.fps:g} fps, 640x480, written in {time.perf_counter() - t0:.0f} s;"
              f" {a.workers} workers on {len(os.sched_getaffinity(0))} cores")

        frames_video = a.clips * round(a.seconds * a.fps)  # every frame of every clip
        one = corpus_run(clips, tmp / "one", 1)
        pairs = []  # (video wall, video CPU, corpus run)
        for k in range(a.repeats):
            many = corpus_run(clips, tmp / "many", a.workers) if k % 2 else None  # every other pair, corpus first
            c0, t0 = cpu_seconds(), time.perf_counter()
            for clip in clips:
                analyze_video(clip, progress=False)
            pairs.append((time.perf_counter() - t0, cpu_seconds() - c0,
                          many or corpus_run(clips, tmp / "many", a.workers)))
        video_wall, video_cpu = (statistics.median(p[k] for p in pairs) for k in (0, 1))
        many_wall = statistics.median(p[2][0] for p in pairs)

        fps_video, fps_one, fps_many = frames_video / video_wall, one[1] / one[0], frames_video / many_wall
        scaling = fps_many / (a.workers * fps_one)
        print(f"video on each clip in turn: {fps_video:6.1f} frames/s ({video_wall:.1f} s, {frames_video} frames; "
              f"median of {a.repeats})")
        print(f"corpus, 1 worker:           {fps_one:6.1f} frames/s ({one[0]:.1f} s with start-up)")
        print(f"corpus, {a.workers} workers:          {fps_many:6.1f} frames/s ({many_wall:.1f} s with start-up; "
              f"median of {a.repeats})")
        print(f"scaling: {fps_many / fps_one:.2f}x one worker = {scaling:.0%} of {a.workers}x "
              f"(target >= {TARGETS['scaling']:.0%}) {'OK' if scaling >= TARGETS['scaling'] else 'BELOW TARGET'}")
        ratios = [v / c[0] for v, _, c in pairs]
        walls = [v for v, _, _ in pairs]
        print(f"corpus ({a.workers} workers) vs video in turn, each pair: "
              f"{', '.join(f'{v / c[0]:.2f}x ({c[0]:.1f} vs {v:.1f} s)' for v, _, c in pairs)}")
        print(f"  median {statistics.median(ratios):.2f}x faster (target >= {TARGETS['vs_video']:g}) "
              f"{'OK' if statistics.median(ratios) >= TARGETS['vs_video'] else 'BELOW TARGET'}; lowest "
              f"{min(ratios):.2f}x; the same video runs spread {max(walls) / min(walls) - 1:.0%} (the machine's drift)")
        cost_worker, cost_video = one[2] / one[1], video_cpu / frames_video
        print(f"per-frame cost: a worker {1000 * cost_worker:.1f} ms (one thread), video {1000 * cost_video:.1f} ms "
              f"CPU; ratio {cost_worker / cost_video:.2f} (target <= {TARGETS['cost']:g}) "
              f"{'OK' if cost_worker <= cost_video * TARGETS['cost'] else 'ABOVE TARGET'}")
        print(f"one worker analyses {one[3] / (one[0] / 3600):.1f} hours of this video in an hour "
              f"({one[3] / (one[2] / 3600):.1f} without start-up), every frame at {a.fps:g} fps, 640x480")

        peaks = []
        for m in minutes:
            clip = write_clips(tmp / f"long{m:g}", 1, m * 60, a.fps, size=(320, 240))[0]
            peaks.append(worker_peak_rss(clip, tmp / f"mem{m:g}"))
            print(f"worker peak RSS, a {m:g}-minute clip (320x240, every 5th frame): {peaks[-1]:.0f} MB")
        flat = peaks[-1] <= peaks[0] * 1.10 + 20
        print(f"memory {'flat' if flat else 'GROWS'}: {peaks[-1] - peaks[0]:+.0f} MB from {minutes[0]:g} to "
              f"{minutes[-1]:g} minutes")
    return 0


if __name__ == "__main__":  # the local cluster's worker processes import this file again: run nothing then
    sys.exit(main())
