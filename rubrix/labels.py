"""What a request, a dataset cell or a trainer's label says about a sample: its rubric, its
reference answer, its group.

Trainers carry rubrix's per-sample information in whatever field they pass through: OpenRLHF's
``labels``, verl's ``ground_truth``, a TRL dataset column, a ``rubric`` in an HTTP request. One
reader for all of them, so that the HTTP server and the python-file reward functions cannot read
the same label two ways. A label is strict: a wrong type inside it is a :class:`UserError`
naming the field (the server answers 422 with it), never a silent fallback.

:class:`RubricResolver` turns a rubric given by value into a :class:`Rubric`: a built-in name, an
inline rubric object, a list of criteria, or JSON text of either. File paths are resolved only
when the caller is trusted (a training script, not an HTTP client: a request must never make
the server read a file).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ._json import kind_of, loads_strict
from .errors import RubricError, UserError
from .resources import builtin_rubric_names
from .rubric import Rubric, load_rubric, rubric_from_items

_BUILTIN_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,80}$")
_CACHE_LIMIT = 4096  # distinct rubrics remembered per resolver (dataset cells repeat a lot)


def join_field(base: str, sub: str | None) -> str:
    """``base`` followed by a nested field path (``samples[2]`` + ``criteria[0].weight``)."""
    if not sub or sub in ("<root>", "rubric"):
        return base
    if not base:
        return sub
    return f"{base}{sub}" if sub.startswith("[") else f"{base}.{sub}"


class RubricResolver:
    """Rubrics given by value, each built once (dataset cells and labels repeat the same rubric)."""

    def __init__(self, *, allow_paths: bool = False):
        self.allow_paths = allow_paths
        self._names = set(builtin_rubric_names())
        self._cache: dict[str, Rubric] = {}

    def builtin(self, name: str, field: str) -> Rubric:
        """A built-in rubric by name (the only lookup by name an untrusted caller may make)."""
        if not _BUILTIN_NAME.match(name) or name not in self._names:
            names = ", ".join(sorted(self._names))
            raise UserError(f"no built-in rubric {name[:80]!r} (built-ins: {names}; or send the rubric "
                            "itself as an object)", field=field)
        return self._remember(f"builtin:{name}", lambda: load_rubric(name))

    def resolve(self, value: Any, field: str = "rubric") -> Rubric:
        """A :class:`Rubric` from a rubric, a name, an object, a list of criteria or JSON text."""
        if isinstance(value, Rubric):
            return value
        if isinstance(value, str):
            text = value.strip()
            if text[:1] in ("[", "{"):
                try:
                    value = loads_strict(text)
                except (ValueError, RecursionError) as exc:
                    raise UserError(f"rubric text is not valid JSON: {exc}", field=field) from None
            elif self.allow_paths and not (_BUILTIN_NAME.match(text) and text in self._names):
                return self._remember(f"path:{text}", lambda: _load(text, field))
            else:
                return self.builtin(text, field)
        if isinstance(value, dict | list):
            key = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
            return self._remember(key, lambda: _from_value(value, field))
        raise UserError(f"must be a built-in rubric name, a rubric object or a list of criteria, "
                        f"got {kind_of(value)}", field=field)

    def _remember(self, key: str, build: Any) -> Rubric:
        found = self._cache.get(key)
        if found is None:
            found = build()
            if len(self._cache) < _CACHE_LIMIT:
                self._cache[key] = found
        return found


def _load(path: str, field: str) -> Rubric:
    try:
        return load_rubric(path)
    except RubricError as exc:
        raise UserError(exc.message, file=exc.file, line=exc.line,
                        field=join_field(field, exc.field)) from None


def _from_value(value: dict | list, field: str) -> Rubric:
    try:
        if isinstance(value, dict):
            if "name" not in value:  # a rubric sent inline needs no name to be usable
                value = {"name": "inline rubric", **value}
            return load_rubric(value, filename=field)
        try:
            return rubric_from_items(value, name="inline rubric", filename=field)
        except RubricError as exc:  # name the item as sent, not the wrapper's "criteria[i]"
            sub = exc.field or ""
            sub = sub[len("criteria"):] if sub.startswith("criteria[") else sub
            raise UserError(exc.message, field=join_field(field, sub)) from None
    except RubricError as exc:
        raise UserError(exc.message, field=join_field(field, exc.field)) from None


@dataclass(frozen=True)
class Label:
    """What a label says; every part may be absent (``None``): then the defaults apply."""

    rubric: Rubric | None = None
    reference: str | None = None
    group_id: str | None = None


def parse_label(label: Any, resolver: RubricResolver, where: str = "label") -> Label:
    """Read a trainer's label (OpenRLHF ``labels[i]``, verl ``ground_truth``, a dataset cell).

    * ``None`` or ``""`` → nothing (the configured rubric applies);
    * a list, or JSON text of one → the sample's criteria;
    * an object with ``criteria`` or ``principles`` → the sample's rubric;
    * an object otherwise → ``rubric`` (items, object or built-in name) or ``rubric_id`` (a
      built-in), ``reference`` (text or a number) and ``group_id``; other keys are refused, so a
      misspelt key is not silently ignored;
    * any other text or number → the reference answer (text that only looks like JSON, such as
      ``"[0, 1)"``, is a reference too).
    """
    if isinstance(label, str):
        text = label.strip()
        if not text:
            return Label()
        if text[0] not in "[{":
            return Label(reference=label)
        try:
            label = loads_strict(text)
        except (ValueError, RecursionError):
            return Label(reference=label)
    if label is None:
        return Label()
    if isinstance(label, bool):
        raise UserError("must be text, a number, a list of criteria or an object, got a boolean", field=where)
    if isinstance(label, int | float):
        return Label(reference=str(label))
    if isinstance(label, list):
        return Label(rubric=resolver.resolve(label, f"{where}.rubric"))
    if not isinstance(label, dict):
        raise UserError(f"unsupported label ({kind_of(label)})", field=where)
    if "criteria" in label or "principles" in label:
        return Label(rubric=resolver.resolve(label, where))
    unknown = sorted(set(label) - {"rubric", "rubric_id", "reference", "group_id"})
    if unknown:
        raise UserError("unknown key in a label object (known: rubric, rubric_id, reference, group_id; "
                        "or give a rubric with criteria)", field=join_field(where, unknown[0]))
    rubric = None
    if label.get("rubric") is not None and label.get("rubric_id") is not None:
        raise UserError("give either rubric or rubric_id, not both", field=f"{where}.rubric_id")
    if label.get("rubric") is not None:
        rubric = resolver.resolve(label["rubric"], f"{where}.rubric")
    elif label.get("rubric_id") is not None:
        if not isinstance(label["rubric_id"], str):
            raise UserError(f"must be a string, got {kind_of(label['rubric_id'])}",
                            field=f"{where}.rubric_id")
        rubric = resolver.builtin(label["rubric_id"], f"{where}.rubric_id")
    reference = label.get("reference")
    if reference is not None and reference != "":
        if isinstance(reference, bool) or not isinstance(reference, str | int | float):
            raise UserError(f"must be text or a number, got {kind_of(reference)}", field=f"{where}.reference")
        reference = str(reference)
    else:
        reference = None
    group = label.get("group_id")
    if group is not None and (isinstance(group, bool) or not isinstance(group, str | int)):
        raise UserError(f"must be a string or an integer, got {kind_of(group)}", field=f"{where}.group_id")
    return Label(rubric=rubric, reference=reference, group_id=None if group is None else str(group))


__all__ = ["Label", "RubricResolver", "join_field", "parse_label"]
