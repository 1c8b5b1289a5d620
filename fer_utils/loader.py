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
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from fer_utils.atomic import atomic_path
from fer_utils.constants import DOWNLOAD_HINT, EMOTIONS, PROJECT_ROOT, SIDE, SPLITS, cache_dir
from fer_utils.images import read_image, to_gray

if TYPE_CHECKING:
    import pandas as pd

# The image-folder release merges PublicTest and PrivateTest into one "test" folder; without the file-name
# prefixes we cannot tell them apart, so those rows get this split name.
MERGED_TEST = "Test"
N_PIXELS = SIDE * SIDE
CACHE_VERSION = 1
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}
# FER2013's file names, as Kaggle's releases name them, in the order a folder holding several is read
FER2013_FILES = ("fer2013.csv", "fer2013.csv.gz", "icml_face_data.csv", "icml_face_data.csv.gz", "train.csv")


class FERDataError(ValueError):
    """A dataset file or folder is missing or malformed; the message names the place and the fix."""


@dataclass(frozen=True)
class FERData:
    """Faces as uint8 ``(N, 48, 48)``, emotions as int ``(N,)`` (0-6, or -1 when unknown), split per row; for a
    labelled face collection (:func:`fer_utils.collection.load_faces`) also each face's image file, relative to
    the collection's folder (None for FER2013 and the synthetic default)."""

    images: np.ndarray
    emotions: np.ndarray
    splits: np.ndarray
    source: str
    synthetic: bool = False
    notes: dict = field(default_factory=dict)
    files: np.ndarray | None = None

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
            raise FERDataError(f"split {unknown[0]!r} is not in this data; it has {self.split_names}")
        return self.take(np.isin(self.splits, names))

    def take(self, rows: np.ndarray) -> FERData:
        """The rows selected by a boolean mask or an index array, with the same source and labels."""
        files = None if self.files is None else self.files[rows]
        return FERData(self.images[rows], self.emotions[rows], self.splits[rows], self.source, self.synthetic, self.notes,
                       files)

    def counts(self) -> pd.DataFrame:
        """Table 1: faces per emotion (rows) and split (columns), with totals."""
        import pandas as pd  # only here: importing pandas would double the time of a load from the cache
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
    def collection(self) -> dict | None:
        """For a labelled face collection (:func:`fer_utils.collection.load_faces`): what it left out and skipped;
        None for FER2013 and the synthetic default."""
        return self.notes.get("collection")

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
    for name in (*FER2013_FILES, "fer2013"):
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
                           "`python -m fer_utils pack --data FER2013_CSV --out COPY.npz.xz`") from e


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
    for name in FER2013_FILES:
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
    try:
        columns = _csv_columns(src)
    except (OSError, EOFError, zlib.error) as e:
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
    # This thread reads (and un-gzips) the file a block of lines at a time and splits the lines into fields, while
    # the pool parses the blocks before it.
    parts, rows = [], 0
    try:
        with _open_text(src) as f, ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as pool:
            for block, end in _line_blocks(f):
                fields = _field_bounds(block, end, rows, columns, str(src))
                parts.append(pool.submit(_parse_block, block, fields, rows, str(src), default_split))
                rows += len(fields["pixels"][0])
            parts = [p.result() for p in parts]
    except (OSError, EOFError, zlib.error) as e:
        raise FERDataError(f"{src}: cannot read it ({e}); is it a complete download?") from e
    if rows == 0:
        raise FERDataError(f"{src}: no rows after the header.")
    images, emotions, splits = (np.concatenate(a) for a in zip(*parts, strict=True))
    return FERData(images, emotions, splits, str(src))


_BLOCK_BYTES = 1 << 24  # lines handed to one thread at a time: about 2,000 faces of fer2013.csv
_ROWS_PER_CHUNK = 64  # faces parsed at once: half a megabyte of text, so the parser's temporaries stay in cache
_SPACE = np.uint8(256 + ord(" ") - ord("0"))  # how a space reads once ord("0") is taken from each byte (uint8)


def _line_blocks(f):
    """The data lines of an open CSV, as (block, end): ``block[:end]`` is whole lines, about ``_BLOCK_BYTES``."""
    f.readline()  # the header, read apart by _csv_columns
    rewind = isinstance(f, io.BufferedReader)  # a plain file: read its unfinished last line again with the next block
    tail = b""
    while piece := f.read(_BLOCK_BYTES):
        block = tail + piece
        end = block.rfind(b"\n") + 1
        if end:
            yield block, end
        if end and rewind:
            f.seek(end - len(block), os.SEEK_CUR)
            tail = b""
        else:
            tail = block[end:]
    if tail.strip():  # a last line without a line break
        yield tail + b"\n", len(tail) + 1


def _field_bounds(block: bytes, end: int, row0: int, columns: list[str], source: str) -> dict:
    """Each column's (first byte, end) in each non-empty line of ``block[:end]``. Lines split at every comma:
    FER2013's fields hold none, and a quoted field (``"70 80 ..."``) is read without its quotes."""
    find, k = block.find, len(columns)
    starts, cuts, stops = [], [], []
    pos = 0
    while pos < end:  # bytes.find is memchr: a pass over the block at memory speed, a few calls per line
        nl = find(b"\n", pos, end)
        stop = nl - 1 if nl > pos and block[nl - 1] == ord("\r") else nl
        if stop > pos:
            line_cuts, c = [], pos - 1
            while len(line_cuts) < k and (c := find(b",", c + 1, stop)) >= 0:  # up to one comma too many
                line_cuts.append(c)
            if len(line_cuts) != k - 1:
                i = row0 + len(starts)
                raise FERDataError(f"{source}: malformed CSV (data row {i + 1} (line {i + 2}) has "
                                   f"{block.count(b',', pos, stop) + 1} fields, expected {k}). Each row must be "
                                   f"{','.join(columns)}.")
            cuts += line_cuts
            starts.append(pos)
            stops.append(stop)
        pos = nl + 1
    cut = np.array(cuts, np.int64).reshape(len(starts), k - 1)
    firsts = np.column_stack([np.array(starts, np.int64), cut + 1])
    lasts = np.column_stack([cut, np.array(stops, np.int64)])
    b = np.frombuffer(block, np.uint8)
    quoted = (lasts - firsts >= 2) & (b[firsts] == ord('"')) & (b[lasts - 1] == ord('"'))
    firsts += quoted
    lasts -= quoted
    return {c: (firsts[:, j], lasts[:, j]) for j, c in enumerate(columns)}


def _parse_block(block: bytes, fields: dict, row0: int, source: str,
                 default_split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Faces, emotions and splits of one block's lines; ``row0``: how many data rows came before them."""
    images = _parse_pixel_fields(np.frombuffer(block, np.uint8), *fields["pixels"], row0=row0, source=source)
    n = len(images)
    emotions = _parse_emotions(block, *fields["emotion"], row0, source) if "emotion" in fields else np.full(n, -1, np.int8)
    splits = _parse_splits(block, *fields["Usage"], row0, source) if "Usage" in fields else np.full(n, default_split, "<U11")
    return images, emotions, splits


def _parse_emotions(block: bytes, firsts: np.ndarray, lasts: np.ndarray, row0: int, source: str) -> np.ndarray:
    if (lasts - firsts == 1).all():  # one digit each, as in every FER2013 CSV: read without a Python loop
        codes = np.frombuffer(block, np.uint8)[firsts] - np.uint8(ord("0"))
        if (codes < len(EMOTIONS)).all():
            return codes.astype(np.int8)
    out = np.empty(len(firsts), np.int8)
    for i, (a, z) in enumerate(zip(firsts.tolist(), lasts.tolist(), strict=True)):
        v = block[a:z].decode("utf-8", errors="replace")
        s = v.strip()
        if not (s.isascii() and s.isdigit() and int(s) < len(EMOTIONS)):
            raise FERDataError(f"{source}, data row {row0 + i + 1} (line {row0 + i + 2}): emotion {v!r} is not an "
                               f"integer 0-6 ({', '.join(EMOTIONS)}).")
        out[i] = int(s)
    return out


def _parse_splits(block: bytes, firsts: np.ndarray, lasts: np.ndarray, row0: int, source: str) -> np.ndarray:
    known = {s.encode(): i for i, s in enumerate(SPLITS)}
    codes = [known.get(block[a:z].strip(), -1) for a, z in zip(firsts.tolist(), lasts.tolist(), strict=True)]
    if -1 in codes:
        i = codes.index(-1)
        usage = block[firsts[i] : lasts[i]].decode("utf-8", errors="replace").strip()
        raise FERDataError(f"{source}, data row {row0 + i + 1} (line {row0 + i + 2}): Usage {usage!r} is not one of "
                           f"{list(SPLITS)}.")
    return np.array(SPLITS, "<U11")[codes]


def parse_pixels(pixels, *, source: str = "<pixels>") -> np.ndarray:
    """Parse space-separated pixel strings (a list, or a pyarrow string array) into uint8 ``(N, 48, 48)``."""
    texts = pixels.to_pylist() if hasattr(pixels, "to_pylist") else list(pixels)
    if None in texts:
        i = texts.index(None)
        raise FERDataError(f"{source}, data row {i + 1}: pixels are missing; expected {N_PIXELS} space-separated values.")
    encoded = [t.encode() for t in texts]
    lengths = np.array([len(t) for t in encoded], np.int64)
    firsts = np.cumsum(lengths + 1) - lengths - 1  # the texts joined by line breaks
    return _parse_pixel_fields(np.frombuffer(b"\n".join(encoded), np.uint8), firsts, firsts + lengths, source=source)


def _parse_pixel_fields(b: np.ndarray, firsts: np.ndarray, lasts: np.ndarray, *, row0: int = 0,
                        source: str) -> np.ndarray:
    """The faces whose pixels are ``b[firsts[i]:lasts[i]]``, ``_ROWS_PER_CHUNK`` rows at a time."""
    n = len(firsts)
    out = np.empty((n, N_PIXELS), np.uint8)
    for r in range(0, n, _ROWS_PER_CHUNK):
        rows = slice(r, r + _ROWS_PER_CHUNK)
        _parse_pixel_rows(b, firsts[rows], lasts[rows], out[rows], row0 + r, source)
    return out.reshape(n, SIDE, SIDE)


def _parse_pixel_rows(b: np.ndarray, firsts: np.ndarray, lasts: np.ndarray, out: np.ndarray, row0: int,
                      source: str) -> None:
    """Vectorised over the rows' bytes (a Python int() per pixel made the seed's loader take 10 seconds): a value
    ends at each digit followed by a non-digit, and reads its tens and hundreds from the two bytes before it."""
    lo, hi = int(firsts[0]), int(lasts[-1])
    d = np.empty(hi - lo + 4, np.uint8)  # the text between three spaces (every value has two bytes before it) and one
    d[:3] = d[-1] = _SPACE
    np.subtract(b[lo:hi], np.uint8(ord("0")), out=d[3:-1])
    d[_between(firsts - lo + 3, lasts - lo + 3)] = _SPACE  # the other fields and line breaks between rows
    digit = d < 10
    if np.count_nonzero(digit) + np.count_nonzero(d == _SPACE) != len(d):
        at = int(np.flatnonzero(~digit & (d != _SPACE))[0]) + lo - 3
        row = int(np.searchsorted(firsts, at, side="right")) - 1
        text = bytes(b[max(at - 8, firsts[row]) : min(at + 8, lasts[row])]).decode("utf-8", errors="replace")
        raise FERDataError(
            f"{source}, data row {row0 + row + 1}: non-numeric pixel near {text!r}; expected integers 0-255 separated by spaces."
        )
    at = np.flatnonzero(digit[3:-1] > digit[4:])  # a value ends at d[at + 3], the text's byte at + lo
    per_row = np.diff(np.searchsorted(at, np.append(firsts - lo, hi - lo)))
    wrong = np.flatnonzero(per_row != N_PIXELS)
    if len(wrong):
        i = int(wrong[0])
        raise FERDataError(f"{source}, data row {row0 + i + 1}: {per_row[i]} pixel values, expected {N_PIXELS} (48x48 grayscale).")
    pairs = digit[:-1] & digit[1:]
    long = pairs[:-2] & pairs[2:]  # four digits in a row
    if long.any():
        k = int(np.searchsorted(at + 3, np.flatnonzero(long)[0]))
        end = start = int(at[k]) + 3
        while digit[start - 1]:
            start -= 1
        raise FERDataError(f"{source}, data row {row0 + k // N_PIXELS + 1}, pixel {k % N_PIXELS + 1}: value "
                           f"{bytes(b[start + lo - 3 : end + lo - 2]).decode()} is out of range 0-255.")
    d *= digit  # spaces -> 0, so a short value's missing tens and hundreds read 0
    units_tens = d[2:-2] * np.uint8(10)  # at every byte: the value if it were the last digit, hundreds aside
    units_tens += d[3:-1]
    hundreds = d[1:-3] * digit[2:-2]  # a digit two bytes back counts only if the byte between is a digit too
    values = units_tens.take(at)
    hundreds = hundreds.take(at)
    if (hundreds > 2).any() or ((hundreds == 2) & (values > 55)).any():
        k = int(np.flatnonzero(100 * hundreds.astype(np.uint16) + values > 255)[0])
        raise FERDataError(f"{source}, data row {row0 + k // N_PIXELS + 1}, pixel {k % N_PIXELS + 1}: value "
                           f"{100 * int(hundreds[k]) + int(values[k])} is out of range 0-255.")
    values += np.uint8(100) * hundreds
    out[:] = values.reshape(out.shape)


def _between(firsts: np.ndarray, lasts: np.ndarray) -> np.ndarray:
    """The positions from the end of each row's pixels to the start of the next row's."""
    gap_starts, gaps = lasts[:-1], firsts[1:] - lasts[:-1]
    return np.repeat(gap_starts - np.cumsum(gaps) + gaps, gaps) + np.arange(gaps.sum())


def _load_image_folder(root: Path) -> FERData:
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
                if f.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                try:
                    bgr = read_image(f)
                except ValueError as e:
                    raise FERDataError(f"{f}: unreadable image; replace or delete it.") from e
                converted["colour"] += bool((bgr[..., 0] != bgr[..., 1]).any() or (bgr[..., 1] != bgr[..., 2]).any())
                img = to_gray(bgr)
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
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
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
    try:
        with atomic_path(cache_file) as tmp:
            # Uncompressed: FER faces compress ~2x but zlib would make every cached load 10x slower.
            np.savez(tmp, images=data.images, emotions=data.emotions, splits=data.splits, fingerprint=np.array(fingerprint))
    except OSError as e:
        print(f"warning: could not write the cache {cache_file} ({e}); loading will stay slow.")
