"""Reading the generator's rubric answer into drafted criteria (before lint and discrimination).

The answer is a JSON object with one list of statements per category (``essential``,
``important``, ``optional``, ``pitfalls``, and ``conditional`` items with ``applies_if``), or
one ``criteria`` list of ``{"text", "category", "applies_if"?}`` objects. Small models bend the
shape, so the reader accepts what is unambiguous (a bare string in ``criteria`` is an
``important`` criterion; ``critical`` / ``must`` mean ``essential``; ``negative`` / ``mistake``
mean ``pitfall``) and refuses what is not (no list, no usable statement), with a reason that
:func:`~rubrix.extract.propose.ask_json` shows the model when it re-asks. Statements are cleaned
by the same rule as extraction's (:func:`~rubrix.extract.propose.clean_statement`): fragments and
comparisons between answers are dropped, since every criterion is judged on one answer alone.

Weights are never read from the model: they follow the category
(:data:`~rubrix.rubric.CATEGORY_WEIGHTS`), so a pitfall's weight is negative by construction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..extract.propose import clean_statement
from ..rubric import CATEGORY_WEIGHTS
from .lint import CRITERION_VERBS

_VERBS = frozenset(CRITERION_VERBS)

_CATEGORY_ALIASES = {
    "essential": "essential",
    "critical": "essential",
    "must": "essential",
    "required": "essential",
    "important": "important",
    "should": "important",
    "major": "important",
    "optional": "optional",
    "nice": "optional",
    "nice-to-have": "optional",
    "minor": "optional",
    "bonus": "optional",
    "pitfall": "pitfall",
    "negative": "pitfall",
    "mistake": "pitfall",
    "error": "pitfall",
    "penalty": "pitfall",
}
_NO_CONDITION = {"", "none", "n/a", "na", "always", "null", "-", "no"}
#: a criterion is a statement about the response: "The response ...", or HealthBench's verb-first
#: style ("Advises the patient ..."); anything else is usually the reference copied into the list
_SUBJECT = re.compile(r"^(?:the |a |an )?(?:response|answer|reply|assistant|model)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Draft:
    """One drafted criterion: statement, RaR category, optional condition (a statement about the
    conversation), as the generator wrote them."""

    text: str
    category: str
    applies_if: str | None = None

    @property
    def weight(self) -> float:
        return CATEGORY_WEIGHTS[self.category]

    @property
    def pitfall(self) -> bool:
        return self.category == "pitfall"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text, "category": self.category}
        if self.applies_if:
            out["applies_if"] = self.applies_if
        return out


def category_of(value: Any) -> str:
    """A RaR category from what the model wrote; unknown or missing means ``important``."""
    if isinstance(value, str):
        key = value.strip().lower().replace("_", "-")
        return _CATEGORY_ALIASES.get(key, _CATEGORY_ALIASES.get(key.split()[0] if key else "", "important"))
    return "important"


def _condition(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = " ".join(value.split()).strip()
    if text.lower().rstrip(".") in _NO_CONDITION or len(text.split()) < 3:
        return None
    return text[:300]


#: the category-keyed form of the template: one list of statements per category
_LISTS = (
    ("essential", "essential"),
    ("important", "important"),
    ("optional", "optional"),
    ("pitfalls", "pitfall"),
    ("pitfall", "pitfall"),
    ("conditional", "important"),
)


def _items(obj: dict) -> list[tuple[Any, str | None]]:
    """(item, category from the list it is in) for both answer forms: category-keyed lists
    (``prompts/generate_rubric.j2``) and one ``criteria`` list of objects."""
    found: list[tuple[Any, str | None]] = []
    for key, category in _LISTS:
        value = obj.get(key)
        if isinstance(value, str | dict):
            value = [value]
        if isinstance(value, list):
            found += [(item, category) for item in value]
    items = obj.get("criteria", obj.get("rubric"))
    if isinstance(items, dict):
        items = [items]
    if isinstance(items, list):
        found += [(item, None) for item in items]
    if not found and not any(k in obj for k, _ in _LISTS) and items is None:
        raise ValueError("the JSON object has no 'essential' / 'important' / 'pitfalls' lists")
    return found


def read_drafts(obj: dict, *, max_criteria: int) -> list[Draft]:
    """The drafted criteria in a generator answer; :class:`ValueError` (a re-ask reason) when none.

    Duplicates (case-insensitive) and statements that are not about the response (a sentence of the
    reference copied into the list) are dropped; a list that only repeats one statement is refused
    (small models loop under greedy decoding; the re-ask shows them the loop). At most
    ``max_criteria`` are kept, in the order written.
    """
    out: list[Draft] = []
    seen: set[str] = set()
    repeats = not_about = 0
    for item, listed in _items(obj):
        raw = item
        category, condition = listed or "important", None
        if isinstance(item, dict):
            raw = item.get("text") or item.get("criterion") or item.get("statement")
            if listed is None or "category" in item:
                category = category_of(item.get("category") or item.get("type") or listed)
            condition = _condition(item.get("applies_if") or item.get("condition"))
        text = clean_statement(raw)
        if text is None:
            continue
        if not _SUBJECT.search(text) and text.split()[0].lower() not in _VERBS:
            not_about += 1
            continue
        key = text.casefold().rstrip(".")
        if key in seen:
            repeats += 1
            continue
        seen.add(key)
        out.append(Draft(text, category, condition))
    if not out and not_about:
        raise ValueError('no statement is about the response; start each with "The response"')
    if not out:
        raise ValueError(
            "the lists hold no usable criterion (each needs a statement of at least three words)"
        )
    if len(out) < 2 and repeats:
        # greedy decoding loops: one statement written five times is not a rubric; the re-ask shows it
        raise ValueError(
            "the criteria repeat one statement; write different criteria, each checking a different part "
            "of a good answer"
        )
    if not any(not d.pitfall for d in out):
        raise ValueError("every criterion is a pitfall: add criteria a good answer meets")
    return out[:max_criteria]


__all__ = ["Draft", "category_of", "read_drafts"]
