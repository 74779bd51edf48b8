"""Samples read from files one at a time: images named by a folder or a CSV, images inside
tar shards, rows of an array stored in an .npz archive.

A `SampleFiles` knows how many samples it holds, the shape each one decodes to, and how to
read sample `i` (numpy, float32 for images in [0, 1]); it holds paths and offsets only, so
it is small, picklable (DataLoader workers get a copy) and its memory does not grow with the
pixels. `materialize` reads every sample at once: what `data.cache: memory` (and `auto` on
data that fits) holds; `dlspec.data.lazy` reads them batch by batch instead.

Every failure to read one sample is `Unreadable` naming it; whoever reads turns it into a
located SpecError (or counts it, when the spec says to skip bad files).
"""

from __future__ import annotations

import math
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlspec.errors import Path as SpecPath
from dlspec.errors import Problem, SpecError
from dlspec.memory import format_bytes
from dlspec.runtime.untrusted import (
    MAX_ARRAY_BYTES,
    Unreadable,
    first_nonfinite,
    printable,
    read_image,
)

BAD_FILE_HINT = ("remove or replace it, or set data.bad_files: skip to leave unreadable files "
                 "out (they are counted)")


WRONG_SIZE_HINT = "add `resize: [height, width]`"


class SampleFiles:
    """Samples read one at a time from files (see the module's docstring)."""

    where: SpecPath  # the data key that named the files, where problems are reported
    shown: str  # the folder or file as the spec wrote it
    sample_shape: tuple[int, ...]
    images: bool = False

    def __len__(self) -> int:
        raise NotImplementedError

    def read(self, index: int) -> np.ndarray:
        """Sample `index` as float32 (C, H, W) images or the array's own rows; Unreadable."""
        raise NotImplementedError

    def name(self, index: int) -> str:
        """Sample `index` as a user finds it: a file's path, an archive's member."""
        raise NotImplementedError

    @property
    def decoded_bytes(self) -> int:
        """The memory every sample takes decoded, as float32."""
        return len(self) * math.prod(self.sample_shape) * 4

    def materialize(self, skip: dict[int, str] | None = None) -> np.ndarray:
        """Every sample at once, (N, *sample_shape); SpecError naming the first that cannot
        be read (unless `skip` is given: unreadable samples are zeros, and `skip` gets
        their index → name and reason), or when they would take more memory than dlspec
        allows itself."""
        if self.decoded_bytes > MAX_ARRAY_BYTES:
            raise SpecError(Problem(self.where, f"the samples of {self.shown} need "
                                    f"{format_bytes(self.decoded_bytes)} decoded, more than "
                                    f"the {format_bytes(MAX_ARRAY_BYTES)} dlspec holds in "
                                    "memory", "set data.cache: none to read them as needed"))
        out = np.empty((len(self), *self.sample_shape), dtype=self.dtype)
        for index in range(len(self)):
            try:
                out[index] = self.read(index)
            except Unreadable as error:
                if skip is None or isinstance(error, WrongSize):
                    raise SpecError(Problem(self.where, f"{self.name(index)} {error}",
                                            self.hint(error))) from None
                skip[index] = f"{self.name(index)} {error}"
                out[index] = 0
        return out

    @property
    def dtype(self) -> np.dtype:
        """The dtype samples decode to."""
        return np.dtype(np.float32)

    def hint(self, error: Unreadable) -> str | None:
        """What to do about a sample that cannot be read."""
        if isinstance(error, WrongSize):
            return WRONG_SIZE_HINT
        return BAD_FILE_HINT


class WrongSize(Unreadable):
    """An image whose size differs from the first one's (and no `resize` says one)."""


class _Images(SampleFiles):
    """Images decoded as (C, H, W) float32 in [0, 1], to one size."""

    images = True

    def __init__(self, shown: str, where: SpecPath, channels: int,
                 size: tuple[int, int] | None):
        self.shown, self.where, self.channels, self.size = shown, where, channels, size
        self.sample_shape = (channels, 0, 0)

    def measure(self) -> None:
        """Learn the sample shape from the first image (or `size`)."""
        if self.size is not None:
            self.sample_shape = (self.channels, *self.size)
            return
        try:
            first = self.decode(0)
        except Unreadable as error:
            raise SpecError(Problem(self.where, f"{self.name(0)} {error}",
                                    self.hint(error))) from None
        self.sample_shape = (self.channels, first.shape[0], first.shape[1])

    def decode(self, index: int) -> np.ndarray:
        """Image `index` as (H, W) or (H, W, 3) uint8."""
        raise NotImplementedError

    def read(self, index: int) -> np.ndarray:
        pixels = self.decode(index)
        if pixels.shape[:2] != self.sample_shape[1:]:
            height, width = self.sample_shape[1:]
            raise WrongSize(f"is {pixels.shape[0]}×{pixels.shape[1]}, but the images of "
                            f"{self.shown} are {height}×{width} (as {self.name(0)}): they "
                            "differ in size")
        chw = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
        return chw.astype(np.float32) / 255.0


class ImageFiles(_Images):
    """Image files: those of an image folder, or those a CSV's rows name."""

    def __init__(self, paths: list[Path], root: Path, shown: str, where: SpecPath,
                 channels: int, size: tuple[int, int] | None):
        super().__init__(shown, where, channels, size)
        self.paths, self.root = paths, root
        self.measure()

    def __len__(self) -> int:
        return len(self.paths)

    def decode(self, index: int) -> np.ndarray:
        return read_image(self.paths[index], self.channels, self.size)

    def name(self, index: int) -> str:
        return f"{self.shown}/{printable(self.paths[index].relative_to(self.root).as_posix())}"


@dataclass(frozen=True)
class Member:
    """One image inside a tar shard: where its bytes are."""

    shard: int  # index into TarImages.shards
    offset: int
    size: int
    name: str  # the member's name in the archive (checked: printable, relative)


class TarImages(_Images):
    """Images stored inside uncompressed tar shards, read by offset (no extraction)."""

    def __init__(self, shards: list[Path], members: list[Member], shown: str,
                 where: SpecPath, channels: int, size: tuple[int, int] | None):
        super().__init__(shown, where, channels, size)
        self.shards, self.members = shards, members
        self.measure()

    def __len__(self) -> int:
        return len(self.members)

    def decode(self, index: int) -> np.ndarray:
        import io

        member = self.members[index]
        with self.shards[member.shard].open("rb") as file:
            file.seek(member.offset)
            payload = file.read(member.size)
        if len(payload) != member.size:
            raise Unreadable("is cut short: the shard ends inside it")
        return read_image(io.BytesIO(payload), self.channels, self.size)

    def name(self, index: int) -> str:
        member = self.members[index]
        return f"{self.shown}/{self.shards[member.shard].name}:{member.name}"


class StoredRows(SampleFiles):
    """The rows of an array stored uncompressed in an .npz (or .npy) file, memory-mapped:
    reading a batch touches only its rows' pages."""

    def __init__(self, path: Path, offset: int, dtype: np.dtype, shape: tuple[int, ...],
                 shown: str, where: SpecPath):
        self.path, self.offset, self.stored, self.shape = path, offset, dtype, shape
        self.shown, self.where = shown, where
        self.sample_shape = tuple(shape[1:])
        self._rows: np.memmap | None = None

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def dtype(self) -> np.dtype:
        return self.stored

    @property
    def decoded_bytes(self) -> int:
        return len(self) * math.prod(self.sample_shape) * max(self.stored.itemsize, 4)

    def rows(self) -> np.memmap:
        """The whole array, mapped (opened once per process: workers map their own)."""
        if self._rows is None:
            self._rows = np.memmap(self.path, dtype=self.stored, mode="r", offset=self.offset,
                                   shape=self.shape)
        return self._rows

    def read(self, index: int) -> np.ndarray:
        return np.array(self.rows()[index])

    def read_rows(self, index: np.ndarray) -> np.ndarray:
        """Several rows at once, in the order of `index`."""
        return np.asarray(self.rows()[np.sort(index)][np.argsort(np.argsort(index))])

    def name(self, index: int) -> str:
        return f"{self.shown} row {index}"

    def materialize(self, skip: dict[int, str] | None = None) -> np.ndarray:
        rows = np.array(self.rows())
        if rows.dtype.kind == "f":
            sample = first_nonfinite(rows)
            if sample is not None:
                raise SpecError(Problem(self.where, f"{self.shown} holds NaN or infinite "
                                        f"values, first in sample {sample} (counting from 0)",
                                        "fill or drop missing values; NaN and infinity cannot "
                                        "be trained on"))
        return rows

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "_rows": None}  # a worker maps the file itself


def tar_members(path: Path) -> list[tarfile.TarInfo]:
    """The members of a tar shard, headers only (no member is extracted)."""
    try:
        with tarfile.open(path, mode="r:") as archive:  # uncompressed: members by offset
            return archive.getmembers()
    except (tarfile.TarError, OSError, EOFError, ValueError) as error:
        raise Unreadable(f"is not an uncompressed tar archive ({error})") from None
