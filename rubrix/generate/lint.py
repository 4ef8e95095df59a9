"""A model-free lint of drafted criteria: the faults users of generated rubrics report most.

Each rule names a way a criterion can reward the wrong thing without any judge being wrong:

* ``compound`` — two checks joined into one statement ("names the dose and explains the risk"):
  a response doing one of the two gets the whole weight or none of it, and reward-hacking studies
  find such criteria the easiest to exploit. A list of things inside *one* check ("names apples and
  pears") is not compound; a second verb or a second clause is.
* ``vague`` — an evaluative adjective ("clear", "helpful", "appropriate") with nothing that says
  how to tell: no example, no quoted text, no number, no "such as" or "that ...".
* ``restates_prompt`` — the criterion is the request itself ("The response answers the
  question", or a long span copied from the prompt): every on-topic answer meets it.
* ``rewards_length`` — a positive criterion that pays for size ("detailed", "comprehensive",
  "at least 500 words" when the prompt asked for no length): padding meets it.

The rules are heuristics over words, on purpose: they cost nothing, run before any judge call,
and every finding says which words triggered it, so a user can see why a criterion was dropped
and overrule the lint (``--lint warn``). The discrimination check (:mod:`.discriminate`) is the
measurement; the lint only removes what would waste it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

RULES = ("compound", "vague", "restates_prompt", "rewards_length")

_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*|\d+(?:\.\d+)?")
_STOP = frozenset(
    """
a an the and or but of to in on at for with by from as is are be been being it its this that these those
response answer user user's question prompt request does do not no any all each every some which who what
when where how why if then than so such should must can will would may might also their there them they
you your i me my we our he she his her about into over under more most less very just only
""".split()
)
#: evaluative adjectives that say nothing checkable on their own
_VAGUE = frozenset(
    """
good great nice excellent appropriate appropriately adequate adequately proper properly clear clearly
helpful relevant effective effectively engaging reasonable sufficient sufficiently high-quality
well-written well-structured well-organized quality suitable satisfactory informative insightful
thoughtful meaningful useful valuable coherent comprehensive robust solid strong compelling polished
professional
""".split()
)
#: what turns a vague word into a test: an example, a quote, a number, a named thing, a clause
_ANCHOR = re.compile(
    r"\bsuch as\b|\be\.g\.|\bfor example\b|\bfor instance\b|\bincluding\b|\bnamely\b|"
    r"\bthat\s+\w+|[\"“'‘`]|\d|:",
    re.IGNORECASE,
)
#: size as merit; a pitfall saying the same ("is unnecessarily long") is fine
_LENGTH = re.compile(
    r"\b(?:detailed|comprehensive|thorough(?:ly)?|extensive(?:ly)?|lengthy|in[- ]depth|"
    r"elaborate(?:s|ly)?|exhaustive(?:ly)?|long|longer|as much|as many|more (?:information|"
    r"details?|examples?)|multiple paragraphs|at least \d+ (?:words|sentences|paragraphs|"
    r"examples|points|items|lines))\b",
    re.IGNORECASE,
)
#: the request itself, in the words graders use for it
_GENERIC = re.compile(
    r"\b(?:answers?|addresses|responds? to|follows?|fulfils?|fulfills?|completes?|"
    r"satisf(?:ies|y)) (?:the |all (?:of )?the |every |each )?(?:user'?s? )?"
    r"(?:question|prompt|request|query|task|instructions?)\b",
    re.IGNORECASE,
)
#: verbs a criterion starts with ("The response *states* ...", HealthBench's "*Advises* the patient ...");
#: after "and" / "as well as" / ";" one starts a second check
CRITERION_VERBS = """
accounts acknowledges addresses advises adds applies asks avoids calculates cites clarifies compares
concludes confirms considers contains corrects covers declines defines describes discusses distinguishes
does encourages ends explains expresses gives highlights identifies includes indicates lists maintains
makes mentions notes offers outlines points presents provides proposes quotes rates recommends refers
refuses reminds reports requests responds returns reviews says sets shows specifies starts states
suggests summarizes supports tells uses warns writes
""".split()
_VERBS = frozenset(CRITERION_VERBS)
_SECOND = re.compile(
    r"(?:,?\s+and\s+(?:also\s+|then\s+)?|,?\s+as well as\s+|\s*;\s*(?:and\s+)?|"
    r",?\s+while also\s+|,?\s+and it\s+)(?:(?:it|the response|the answer)\s+)?"
    r"(?:also\s+)?(" + "|".join(CRITERION_VERBS) + r"|is|has)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Finding:
    """One lint finding: the rule and the words that triggered it."""

    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.detail}"


def _content_words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text) if w.lower() not in _STOP and len(w) > 1]


def _stem(word: str) -> str:
    """A plural or third-person ``s`` removed, so "writes" matches "write" and "leaves" "leave"."""
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _strip_subject(text: str) -> str:
    return re.sub(r"^\s*(?:the\s+)?(?:response|answer)\s+", "", text, flags=re.IGNORECASE)


def compound(text: str) -> Finding | None:
    """Two checks in one statement: a second verb after "and" / "as well as" / ";"."""
    body = _strip_subject(text)
    m = _SECOND.search(body)
    if m is not None and len(body[: m.start()].split()) >= 2:
        return Finding("compound", f"a second check starts at {m.group(0).strip()!r}")
    if len(re.findall(r"[.!?](?:\s|$)", text.strip())) >= 2:
        return Finding("compound", "more than one sentence")
    return None


def vague(text: str) -> Finding | None:
    """An evaluative adjective with no example, quote, number or clause that makes it testable."""
    words = [w.lower() for w in _WORD.findall(text)]
    hits = [w for w in words if w in _VAGUE]
    if not hits or _ANCHOR.search(text):
        return None
    # what remains once the vague words and the boilerplate are gone: too little to test
    concrete = [
        w
        for w in _content_words(_strip_subject(text))
        if w not in _VAGUE
        and w not in _VERBS
        and w
        not in (
            "is",
            "be",
            "uses",
            "provides",
            "gives",
            "has",
            "way",
            "manner",
            "information",
            "explanation",
            "overall",
            "tone",
            "style",
            "format",
            "structure",
            "content",
        )
    ]
    if len(concrete) >= 3:
        return None
    return Finding(
        "vague", f"{', '.join(dict.fromkeys(hits))} without a test (no example, number, quote or 'such as')"
    )


def restates_prompt(text: str, prompt: str) -> Finding | None:
    """The request itself: generic wording, or most of the criterion copied from the prompt."""
    m = _GENERIC.search(text)
    if m is not None and len(_content_words(_strip_subject(text))) <= 4:
        return Finding("restates_prompt", f"{m.group(0)!r} is true of every on-topic answer")
    crit = [_stem(w) for w in _content_words(_strip_subject(text))]
    if len(crit) < 4 or not prompt:
        return None
    prompt_words = [_stem(w) for w in _content_words(prompt)]
    have = set(prompt_words)
    share = sum(w in have for w in crit) / len(crit)
    run = _longest_common_run(crit, prompt_words)
    if share >= 0.85 and run >= 5:
        return Finding("restates_prompt", f"{share:.0%} of its words and a run of {run} come from the prompt")
    return None


def rewards_length(text: str, prompt: str, *, pitfall: bool) -> Finding | None:
    """A positive criterion that pays for size, unless the prompt itself asks for that size."""
    if pitfall:
        return None
    m = _LENGTH.search(text)
    if m is None:
        return None
    numbers = re.findall(r"\d+", m.group(0))
    if numbers and all(n in re.findall(r"\d+", prompt or "") for n in numbers):
        return None  # the prompt asked for this length: checking it is instruction following
    return Finding("rewards_length", f"{m.group(0)!r} pays for length; padding meets it")


def lint(text: str, prompt: str = "", *, pitfall: bool = False) -> list[Finding]:
    """Every finding for one criterion (empty: clean). ``prompt`` is the conversation as text."""
    found = [
        compound(text),
        vague(text),
        restates_prompt(text, prompt),
        rewards_length(text, prompt, pitfall=pitfall),
    ]
    return [f for f in found if f is not None]


def _longest_common_run(a: list[str], b: list[str]) -> int:
    """Length of the longest run of words that appears in both sequences (dynamic programming)."""
    best = 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            if x == y:
                cur[j] = prev[j - 1] + 1
                best = max(best, cur[j])
        prev = cur
    return best


__all__ = [
    "CRITERION_VERBS",
    "Finding",
    "RULES",
    "compound",
    "lint",
    "restates_prompt",
    "rewards_length",
    "vague",
]
