"""The flagship, start to finish, on one GPU machine with JAX: stage the data, train every teacher seed at once,
average them into one model, distil the live net from that average, evaluate on PublicTest, and write the models,
the record and the log into one folder.

    KERAS_BACKEND=jax python scripts/gpu_flagship.py FER2013 OUT_DIR [--budget 420] [--seeds 4] [--parallel 1]

FER2013 is the CSV or its packed copy (``python -m fer_utils pack``). Epochs are sized to the budget: a probe trains
``--parallel`` teachers and one student for two epochs side by side and times the second (and stops the run if
compiling alone outlasts ``--probe-timeout``); the chosen epochs are recorded in each model's
recipe, so its card's command reruns it on any machine. Rehearse on a CPU first with ``--budget 60 --tiny``.

Teachers come back as float16 weights (``teacher_<seed>.npz``, half a float32 ``.keras``: a results folder of
the GPU machine takes files of at most 16 MiB), and ``python scripts/gpu_flagship.py --unpack OUT_DIR models/``
rebuilds them as float32 ``.keras`` files beside the student.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

# Plain values: the recipes. TEACHER is a VGG of 5.2M parameters (64-512 filters, a 1024-unit head); STUDENT is
# vgg8's layout (1.2M parameters, as fast as vgg8 through the recognizer), trained also on brighter, darker, blurred
# and noisy faces (photometric augmentation) for webcam use, against the teachers' answers on the clean faces.
TEACHER = {"model": "vgg", "model_kwargs": {"filters": [64, 128, 256, 512], "units": [1024], "dropout": 0.4, "erasing": 0.25},
           "batch_size": 128, "learning_rate": 2e-3, "weight_decay": 1e-4, "label_smoothing": 0.1, "mixed_precision": True}
STUDENT = {"model": "vgg", "model_kwargs": {"filters": [32, 64, 128, 256], "units": [256], "dropout": 0.3, "erasing": 0.25,
                                           "photometric": 1.0},
           "batch_size": 128, "learning_rate": 2e-3, "weight_decay": 1e-4, "label_smoothing": 0.0, "mixed_precision": True,
           "teacher_weight": 0.7}
TINY = {"filters": [4, 8], "units": [8]}  # --tiny: the same run in minutes on a CPU, to rehearse it
TEACHER_SHARE = 0.65  # of the training budget; the student has the rest
PROBE_EPOCHS = 2
MAX_EPOCHS = 300
STUDENT_SEEDS = (0, 1)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def train_all(jobs: dict[str, dict], data: str, out: Path, parallel: int = 1, timeout: float | None = None) -> dict[str, dict]:
    """Run ``python -m fer_utils train`` for every recipe, ``parallel`` processes at a time; returns their records.
    Past ``timeout`` seconds every process is stopped and the error says so."""
    from fer_utils.recipe import Recipe
    from fer_utils.shipped import read_info

    names, deadline = list(jobs), None if timeout is None else time.time() + timeout
    for i in range(0, len(names), parallel):
        procs = {}
        for name in names[i:i + parallel]:
            cmd = Recipe(**jobs[name]).command(data=data, out=str(out / f"{name}.keras"))
            with open(out / f"{name}.log", "w") as log_file:
                procs[name] = subprocess.Popen([sys.executable, *shlex.split(cmd)[1:], "--verbose", "2"],
                                               stdout=log_file, stderr=subprocess.STDOUT)
        for name, p in procs.items():
            try:
                code = p.wait(None if deadline is None else max(1.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                for q in procs.values():
                    q.kill()
                raise RuntimeError(f"{name} did not finish within {timeout:.0f} s (see {out / f'{name}.log'}): on a "
                                   "fresh GPU machine that is XLA compiling and autotuning; stopped here so that "
                                   "the lease is not spent waiting") from None
            if code != 0:
                raise RuntimeError(f"training {name} failed; see {out / f'{name}.log'}:\n"
                                   f"{(out / f'{name}.log').read_text()[-3000:]}")
    return {name: read_info(out / f"{name}.keras") for name in jobs}


def epochs_for(record: dict, seconds: float) -> int:
    """Epochs that fit ``seconds`` at the pace of the probe's last epoch (the first one also compiles), at most
    MAX_EPOCHS (what the published FER2013 recipes train)."""
    return min(MAX_EPOCHS, max(1, int(seconds / record["history"]["seconds"][-1])))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", help="FER2013 CSV or packed copy; with --unpack, the folder a run wrote")
    p.add_argument("out", help="folder for models, record and log; with --unpack, where to write the .keras files")
    p.add_argument("--budget", type=float, default=420, help="seconds of training for teachers and student together")
    p.add_argument("--seeds", type=int, default=4, help="teachers, averaged into one model")
    p.add_argument("--parallel", type=int, default=1, help="training processes at once on the one GPU (XLA's "
                   "autotuner stalls when several compile at once: 1 until measured otherwise)")
    p.add_argument("--probe-timeout", type=float, default=150, help="stop if the probe takes longer (seconds)")
    p.add_argument("--tiny", action="store_true", help="tiny networks: rehearse the whole run on a CPU")
    p.add_argument("--unpack", action="store_true", help="rebuild float32 .keras teachers from a run's folder")
    args = p.parse_args()
    if args.unpack:
        return unpack(Path(args.data), Path(args.out))
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # several processes may share one GPU
    # On the lent H200 (JAX 0.11.2) XLA's autotuner logged "Delay kernel timed out" and no epoch began within 200 s,
    # with one process as with five: autotuning off trades a few percent of speed for a compile that ends.
    if "xla_gpu_autotune_level" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_gpu_autotune_level=0").strip()
    out = Path(args.out)
    work = Path(os.environ.get("FLAGSHIP_WORK", "/tmp/flagship"))  # checkpoints and full-size models stay here
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()

    from fer_utils.evaluation import evaluate
    from fer_utils.loader import load_fer2013
    from fer_utils.models import load_model, save_ensemble
    from fer_utils.training import machine

    data = load_fer2013(args.data)
    log(f"data: {data.origin['source']} ({len(data)} faces, sha256 {data.origin['sha256']}); machine {machine()}")
    teacher, student = dict(TEACHER), dict(STUDENT)
    if args.tiny:
        teacher["model_kwargs"] = student["model_kwargs"] = TINY

    probe = {f"probe_teacher_{s}": teacher | {"epochs": PROBE_EPOCHS, "seed": s} for s in range(args.parallel)}
    probe["probe_student"] = student | {"epochs": PROBE_EPOCHS}
    t0 = time.time()
    records = train_all(probe, args.data, work, parallel=args.parallel, timeout=args.probe_timeout)
    t_epoch = {k: r["history"]["seconds"] for k, r in records.items()}
    log(f"probe ({time.time() - t0:.0f} s): seconds per epoch {json.dumps(t_epoch)}")
    # the teachers train args.seeds / args.parallel rounds one after another
    teacher["epochs"] = epochs_for(records["probe_teacher_0"], args.budget * TEACHER_SHARE * args.parallel / args.seeds)
    student["epochs"] = epochs_for(records["probe_student"],
                                   args.budget * (1 - TEACHER_SHARE) * args.parallel / len(STUDENT_SEEDS))
    log(f"teachers: {args.seeds} seeds x {teacher['epochs']} epochs; student {student['epochs']} epochs")

    t0 = time.time()
    teachers = train_all({f"teacher_{s}": teacher | {"seed": s} for s in range(args.seeds)}, args.data, work,
                         parallel=args.parallel)
    log(f"teachers trained in {time.time() - t0:.0f} s: PublicTest " +
        ", ".join(f"{k} {r['val_accuracy']:.4f}" for k, r in teachers.items()))
    summary = {"teachers": teachers, "probe_seconds_per_epoch": t_epoch}
    for name in teachers:  # first, so that they come back even if the student runs out of time
        export_half(work / f"{name}.keras", out / f"{name}.npz")
    members = sorted(teachers, key=lambda k: -teachers[k]["val_accuracy"])
    ensemble = work / f"teachers_x{len(members)}.keras"
    if len(members) > 1:
        save_ensemble([work / f"{m}.keras" for m in members], ensemble)
    else:
        ensemble = work / f"{members[0]}.keras"
    summary["ensemble"] = {tta or "plain": evaluate(load_model(ensemble), data, tta=tta) for tta in (False, "flip", "shift")}
    log("ensemble PublicTest: " + ", ".join(f"{k} {v['accuracy']:.4f} / F1 {v['macro_f1']:.4f}"
                                            for k, v in summary["ensemble"].items()))
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))

    t0 = time.time()
    students = train_all({f"student_{s}": student | {"seed": s, "teacher": str(ensemble)} for s in STUDENT_SEEDS},
                         args.data, work, parallel=args.parallel)
    log(f"students trained in {time.time() - t0:.0f} s: PublicTest " +
        ", ".join(f"{k} {r['val_accuracy']:.4f}" for k, r in students.items()))
    best = max(students, key=lambda k: students[k]["val_accuracy"])  # selected on PublicTest, as every epoch is
    (out / "student.keras").write_bytes((work / f"{best}.keras").read_bytes())
    summary |= {"students": students, "student": best}
    for name in [*teachers, best]:
        summary.setdefault("evaluation", {})[name] = {
            tta or "plain": evaluate(load_model(work / f"{name}.keras"), data, tta=tta) for tta in (False, "flip", "shift")}
        log(f"{name}: " + ", ".join(f"{k} {v['accuracy']:.4f} / F1 {v['macro_f1']:.4f}"
                                    for k, v in summary["evaluation"][name].items()))
    summary["wall_seconds"] = time.time() - t_start
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    log(f"done in {summary['wall_seconds']:.0f} s")
    return 0


def export_half(model_path: Path, out: Path) -> None:
    """A model's weights in float16 and its training record, in one ``.npz`` (:mod:`fer_utils.resume`'s format):
    half the size of the ``.keras``."""
    from fer_utils.models import load_model  # Keras: imported where a model is loaded, as the rest of this script
    from fer_utils.resume import write_arrays
    from fer_utils.shipped import read_info

    write_arrays(out, {"w": load_model(model_path).get_weights()}, read_info(model_path), precision="float16")


def unpack(run: Path, dest: Path) -> int:
    """Rebuild each ``teacher_*.npz`` of ``run`` as a float32 ``.keras`` in ``dest`` (its recipe rebuilds the net)."""
    from fer_utils.models import build_model, save_model  # Keras, as above
    from fer_utils.resume import read_arrays

    dest.mkdir(parents=True, exist_ok=True)
    for f in sorted(run.glob("teacher_*.npz")):
        groups, info = read_arrays(f)
        r = info["recipe"]
        net = build_model(r["model"], seed=r["seed"], **r["model_kwargs"])
        net.set_weights(groups["w"])
        save_model(net, dest / f"{f.stem}.keras", info | {"weights_rounded_to": "float16"})
        log(f"{dest / f.stem}.keras: {net.count_params():,} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
