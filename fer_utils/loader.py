"""Load FER2013 from any layout users have into one in-memory form, with an atomic on-disk cache.

Layouts read: Kaggle's ``fer2013.csv`` (``emotion,pixels,Usage``, also ``.csv.gz``), ``icml_face_data.csv``
(same data, leading spaces in column names), the challenge's ``train.csv`` / ``test.csv``, the image-folder
release (``train/<emotion>/*.jpg``, ``test/<emotion>/*.jpg``) and our packed copy (``.npz.xz``, from :func:`pack`):
the same arrays in a quarter less space than the CSV, to carry FER2013 to a GPU machine.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fer_utils.constants import DOWNLOAD_HINT, EMOTIONS, PROJECT_ROOT, SIDE, SPLITS, cache_dir

# The image-folder release merges PublicTest and PrivateTest into one "test" folder; without the file-name
# prefixes we cannot tell them apart, so those rows get this split name.
MERGED_TEST = "Test"
N_PIXELS = SIDE * SIDE
CACHE_VERSION = 1
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}


class FERDataError(ValueError):
    """A dataset file or folder is missing or malformed; the message names the place and the fix."""


@dataclass(frozen=True)
class FERData:
    """Faces as uint8 ``(N, 48, 48)``, emotions as int ``(N,)`` (0-6, or -1 when unknown), split per row."""

    images: np.ndarray
    emotions: np.ndarray
    splits: np.ndarray
    source: str
    synthetic: bool = False
    notes: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def split_names(self) -> list[str]:
        """Splits present, in the official order."""
        present = set(np.unique(self.splits).tolist())
        order = [*SPLITS, MERGED_TEST]
        return [s for s in order if s in present] + sorted(present - set(order))

    def split(self, *names: str) -> FERData:
        """The rows of the named split(s), e.g. ``data.split("Training")``."""
        unknown = [n for n in names if n not in self.split_names]
        if unknown:
            raise KeyError(f"split {unknown[0]!r} is not in this data; it has {self.split_names}")
        return self.take(np.isin(self.splits, names))

    def take(self, rows: np.ndarray) -> FERData:
        """The rows selected by a boolean mask or an index array, with the same source and labels."""
        return FERData(self.images[rows], self.emotions[rows], self.splits[rows], self.source, self.synthetic, self.notes)

    def counts(self) -> pd.DataFrame:
        """Table 1: faces per emotion (rows) and split (columns), with totals."""
        table = pd.DataFrame(0, index=[*EMOTIONS, "unknown"], columns=self.split_names, dtype=int)
        for s in self.split_names:
            e = self.emotions[self.splits == s]
            table[s] = np.bincount(np.where(e < 0, 7, e), minlength=8)
        if not table.loc["unknown"].any():
            table = table.drop(index="unknown")
        table["total"] = table.sum(axis=1)
        table.loc["total"] = table.sum(axis=0)
        table.index.name = "emotion"
        return table

    @property
    def origin(self) -> dict:
        """What the data is, not where it lies: the file name and sha256 of its source (of the CSV a packed copy
        was made from; sha256 None for a folder or the synthetic default)."""
        return self.notes.get("origin") or {"source": Path(self.source).name, "sha256": file_sha256(self.source)}

    @property
    def label(self) -> str:
        """How to name this data in titles: says SYNTHETIC for the embedded default."""
        return "SYNTHETIC embedded default (not FER2013)" if self.synthetic else Path(self.source).name


# ----------------------------------------------------------------------------------------------- finding data


def find_dataset(path: str | os.PathLike | None = None) -> Path | None:
    """The dataset to use: ``path``, else ``$FER2013_PATH``, else a known name under ``data/``; None if absent."""
    if path is not None:
        return Path(path)
    env = os.environ.get("FER2013_PATH")
    if env:
        return Path(env)
    data_dir = PROJECT_ROOT / "data"
    for name in ("fer2013.csv", "fer2013.csv.gz", "icml_face_data.csv", "icml_face_data.csv.gz", "fer2013", "train.csv"):
        if (data_dir / name).exists():
            return data_dir / name
    if (data_dir / "train").is_dir():
        return data_dir
    return None


# ----------------------------------------------------------------------------------------------- loading


def load_fer2013(path: str | os.PathLike, *, cache: bool = True) -> FERData:
    """Load FER2013 from a CSV (plain or gzip) or an image folder; parsed arrays are cached next to the source."""
    src = Path(path)
    if not src.exists():
        raise FERDataError(f"FER2013 not found at {src}. {DOWNLOAD_HINT}")
    if src.is_dir():
        src = _resolve_folder(src)
    if src.name.endswith(PACKED_SUFFIX):
        return _load_packed(src)
    cache_file = _cache_path(src) if cache else None
    fingerprint = _fingerprint(src)
    if cache_file is not None and cache_file.exists():
        data = _read_cache(cache_file, fingerprint, src)
        if data is not None:
            return data
    if src.is_dir():
        data = _load_image_folder(src)
    else:
        # The challenge's test.csv holds the PublicTest faces without emotions; read it beside its train.csv.
        data = _load_csv(src, default_split="PublicTest" if src.name == "test.csv" else "Training")
        if src.name == "train.csv" and (src.parent / "test.csv").exists():
            data = _concat(data, _load_csv(src.parent / "test.csv", default_split="PublicTest"), str(src.parent))
    if cache_file is not None:
        _write_cache(cache_file, fingerprint, data)
    return data


PACKED_SUFFIX = ".npz.xz"


def pack(data: FERData, out: str | os.PathLike) -> Path:
    """Write ``data`` as a packed copy (``.npz.xz``: uint8 faces, emotions, splits, and the name and sha256 of the
    file it came from, so models trained on the copy name the original). xz at its strongest: 58 MB for FER2013's
    Training and PublicTest, against 87 MB of csv.gz."""
    from fer_utils.atomic import atomic_path

    out = Path(out)
    if not out.name.endswith(PACKED_SUFFIX):
        raise ValueError(f"out={str(out)!r} must end in {PACKED_SUFFIX}")
    origin = data.origin
    buffer = io.BytesIO()
    np.savez(buffer, images=data.images, emotions=data.emotions, splits=data.splits, source=np.array(origin["source"]),
             sha256=np.array(origin["sha256"] or ""))
    with atomic_path(out) as tmp:
        Path(tmp).write_bytes(lzma.compress(buffer.getvalue(), preset=9 | lzma.PRESET_EXTREME))
    return out


def _load_packed(src: Path) -> FERData:
    try:
        with np.load(io.BytesIO(lzma.decompress(src.read_bytes())), allow_pickle=False) as z:
            origin = {"source": str(z["source"]), "sha256": str(z["sha256"]) or None}
            return FERData(z["images"], z["emotions"], z["splits"], str(src), notes={"origin": origin})
    except (lzma.LZMAError, OSError, ValueError, KeyError) as e:
        raise FERDataError(f"{src}: not a packed FER2013 copy ({type(e).__name__}: {e}); pack it again with "
                           "`python -m fer_utils pack FER2013_CSV --out COPY.npz.xz`") from e


def file_sha256(path: str | os.PathLike) -> str | None:
    """The sha256 of a file's bytes; None when ``path`` is not a file."""
    p = Path(path)
    if not p.is_file():
        return None
    with open(p, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _resolve_folder(folder: Path) -> Path:
    if (folder / "train").is_dir() or (folder / "test").is_dir():
        return folder
    for name in ("fer2013.csv", "fer2013.csv.gz", "icml_face_data.csv", "icml_face_data.csv.gz", "train.csv"):
        if (folder / name).exists():
            return folder / name
    csvs = sorted(folder.glob("*.csv")) + sorted(folder.glob("*.csv.gz"))
    if len(csvs) == 1:
        return csvs[0]
    raise FERDataError(
        f"{folder} holds neither train/ and test/ image folders nor a FER2013 CSV "
        f"(fer2013.csv, icml_face_data.csv, train.csv). {DOWNLOAD_HINT}"
    )


def _open_text(src: Path):
    with open(src, "rb") as f:
        magic = f.read(2)
    return gzip.open(src, "rb") if magic == b"\x1f\x8b" else open(src, "rb")


def _csv_columns(src: Path) -> list[str]:
    with _open_text(src) as f:
        raw = f.readline(4096)  # a binary file may have no line end for megabytes
    header = raw.decode("utf-8", errors="replace").strip()
    if b"\x00" in raw or "\ufffd" in header:
        raise FERDataError(f"{src} is not a CSV text file; FER2013 is a .csv or .csv.gz file, a {PACKED_SUFFIX} copy "
                           "(python -m fer_utils pack) or an image folder")
    return [c.strip() for c in header.split(",")]


def _load_csv(src: Path, default_split: str = "Training") -> FERData:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    try:
        columns = _csv_columns(src)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise FERDataError(f"{src}: cannot read it ({e}); is it a complete download?") from e
    if "pixels" not in columns:
        shown = columns[:8] + ["..."] * (len(columns) > 8)  # some other CSV may have hundreds
        raise FERDataError(
            f"{src}: wrong columns {shown}; expected a 'pixels' column, as in fer2013.csv "
            "(emotion,pixels,Usage), icml_face_data.csv (emotion, Usage, pixels) or the challenge's train.csv/test.csv."
        )
    unknown = [c for c in columns if c not in ("emotion", "pixels", "Usage")]
    if unknown:
        raise FERDataError(f"{src}: unexpected column(s) {unknown}; expected emotion, pixels and Usage.")
    try:
        raw = _open_text(src).read()
        table = pcsv.read_csv(
            io.BytesIO(raw),
            read_options=pcsv.ReadOptions(skip_rows=1, column_names=columns, block_size=1 << 24),
            convert_options=pcsv.ConvertOptions(column_types={c: pa.string() for c in columns}),
        )
    except (pa.ArrowInvalid, OSError, EOFError) as e:
        msg = str(e).split("\n")[0][:300]
        raise FERDataError(f"{src}: malformed CSV ({msg}). Each row must be {','.join(columns)}.") from e
    n = table.num_rows
    if n == 0:
        raise FERDataError(f"{src}: no rows after the header.")
    images = parse_pixels(table.column("pixels"), source=str(src))
    emotions = _parse_emotions(table.column("emotion").to_pylist(), src) if "emotion" in columns else np.full(n, -1, np.int8)
    if "Usage" in columns:
        splits = np.array([u.strip() if u else "" for u in table.column("Usage").to_pylist()])
        bad = ~np.isin(splits, SPLITS)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise FERDataError(f"{src}, data row {i + 1} (line {i + 2}): Usage {str(splits[i])!r} is not one of {list(SPLITS)}.")
    else:
        splits = np.full(n, default_split)
    return FERData(images, emotions, splits.astype("<U11"), str(src))


def _parse_emotions(values: list, src: Path) -> np.ndarray:
    out = np.empty(len(values), np.int8)
    for i, v in enumerate(values):
        s = (v or "").strip()
        if not (s.isdigit() and int(s) < len(EMOTIONS)):
            raise FERDataError(f"{src}, data row {i + 1} (line {i + 2}): emotion {v!r} is not an integer 0-6 ({', '.join(EMOTIONS)}).")
        out[i] = int(s)
    return out


def parse_pixels(pixels, *, source: str = "<pixels>") -> np.ndarray:
    """Parse space-separated pixel strings (a list or a pyarrow string column) into uint8 ``(N, 48, 48)``.

    Vectorised in row chunks small enough to stay in cache, and threaded (NumPy releases the GIL), because a
    Python loop over 75 million tokens is what made the seed's loader take 15 seconds.
    """
    import pyarrow as pa

    arr = pixels if isinstance(pixels, (pa.Array, pa.ChunkedArray)) else pa.array(list(pixels), type=pa.string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks else pa.array([], type=pa.string())
    if arr.type == pa.large_string():
        arr = arr.cast(pa.string())
    n = len(arr)
    if arr.null_count:
        i = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
        raise FERDataError(f"{source}, data row {i + 1}: pixels are missing; expected {N_PIXELS} space-separated values.")
    if n == 0:
        return np.empty((0, SIDE, SIDE), np.uint8)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset : arr.offset + n + 1].astype(np.int64)
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)
    out = np.empty((n, N_PIXELS), np.uint8)
    rows_per_chunk = 128
    chunks = [(r, min(r + rows_per_chunk, n)) for r in range(0, n, rows_per_chunk)]

    def parse_chunk(bounds: tuple[int, int]) -> None:
        r0, r1 = bounds
        rows = offsets[r0 : r1 + 1] - offsets[r0]
        c = data[offsets[r0] : offsets[r1]]
        d = c - np.uint8(48)
        dig = d < 10
        if np.count_nonzero(dig) + np.count_nonzero(c == 32) != len(c):
            at = int(np.flatnonzero(~dig & (c != 32))[0])
            row = r0 + int(np.searchsorted(rows, at, side="right")) - 1
            text = bytes(c[max(at - 8, 0) : at + 8]).decode("utf-8", errors="replace")
            raise FERDataError(
                f"{source}, data row {row + 1}: non-numeric pixel near {text!r}; expected integers 0-255 separated by spaces."
            )
        # rows are concatenated without separators, so a row boundary also ends a token
        prev_dig = np.empty_like(dig)
        prev_dig[0] = False
        prev_dig[1:] = dig[:-1]
        prev_dig[rows[1:-1]] = False
        next_dig = np.empty_like(dig)
        next_dig[-1] = False
        next_dig[:-1] = dig[1:]
        next_dig[rows[1:-1] - 1] = False
        starts = np.flatnonzero(dig & ~prev_dig)
        ends = np.flatnonzero(dig & ~next_dig)
        per_row = np.diff(np.searchsorted(starts, rows))
        wrong = np.flatnonzero(per_row != N_PIXELS)
        if len(wrong):
            i = int(wrong[0])
            raise FERDataError(
                f"{source}, data row {r0 + i + 1}: {per_row[i]} pixel values, expected {N_PIXELS} (48x48 grayscale)."
            )
        length = ends - starts
        if length.max(initial=0) > 2:
            k = int(np.flatnonzero(length > 2)[0])
            raise FERDataError(
                f"{source}, data row {r0 + k // N_PIXELS + 1}, pixel {k % N_PIXELS + 1}: value "
                f"{bytes(c[starts[k] : ends[k] + 1]).decode()} is out of range 0-255."
            )
        d *= dig  # spaces -> 0, so the tens and hundreds below read 0 outside a token
        values = d[ends].astype(np.uint16)
        values += 10 * d[ends - 1] * (length >= 1)
        values += 100 * d[np.maximum(ends - 2, 0)].astype(np.uint16) * (length >= 2)
        if values.max(initial=0) > 255:
            k = int(np.flatnonzero(values > 255)[0])
            raise FERDataError(
                f"{source}, data row {r0 + k // N_PIXELS + 1}, pixel {k % N_PIXELS + 1}: value {values[k]} is out of range 0-255."
            )
        out[r0:r1] = values.reshape(r1 - r0, N_PIXELS)

    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        list(pool.map(parse_chunk, chunks))
    return out.reshape(n, SIDE, SIDE)


def _load_image_folder(root: Path) -> FERData:
    import cv2

    images, emotions, splits = [], [], []
    converted = {"colour": 0, "resized": 0}
    parts = [p for p in ("train", "test") if (root / p).is_dir()]
    for part in parts:
        for sub in sorted((root / part).iterdir()):
            if not sub.is_dir():
                continue
            name = sub.name.lower()
            if name not in EMOTIONS:
                raise FERDataError(f"{sub}: folder name {sub.name!r} is not an emotion; expected one of {', '.join(EMOTIONS)}.")
            for f in sorted(sub.iterdir()):
                if f.suffix.lower() not in _IMAGE_SUFFIXES:
                    continue
                img = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
                if img is None:
                    raise FERDataError(f"{f}: unreadable image; replace or delete it.")
                if img.ndim == 3:
                    code = cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY
                    img = cv2.cvtColor(img, code)
                    converted["colour"] += 1
                if img.dtype != np.uint8:
                    img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
                if img.shape != (SIDE, SIDE):
                    img = cv2.resize(img, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
                    converted["resized"] += 1
                images.append(img)
                emotions.append(EMOTIONS.index(name))
                if part == "train":
                    splits.append("Training")
                elif f.name.startswith("PublicTest"):
                    splits.append("PublicTest")
                elif f.name.startswith("PrivateTest"):
                    splits.append("PrivateTest")
                else:
                    splits.append(MERGED_TEST)
    if not images:
        raise FERDataError(f"{root}: no images found under train/<emotion>/ or test/<emotion>/. {DOWNLOAD_HINT}")
    if converted["colour"] or converted["resized"]:
        print(f"{root}: converted {converted['colour']} colour image(s) to gray and resized {converted['resized']} to 48x48.")
    return FERData(
        np.stack(images), np.array(emotions, np.int8), np.array(splits, "<U11"), str(root), notes={"converted": converted}
    )


def _concat(a: FERData, b: FERData, source: str) -> FERData:
    return FERData(
        np.concatenate([a.images, b.images]),
        np.concatenate([a.emotions, b.emotions]),
        np.concatenate([a.splits, b.splits]),
        source,
    )


# ----------------------------------------------------------------------------------------------- cache


def _fingerprint(src: Path) -> str:
    if src.is_file():
        st = src.stat()
        parts = [str(src.resolve()), str(st.st_size), str(st.st_mtime_ns)]
    else:
        parts = [str(src.resolve())]
        for p in sorted(src.rglob("*")):
            if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES:
                st = p.stat()
                parts.append(f"{p.relative_to(src)}:{st.st_size}:{st.st_mtime_ns}")
    parts.append(f"v{CACHE_VERSION}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _cache_path(src: Path) -> Path:
    """Next to the source when that folder is writable, else in :func:`cache_dir`."""
    if not os.environ.get("FER_UTILS_CACHE_DIR"):
        beside = src / ".fer_utils_cache.npz" if src.is_dir() else src.with_name(src.name + ".fer_utils_cache.npz")
        if os.access(beside.parent, os.W_OK):
            return beside
    key = hashlib.sha256(str(src.resolve()).encode()).hexdigest()[:16]
    return cache_dir() / f"{src.name}.{key}.npz"


def _read_cache(cache_file: Path, fingerprint: str, src: Path) -> FERData | None:
    try:
        with np.load(cache_file, allow_pickle=False) as z:
            if str(z["fingerprint"]) != fingerprint:
                return None
            return FERData(z["images"], z["emotions"], z["splits"], str(src))
    except Exception:
        return None  # a damaged or foreign cache is rebuilt, never trusted


def _write_cache(cache_file: Path, fingerprint: str, data: FERData) -> None:
    from fer_utils.atomic import atomic_path

    try:
        with atomic_path(cache_file) as tmp:
            # Uncompressed: FER faces compress ~2x but zlib would make every cached load 10x slower.
            np.savez(tmp, images=data.images, emotions=data.emotions, splits=data.splits, fingerprint=np.array(fingerprint))
    except OSError as e:
        print(f"warning: could not write the cache {cache_file} ({e}); loading will stay slow.")
