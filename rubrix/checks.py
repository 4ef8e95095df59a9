"""Deterministic criteria: checks computed from the text alone, without a judge call.

A criterion with ``check:`` is *checked*, not judged. Its spec is compiled when the rubric loads
(a bad regex, an unknown function or an invalid JSON Schema is a :class:`~rubrix.errors.RubricError`
naming file, line and field then, never at the ten-thousandth sample) and run on each sample to a
value in [0, 1] — or to a typed failure, never a number, when it cannot be computed (a function
that raises, a reference check on a sample without a reference). Kinds (one per spec)::

    regex: PATTERN          match: true|false (default true: met when it matches), ignore_case
    length: {min, max, unit: words|chars|tokens}
    json: true | {schema: {...}}      the text (or its one fenced block) parses as JSON [and validates]
    reference: exact | normalized | numeric | boxed | last_number     tolerance (numeric kinds)
    python: module:function   fn(text, *, prompt, reference) -> bool | number in [0, 1]

``in: response | prompt | reference`` (default ``response``) says which text a check reads, so
the same grammar serves ``applies_if`` conditions about the prompt (not ``on``: YAML reads that
key as ``true``). ``tokens`` counts word pieces
(``\\w+`` runs and single punctuation marks): a tokenizer-free, judge-independent measure, so a
rubric's verdicts do not change with the judge.
"""

from __future__ import annotations

import importlib
import json
import math
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

KINDS = ("regex", "length", "json", "reference", "python")
UNITS = ("words", "chars", "tokens")
REFERENCE_MODES = ("exact", "normalized", "numeric", "boxed", "last_number")
TARGETS = ("response", "prompt", "reference")
_OPTIONS = {
    "regex": {"match", "ignore_case", "in"},
    "length": {"in"},
    "json": {"in"},
    "reference": {"tolerance"},
    "python": {"in"},
}
_TOKEN = re.compile(r"\w+|[^\w\s]")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")
_FENCE = re.compile(r"```[a-zA-Z0-9_+-]*\n(.*?)```", re.S)


class CheckSpecError(ValueError):
    """A check spec that cannot compile; ``field`` is the key under the spec that is wrong."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class CheckFailure:
    """A check that could not be computed: ``error`` is a typed error (``check`` or ``input``)."""

    error: str
    detail: str


def count_units(text: str, unit: str) -> int:
    if unit == "chars":
        return len(text)
    if unit == "tokens":
        return len(_TOKEN.findall(text))
    return len(text.split())


class Check:
    """A compiled check. Equal, hashed and pickled by its spec, so rubrics stay comparable."""

    def __init__(self, spec: dict[str, Any]):
        if not isinstance(spec, dict):
            raise CheckSpecError("a check must be a mapping with one of: " + ", ".join(KINDS))
        kinds = [k for k in spec if k in KINDS]
        if len(kinds) != 1:
            raise CheckSpecError(f"a check needs exactly one of {', '.join(KINDS)}, got "
                                 f"{', '.join(kinds) or 'none'}")
        self.kind = kinds[0]
        for key in spec:
            if key is True or key == "on":  # YAML 1.1 reads the key `on` as true
                raise CheckSpecError("unknown option 'on' (YAML reads it as true): write `in: prompt`", "on")
            if key != self.kind and key not in _OPTIONS[self.kind]:
                raise CheckSpecError(f"unknown option for a {self.kind} check (allowed: "
                                     f"{', '.join(sorted(_OPTIONS[self.kind]))})", key)
        self.spec = dict(spec)
        self.on = spec.get("in", "response")
        if self.on not in TARGETS:
            raise CheckSpecError(f"must be one of {', '.join(TARGETS)}", "in")
        getattr(self, f"_compile_{self.kind}")(spec[self.kind])

    # -- compile -------------------------------------------------------------------------------

    def _compile_regex(self, pattern: Any) -> None:
        if not isinstance(pattern, str) or not pattern:
            raise CheckSpecError("must be a non-empty regular expression", "regex")
        for opt in ("match", "ignore_case"):
            if opt in self.spec and not isinstance(self.spec[opt], bool):
                raise CheckSpecError("must be true or false", opt)
        try:
            self._regex = re.compile(pattern, re.I if self.spec.get("ignore_case") else 0)
        except re.error as exc:
            raise CheckSpecError(f"invalid regular expression: {exc}", "regex") from None
        self._must_match = self.spec.get("match", True)

    def _compile_length(self, bounds: Any) -> None:
        if not isinstance(bounds, dict) or not set(bounds) <= {"min", "max", "unit"} \
                or not ({"min", "max"} & set(bounds)):
            raise CheckSpecError("must be a mapping with min and/or max (and unit: words, chars or tokens)",
                                 "length")
        self._unit = bounds.get("unit", "words")
        if self._unit not in UNITS:
            raise CheckSpecError(f"unit must be one of {', '.join(UNITS)}", "length.unit")
        for key in ("min", "max"):
            value = bounds.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise CheckSpecError("must be a non-negative integer", f"length.{key}")
        self._min, self._max = bounds.get("min"), bounds.get("max")
        if self._min is not None and self._max is not None and self._min > self._max:
            raise CheckSpecError("min is greater than max", "length")

    def _compile_json(self, value: Any) -> None:
        self._validator = None
        if value is True or value == {}:
            return
        if not isinstance(value, dict) or set(value) != {"schema"} or not isinstance(value["schema"], dict):
            raise CheckSpecError("must be true or a mapping {schema: <JSON Schema>}", "json")
        try:
            import jsonschema
        except ImportError:
            raise CheckSpecError("a JSON Schema check needs the jsonschema package (pip install jsonschema)",
                                 "json.schema") from None
        cls = jsonschema.validators.validator_for(value["schema"])
        try:
            cls.check_schema(value["schema"])
        except jsonschema.SchemaError as exc:
            raise CheckSpecError(f"invalid JSON Schema: {exc.message}", "json.schema") from None
        self._validator = cls(value["schema"])

    def _compile_reference(self, mode: Any) -> None:
        if mode not in REFERENCE_MODES:
            raise CheckSpecError(f"must be one of {', '.join(REFERENCE_MODES)}", "reference")
        self._mode = mode
        tol = self.spec.get("tolerance", 1e-6)
        if isinstance(tol, bool) or not isinstance(tol, int | float) or not 0 <= tol < math.inf:
            raise CheckSpecError("must be a non-negative number", "tolerance")
        if "tolerance" in self.spec and mode in ("exact", "normalized"):
            raise CheckSpecError(f"tolerance applies to numeric comparisons, not {mode!r}", "tolerance")
        self._tolerance = float(tol)

    def _compile_python(self, target: Any) -> None:
        if not isinstance(target, str) or target.count(":") != 1:
            raise CheckSpecError("must be 'module:function'", "python")
        module_name, func_name = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001 - any import failure is the same user error
            raise CheckSpecError(f"cannot import module {module_name!r}: {type(exc).__name__}: {exc}",
                                 "python") from None
        func = getattr(module, func_name, None)
        if not callable(func):
            raise CheckSpecError(f"module {module_name!r} has no function {func_name!r}", "python")
        self._func: Callable[..., Any] = func

    # -- identity --------------------------------------------------------------------------------

    def canonical(self) -> str:
        return json.dumps(self.spec, sort_keys=True, ensure_ascii=False, separators=(",", ":"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Check) and other.canonical() == self.canonical()

    def __hash__(self) -> int:
        return hash(self.canonical())

    def __reduce__(self) -> tuple:
        return (Check, (self.spec,))

    def __repr__(self) -> str:
        return f"Check({self.canonical()})"

    def describe(self) -> str:
        """A statement for a criterion that gives only a check (its ``text`` defaults to this)."""
        on = "" if self.on == "response" else f" ({self.on})"
        if self.kind == "regex":
            verb = "matches" if self._must_match else "does not match"
            return f"The {self.on} {verb} /{self._regex.pattern}/."
        if self.kind == "length":
            parts = ([f"at least {self._min}"] if self._min is not None else []) + \
                    ([f"at most {self._max}"] if self._max is not None else [])
            return f"The {self.on} is {' and '.join(parts)} {self._unit} long."
        if self.kind == "json":
            return f"The {self.on} is valid JSON" + (" matching the schema." if self._validator else ".")
        if self.kind == "reference":
            return f"The response matches the reference ({self._mode})."
        return f"The check {self.spec['python']} passes{on}."

    @property
    def needs_reference(self) -> bool:
        """Only a comparison with the reference needs one; ``in: reference`` reads a missing one as
        empty text, so ``applies_if: {regex: '\\S', in: reference}`` means "when there is a reference"."""
        return self.kind == "reference"

    # -- run -------------------------------------------------------------------------------------

    def run(self, response: str, prompt: Any = None, reference: str | None = None) -> float | CheckFailure:
        """The check's value in [0, 1] on one sample, or a :class:`CheckFailure`."""
        if self.needs_reference and reference is None:
            return CheckFailure("input", f"{self.kind} check needs a reference and the sample has none")
        text = {"response": response or "", "prompt": prompt_text(prompt),
                "reference": reference or ""}[self.on]
        if self.kind == "regex":
            return float((self._regex.search(text) is not None) == self._must_match)
        if self.kind == "length":
            n = count_units(text, self._unit)
            return float((self._min is None or n >= self._min) and (self._max is None or n <= self._max))
        if self.kind == "json":
            return self._run_json(text)
        if self.kind == "reference":
            return float(match_reference(response or "", reference or "", self._mode, self._tolerance))
        return self._run_python(text, prompt, reference)

    def _run_json(self, text: str) -> float:
        fenced = _FENCE.findall(text)
        body = fenced[0] if len(fenced) == 1 else text
        try:
            value = json.loads(body)
        except ValueError:
            return 0.0
        if self._validator is not None and not self._validator.is_valid(value):
            return 0.0
        return 1.0

    def _run_python(self, text: str, prompt: Any, reference: str | None) -> float | CheckFailure:
        name = self.spec["python"]
        try:
            out = self._func(text, prompt=prompt, reference=reference)
        except Exception as exc:  # noqa: BLE001 - a user function's failure is a typed failure
            return CheckFailure("check", f"{name} raised {type(exc).__name__}: {exc}"[:300])
        if isinstance(out, bool):
            return float(out)
        if isinstance(out, int | float) and 0.0 <= out <= 1.0:  # NaN fails both comparisons
            return float(out)
        return CheckFailure("check", f"{name} returned {out!r:.80}, not a bool or a number in [0, 1]")


def check_schema() -> dict[str, Any]:
    """The JSON Schema of a ``check:`` spec (part of ``rubrix rubric schema``)."""
    target = {"enum": ["response", "prompt", "reference"], "description": "the text the check reads"}
    check = {"type": "object", "description": "deterministic check: exactly one of regex, length, json, "
                                              "reference, python; computed without a judge call",
             "oneOf": [
                 {"required": ["regex"], "additionalProperties": False, "properties": {
                     "regex": {"type": "string", "minLength": 1}, "in": target,
                     "match": {"type": "boolean",
                               "description": "true: met when it matches; false: when not"},
                     "ignore_case": {"type": "boolean"}}},
                 {"required": ["length"], "additionalProperties": False, "properties": {
                     "length": {"type": "object", "additionalProperties": False, "properties": {
                         "min": {"type": "integer", "minimum": 0}, "max": {"type": "integer", "minimum": 0},
                         "unit": {"enum": ["words", "chars", "tokens"]}}}, "in": target}},
                 {"required": ["json"], "additionalProperties": False, "properties": {
                     "json": {"oneOf": [{"const": True}, {"type": "object", "required": ["schema"],
                                                          "properties": {"schema": {"type": "object"}}}]},
                     "in": target}},
                 {"required": ["reference"], "additionalProperties": False, "properties": {
                     "reference": {"enum": ["exact", "normalized", "numeric", "boxed", "last_number"]},
                     "tolerance": {"type": "number", "minimum": 0}}},
                 {"required": ["python"], "additionalProperties": False, "properties": {
                     "python": {"type": "string", "pattern": r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"},
                     "in": target}},
             ]}
    return check


def compile_check(spec: Any) -> Check:
    """Compile a check spec (raises :class:`CheckSpecError`)."""
    return Check(spec)


def prompt_text(prompt: Any) -> str:
    """A prompt as plain text: a chat prompt's message contents joined by newlines."""
    if prompt is None:
        return ""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(str(m.get("content", "")) for m in prompt if isinstance(m, dict))


# ------------------------------------------------------------------------------------------------
# reference matching


def normalize_answer(text: str) -> str:
    """SQuAD-style normalization: lowercase, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _math_form(text: str) -> str:
    r"""A math answer without what does not change it: spaces, ``$``, ``\left``/``\right``, a final period."""
    text = text.replace("\\left", "").replace("\\right", "").replace("$", "")
    return re.sub(r"\s+", "", text).rstrip(".").lower()


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (braces balanced), or None."""
    start = text.rfind("\\boxed")
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:j].strip()
    return None


def parse_number(text: str) -> float | None:
    """A number from answer text: ``1,234``, ``-3.5``, ``3/4``, ``\\frac{3}{4}``, ``$12``, ``50%``."""
    t = text.strip().replace("$", "").replace("\\!", "").replace("\\,", "").rstrip(".").strip()
    frac = re.fullmatch(r"(-?)\\d?frac\{(-?[\d.]+)\}\{(-?[\d.]+)\}", t)
    if frac:
        try:
            value = float(frac.group(2)) / float(frac.group(3))
        except (ValueError, ZeroDivisionError):
            return None
        return -value if frac.group(1) else value
    t = t.rstrip("%").replace(",", "").strip()
    try:
        if "/" in t:
            num, den = t.split("/", 1)
            return float(num) / float(den)
        return float(t)
    except (ValueError, ZeroDivisionError):
        return None


def last_number(text: str) -> float | None:
    """The last number written in ``text`` (math answers without a box)."""
    found = _NUMBER.findall(text)
    return parse_number(found[-1]) if found else None


def _same_number(a: float | None, b: float | None, tol: float) -> bool:
    return a is not None and b is not None and math.isclose(a, b, rel_tol=tol, abs_tol=tol)


def reference_answer(reference: str) -> str:
    """The answer part of a reference: its boxed content when it has one, else the whole text."""
    boxed = last_boxed(reference)
    return boxed if boxed is not None else reference.strip()


def match_reference(response: str, reference: str, mode: str, tolerance: float = 1e-6) -> bool:
    """Whether ``response`` matches ``reference`` under ``mode`` (see :data:`REFERENCE_MODES`)."""
    ref = reference_answer(reference)
    if mode == "exact":
        return response.strip() == ref
    if mode == "normalized":
        return normalize_answer(response) == normalize_answer(ref)
    ref_num = parse_number(ref)
    if ref_num is None:
        ref_num = last_number(ref)
    if mode == "numeric":
        return _same_number(parse_number(response), ref_num, tolerance)
    if mode == "boxed":
        got = last_boxed(response)
        if got is None:
            return False
        if ref_num is not None and parse_number(got) is not None:
            return _same_number(parse_number(got), ref_num, tolerance)
        return _math_form(got) == _math_form(ref)
    boxed = last_boxed(response)  # last_number: a boxed answer wins over stray numbers after it
    got = parse_number(boxed) if boxed is not None else None
    return _same_number(got if got is not None else last_number(response), ref_num, tolerance)
