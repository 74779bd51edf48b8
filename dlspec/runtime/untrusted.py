"""Reading files nobody vouches for: arrays, images, CSV text, and quoting them in messages.

Training data (`dlspec.data.files`) and `dlspec predict` (`dlspec.runtime.readers`) both read
files a user was handed. What a file announces is checked before anything is allocated or
decoded:

* .npy arrays and .npz members: the header's shape × item size must fit in the bytes the
  file (or member) holds and in `MAX_ARRAY_BYTES` (half this machine's memory); object
  arrays are never unpickled; only booleans, integers and floats are read.
* images: at most `MAX_IMAGE_PIXELS` pixels (89,478,485, Pillow's own default limit, about
  9459×9459), checked from the header before decoding; 16-bit images are scaled to 8 bits
  (Pillow alone clips them to white); palette, LA, CMYK... become L or RGB.
* CSV: UTF-8 text without control characters (anything else is "not a CSV file").
* text quoted in a message: `printable` escapes control and invisible characters;
  `excerpt` quotes a short, escaped piece, never a whole line of another file.

Every refusal is an `Unreadable` whose message completes "FILE ..."; callers turn it into
a SpecError at their own place. Nothing here imports torch.
"""

from __future__ import annotations

import math
import os
import re
import struct
import unicodedata
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

from dlspec.memory import format_bytes, physical_memory

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
MAX_IMAGE_PIXELS = 89_478_485  # Pillow's default Image.MAX_IMAGE_PIXELS, fixed here
_NUMERIC_KINDS = "biuf"
# control, format (bidi overrides, zero-width), separator, surrogate, private, unassigned
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# C0 (but tab, newline, carriage return), DEL and C1: what text files never hold
_BINARY = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class Unreadable(ValueError):
    """A file refused before (or while) reading it; the message follows its name."""


MAX_ARRAY_BYTES = physical_memory() // 2  # one array, or one folder of images, at most


# --------------------------------------------------------------------------- text


def printable(text: str) -> str:
    """`text` with every control or invisible character shown as its escape (`\\x1b`)."""
    if text.isprintable():
        return text
    return "".join(c.encode("unicode_escape", "backslashreplace").decode("ascii")
                   if unicodedata.category(c) in _HIDDEN else c for c in text)


def excerpt(text: str, limit: int = 24) -> str:
    """A short quoted piece of `text` from a file: escaped, cut after `limit` characters."""
    shown = printable(text)
    return repr(shown if len(shown) <= limit else shown[:limit] + "…")


def excerpts(texts: list[str], count: int = 6, limit: int = 24) -> str:
    """The first `count` texts as excerpts, "and N more" for the rest."""
    shown = ", ".join(excerpt(t, limit) for t in texts[:count])
    return shown + (f" and {len(texts) - count} more" if len(texts) > count else "")


def has_hidden(text: str) -> bool:
    """Whether `text` holds a control or invisible character (a bidi override, ...)."""
    return not text.isprintable() and any(unicodedata.category(c) in _HIDDEN for c in text)


# --------------------------------------------------------------------------- CSV


def read_csv_text(path: Path) -> str:
    """The text of a CSV file; Unreadable when it is not UTF-8 text (binary, controls)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        byte = error.object[error.start]
        raise Unreadable(f"is not a CSV file (not UTF-8 text: byte {byte:#04x} at offset "
                         f"{error.start})") from None
    except OSError as error:
        raise Unreadable(f"cannot be read ({error.strerror or type(error).__name__})") from None
    found = _BINARY.search(text)
    if found is not None:
        line = text.count("\n", 0, found.start()) + 1
        raise Unreadable(f"is not a CSV file (binary: control character "
                         f"{ord(found.group()):#04x} on line {line})")
    return text


# --------------------------------------------------------------------------- arrays


def array_names(path: Path) -> list[str] | None:
    """The arrays an .npz archive holds (None for an .npy file); Unreadable for others."""
    try:
        with path.open("rb") as file:
            magic = file.read(6)
    except OSError as error:
        raise Unreadable(f"cannot be read ({error.strerror or type(error).__name__})") from None
    if magic == b"\x93NUMPY":
        return None
    if not magic.startswith(b"PK"):
        raise Unreadable("is not an .npy or .npz file (write arrays with numpy.save / "
                         "numpy.savez)")
    try:
        with zipfile.ZipFile(path) as archive:
            return [n.removesuffix(".npy") for n in archive.namelist() if n.endswith(".npy")]
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise Unreadable(f"is not a readable .npz archive ({_reason(error)})") from None


def load_array(path: Path, name: str | None = None) -> np.ndarray:
    """The array of an .npy file, or the array `name` of an .npz, checked before it is read.

    Unreadable when the header announces more bytes than the file holds or than
    MAX_ARRAY_BYTES, Python objects, or values that are not numbers.
    """
    try:
        if name is None:
            with path.open("rb") as file:
                available = os.fstat(file.fileno()).st_size
                _check_header(file, available, "")
                file.seek(0)
                return np.lib.format.read_array(file, allow_pickle=False)
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(f"{name}.npy")
            with archive.open(info) as member:
                _check_header(member, info.file_size, f"array {excerpt(name)} ")
                member.seek(0)  # back over the header only: nothing decompressed twice
                return np.lib.format.read_array(member, allow_pickle=False)
    except Unreadable:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error,
            struct.error, MemoryError) as error:
        raise Unreadable(f"is truncated or corrupt ({_reason(error)})") from None


def stored_array(path: Path, name: str) -> tuple[int, np.dtype, tuple[int, ...]] | None:
    """Where array `name` of an .npz archive lies in the file, when it is stored
    uncompressed in C order (numpy.savez), so it can be memory-mapped: (offset of its first
    value, dtype, shape). None for a compressed or Fortran-ordered one; Unreadable when its
    header is not a valid one of numbers (as `load_array` checks, without the size limit:
    a mapped array is read a batch at a time)."""
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(f"{name}.npy")
        if info.compress_type != zipfile.ZIP_STORED:
            return None
        with path.open("rb") as file:
            file.seek(info.header_offset)
            local = file.read(30)  # the member's local header: its name and extra field follow
            if len(local) != 30 or local[:4] != b"PK\x03\x04":
                raise Unreadable("is not a readable .npz archive (a member's header is damaged)")
            start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") \
                + int.from_bytes(local[28:30], "little")
            file.seek(start)
            fmt = np.lib.format
            version = fmt.read_magic(file)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, fortran, dtype = read(file)
            offset = file.tell()
    except Unreadable:
        raise
    except (OSError, ValueError, EOFError, KeyError, SyntaxError, TypeError,
            zipfile.BadZipFile, struct.error) as error:
        raise Unreadable(f"array {excerpt(name)} has no valid .npy header "
                         f"({_reason(error)})") from None
    _check_dtype(dtype, f"array {excerpt(name)} ")
    size = math.prod(shape) * dtype.itemsize
    held = info.file_size - (offset - start)
    if size > held:
        shown = "×".join(map(str, shape)) or "scalar"
        raise Unreadable(f"array {excerpt(name)} announces {shown} {dtype} values "
                         f"({format_bytes(size)}) but holds {format_bytes(max(held, 0))}")
    if fortran or not shape:
        return None
    return offset, dtype, tuple(shape)


def first_nonfinite(array: np.ndarray) -> int | None:
    """The first sample (along axis 0; a scalar is sample 0) holding NaN or infinity, or
    None when every value is finite."""
    if np.isfinite(array).all():
        return None
    finite = np.isfinite(array.reshape(len(array) if array.ndim else 1, -1)).all(axis=1)
    return int(np.argmin(finite))


def _check_dtype(dtype: np.dtype, what: str) -> None:
    """Unreadable unless `dtype` is of plain numbers."""
    if dtype.hasobject:
        raise Unreadable(f"{what}holds Python objects (dtype object), which dlspec never "
                         "unpickles; save numbers")
    if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None:
        raise Unreadable(f"{what}holds {printable(str(dtype))} values, not numbers")


def _check_header(file: IO[bytes], available: int, what: str) -> None:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(file)
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, _, dtype = read(file)
    except (ValueError, EOFError, SyntaxError, TypeError) as error:
        raise Unreadable(f"{what}has no valid .npy header ({_reason(error)})") from None
    _check_dtype(dtype, what)
    size = math.prod(shape) * dtype.itemsize
    held = available - file.tell()
    shown = "×".join(map(str, shape)) or "scalar"
    if size > held:
        raise Unreadable(f"{what}announces {shown} {dtype} values ({format_bytes(size)}) but "
                         f"holds {format_bytes(max(held, 0))}")
    if size > MAX_ARRAY_BYTES:
        raise Unreadable(f"{what}announces {shown} {dtype} values ({format_bytes(size)}), more "
                         f"than the {format_bytes(MAX_ARRAY_BYTES)} dlspec reads at once (half "
                         "this machine's memory)")


# --------------------------------------------------------------------------- images


def read_image(path: Path | IO[bytes], channels: int,
               size: tuple[int, int] | None = None) -> np.ndarray:
    """An image (a file, or its bytes) as (H, W) uint8 (channels 1) or (H, W, 3) (channels
    3), resized to `size` = (height, width) with bilinear filtering when given; Unreadable
    when it is not one."""
    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        # Pillow warns of large images and palette transparency; both are handled here
        warnings.simplefilter("ignore")
        try:
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise Unreadable(_too_large(f"{width}×{height} pixels", width * height))
                if width * height == 0:
                    raise Unreadable("is an image without pixels")
                converted = _converted(image, "L" if channels == 1 else "RGB")
                if size is not None and converted.size != (size[1], size[0]):
                    converted = converted.resize((size[1], size[0]), Image.Resampling.BILINEAR)
                return np.asarray(converted, dtype=np.uint8)
        except Unreadable:
            raise
        except Image.DecompressionBombError as error:
            pixels = re.search(r"\((\d+) pixels\)", str(error))
            count = int(pixels.group(1)) if pixels else MAX_IMAGE_PIXELS * 2
            raise Unreadable(_too_large(f"{count:,} pixels", count)) from None
        except UnidentifiedImageError:
            raise Unreadable("is not an image Pillow can read") from None
        except (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error,
                IndexError, MemoryError) as error:
            raise Unreadable(f"is a truncated or corrupt image ({_reason(error)})") from None


def _too_large(said: str, count: int) -> str:
    return (f"is an image of {said}{f' ({count:,})' if '×' in said else ''}, more than the "
            f"{MAX_IMAGE_PIXELS:,} dlspec reads (a decompression bomb?); shrink it first")


def _converted(image: PILImage, mode: str) -> PILImage:
    """`image` in mode L or RGB; 16- and 32-bit integer images scaled, not clipped."""
    from PIL import Image
    if image.mode.startswith("I"):  # I;16, I;16B, I (PNG's 16-bit grey): 0..65535
        values = np.asarray(image).astype(np.float64)
        image = Image.fromarray(np.clip(np.round(values / 257.0), 0, 255).astype(np.uint8))
    elif image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image.convert(mode)


def _reason(error: BaseException) -> str:
    text = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return printable(text if len(text) <= 100 else text[:100] + "…")
