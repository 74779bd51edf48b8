"""Samples in tar shards, WebDataset's format: a folder of uncompressed .tar files whose
members are grouped into samples by name, `KEY.jpg` (or .png, …) the image and `KEY.cls` its
class index as text.

Millions of small files become a few large ones that read fast from any disk. Only the
members' headers are read up front (and the small .cls members); images are read by offset,
batch by batch. The archives are untrusted: members that are links, devices or names
leading outside the archive are refused with their name, never followed or extracted.
"""

from __future__ import annotations

import tarfile
from pathlib import Path, PurePosixPath

import numpy as np

from dlspec.data.files import resolve
from dlspec.data.fit import RawData
from dlspec.data.samples import Member, TarImages, tar_members
from dlspec.errors import Path as SpecPath
from dlspec.errors import Problem, SpecError
from dlspec.runtime.untrusted import IMAGE_SUFFIXES, Unreadable, excerpt, has_hidden, printable
from dlspec.spec.sections import DataConfig

_LABEL_SUFFIX = ".cls"
_MAX_LABEL_BYTES = 32  # a class index as text; anything longer is not one


def read_shards(written: str, data: DataConfig, base_dir: Path,
                class_order: list[str] | None) -> RawData:
    """The samples of every .tar shard in folder `written` (in sorted order): images read
    as needed (`TarImages`) and their class indices."""
    at: SpecPath = ("data", "shards")
    root = resolve(base_dir, written, "shards", folder=True)
    shards = sorted(p for p in root.iterdir() if p.suffix == ".tar" and p.is_file())
    if not shards:
        raise SpecError(Problem(at, f"{written} holds no .tar shards",
                                "write samples as KEY.jpg + KEY.cls into uncompressed .tar "
                                "files, e.g. with Python's tarfile or webdataset's ShardWriter"))
    inside = base_dir.resolve()
    members: list[Member] = []
    labels: list[int] = []
    for number, shard in enumerate(shards):
        shown = f"{written}/{printable(shard.name)}"
        if not shard.resolve().is_relative_to(inside):
            raise SpecError(Problem(at, f"{shown} leads outside the spec's folder (through a "
                                    "symbolic link)", "copy the shard into the folder"))
        images, classes = _samples(shard, number, shown)
        members += images
        labels += classes
    channels = 1 if data.grayscale else 3
    size = None if data.resize is None else (data.resize[0], data.resize[1])
    files = TarImages(shards, members, written, at, channels, size)
    y = np.array(labels, dtype=np.int64)
    count = len(class_order) if class_order is not None else int(y.max()) + 1
    if class_order is not None and y.max() >= count:
        raise SpecError(Problem(at, f"{written} holds class index {int(y.max())}, but "
                                f"task.labels names {count} classes",
                                "list every class in task.labels"))
    return RawData(files, y, f"tar shards {written} ({len(shards)} shards, {count} classes)",
                   num_classes=count, labels=list(class_order) if class_order else None,
                   images=True)


def _samples(shard: Path, number: int, shown: str) -> tuple[list[Member], list[int]]:
    """The images of one shard with their class indices, in the archive's order."""
    at: SpecPath = ("data", "shards")
    try:
        infos = tar_members(shard)
    except Unreadable as error:
        raise SpecError(Problem(at, f"{shown} {error}")) from None
    images: dict[str, tarfile.TarInfo] = {}
    classes: dict[str, tarfile.TarInfo] = {}
    for info in infos:
        name = info.name
        if info.isdir():
            continue
        problem = _name_problem(name) or (None if info.isreg() else
                                          "is a link or a device, not a file")
        if problem is not None:
            raise SpecError(Problem(at, f"{shown}: member {excerpt(name, 60)} {problem}",
                                    "a shard holds plain files named KEY.EXT"))
        path = PurePosixPath(name)
        key, suffix = str(path.parent / path.name.split(".", 1)[0]), _suffix(path)
        target = classes if suffix == _LABEL_SUFFIX else images if suffix in IMAGE_SUFFIXES \
            else None
        if target is None:
            continue  # another field of the sample (.json, .txt): not read
        if key in target:
            raise SpecError(Problem(at, f"{shown} holds two {suffix} members for sample "
                                    f"{excerpt(key, 60)}"))
        target[key] = info
    members, labels = [], []
    with shard.open("rb") as file:
        for key, info in images.items():
            label = classes.get(key)
            if label is None:
                raise SpecError(Problem(at, f"{shown}: sample {excerpt(key, 60)} has an image "
                                        f"but no {_LABEL_SUFFIX} member",
                                        f"store its class index as {key}{_LABEL_SUFFIX}"))
            labels.append(_class_index(file, label, shown, key))
            members.append(Member(number, info.offset_data, info.size, info.name))
    if not members:
        raise SpecError(Problem(at, f"{shown} holds no images",
                                f"expected members ending in {', '.join(sorted(IMAGE_SUFFIXES))}"))
    return members, labels


def _suffix(path: PurePosixPath) -> str:
    """A member's field: the extension after its key (`.jpg`, `.cls`), lower case."""
    parts = path.name.split(".", 1)
    return "." + parts[1].lower() if len(parts) == 2 else ""


def _name_problem(name: str) -> str | None:
    """Why a member's name is refused, or None."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name:
        return "leads outside the archive"
    if has_hidden(name):
        return "has control or invisible characters in its name"
    return None


def _class_index(file: object, info: tarfile.TarInfo, shown: str, key: str) -> int:
    """The class index a .cls member holds; SpecError when it is not a whole number ≥ 0."""
    at: SpecPath = ("data", "shards")
    assert hasattr(file, "seek") and hasattr(file, "read")
    text = b""
    if info.size <= _MAX_LABEL_BYTES:
        file.seek(info.offset_data)
        text = file.read(info.size)
    try:
        value = int(text.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        value = -1
    if value < 0:
        shown_text = excerpt(text.decode("ascii", "replace")) if text else "too long"
        raise SpecError(Problem(at, f"{shown}: {key}{_LABEL_SUFFIX} holds {shown_text}, not a "
                                "class index", "write the class index as text, e.g. 3"))
    return value
