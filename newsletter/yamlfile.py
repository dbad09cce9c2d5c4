"""Load editor-written YAML with every value's line and column, and turn pydantic's
errors into one plain line each at the right place.

Scalars are kept as strings and left to pydantic to coerce, so `subject: No` stays the
word "No" instead of becoming False (YAML 1.1's Norway problem).
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from newsletter.errors import InputError, Location, NewsletterError, Problem

try:  # libyaml is several times faster; fall back to the pure-Python parser
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

Path_ = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)

MAX_BYTES = 1024 * 1024
# Aliases can make a small file expand into a huge tree ("billion laughs").
MAX_NODES = 100_000
# No file an editor writes nests this deep; a deeper one would exhaust the stack.
MAX_DEPTH = 64
_NULLS = {"", "~", "null", "Null", "NULL"}


@dataclass
class YamlDocument:
    """Parsed data plus where each value (and each mapping key) stands in the file."""

    file: str
    data: Any
    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def location(self, path: Path_, *, key: bool = False) -> Location:
        """The closest known place for path: the key itself, its value, or a parent."""
        table = self.keys if key else self.values
        probe = tuple(path)
        while probe:
            if probe in table:
                return Location(self.file, *table[probe])
            if probe in self.values:
                return Location(self.file, *self.values[probe])
            probe = probe[:-1]
        return Location(self.file, *self.values.get((), (1, 1)))


def format_path(path: Path_) -> str:
    """('sections', 1, 'title') -> 'sections[1].title'."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def read_text(path: Path, *, what: str = "file", max_bytes: int = MAX_BYTES) -> str:
    """Read a UTF-8 text file an editor wrote, or raise one clear error."""
    name = str(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise NewsletterError(f"no such {what}", Location(name)) from None
    except OSError as exc:
        raise NewsletterError(f"cannot read {what}: {exc.strerror}", Location(name)) from None
    if path.is_dir():
        raise NewsletterError(f"is a folder, not a {what}", Location(name))
    if size > max_bytes:
        raise NewsletterError(
            f"{what} is {_human(size)}; the limit is {_human(max_bytes)}", Location(name)
        )
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise NewsletterError(
            f"{what} is not UTF-8 text (byte 0x{raw[exc.start]:02x}); save it as UTF-8",
            Location(name, line, column),
        ) from None
    return text.removeprefix("\ufeff")


def _human(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    return f"{size / 1024:.0f} KB"


def parse_yaml(text: str, file: str, *, what: str = "file") -> YamlDocument:
    """Parse YAML text into a YamlDocument; syntax errors carry their line and column."""
    if not text.strip():
        raise NewsletterError(f"{what} is empty", Location(file))
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        ctx = exc.context_mark
        if mark and _char_at(text, mark.line, mark.column) == "\t":
            problem = "a tab cannot indent YAML; use spaces"
        elif exc.context and ctx and mark and (ctx.line, ctx.column) != (mark.line, mark.column):
            # "while parsing a flow sequence" at 3:12 explains a problem found at 4:5.
            opened = exc.context.removeprefix("while parsing ")
            problem += f" ({opened} started at line {ctx.line + 1}, column {ctx.column + 1})"
        where = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file)
        raise NewsletterError(f"YAML syntax error: {problem}", where) from None
    except yaml.YAMLError as exc:
        raise NewsletterError(f"YAML syntax error: {exc}", Location(file)) from None
    finally:
        loader.dispose()
    if node is None:
        raise NewsletterError(f"{what} holds only comments", Location(file))
    doc = YamlDocument(file=file, data=None)
    budget = [MAX_NODES]
    doc.data = _build(node, (), doc, budget)
    return doc


def _char_at(text: str, line: int, column: int) -> str:
    lines = text.splitlines()
    return lines[line][column : column + 1] if line < len(lines) else ""


def _build(node: yaml.Node, path: Path_, doc: YamlDocument, budget: list[int]) -> Any:
    if len(path) > MAX_DEPTH:
        raise NewsletterError(
            f"nested too deeply (more than {MAX_DEPTH} levels)",
            Location(doc.file, node.start_mark.line + 1, node.start_mark.column + 1),
        )
    budget[0] -= 1
    if budget[0] < 0:
        raise NewsletterError(
            f"too many values (over {MAX_NODES}); are aliases expanding?",
            Location(doc.file, node.start_mark.line + 1, node.start_mark.column + 1),
        )
    doc.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key_at = Location(
                doc.file, key_node.start_mark.line + 1, key_node.start_mark.column + 1
            )
            if not isinstance(key_node, yaml.ScalarNode):
                raise NewsletterError("a key must be a plain word, not a list or mapping", key_at)
            key = key_node.value
            if key == "<<":
                raise NewsletterError(
                    "merge keys (<<) are not supported; write the keys out", key_at
                )
            if key in out:
                raise NewsletterError(f"{format_path((*path, key))}: key appears twice", key_at)
            doc.keys[(*path, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = _build(value_node, (*path, key), doc, budget)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), doc, budget) for i, item in enumerate(node.value)]
    if isinstance(node, yaml.ScalarNode) and node.style is None and node.value in _NULLS:
        return None
    return node.value


def load_yaml(path: Path | str, *, what: str = "file", max_bytes: int = MAX_BYTES) -> YamlDocument:
    """Read and parse a YAML file an editor wrote."""
    path = Path(path)
    return parse_yaml(read_text(path, what=what, max_bytes=max_bytes), str(path), what=what)


def validate(model: type[M], doc: YamlDocument, *, what: str = "file") -> M:
    """Validate doc against model, raising InputError with every problem at its place."""
    if not isinstance(doc.data, dict):
        kind = "a list" if isinstance(doc.data, list) else "a single value"
        raise NewsletterError(
            f"{what} must be a mapping of keys (such as subject: ...), not {kind}",
            doc.location(()),
        )
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    # A misspelt key already says "did you mean 'x'?"; "x is required" would repeat it.
    suggested = {
        _suggestion(model, tuple(e["loc"])) for e in errors if e["type"] == "extra_forbidden"
    }
    problems = [
        _problem(model, doc, err)
        for err in errors
        if not (err["type"] == "missing" and tuple(err["loc"]) in suggested)
    ]
    problems.sort(key=lambda p: (p.location.line or 0, p.location.column or 0))
    raise InputError(problems)


def _problem(model: type[BaseModel], doc: YamlDocument, err: Any) -> Problem:
    path: Path_ = tuple(err["loc"])
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    if path and path[-1] == "[key]":
        # A bad mapping key (a segment's name, say): point at the key itself.
        path = path[:-1]
        message = _plain(kind, ctx, value, err["msg"])
        return Problem(doc.location(path, key=True), format_path(path), message)
    if kind == "extra_forbidden":
        message = "unknown key"
        close = _suggestion(model, path)
        if close:
            message += f"; did you mean '{close[-1]}'?"
        elif allowed := _fields_at(model, path[:-1]):
            message += f"; expected one of: {', '.join(allowed)}"
        return Problem(doc.location(path, key=True), format_path(path), message)
    if kind == "missing":
        return Problem(doc.location(path[:-1]), format_path(path), "is required")
    return Problem(doc.location(path), format_path(path), _plain(kind, ctx, value, err["msg"]))


def _suggestion(model: type[BaseModel], path: Path_) -> Path_ | None:
    """The path of the known key closest to the unknown key at path, if one is close."""
    close = difflib.get_close_matches(str(path[-1]), _fields_at(model, path[:-1]), 1, 0.6)
    return (*path[:-1], close[0]) if close else None


def _plain(kind: str, ctx: dict[str, Any], value: Any, default: str) -> str:
    if kind == "value_error":
        return str(ctx.get("error", default))
    if kind == "string_too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else default.lower()
    if kind == "string_too_long":
        return f"is {len(value)} characters long; the limit is {ctx['max_length']}"
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return f"must have at least {n} item{'s' if n != 1 else ''}"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} items"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"must be a mapping of keys, not {_kind_of(value)}"
    if kind == "list_type":
        return f"must be a list (lines starting with '- '), not {_kind_of(value)}"
    if kind == "string_type":
        return f"must be text, not {_kind_of(value)}"
    if kind.startswith("date"):
        return f"'{value}' is not a date; write it as YYYY-MM-DD"
    if kind.startswith("bool"):
        return f"'{value}' is not true or false"
    if kind.startswith("int"):
        return f"'{value}' is not a whole number"
    if kind == "string_pattern_mismatch":
        return f"'{value}' is not allowed here"
    if kind == "literal_error":
        return f"'{value}' is not one of: {ctx.get('expected')}"
    return default[:1].lower() + default[1:]


def _kind_of(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "an empty value"
    return f"'{value}'"


def _fields_at(model: type[BaseModel], path: Path_) -> list[str]:
    """The field names of the model that sits at path inside model, if one does."""
    current: Any = model
    for part in path:
        if _is_model(current):
            info = current.model_fields.get(str(part))
            if info is None:
                return []
            current = info.annotation
        else:
            # A list item or a mapping value: step into the container's item type.
            current = _container_item(current)
            if current is None:
                return []
    current = _unwrap(current)
    return list(current.model_fields) if _is_model(current) else []


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _unwrap(annotation: Any) -> Any:
    """X from X | None and Annotated[X, ...]."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            options = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation


def _container_item(annotation: Any) -> Any:
    annotation = _unwrap(annotation)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (list, tuple, set, frozenset) and args:
        return args[0]
    if origin is dict and len(args) == 2:
        return args[1]
    return None


class _Dumper(yaml.SafeDumper):
    """Writes text the way an editor would: several lines as a literal block."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value.strip("\n"):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value.strip("\n") + "\n", "|")
    if len(value) > 80:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value + "\n", ">")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _text)


def dump(data: Any) -> str:
    """data as YAML a person can edit: keys in the given order, words unescaped, long
    paragraphs as literal blocks."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=88, indent=2)
