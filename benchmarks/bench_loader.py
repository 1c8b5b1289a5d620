"""Loading FER2013, each way timed in a fresh process from its first import (what a notebook's first cell pays):
the seed's way (pandas, then a Python int() per pixel) against fer_utils' first parse, and fer_utils from its cache.

    .venv/bin/python benchmarks/bench_loader.py [--repeats 3] [--seed-repeats 1]

Targets: the first parse of Kaggle's fer2013.csv (296 MB, 35,887 rows, all three splits) >= 6x faster than the
seed's loop, and a load from the cache <= 0.5 s. Needs the real FER2013: FER2013_PATH, or the shared copy in
../shared/data/fer2013/ (gzipped, Training and PublicTest only). The benchmark writes it out as a plain CSV in a
temporary folder, its PublicTest rows once more as PrivateTest when it has none, so that the file is Kaggle's size;
the gzipped file itself is measured too. Each time is the best of its repeats: on a shared machine other work only
ever adds time.
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from fer_utils.constants import PROJECT_ROOT
from fer_utils.loader import load_fer2013

SHARED = PROJECT_ROOT.parent / "shared" / "data" / "fer2013" / "fer2013-train-publictest.csv.gz"

# Each prints its seconds, from before its first import to the faces in memory.
SEED = """import sys, time
t = time.perf_counter()
import numpy as np
import pandas as pd
df = pd.read_csv(sys.argv[1])
faces = np.array([[int(p) for p in row.split(" ")] for row in df["pixels"]], dtype=np.uint8).reshape(-1, 48, 48)
print(time.perf_counter() - t)
np.save(sys.argv[2], faces)
"""
OURS = """import sys, time
t = time.perf_counter()
from fer_utils import load_fer2013
data = load_fer2013(sys.argv[1], cache=sys.argv[2] == "cache")
print(time.perf_counter() - t)
"""


def seconds(code: str, *args: str, env: dict) -> float:
    """What a fresh ``python -c CODE ARGS`` prints (it must succeed)."""
    run = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=True)
    return float(run.stdout.split()[-1])


def kaggle_csv(src: Path, out: Path) -> None:
    """``src`` as a plain CSV; when it has no PrivateTest rows, its PublicTest rows again as PrivateTest."""
    with gzip.open(src) if src.name.endswith(".gz") else open(src, "rb") as f, open(out, "wb") as g:
        public, has_private = [], False
        for line in f:
            g.write(line)
            if b"PublicTest" in line:
                public.append(line.replace(b"PublicTest", b"PrivateTest"))
            has_private = has_private or b"PrivateTest" in line
        if not has_private:
            g.writelines(public)


def measure(path: Path, repeats: int, seed_repeats: int, env: dict, tmp: str, targets: bool) -> str:
    seed_out = Path(tmp) / "seed.npy"
    t_seed = min(seconds(SEED, str(path), str(seed_out), env=env) for _ in range(seed_repeats))
    t_parse = min(seconds(OURS, str(path), "no-cache", env=env) for _ in range(repeats))
    seconds(OURS, str(path), "cache", env=env)  # writes the cache
    t_cache = min(seconds(OURS, str(path), "cache", env=env) for _ in range(repeats))
    data = load_fer2013(path)
    assert np.array_equal(np.load(seed_out), data.images), "the seed's way and fer_utils disagree"
    parse_target = f" [>= 6x: {'yes' if t_seed / t_parse >= 6 else 'NO'}]" if targets else ""
    cache_target = f" [<= 0.5 s: {'yes' if t_cache <= 0.5 else 'NO'}]" if targets else ""
    return (f"{path.name} ({len(data):,} rows, {path.stat().st_size / 1e6:.0f} MB): seed {t_seed:.2f} s | first parse "
            f"{t_parse:.2f} s, {t_seed / t_parse:.1f}x the seed{parse_target} | from the cache {t_cache:.2f} s"
            f"{cache_target}, {t_seed / t_cache:.0f}x the seed")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="fresh processes per fer_utils timing")
    ap.add_argument("--seed-repeats", type=int, default=1, help="fresh processes for the seed's way (10 s each)")
    args = ap.parse_args()
    src = Path(os.environ.get("FER2013_PATH", SHARED))
    if not src.is_file():
        print(f"skipped: no FER2013 CSV at {src} (set FER2013_PATH)")
        return 0
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; fresh processes, imports included; best "
          f"of {args.repeats} for fer_utils, of {args.seed_repeats} for the seed's way")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FER_UTILS_CACHE_DIR"] = tmp  # the caches go in here, never beside the shared file
        env = dict(os.environ)
        plain = Path(tmp) / "fer2013.csv"
        kaggle_csv(src, plain)
        print(measure(plain, args.repeats, args.seed_repeats, env, tmp, targets=True))
        if src.name.endswith(".gz"):
            print(measure(src, args.repeats, args.seed_repeats, env, tmp, targets=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
