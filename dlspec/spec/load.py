"""Read YAML safely into plain Python data plus the position of every value.

The reader follows YAML 1.2's core schema, as users mean their numbers:
`1e-4` is a float, `yes`/`no`/`on`/`off` are plain strings, only `true`/`false`
are booleans. It refuses what a spec never needs and an attacker might send:
tags that construct objects, duplicate keys, documents nested too deep,
aliases that expand too far, files that are too big.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any

import yaml

from dlspec.errors import Location, Path, Problem, SpecError

MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 64
MAX_NODES = 100_000

_STANDARD_TAGS = {
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:seq",
    "tag:yaml.org,2002:map",
}


class _CoreSchemaLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema scalars instead of YAML 1.1's."""


_CoreSchemaLoader.yaml_implicit_resolvers = {}
for _tag, _regexp, _first in [
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    (
        "float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+.0123456789"),
    ),
]:
    _CoreSchemaLoader.add_implicit_resolver(
        f"tag:yaml.org,2002:{_tag}", re.compile(_regexp), _first
    )


@dataclass
class Document:
    """A loaded YAML file: plain data plus where each value and key came from."""

    file: str
    data: Any
    value_positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    # values set on the command line (`--set`), located at their argument, not in the file
    overridden: dict[Path, Location] = field(default_factory=dict)
    # what made this document from the file: the variant chosen and the `--set` overrides
    variant: str | None = None
    overrides: list[str] = field(default_factory=list)

    def locate(self, path: Path, on_key: bool = False) -> Location:
        """The position of `path`, or of its nearest ancestor that exists in the file (or
        that a `--set` override gave)."""
        path = tuple(path)
        while True:
            if path in self.overridden:
                return self.overridden[path]
            table = self.key_positions if on_key else self.value_positions
            if path in table:
                line, column = table[path]
                return Location(self.file, line, column)
            if on_key and path in self.value_positions:
                line, column = self.value_positions[path]
                return Location(self.file, line, column)
            if not path:
                return Location(self.file, 1, 1)
            path = path[:-1]
            on_key = False

    def set_within(self, path: Path) -> tuple[str, ...]:
        """The `--set` arguments that gave values inside `path` (below it, not `path` itself:
        `locate` puts those at their argument)."""
        path = tuple(path)
        if not path:
            return ()
        return tuple(dict.fromkeys(
            where.argument for place, where in self.overridden.items()
            if len(place) > len(path) and place[:len(path)] == path and where.argument))


def load_yaml_file(path: str | FilePath) -> Document:
    """Read a spec file; raise SpecError for a missing, unreadable, oversized or malformed file."""
    name = str(path)
    data = _read_spec_bytes(FilePath(path), name)
    if len(data) > MAX_FILE_BYTES:
        raise SpecError(Problem(
            (), f"file is more than {MAX_FILE_BYTES:,} bytes; specs are limited to "
            f"{MAX_FILE_BYTES:,} bytes",
            location=Location(name, 1, 1)))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[:exc.start].decode("utf-8")
        line, column = _line_column(before, len(before))
        raise SpecError(Problem(
            (), f"file is not UTF-8 text (byte 0x{data[exc.start]:02x}: {exc.reason})",
            hint="save it as UTF-8", location=Location(name, line, column))) from None
    return load_yaml_text(text, name)


def _read_spec_bytes(file: FilePath, name: str) -> bytes:
    """At most MAX_FILE_BYTES + 1 bytes of a regular file: never blocks on a FIFO or device
    and never reads an endless one (/dev/zero), whatever its size claims."""
    try:
        # O_NONBLOCK: opening a FIFO for reading would wait for a writer
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise SpecError(Problem((), f"no such spec file: {name}")) from None
    except IsADirectoryError:
        raise SpecError(_folder_problem(file, name)) from None
    except OSError as exc:
        raise SpecError(Problem((), f"cannot read {name}: {_reason(exc)}")) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        if stat.S_ISDIR(info.st_mode):
            raise SpecError(_folder_problem(file, name))
        raise SpecError(Problem((), f"{name} is not a regular file ({_file_type(info.st_mode)})",
                                hint="give a .yaml spec file"))
    with os.fdopen(fd, "rb") as stream:
        size = info.st_size
        if size > MAX_FILE_BYTES:
            raise SpecError(Problem(
                (), f"file is {size:,} bytes; specs are limited to {MAX_FILE_BYTES:,} bytes",
                location=Location(name, 1, 1)))
        try:
            return stream.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise SpecError(Problem((), f"cannot read {name}: {_reason(exc)}")) from None


def _folder_problem(folder: FilePath, name: str) -> Problem:
    try:  # a glance, not a walk: a folder may hold millions of files
        names = [p.name for p in itertools.islice(folder.iterdir(), 1000)]
    except OSError:
        names = []
    specs = sorted(n for n in names if n.endswith((".yaml", ".yml")) and n.isprintable())
    shown = ", ".join(specs[:3]) + (", ..." if len(specs) > 3 else "")
    hint = f"give one of its specs: {shown}" if specs else "give a .yaml spec file"
    return Problem((), f"{name} is a folder, not a spec file", hint=hint)


def _file_type(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a plain file"


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def load_yaml_text(text: str, file: str = "<string>") -> Document:
    """Parse YAML text into a Document; raise SpecError on anything unsafe or malformed."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise SpecError(Problem((), f"document is larger than {MAX_FILE_BYTES:,} bytes",
                                location=Location(file, 1, 1)))
    try:
        _check_depth(text, file)
        node = yaml.compose(text, Loader=_CoreSchemaLoader)
    except yaml.MarkedYAMLError as exc:
        raise SpecError(_yaml_problem(exc, text, file)) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        line, column = _line_column(text, exc.position)
        problem = Problem((), f"invalid YAML: character {_codepoint(exc.character)} is not allowed",
                          hint="remove it (control characters cannot appear in YAML)",
                          location=Location(file, line, column))
        raise SpecError(problem) from None
    except yaml.YAMLError as exc:  # errors without a position
        problem = Problem((), f"invalid YAML: {exc}", location=Location(file, 1, 1))
        raise SpecError(problem) from None
    doc = Document(file, None)
    if node is not None:
        doc.data = _Converter(doc).convert(node, ())
    return doc


def _yaml_problem(exc: yaml.MarkedYAMLError, text: str, file: str) -> Problem:
    message = exc.problem or "invalid YAML"
    mark = exc.problem_mark or exc.context_mark
    if exc.context_mark and "<stream end>" in message:
        # an unclosed bracket: the useful place is where it was opened, not the file's end
        mark = exc.context_mark
        opened = (exc.context or "a bracket").removeprefix("while parsing ")
        message = f"{opened} opened here is never closed ({message})"
    elif exc.context:
        message = f"{exc.context}: {message}"
    where = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file, 1, 1)
    line_text = text.splitlines()[mark.line] if mark and mark.line < len(text.splitlines()) else ""
    hint = None
    if "\t" in message or "\t" in line_text[: mark.column + 1 if mark else 0]:
        hint = "YAML indents with spaces, not tabs"
    elif "${" in line_text:
        hint = "write $name or $(expression): YAML reads the braces of ${...} as a mapping"
    elif "mapping values are not allowed" in message:
        hint = "a value containing ': ' must be quoted"
    return Problem((), f"invalid YAML: {message}", hint=hint, location=where)


def _codepoint(character: int | str) -> str:
    code = character if isinstance(character, int) else ord(character)
    return f"U+{code:04X}"


def _line_column(text: str, position: int) -> tuple[int, int]:
    return text.count("\n", 0, position) + 1, position - (text.rfind("\n", 0, position) + 1) + 1


def _check_depth(text: str, file: str) -> None:
    """Refuse deep nesting before composing: PyYAML's composer recurses per level."""
    fast = getattr(yaml, "CSafeLoader", None)  # libyaml: ~30x faster than PyYAML's parser
    if fast is not None:
        try:
            _count_depth(text, file, fast)
            return
        except SpecError:
            raise
        except Exception:  # noqa: BLE001 - libyaml rejects what PyYAML may read differently
            pass  # count with the parser that composes; it reports the YAML error itself
    _count_depth(text, file, _CoreSchemaLoader)


def _count_depth(text: str, file: str, loader: Any) -> None:
    depth = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                mark = event.start_mark
                raise SpecError(Problem(
                    (), f"document is nested more than {MAX_DEPTH} levels deep",
                    location=Location(file, mark.line + 1, mark.column + 1)))
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


class _Converter:
    """Turns composed YAML nodes into plain data, recording positions and checking limits."""

    def __init__(self, doc: Document):
        self.doc = doc
        self.count = 0
        self.open: set[int] = set()  # nodes being converted: an alias to one is a cycle

    def convert(self, node: yaml.Node, path: Path) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise SpecError(Problem(
                path, f"document expands to more than {MAX_NODES:,} values "
                "(aliases expanding too far?)", location=self._where(node)))
        if len(path) > MAX_DEPTH:  # aliases can nest deeper than the text does
            raise SpecError(Problem((), f"document is nested more than {MAX_DEPTH} levels deep "
                                    "once its aliases are expanded", location=self._where(node)))
        if id(node) in self.open:
            raise SpecError(Problem((), "an alias refers to the collection that contains it",
                                    hint="YAML aliases must not be recursive",
                                    location=self._where(node)))
        self.doc.value_positions.setdefault(path, _position(node))
        if node.tag not in _STANDARD_TAGS:
            raise SpecError(Problem(path, f"YAML tag {node.tag!r} is not allowed in a spec",
                                    hint="remove the tag", location=self._where(node)))
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
        finally:
            self.open.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first_seen: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise SpecError(Problem(path, "mapping keys must be plain names",
                                        location=self._where(key_node)))
            key = str(self._scalar(key_node, path))
            if key in first_seen:
                line = first_seen[key].start_mark.line + 1
                raise SpecError(Problem(
                    (*path, key), f"duplicate key {key!r} (first defined on line {line})",
                    hint="remove one of them", location=self._where(key_node)))
            first_seen[key] = key_node
            self.doc.key_positions[(*path, key)] = _position(key_node)
            if _is_empty(value_node):  # `{add, from: x}`: point at the key, not past it
                self.doc.value_positions[(*path, key)] = _position(key_node)
            out[key] = self.convert(value_node, (*path, key))
        return out

    def _scalar(self, node: yaml.Node, path: Path) -> Any:
        value = node.value
        tag = node.tag.rsplit(":", 1)[-1]
        try:
            if tag == "null":
                return None
            if tag == "bool":
                return value.lower() == "true"
            if tag == "int":
                return int(value, 0) if value[:2] in ("0x", "0o") else int(value)
            if tag == "float":
                lowered = value.lower()
                if lowered.endswith(".inf"):
                    return -math.inf if lowered.startswith("-") else math.inf
                if lowered == ".nan":
                    return math.nan
                return float(value)
        except ValueError:
            shown = (repr(value) if len(value) <= 40
                     else f"{value[:30]!r}... ({len(value)} characters)")
            raise SpecError(Problem(path, f"{shown} is not a valid {tag}",
                                    location=self._where(node))) from None
        return value

    def _where(self, node: yaml.Node) -> Location:
        line, column = _position(node)
        return Location(self.doc.file, line, column)


def _is_empty(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.value == "" and node.style is None


def _position(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1
