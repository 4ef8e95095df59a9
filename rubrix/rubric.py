"""Rubrics: criteria with weights, polarity, scales; loading, validation, saving and hashing.

A criterion is a statement about a response that is true or false ("The response names the
capital of France"). *Met* is always a fact about the response. A positive weight rewards a
met criterion; a negative weight marks a **pitfall**, where *met means the fault is present*
(HealthBench polarity). Polarity is explicit: a pitfall must have a negative weight and any
criterion with a negative weight is a pitfall, so a rubric can never say one thing and score
another.

Weights may be given directly or implied by a Rubrics-as-Rewards category
(essential 5, important 3, optional 1, pitfall -2).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ._json import write_bytes_atomic
from .checks import Check, CheckSpecError, check_schema, compile_check
from .errors import RubricError
from .resources import builtin_rubric_names, builtin_rubric_path
from .shaping import LengthShaping
from .yamlio import MAX_BYTES, dotted, load_text

CATEGORY_WEIGHTS: dict[str, float] = {"essential": 5.0, "important": 3.0, "optional": 1.0, "pitfall": -2.0}
AGGREGATIONS = ("weighted", "raw", "all_or_nothing", "veto", "implicit")
SCALE_LEVELS = (1, 2, 3, 4, 5)
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_\-.]{0,79}$")

_CRITERION_KEYS = {"id", "text", "weight", "category", "scale", "veto", "tags", "theme", "source", "check",
                   "applies_if", "allow_na"}
_RUBRIC_KEYS = {"name", "version", "description", "criteria", "principles", "aggregation", "provenance",
                "gates", "length"}


@dataclass(frozen=True)
class Condition:
    """When a criterion applies (``applies_if``); where it does not, it is *not applicable* (N/A).

    ``kind`` is ``check`` (a deterministic :class:`~rubrix.checks.Check`, usually ``in: prompt``),
    ``criterion`` (applies when criterion ``ref`` is met, or not met with ``met=False``) or
    ``judged`` (``text``, a statement the judge answers Yes/No about the conversation).
    """

    kind: str
    check: Check | None = None
    ref: str | None = None
    met: bool = True
    text: str | None = None

    def to_data(self) -> Any:
        if self.kind == "check":
            return dict(self.check.spec)  # type: ignore[union-attr]
        if self.kind == "criterion":
            return {"met" if self.met else "not_met": self.ref}
        return self.text


@dataclass(frozen=True)
class Gate:
    """One gate level: ``criteria`` must all pass before the levels below count.

    A criterion passes when it is met (a pitfall: when it is not met) or is not applicable.
    ``on_fail`` is what the sample gets when this level fails: a number (the reward), ``cap:X``
    (the reward is capped at X: ``veto`` is the one-level gate ``cap:0``) or ``accumulate``
    (only the levels down to this one count, over the whole rubric's positive weight).
    """

    criteria: tuple[str, ...]
    on_fail: float | str = 0.0
    category: str | None = None

    def to_data(self) -> dict[str, Any]:
        out: dict[str, Any] = {"category": self.category} if self.category else \
            {"criteria": list(self.criteria)}
        out["on_fail"] = self.on_fail
        return out


@dataclass(frozen=True)
class Criterion:
    """One checkable statement about a response.

    ``scale`` is ``None`` for a binary (met / not met) criterion, or a mapping level -> descriptor
    for a 1..5 scale, in which case the judge's verdict is the expected level.
    """

    id: str
    text: str
    weight: float
    category: str | None = None
    scale: dict[int, str] | None = None
    veto: bool = False
    tags: tuple[str, ...] = ()
    theme: str | None = None
    source: dict[str, Any] | None = None
    check: Check | None = None
    applies_if: Condition | None = None
    allow_na: bool = False  # the judge may answer N/A (Yes / No / NA, read from logprobs)

    @property
    def is_checked(self) -> bool:
        """True when the value is computed by a deterministic check (no judge call)."""
        return self.check is not None

    @property
    def is_pitfall(self) -> bool:
        """True when met means a fault is present (negative weight)."""
        return self.weight < 0

    @property
    def is_scale(self) -> bool:
        return self.scale is not None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "text": self.text, "weight": self.weight}
        if self.category:
            out["category"] = self.category
        if self.scale:
            out["scale"] = {int(k): v for k, v in sorted(self.scale.items())}
        if self.veto:
            out["veto"] = True
        if self.tags:
            out["tags"] = list(self.tags)
        if self.theme:
            out["theme"] = self.theme
        if self.source:
            out["source"] = self.source
        if self.check is not None:
            out["check"] = dict(self.check.spec)
        if self.applies_if is not None:
            out["applies_if"] = self.applies_if.to_data()
        if self.allow_na:
            out["allow_na"] = True
        return out


@dataclass(frozen=True)
class Rubric:
    """A named set of criteria plus optional free-text principles."""

    name: str
    criteria: tuple[Criterion, ...]
    version: str = "1"
    description: str = ""
    principles: tuple[str, ...] = ()
    aggregation: str = "weighted"
    provenance: dict[str, Any] = field(default_factory=dict)
    origin: str | None = field(default=None, compare=False)
    gates: tuple[Gate, ...] = ()
    length: LengthShaping | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "version": self.version}
        if self.description:
            out["description"] = self.description
        if self.principles:
            out["principles"] = list(self.principles)
        out["aggregation"] = self.aggregation
        if self.gates:
            out["gates"] = [g.to_data() for g in self.gates]
        if self.length is not None:
            out["length"] = self.length.to_data()
        out["criteria"] = [c.to_dict() for c in self.criteria]
        if self.provenance:
            out["provenance"] = self.provenance
        return out

    def content_hash(self) -> str:
        """A stable hash of what scoring depends on: criteria, weights, scales, principles, aggregation.

        Name, description and provenance are excluded so that renaming or re-describing a rubric
        does not invalidate caches; key order and float formatting are normalized. Computed once
        per rubric: the reward core keys every sample of every batch by it.
        """
        return self._content_hash

    @functools.cached_property
    def _content_hash(self) -> str:
        criteria = []
        for c in self.criteria:
            scale = c.scale and {str(k): v for k, v in sorted(c.scale.items())}
            item: dict[str, Any] = {"id": c.id, "text": c.text, "weight": float(c.weight), "scale": scale,
                                    "veto": c.veto}
            # new fields only when present: the hash of a rubric without them is unchanged
            if c.check is not None:
                item["check"] = c.check.spec
            if c.applies_if is not None:
                item["applies_if"] = c.applies_if.to_data()
            if c.allow_na:
                item["allow_na"] = True
            criteria.append(item)
        payload: dict[str, Any] = {
            "criteria": criteria,
            "principles": list(self.principles),
            "aggregation": self.aggregation,
        }
        if self.gates:
            payload["gates"] = [{"criteria": list(g.criteria), "on_fail": g.on_fail} for g in self.gates]
        if self.length is not None:
            payload["length"] = self.length.to_data()
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()[:16]

    def result_ids(self) -> tuple[str, ...]:
        """The criterion keys of this rubric's result rows: one ``principles`` key for a holistic
        (principles-only or ``implicit``) rubric, else the criterion ids in order."""
        if not self.criteria or self.aggregation == "implicit":
            return ("principles",)
        return tuple(c.id for c in self.criteria)

    @property
    def judged_criteria(self) -> tuple[Criterion, ...]:
        return tuple(c for c in self.criteria if not c.is_checked)

    def gate_levels(self) -> tuple[Gate, ...]:
        """The gate levels in order: the veto criteria first (``cap:0``), then ``gates``."""
        vetoes = tuple(c.id for c in self.criteria if c.veto)
        return ((Gate(vetoes, "cap:0"),) if vetoes else ()) + self.gates

    def criterion(self, criterion_id: str) -> Criterion:
        for c in self.criteria:
            if c.id == criterion_id:
                return c
        raise KeyError(criterion_id)


# ---------------------------------------------------------------------------------------------
# loading


def load_rubric(source: str | Path | dict | Rubric, *, filename: str | None = None) -> Rubric:
    """Load a rubric from a path, a built-in name (``helpfulness``), a dict, or pass one through."""
    if isinstance(source, Rubric):
        return source
    if isinstance(source, dict):
        return rubric_from_data(source, filename=filename or "<inline rubric>")
    text_source = str(source)
    path = Path(text_source)
    if not path.is_file():
        builtin = builtin_rubric_path(text_source)
        if builtin is None:
            names = ", ".join(builtin_rubric_names())
            raise RubricError(f"no such rubric file or built-in rubric (built-ins: {names})",
                              file=text_source)
        path = builtin
    try:
        if path.stat().st_size > MAX_BYTES:  # before reading: a 2 GB file must not be read to be refused
            raise RubricError(f"file is larger than {MAX_BYTES} bytes", file=str(path))
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RubricError(f"not UTF-8 text (byte {exc.start})", file=str(path)) from None
    except OSError as exc:
        raise RubricError(f"cannot read: {exc.strerror}", file=str(path)) from None
    data, lines = load_text(text, str(path))
    rubric = rubric_from_data(data, filename=str(path), lines=lines)
    return Rubric(**{**rubric.__dict__, "origin": str(path)})


def rubric_from_data(data: Any, *, filename: str = "<inline rubric>",
                     lines: dict | None = None) -> Rubric:
    """Validate plain data (as parsed from YAML/JSON) into a :class:`Rubric`."""
    v = _Validator(filename, lines or {})
    return v.rubric(data)


def rubric_from_items(items: Any, *, name: str = "row rubric", filename: str = "<row>",
                      line: int | None = None) -> Rubric:
    """Build a rubric from a record's per-row items.

    Accepts rubrix criteria (``text`` + ``weight``/``category``) and HealthBench items
    (``criterion`` + ``points`` + ``tags``); ids default to ``c1``, ``c2`` ... in order.
    """
    if isinstance(items, dict) and "criteria" in items:
        return _Validator(filename, {}, base_line=line).rubric(items)
    if not isinstance(items, list):
        raise RubricError("per-row rubric must be a list of criteria or a rubric object",
                          file=filename, line=line, field="rubric")
    converted = []
    for i, item in enumerate(items):
        if isinstance(item, dict) and "criterion" in item and "text" not in item:
            item = {"text": item["criterion"], "weight": item.get("points"),
                    **({"tags": item["tags"]} if "tags" in item else {})}
        if isinstance(item, dict) and "id" not in item:
            item = {"id": f"c{i + 1}", **item}
        converted.append(item)
    return _Validator(filename, {}, base_line=line).rubric({"name": name, "criteria": converted})


class _Validator:
    """Turns parsed data into rubric objects, raising errors that name file, line and field."""

    def __init__(self, filename: str, lines: dict, base_line: int | None = None):
        self.filename = filename
        self.lines = lines
        self.base_line = base_line

    def fail(self, path: tuple, message: str) -> RubricError:
        line = None
        probe = path
        while line is None and probe is not None:
            line = self.lines.get(probe)
            probe = probe[:-1] if probe else None
        return RubricError(message, file=self.filename, line=line or self.base_line, field=dotted(path))

    def rubric(self, data: Any) -> Rubric:
        if not isinstance(data, dict):
            raise self.fail((), "a rubric must be a mapping with 'name' and 'criteria'")
        for key in data:
            if key not in _RUBRIC_KEYS:
                raise self.fail((key,), f"unknown key (allowed: {', '.join(sorted(_RUBRIC_KEYS))})")
        name = self.string(data, ("name",), required=True)
        version = data.get("version", "1")
        if isinstance(version, bool) or not isinstance(version, str | int | float) \
                or str(version).strip() == "":
            raise self.fail(("version",), "must be a string such as \"1\" or \"2.1\"")
        version = str(version)
        description = self.string(data, ("description",)) or ""
        aggregation = data.get("aggregation", "weighted")
        if aggregation not in AGGREGATIONS:
            raise self.fail(("aggregation",), f"must be one of {', '.join(AGGREGATIONS)}")
        principles = data.get("principles") or []
        if isinstance(principles, str):
            principles = [principles]
        if not isinstance(principles, list) or not all(isinstance(p, str) and p.strip() for p in principles):
            raise self.fail(("principles",), "must be a list of non-empty strings")
        raw_criteria = data.get("criteria")
        if raw_criteria is None and not principles:
            raise self.fail(("criteria",), "missing: a rubric needs criteria (or principles)")
        raw_criteria = raw_criteria or []
        if not isinstance(raw_criteria, list):
            raise self.fail(("criteria",), "must be a list")
        if not raw_criteria and not principles:
            raise self.fail(("criteria",), "a rubric needs at least one criterion")
        criteria = tuple(self.criterion(c, ("criteria", i)) for i, c in enumerate(raw_criteria))
        seen: set[str] = set()
        for i, c in enumerate(criteria):
            if c.id in seen:
                raise self.fail(("criteria", i, "id"), f"duplicate criterion id {c.id!r}")
            seen.add(c.id)
        if criteria and not any(c.weight > 0 for c in criteria):
            raise self.fail(("criteria",), "at least one criterion needs a positive weight")
        provenance = data.get("provenance") or {}
        if not isinstance(provenance, dict):
            raise self.fail(("provenance",), "must be a mapping")
        self.check_conditions(criteria)
        gates = self.gates(data.get("gates"), criteria)
        length = self.length(data.get("length"))
        self.check_length(length, criteria, gates)
        if gates and aggregation == "implicit":
            raise self.fail(("gates",), "gates need per-criterion verdicts, not aggregation: implicit")
        if aggregation == "implicit" and any(c.is_checked or c.applies_if or c.allow_na for c in criteria):
            raise self.fail(("aggregation",), "checks and applies_if need per-criterion verdicts, "
                                              "not implicit")
        return Rubric(name=name, version=version, description=description.strip(),
                      principles=tuple(principles), aggregation=aggregation, criteria=criteria,
                      provenance=provenance, gates=gates, length=length)

    def string(self, data: dict, path: tuple, required: bool = False) -> str | None:
        value = data.get(path[-1])
        if value is None:
            if required:
                raise self.fail(path, "missing (required)")
            return None
        if not isinstance(value, str) or (required and not value.strip()):
            raise self.fail(path, "must be a non-empty string")
        return value

    def criterion(self, data: Any, path: tuple) -> Criterion:
        if isinstance(data, str):
            data = {"text": data, "weight": 1.0}  # a bare statement: a plain criterion of weight 1
        if not isinstance(data, dict):
            raise self.fail(path, "a criterion must be a mapping with at least 'text'")
        for key in data:
            if key not in _CRITERION_KEYS:
                raise self.fail(path + (key,), f"unknown key (allowed: {', '.join(sorted(_CRITERION_KEYS))})")
        check = self.check(data["check"], path + ("check",)) if "check" in data else None
        if check is not None and data.get("text") is None:
            text = check.describe()  # a check is its own statement
        else:
            text = self.string(data, path + ("text",), required=True).strip()
        cid = data.get("id")
        if cid is None:
            cid = slugify(text)
        if not isinstance(cid, str) or not _SLUG.fullmatch(cid):
            raise self.fail(path + ("id",), "must be a slug: lowercase letters, digits, '_', '-', '.' "
                                            "(at most 80 characters)")
        category = data.get("category")
        if category is not None and category not in CATEGORY_WEIGHTS:
            raise self.fail(path + ("category",), f"must be one of {', '.join(CATEGORY_WEIGHTS)}")
        weight = data.get("weight")
        if weight is None:
            if category is None:
                raise self.fail(path + ("weight",), "missing: give a weight or a category")
            weight = CATEGORY_WEIGHTS[category]
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight != weight \
                or abs(weight) == float("inf"):
            raise self.fail(path + ("weight",), f"must be a finite number, got {weight!r}")
        weight = float(weight)
        if weight == 0:
            raise self.fail(path + ("weight",), "must not be 0 (a criterion that cannot change the reward)")
        if category == "pitfall" and weight > 0:
            raise self.fail(path + ("weight",), "a pitfall must have a negative weight (met = fault present)")
        if weight < 0 and category not in (None, "pitfall"):
            raise self.fail(path + ("weight",), f"negative weight makes this a pitfall, but category is "
                                                f"{category!r}")
        if weight < 0:
            category = "pitfall"
        scale = self.scale(data.get("scale"), path + ("scale",))
        if check is not None and scale is not None:
            raise self.fail(path + ("scale",), "a checked criterion is binary: give a check or a scale, "
                                               "not both")
        applies_if = self.condition(data["applies_if"], path + ("applies_if",)) \
            if data.get("applies_if") is not None else None
        allow_na = data.get("allow_na", False)
        if not isinstance(allow_na, bool):
            raise self.fail(path + ("allow_na",), "must be true or false")
        if allow_na and (check is not None or scale is not None):
            raise self.fail(path + ("allow_na",), "a three-way (Yes / No / N/A) verdict is for judged binary "
                                                  "criteria, not checks or scales")
        veto = data.get("veto", False)
        if not isinstance(veto, bool):
            raise self.fail(path + ("veto",), "must be true or false")
        tags = data.get("tags") or []
        if isinstance(tags, str):
            tags = [tags]
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise self.fail(path + ("tags",), "must be a list of strings")
        theme = data.get("theme")
        if theme is not None and not isinstance(theme, str):
            raise self.fail(path + ("theme",), "must be a string")
        source = data.get("source")
        if source is not None and not isinstance(source, dict):
            raise self.fail(path + ("source",), "must be a mapping (pair ids, run id)")
        return Criterion(id=cid, text=text, weight=weight, category=category, scale=scale, veto=veto,
                         tags=tuple(tags), theme=theme, source=source, check=check, applies_if=applies_if,
                         allow_na=allow_na)

    def check(self, data: Any, path: tuple) -> Check:
        try:
            return compile_check(data)
        except CheckSpecError as exc:
            sub = tuple(str(exc.field).split(".")) if exc.field else ()
            raise self.fail(path + sub, str(exc)) from None

    def condition(self, data: Any, path: tuple) -> Condition:
        if isinstance(data, str):
            if not data.strip():
                raise self.fail(path, "must be a non-empty statement, a check, or {met: ID} / {not_met: ID}")
            return Condition("judged", text=data.strip())
        if isinstance(data, dict) and len(data) == 1 and next(iter(data)) in ("met", "not_met"):
            key, ref = next(iter(data.items()))
            if not isinstance(ref, str) or not _SLUG.fullmatch(ref):
                raise self.fail(path + (key,), "must be a criterion id")
            return Condition("criterion", ref=ref, met=key == "met")
        return Condition("check", check=self.check(data, path))

    def gates(self, data: Any, criteria: tuple[Criterion, ...]) -> tuple[Gate, ...]:
        if data is None:
            return ()
        if not isinstance(data, list) or not data:
            raise self.fail(("gates",), "must be a non-empty list of levels ({criteria: [...]} or "
                                        "{category: ...})")
        ids = [c.id for c in criteria]
        used: set[str] = {c.id for c in criteria if c.veto}
        out = []
        for i, level in enumerate(data):
            path = ("gates", i)
            if not isinstance(level, dict) or not set(level) <= {"criteria", "category", "on_fail"} \
                    or ("criteria" in level) == ("category" in level):
                raise self.fail(path, "a gate level is {criteria: [ids]} or {category: NAME}, with "
                                      "optional on_fail")
            category = level.get("category")
            if category is not None:
                if category not in CATEGORY_WEIGHTS:
                    raise self.fail(path + ("category",), f"must be one of {', '.join(CATEGORY_WEIGHTS)}")
                members = tuple(c.id for c in criteria if c.category == category)
                if not members:
                    raise self.fail(path + ("category",), f"no criterion has category {category!r}")
            else:
                members = level["criteria"]
                if isinstance(members, str):
                    members = [members]
                if not isinstance(members, list) or not members:
                    raise self.fail(path + ("criteria",), "must be a non-empty list of criterion ids")
                for j, cid in enumerate(members):
                    if cid not in ids:
                        raise self.fail(path + ("criteria", j),
                                        f"no criterion with id {cid!r} in this rubric")
                members = tuple(members)
            for cid in members:
                if cid in used:
                    raise self.fail(path, f"criterion {cid!r} is already in a gate level (or is a veto)")
                used.add(cid)
            on_fail = self.on_fail(level.get("on_fail", 0.0), path + ("on_fail",))
            out.append(Gate(members, on_fail, category))
        return tuple(out)

    def on_fail(self, value: Any, path: tuple) -> float | str:
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        if value == "accumulate":
            return value
        if isinstance(value, str) and value.startswith("cap:"):
            try:
                cap = float(value[4:])
            except ValueError:
                cap = math.nan
            if math.isfinite(cap):
                return f"cap:{cap:g}"
        raise self.fail(path, "must be a number (the reward), 'cap:X' or 'accumulate'")

    def check_conditions(self, criteria: tuple[Criterion, ...]) -> None:
        """``applies_if: {met: ID}`` must name a criterion of the rubric, without a cycle."""
        index = {c.id: i for i, c in enumerate(criteria)}
        for i, c in enumerate(criteria):
            cond = c.applies_if
            if cond is None or cond.kind != "criterion":
                continue
            path = ("criteria", i, "applies_if", "met" if cond.met else "not_met")
            if cond.ref not in index:
                raise self.fail(path, f"no criterion with id {cond.ref!r} in this rubric")
            seen = [c.id]
            ref = cond.ref
            while ref is not None:
                if ref in seen:
                    raise self.fail(path, "applies_if conditions form a cycle: " + " -> ".join(seen + [ref]))
                seen.append(ref)
                nxt = criteria[index[ref]].applies_if
                ref = nxt.ref if nxt is not None and nxt.kind == "criterion" else None

    def length(self, data: Any) -> LengthShaping | None:
        if data is None:
            return None
        try:
            return LengthShaping.from_data(data)
        except ValueError as exc:
            field_name = getattr(exc, "field", None)
            sub = tuple(str(field_name).split(".")) if field_name else ()
            raise self.fail(("length",) + sub, str(exc)) from None

    def check_length(self, shaping: LengthShaping | None, criteria: tuple[Criterion, ...],
                     gates: tuple[Gate, ...]) -> None:
        if shaping is None:
            return
        ids = [c.id for c in criteria]
        for j, cid in enumerate(shaping.criteria):
            if cid not in ids:
                raise self.fail(("length", "criteria", j), f"no criterion with id {cid!r} in this rubric")
        if not shaping.criteria and not gates and not any(c.veto for c in criteria):
            raise self.fail(("length",), "length shaping applies only to answers that pass a gate: give the "
                                         "rubric gates (or a veto), or name length.criteria")

    def scale(self, data: Any, path: tuple) -> dict[int, str] | None:
        if data is None or data == "binary":
            return None
        if isinstance(data, dict) and "levels" in data and len(data) == 1:
            data = data["levels"]
        if not isinstance(data, dict):
            raise self.fail(path, "must be 'binary' or a mapping of levels 1..5 to descriptors")
        levels: dict[int, str] = {}
        for key, desc in data.items():
            level = _scale_level(key)
            if level not in SCALE_LEVELS:
                raise self.fail(path + (key,), "scale levels must be the integers 1..5")
            if level in levels:  # 1 and "1" in one mapping: one would silently replace the other
                raise self.fail(path + (key,), f"level {level} is given twice")
            if not isinstance(desc, str) or not desc.strip():
                raise self.fail(path + (key,), "each level needs a non-empty descriptor")
            levels[level] = desc.strip()
        if sorted(levels) != list(SCALE_LEVELS):
            missing = sorted(set(SCALE_LEVELS) - set(levels))
            raise self.fail(path, f"a scale needs a descriptor for every level 1..5 (missing {missing})")
        return levels


def _scale_level(key: Any) -> int | None:
    """A scale level from a mapping key: the int 3 or the text "3"; None for anything else (1.5, true)."""
    if isinstance(key, int) and not isinstance(key, bool):
        return key
    if isinstance(key, str) and key.strip() in {str(i) for i in SCALE_LEVELS}:
        return int(key)
    return None


def slugify(text: str, *, fallback: str = "criterion", max_len: int = 48) -> str:
    """Lowercase letters and digits joined by ``_``: criterion ids, metric and function names."""
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return slug[:max_len].rstrip("_") or fallback


# ---------------------------------------------------------------------------------------------
# saving and schema


def dump_rubric(rubric: Rubric) -> str:
    """YAML text for a rubric, keys in a human reading order."""
    return yaml.safe_dump(rubric.to_dict(), sort_keys=False, allow_unicode=True, width=100)


def save_rubric(rubric: Rubric, path: str | Path) -> None:
    """Write a rubric as YAML (atomically: a crash never leaves half a rubric)."""
    write_bytes_atomic(path, dump_rubric(rubric).encode("utf-8"))


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a rubric file (what ``rubrix rubric schema`` prints)."""
    level = {"type": "string", "minLength": 1}
    check = check_schema()
    applies_if = {"description": "when the criterion applies; where not, it is N/A (leaves the score)",
                  "oneOf": [
                      {"type": "string", "minLength": 1, "description": "a statement the judge answers"},
                      {"type": "object", "additionalProperties": False, "required": ["met"],
                       "properties": {"met": {"type": "string"}}},
                      {"type": "object", "additionalProperties": False, "required": ["not_met"],
                       "properties": {"not_met": {"type": "string"}}},
                      check,
                  ]}
    on_fail = {"oneOf": [{"type": "number"}, {"const": "accumulate"},
                         {"type": "string", "pattern": r"^cap:-?[0-9.]+$"}],
               "description": "what the sample gets when this level fails: a number (the reward), "
                              "cap:X, or accumulate (only the levels down to this one count)"}
    criterion = {
        "type": "object",
        "additionalProperties": False,
        "anyOf": [{"required": ["text"]}, {"required": ["check"]}],
        "properties": {
            "id": {"type": "string", "pattern": _SLUG.pattern,
                   "description": "unique in the rubric; derived from text when absent"},
            "text": {"type": "string", "minLength": 1,
                     "description": "a statement about the response; met = the statement is true"},
            "weight": {"type": "number", "not": {"const": 0},
                       "description": ">0 rewards when met; <0 is a pitfall: met means the fault is present"},
            "category": {"enum": list(CATEGORY_WEIGHTS),
                         "description": "RaR category; default weights essential 5, important 3, optional 1, "
                                        "pitfall -2"},
            "scale": {"oneOf": [
                {"const": "binary"},
                {"type": "object", "additionalProperties": False, "required": [str(i) for i in SCALE_LEVELS],
                 "properties": {str(i): level for i in SCALE_LEVELS}},
            ], "description": "binary (default) or 1..5 with a descriptor per level"},
            "veto": {"type": "boolean", "description": "failing it caps the reward"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "theme": {"type": "string"},
            "source": {"type": "object", "description": "provenance: pair ids, run id"},
            "check": check,
            "applies_if": applies_if,
            "allow_na": {"type": "boolean", "description": "the judge may answer N/A: Yes / No / NA read "
                                                           "from logprobs; N/A leaves the score"},
        },
        # polarity, as the loader enforces it: a pitfall's weight is negative, other categories' positive
        "allOf": [
            {"anyOf": [{"required": ["weight"]}, {"required": ["category"]}]},
            {"if": {"required": ["weight", "category"], "properties": {"category": {"const": "pitfall"}}},
             "then": {"properties": {"weight": {"exclusiveMaximum": 0}}}},
            {"if": {"required": ["weight", "category"],
                    "properties": {"category": {"enum": [c for c in CATEGORY_WEIGHTS if c != "pitfall"]}}},
             "then": {"properties": {"weight": {"exclusiveMinimum": 0}}}},
        ],
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "rubrix rubric",
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "version": {"type": ["string", "number"]},
            "description": {"type": "string"},
            "principles": {"type": "array", "items": {"type": "string", "minLength": 1}},
            "aggregation": {"enum": list(AGGREGATIONS)},
            "criteria": {"type": "array", "items": criterion},
            "provenance": {"type": "object"},
            "gates": {"type": "array", "minItems": 1,
                      "description": "levels that must pass, in order, before "
                      "the criteria below them count (veto criteria form a first level, cap:0)",
                      "items": {"type": "object", "additionalProperties": False,
                                "properties": {"criteria": {"type": "array", "minItems": 1,
                                                            "items": {"type": "string"}},
                                               "category": {"enum": list(CATEGORY_WEIGHTS)},
                                               "on_fail": on_fail},
                                "oneOf": [{"required": ["criteria"]}, {"required": ["category"]}]}},
            "length": {"type": "object", "additionalProperties": False,
                       "description": "correctness-gated length shaping: only answers passing their gate",
                       "properties": {"mode": {"enum": ["group", "target"]},
                                      "target": {"type": "integer", "minimum": 1},
                                      "unit": {"enum": ["words", "chars", "tokens"]},
                                      "penalty": {"type": "number", "minimum": 0, "maximum": 10},
                                      "criteria": {"type": "array", "items": {"type": "string"}}}},
        },
        "anyOf": [{"required": ["criteria"]}, {"required": ["principles"]}],
    }
