"""Safe YAML loading that keeps source lines and refuses hostile or ambiguous input.

Built on PyYAML's composer (libyaml when available): the node graph keeps every node's line,
aliases stay shared nodes until we walk them, so an alias bomb is refused after `max_nodes`
visits instead of being expanded first. Mapping keys are kept as their source text.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from speckit.errors import SpecError, SpecInvalid
from speckit.paths import format_path

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_MAX_DEPTH = 200


class LineMap:
    """1-based source lines of the nodes of a loaded document, by path (str keys, int indexes)."""

    def __init__(self, lines: dict[tuple, int] | None = None):
        self._lines: dict[tuple, int] = lines if lines is not None else {}

    def get(self, path: tuple) -> int | None:
        """The line of the node at exactly this path, or None."""
        return self._lines.get(tuple(path))

    def nearest(self, path: tuple) -> int | None:
        """The line of this path or of its closest ancestor that has one."""
        path = tuple(path)
        while True:
            line = self._lines.get(path)
            if line is not None:
                return line
            if not path:
                return None
            path = path[:-1]

    def set(self, path: tuple, line: int) -> None:
        self._lines[tuple(path)] = line

    def prefixed(self, prefix: tuple) -> LineMap:
        """A view of the lines under `prefix`, re-rooted so that `prefix` becomes ()."""
        n = len(prefix)
        return LineMap({p[n:]: ln for p, ln in self._lines.items() if p[:n] == prefix})

    def __len__(self) -> int:
        return len(self._lines)

    def __iter__(self) -> Iterator[tuple]:
        return iter(self._lines)


def _fail(path: tuple, line: int | None, message: str) -> SpecInvalid:
    return SpecInvalid([SpecError(format_path(path), line, message)])


def _decode(text: str | bytes, max_bytes: int) -> str:
    if isinstance(text, str):
        size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
        data = None
    else:
        size = len(text)
        data = bytes(text)
    if size > max_bytes:
        raise _fail((), None, f"file too large: {size} bytes (the limit is {max_bytes} bytes)")
    if data is None:
        return text.lstrip("\ufeff")
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _fail((), line, f"not UTF-8 text (invalid byte at offset {exc.start})")
    return decoded.lstrip("\ufeff")


def _leading_tab(line: str) -> bool:
    stripped = line.lstrip(" \t")
    return "\t" in line[: len(line) - len(stripped)] and stripped.strip() != ""


def _syntax_error(exc: yaml.YAMLError, text: str) -> SpecInvalid:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc)
    lines = text.splitlines()
    in_file = line is not None and 0 < line <= len(lines)
    if in_file and (_leading_tab(lines[line - 1]) or "tab" in problem):
        return _fail((), line, "tab character used for indentation (indent with spaces)")
    context = getattr(exc, "context", None)
    message = f"YAML syntax error: {problem}"
    if context:
        message += f" ({context})"
    return _fail((), line, message)


class _Walker:
    """Turns a node graph into plain data, counting nodes so shared (aliased) nodes cost each visit."""

    def __init__(self, max_nodes: int):
        self.max_nodes = max_nodes
        self.count = 0
        self.lines: dict[tuple, int] = {}
        self.errors: list[SpecError] = []
        self.constructor = yaml.SafeLoader("")  # scalar typing exactly as SafeLoader
        self.stack: set[int] = set()

    def _tick(self, path: tuple, node: Node) -> None:
        self.count += 1
        if self.count > self.max_nodes:
            raise _fail(
                path,
                node.start_mark.line + 1,
                f"document too large after alias expansion: more than {self.max_nodes} nodes "
                "(an alias bomb?)",
            )

    def walk(self, node: Node, path: tuple, depth: int = 0) -> object:
        self._tick(path, node)
        if depth > _MAX_DEPTH:
            raise _fail(path, node.start_mark.line + 1, f"nested more than {_MAX_DEPTH} levels deep")
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        key = id(node)
        if key in self.stack:
            raise _fail(path, node.start_mark.line + 1, "recursive alias (a node that contains itself)")
        self.stack.add(key)
        try:
            if isinstance(node, SequenceNode):
                return [self.walk(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
            if isinstance(node, MappingNode):
                return self._mapping(node, path, depth)
        finally:
            self.stack.discard(key)
        raise _fail(path, node.start_mark.line + 1, "unsupported YAML node")

    def _scalar(self, node: ScalarNode, path: tuple) -> object:
        try:
            value = self.constructor.construct_object(node)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            self.errors.append(SpecError(format_path(path), node.start_mark.line + 1, problem))
            return node.value
        if isinstance(value, datetime.date | bytes):
            return node.value  # dates and binary stay as written: the formats want text
        return value

    def _key(self, key_node: Node, path: tuple) -> str | None:
        if isinstance(key_node, ScalarNode):
            return key_node.value
        self.errors.append(
            SpecError(format_path(path), key_node.start_mark.line + 1, "mapping keys must be plain scalars")
        )
        return None

    def _mapping(self, node: MappingNode, path: tuple, depth: int) -> dict:
        result: dict[str, object] = {}
        seen: dict[str, int] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.append(value_node)
                continue
            key = self._key(key_node, path)
            if key is None:
                continue
            line = key_node.start_mark.line + 1
            if key in seen:
                self.errors.append(
                    SpecError(
                        format_path((*path, key)),
                        line,
                        f"duplicate key '{key}' (first at line {seen[key]}, again at line {line})",
                    )
                )
                continue
            seen[key] = line
            child = (*path, key)
            self.lines[child] = line
            value = self.walk(value_node, child, depth + 1)
            self.lines[child] = line  # the key's line, not the value's
            result[key] = value
        for merge in merges:
            self._merge(merge, path, depth, result)
        return result

    def _merge(self, value_node: Node, path: tuple, depth: int, result: dict) -> None:
        sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
        for source in sources:
            if not isinstance(source, MappingNode):
                self.errors.append(
                    SpecError(format_path(path), source.start_mark.line + 1, "'<<' must merge a mapping")
                )
                continue
            merged = self.walk(source, (*path, "<<"), depth + 1)
            for key, value in merged.items():
                if key not in result:
                    result[key] = value
                    line = self.lines.get((*path, "<<", key))
                    if line is not None:
                        self.lines.setdefault((*path, key), line)


def load_yaml(
    text: str | bytes,
    *,
    source: str = "<string>",
    max_bytes: int = 1024 * 1024,
    max_nodes: int = 100_000,
) -> tuple[object, LineMap]:
    """Parse one YAML document that must be a mapping; return (plain data, LineMap).

    Values are typed like PyYAML's SafeLoader (YAML 1.1), keys stay their source text.
    Raises SpecInvalid for oversize or non-UTF-8 input, syntax errors, tab indentation,
    duplicate keys, alias expansion beyond `max_nodes`, non-mapping or multiple documents.
    """
    decoded = _decode(text, max_bytes)
    loader = _Loader(decoded)
    try:
        try:
            if not loader.check_node():
                raise _fail((), 1, "empty document: expected a mapping")
            root = loader.get_node()
            if loader.check_node():
                extra = loader.get_node()
                line = extra.start_mark.line + 1 if extra is not None else None
                raise _fail((), line, "more than one YAML document (only one is allowed)")
        except yaml.YAMLError as exc:
            raise _syntax_error(exc, decoded)
        except RecursionError:
            raise _fail((), None, "YAML nested too deeply")
    finally:
        loader.dispose()
    if not isinstance(root, MappingNode):
        kind = "a list" if isinstance(root, SequenceNode) else "a single value"
        raise _fail((), root.start_mark.line + 1, f"the document must be a mapping, not {kind}")
    walker = _Walker(max_nodes)
    try:
        data = walker.walk(root, ())
    except RecursionError:
        raise _fail((), None, "YAML nested too deeply")
    if walker.errors:
        raise SpecInvalid(walker.errors)
    lines = LineMap(walker.lines)
    lines.set((), 1)
    return data, lines
