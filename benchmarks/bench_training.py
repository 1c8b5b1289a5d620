"""Training and batch-inference throughput per model, and the fraction of this CPU's peak FLOP rate reached, with
TensorFlow's oneDNN kernels off (the baseline: TensorFlow's own choice on CPUs without AVX512-VNNI) and on (what
``import fer_utils`` sets). Each setting runs in its own process: TensorFlow reads it once, at import. On an
AVX512-BF16 CPU, ``mixed_bfloat16`` (oneDNN on) is measured against float32 too.

Peak is estimated as cores x clock x 32 FP32 FLOP/cycle (two 256-bit FMA pipes, as on AMD Zen 4; AVX-512 runs
double-pumped there), so the fraction is an order of magnitude, not a precise figure. Random faces: speed does
not depend on content.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

from fer_utils.quiet import quiet_native_logs

with quiet_native_logs():  # TensorFlow's start-up lines (absl, oneDNN, CPU features), twice: parent and child
    import keras

    from fer_utils.models import MODELS, build_model, count_flops
    from fer_utils.training import cpu_has_bf16

BATCH = 64
STEPS = 20
FLOP_PER_CYCLE = 32


def cpu_peak_flops() -> float:
    mhz = 0.0
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("cpu MHz"):
                mhz = max(mhz, float(line.split(":")[1]))
    return (os.cpu_count() or 1) * mhz * 1e6 * FLOP_PER_CYCLE


def measure(name: str, policy: str) -> tuple[float, float, int]:
    keras.mixed_precision.set_global_policy(policy)
    model = build_model(name)
    model.compile(optimizer="adamw", loss="categorical_crossentropy")
    x = np.random.default_rng(0).integers(0, 256, (BATCH * STEPS, 48, 48), dtype=np.uint8)
    y = keras.utils.to_categorical(np.random.default_rng(1).integers(0, 7, BATCH * STEPS), 7)
    model.fit(x[: BATCH * 3], y[: BATCH * 3], batch_size=BATCH, verbose=0)  # compile and warm up
    t = time.perf_counter()
    model.fit(x, y, batch_size=BATCH, verbose=0)
    train_ips = len(x) / (time.perf_counter() - t)
    model.predict(x[:512], batch_size=512, verbose=0)
    t = time.perf_counter()
    model.predict(x, batch_size=512, verbose=0)
    infer_ips = len(x) / (time.perf_counter() - t)
    keras.mixed_precision.set_global_policy("float32")
    return train_ips, infer_ips, count_flops(build_model(name))


def child(onednn: bool) -> None:
    """Measure every model and precision under this process's oneDNN setting; one JSON line each."""
    # bfloat16 runs natively only through oneDNN on an AVX512-BF16 CPU; elsewhere it is emulated at a few faces/s
    # (minutes per model, for a setting training warns against anyway)
    policies = ("float32", "mixed_bfloat16") if onednn and cpu_has_bf16() else ("float32",)
    for name in MODELS:
        for policy in policies:
            train_ips, infer_ips, flops = measure(name, policy)
            print(json.dumps({"model": name, "policy": policy, "train": train_ips, "infer": infer_ips, "flops": flops}),
                  flush=True)


def report(runs: dict[str, list[dict]], peak: float) -> None:
    """Per model: float32 with oneDNN off and on, then mixed_bfloat16 (oneDNN on) where measured; each with its ratio."""

    def row(label: str, r: dict) -> None:
        # a training step costs about 3 forward passes (forward, and backward for inputs and weights)
        print(f"{r['model']:6s} {r['policy']:15s} {label} {r['flops'] / 1e6:4.0f} MFLOP/face | train {r['train']:5.0f} "
              f"faces/s ({3 * r['flops'] * r['train'] / peak:.1%} of peak) | batch inference {r['infer']:5.0f} faces/s "
              f"({r['flops'] * r['infer'] / peak:.1%} of peak)")

    def ratio(versus: str, r: dict, base: dict) -> None:
        print(f"{'':22s} {versus}: training {r['train'] / base['train']:.2f}x, "
              f"batch inference {r['infer'] / base['infer']:.2f}x")

    on = {(r["model"], r["policy"]): r for r in runs["1"]}
    for off in runs["0"]:
        f32 = on[off["model"], "float32"]
        row("oneDNN off", off)
        row("oneDNN on ", f32)
        ratio("oneDNN on vs off", f32, off)
        if bf16 := on.get((off["model"], "mixed_bfloat16")):
            row("oneDNN on ", bf16)
            ratio("mixed_bfloat16 vs float32, oneDNN on", bf16, f32)


def main() -> int:
    if sys.argv[1:] == ["--child"]:
        child(os.environ["TF_ENABLE_ONEDNN_OPTS"] == "1")
        return 0
    peak = cpu_peak_flops()
    print(f"CPU peak estimate: {peak / 1e9:.0f} GFLOP/s FP32 ({os.cpu_count()} cores); AVX512-BF16: {cpu_has_bf16()}")
    runs = {}
    for onednn in ("0", "1"):
        env = os.environ | {"TF_ENABLE_ONEDNN_OPTS": onednn, "TF_CPP_MIN_LOG_LEVEL": "2"}
        out = subprocess.run([sys.executable, __file__, "--child"], env=env, capture_output=True, text=True, check=True)
        runs[onednn] = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    report(runs, peak)
    return 0


if __name__ == "__main__":
    sys.exit(main())
