"""Contrast answers for the discrimination check: a good answer and controlled degradations of it.

A criterion earns its place in a rubric only if it tells a good answer from a worse one. The worse
ones are built from the good answer (the reference, or one the generator wrote) so that each
differs from it in one known way:

===================== ============ ==================================================================
kind                  built by     what changes
===================== ============ ==================================================================
``wrong_fact``        generator    one sentence rewritten with a key fact made wrong (an *edit*: the
                                   generator names the sentence and its wrong version, the edit is
                                   applied here, so the rest of the answer is byte-identical)
``missing_part``      generator    a required part removed (the generator quotes it, it is cut here);
                                   without a generator: the second half of the sentences is cut
``broken_instruction`` generator   an answer that follows the request except one instruction
``padded``            here         the good answer plus content-free filler paragraphs
``off_topic``         here         a fluent answer to a different question
===================== ============ ==================================================================

Edits rather than rewrites: a small model asked to "rewrite the answer with a wrong fact" returns
a shorter, differently worded answer, and a criterion that catches it may be catching the rewording.
An edit changes one sentence, and it costs a few dozen generated tokens instead of the answer's
length. ``padded`` is neutral, not worse: a criterion must not *prefer* it (that is a criterion that
rewards length), but a positive criterion need not catch it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

#: every degradation, in the order they are built and reported
KINDS = ("wrong_fact", "missing_part", "broken_instruction", "padded", "off_topic")
GENERATED = ("wrong_fact", "missing_part", "broken_instruction")


@dataclass(frozen=True)
class Contrast:
    """One answer of the contrast set: ``kind`` is ``good`` or a degradation from :data:`KINDS`."""

    kind: str
    text: str
    built_by: str  # reference | generated | generator-edit | deterministic
    note: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "built_by": self.built_by, "chars": len(self.text), **self.note}


_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(*\-])|\n+")
_WS = re.compile(r"\s+")

_FILLER = (
    "It is worth keeping in mind that every situation is different, and the points above are meant as a "
    "general overview rather than a complete treatment of the topic.",
    "As mentioned above, these considerations matter, and it is always a good idea to think carefully "
    "about them before making any decision.",
    "In summary, the information provided here covers the main aspects of the question, and there are many "
    "other perspectives that could also be taken into account.",
    "Overall, this is a complex subject, and different people may approach it in different ways depending "
    "on their circumstances, preferences and goals.",
    "To put it another way, the key idea is to consider the relevant factors and to weigh them thoughtfully "
    "in light of the specific context at hand.",
    "Finally, it should be noted that further reading and reflection can always help to deepen one's "
    "understanding of the issues discussed.",
)

_OFF_TOPIC = (
    "The water cycle describes how water moves between the oceans, the air and the land. Heat from the "
    "sun evaporates water from seas and lakes; the vapour rises, cools and condenses into clouds. When the "
    "droplets grow heavy enough they fall as rain or snow, which collects in rivers, soaks into the ground "
    "or returns to the sea, and the cycle begins again.",
    "Sourdough bread is leavened by a starter, a mixture of flour and water colonised by wild yeasts and "
    "lactic acid bacteria. Bakers feed the starter daily, mix it with flour, water and salt, and let the "
    "dough ferment slowly for many hours. The long fermentation gives the bread its open crumb, its chewy "
    "crust and its slightly sour taste.",
    "Chess is played on a board of sixty-four squares by two players who each command sixteen pieces. The "
    "goal is to checkmate the opposing king, trapping it so that it cannot escape capture. Openings develop "
    "the pieces and fight for the centre, the middlegame turns on tactics and plans, and the endgame often "
    "decides the result with only a few pieces left.",
    "The Great Barrier Reef stretches for more than two thousand kilometres along the coast of Queensland. "
    "It is built by colonies of tiny coral polyps and is home to thousands of species of fish, molluscs "
    "and sea turtles. Rising sea temperatures cause coral bleaching, which has damaged large parts of the "
    "reef in recent decades.",
)


def normalize(text: str) -> str:
    return _WS.sub(" ", text or "").strip()


def sentences(text: str) -> list[str]:
    """The answer cut into sentences and lines (list items count as sentences)."""
    return [s.strip() for s in _SENTENCE.split(text or "") if s and s.strip()]


def _pick(key: str, n: int) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % n


def padded(good: str, key: str = "") -> Contrast:
    """The good answer followed by filler that adds words and no information (about as long again,
    at most all the filler sentences)."""
    words = len(good.split())
    start = _pick("pad|" + key, len(_FILLER))
    added: list[str] = []
    while len(" ".join(added).split()) < max(words, 40) and len(added) < len(_FILLER):
        added.append(_FILLER[(start + len(added)) % len(_FILLER)])
    paragraphs = [" ".join(added[i : i + 2]) for i in range(0, len(added), 2)]
    return Contrast(
        "padded",
        good.rstrip() + "\n\n" + "\n\n".join(paragraphs),
        "deterministic",
        {"added_words": len(" ".join(added).split())},
    )


def off_topic(prompt_text: str, key: str = "") -> Contrast:
    """A fluent answer about something else: of the built-in texts, the one sharing fewest words with
    the prompt (ties broken by a hash of ``key``)."""
    words = set(re.findall(r"[a-z]{4,}", (prompt_text or "").lower()))
    start = _pick("off|" + key, len(_OFF_TOPIC))
    order = [(start + i) % len(_OFF_TOPIC) for i in range(len(_OFF_TOPIC))]
    best = min(order, key=lambda i: len(words & set(re.findall(r"[a-z]{4,}", _OFF_TOPIC[i].lower()))))
    return Contrast("off_topic", _OFF_TOPIC[best], "deterministic", {"text": best})


def truncated(good: str) -> Contrast:
    """The deterministic ``missing_part``: the second half of the sentences cut away."""
    parts = sentences(good)
    keep = max(1, len(parts) // 2) if len(parts) > 1 else 0
    text = " ".join(parts[:keep]) if keep else ""
    return Contrast("missing_part", text, "deterministic", {"removed_sentences": len(parts) - keep})


# ---------------------------------------------------------------------------------------------
# edits proposed by the generator, applied here


def locate(needle: str, haystack: str) -> tuple[int, int] | None:
    """Where ``needle`` (a sentence the generator copied) is in ``haystack``: exact, then ignoring
    whitespace and case, then the sentence sharing most of its words (at least 70%)."""
    needle = (needle or "").strip().strip("\"'").strip()
    if len(needle) < 2:
        return None
    i = haystack.find(needle)
    if i >= 0:
        return i, i + len(needle)
    pattern = r"\s+".join(re.escape(w) for w in needle.split())
    m = re.search(pattern, haystack, re.IGNORECASE)
    if m is not None:
        return m.start(), m.end()
    want = set(re.findall(r"\w+", needle.lower()))
    if len(want) < 3:
        return None
    best, best_share = None, 0.0
    for s in sentences(haystack):
        have = set(re.findall(r"\w+", s.lower()))
        share = len(want & have) / len(want | have) if have else 0.0
        if share > best_share:
            best, best_share = s, share
    if best is None or best_share < 0.7:
        return None
    i = haystack.find(best)
    return (i, i + len(best)) if i >= 0 else None


def read_wrong_fact(obj: dict, good: str) -> Contrast:
    """``{"original": sentence, "wrong": sentence}`` applied to ``good``; :class:`ValueError` (a re-ask
    reason) when the sentence is not in the answer or the wrong version is the same."""
    original, wrong = obj.get("original"), obj.get("wrong")
    if not isinstance(original, str) or not isinstance(wrong, str) or not wrong.strip():
        raise ValueError('the object needs "original" and "wrong" strings')
    span = locate(original, good)
    if span is None:
        raise ValueError('"original" must be a sentence copied exactly from the answer')
    if normalize(wrong).lower() == normalize(good[span[0] : span[1]]).lower():
        raise ValueError('"wrong" is the same as "original": change one key fact so that it becomes false')
    text = good[: span[0]] + wrong.strip() + good[span[1] :]
    return Contrast(
        "wrong_fact",
        text,
        "generator-edit",
        {"original": good[span[0] : span[1]][:300], "wrong": wrong.strip()[:300]},
    )


def read_missing_part(obj: dict, good: str) -> Contrast:
    """``{"part": text}`` cut out of ``good``; :class:`ValueError` when it is not in the answer or is
    the whole answer."""
    part = obj.get("part")
    if isinstance(part, list):
        part = " ".join(p for p in part if isinstance(p, str))
    if not isinstance(part, str) or not part.strip():
        raise ValueError('the object needs a "part" string')
    span = locate(part, good)
    if span is None:
        raise ValueError('"part" must be copied exactly from the answer')
    text = (good[: span[0]].rstrip() + "\n" + good[span[1] :].lstrip()).strip()
    if not text or normalize(text) == normalize(good):
        raise ValueError('"part" must be one required part of the answer, not all of it')
    return Contrast("missing_part", text, "generator-edit", {"removed": good[span[0] : span[1]][:300]})


def read_broken_instruction(obj: dict, good: str) -> Contrast:
    """``{"instruction": text, "answer": text}``: an answer that ignores one instruction."""
    instruction, answer = obj.get("instruction"), obj.get("answer")
    if not isinstance(answer, str) or not answer.strip():
        raise ValueError('the object needs an "answer" string')
    if normalize(answer) == normalize(good):
        raise ValueError('"answer" must break the instruction, not repeat the good answer')
    return Contrast(
        "broken_instruction",
        answer.strip(),
        "generated",
        {"instruction": instruction.strip()[:300] if isinstance(instruction, str) else None},
    )


READERS = {
    "wrong_fact": read_wrong_fact,
    "missing_part": read_missing_part,
    "broken_instruction": read_broken_instruction,
}
HINTS = {
    "wrong_fact": 'Use the form {"original": "a sentence copied from the answer", "wrong": "the same '
    'sentence with one key fact changed so that it is false"}. ',
    "missing_part": 'Use the form {"part": "a sentence or list item copied from the answer"}. ',
    "broken_instruction": 'Use the form {"instruction": "...", "answer": "..."}. ',
}


__all__ = [
    "Contrast",
    "GENERATED",
    "KINDS",
    "READERS",
    "HINTS",
    "locate",
    "off_topic",
    "padded",
    "read_broken_instruction",
    "read_missing_part",
    "read_wrong_fact",
    "sentences",
    "truncated",
]
