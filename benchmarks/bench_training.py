"""Training and batch-inference throughput per model, and the fraction of this CPU's peak FLOP rate reached.

Peak is estimated as cores x clock x 32 FP32 FLOP/cycle (two 256-bit FMA pipes, as on AMD Zen 4; AVX-512 runs
double-pumped there), so the fraction is an order of magnitude, not a precise figure. Random faces: speed does
not depend on content.
"""

from __future__ import annotations

import os
import sys
import time

import keras
import numpy as np

from fer_utils.models import MODELS, build_model, count_flops

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


def main() -> int:
    peak = cpu_peak_flops()
    print(f"CPU peak estimate: {peak / 1e9:.0f} GFLOP/s FP32 ({os.cpu_count()} cores)")
    for name in MODELS:
        for policy in ("float32", "mixed_bfloat16"):
            train_ips, infer_ips, flops = measure(name, policy)
            # a training step costs about 3 forward passes (forward, and backward for inputs and weights)
            frac = 3 * flops * train_ips / peak
            print(f"{name:6s} {policy:15s} {flops / 1e6:6.0f} MFLOP/face | train {train_ips:6.0f} faces/s "
                  f"({frac:.1%} of peak) | batch inference {infer_ips:6.0f} faces/s ({flops * infer_ips / peak:.1%} of peak)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
