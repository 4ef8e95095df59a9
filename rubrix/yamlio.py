"""YAML/JSON reading that remembers line numbers and refuses dangerous constructs.

Rubric files are written by people; a validation error is only useful if it says *where*. This
module builds plain Python data from a YAML (or JSON, which YAML reads too) document and, beside
it, a map from each value's path (``("criteria", 2, "weight")``) to its 1-based line.

It also refuses what a rubric never needs and an attacker might send: anchors and aliases (the
"billion laughs" expansion), duplicate keys (YAML silently keeps the last one), tags that build
Python objects, and documents over a size limit.
"""

from __future__ import annotations

from typing import Any

import yaml

from .errors import RubricError

Path = tuple[Any, ...]
MAX_BYTES = 5_000_000
MAX_DEPTH = 64  # a rubric needs about 5 levels; the limit only stops pathological input


def load_text(text: str, filename: str) -> tuple[Any, dict[Path, int]]:
    """Parse ``text`` into (data, lines). Raises :class:`RubricError` with file and line."""
    if len(text) > MAX_BYTES:
        raise RubricError(f"file is larger than {MAX_BYTES} bytes", file=filename)
    if text.lstrip("\ufeff \t\r\n")[:1] in ("{", "["):
        text = _untab_flow(text)  # JSON may be indented with tabs; PyYAML refuses tabs as whitespace
    try:
        _refuse_anchors(text, filename)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        if exc.problem and "'\\t'" in exc.problem:
            raise RubricError("tab used for indentation; YAML needs spaces", file=filename,
                              line=line) from None
        raise RubricError(f"not valid YAML/JSON: {exc.problem or exc}", file=filename, line=line) from None
    except yaml.YAMLError as exc:
        raise RubricError(f"not valid YAML/JSON: {exc}", file=filename) from None
    except RecursionError:  # pragma: no cover - MAX_DEPTH stops this first
        raise RubricError("nested too deeply", file=filename) from None
    if node is None:
        raise RubricError("file is empty", file=filename, line=1)
    lines: dict[Path, int] = {}
    data = _build(node, (), lines, filename)
    return data, lines


def _untab_flow(text: str) -> str:
    """Turn tabs outside quoted strings into spaces (same length, so lines and columns stay).

    JSON allows tabs as whitespace between tokens and never inside strings (there they must be
    escaped), so this changes nothing a JSON document means; quoted YAML flow strings keep theirs.
    """
    out = []
    quote = None
    escaped = False
    for ch in text:
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\" and quote == '"':
                escaped = True
            elif ch == quote:
                quote = None
        elif ch in ('"', "'"):
            quote = ch
        elif ch == "\t":
            ch = " "
        out.append(ch)
    return "".join(out)


def _refuse_anchors(text: str, filename: str) -> None:
    """Refuse anchors/aliases and absurd nesting while only *parsing* (an iterative pass), before
    anything recursive (composing, building) sees the document: ``[[[[...]]]]`` 50,000 levels deep
    would otherwise end in a RecursionError traceback instead of a one-line error."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise RubricError("YAML anchors and aliases are not allowed in rubric files",
                              file=filename, line=event.start_mark.line + 1)
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise RubricError(f"nested more than {MAX_DEPTH} levels deep", file=filename,
                                  line=event.start_mark.line + 1)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


_SAFE_TAGS = {
    "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null", "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
}


def _build(node: yaml.Node, path: Path, lines: dict[Path, int], filename: str) -> Any:
    line = node.start_mark.line + 1
    lines[path] = line
    if node.tag not in _SAFE_TAGS:
        raise RubricError(f"YAML tag {node.tag!r} is not allowed", file=filename, line=line,
                          field=_dotted(path))
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _build(key_node, path + ("<key>",), {}, filename)
            if not isinstance(key, str | int):
                raise RubricError("mapping keys must be strings", file=filename,
                                  line=key_node.start_mark.line + 1, field=_dotted(path))
            if key in out:
                raise RubricError(f"duplicate key {key!r}", file=filename,
                                  line=key_node.start_mark.line + 1, field=_dotted(path + (key,)))
            out[key] = _build(value_node, path + (key,), lines, filename)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(child, path + (i,), lines, filename) for i, child in enumerate(node.value)]
    return yaml.SafeLoader(" ").construct_object(node, deep=True)  # scalar: resolved by its tag


def _dotted(path: Path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<root>"


def dotted(path: Path) -> str:
    """Render a value path the way error messages name fields: ``criteria[2].weight``."""
    return _dotted(path)
