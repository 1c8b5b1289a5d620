"""Loading the full FER2013 CSV: the seed's way (pandas, then a Python int() per pixel) against fer_utils, cold and
from the cache, measured in one run. Needs the real file: FER2013_PATH or ../shared/data/fer2013/."""

from __future__ import annotations

import gzip
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from fer_utils.loader import PROJECT_ROOT, load_fer2013

SHARED = PROJECT_ROOT.parent / "shared" / "data" / "fer2013" / "fer2013-train-publictest.csv.gz"
REPEATS = 3


def seed_way(path: Path) -> np.ndarray:
    """The seed notebook's loader, kept as the baseline."""
    df = pd.read_csv(path)
    return np.array([[int(p) for p in row.split(" ")] for row in df["pixels"]], dtype=np.uint8).reshape(-1, 48, 48)


def best_of(fn, repeats: int = REPEATS) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> int:
    src = Path(os.environ.get("FER2013_PATH", SHARED))
    if not src.is_file():
        print(f"skipped: no FER2013 CSV at {src} (set FER2013_PATH)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        # Users have Kaggle's plain fer2013.csv; the shared copy is gzipped, so measure both.
        plain = Path(tmp) / "fer2013.csv"
        with gzip.open(src) if src.suffix == ".gz" else open(src, "rb") as f, open(plain, "wb") as g:
            shutil.copyfileobj(f, g)
        for path in (plain, src):
            t_seed, ref = best_of(lambda p=path: seed_way(p), 1)
            t_cold, data = best_of(lambda p=path: load_fer2013(p, cache=False))
            os.environ["FER_UTILS_CACHE_DIR"] = tmp
            load_fer2013(path)  # writes the cache
            t_cache, cached = best_of(lambda p=path: load_fer2013(p))
            assert np.array_equal(ref, data.images) and np.array_equal(ref, cached.images), "loaders disagree"
            print(f"{path.name}: {len(data)} faces | seed {t_seed:.2f}s | fer_utils cold {t_cold:.2f}s "
                  f"({t_seed / t_cold:.1f}x, target 10x) | cached {t_cache * 1000:.0f}ms ({t_seed / t_cache:.0f}x, target 100x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
