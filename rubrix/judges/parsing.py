"""Reading judge answers: token probabilities, free-text labels and (repaired) JSON.

Every function here is pure and returns ``None`` when it cannot read an answer with confidence.
That is deliberate: a judge that guesses turns a garbled answer into a number, and a wrong
number is worse than a re-ask or a typed ``parse`` error (see :mod:`rubrix.judges.base`).
"""

from __future__ import annotations

import ast
import functools
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

Options = tuple[tuple[str, float], ...]

# Characters a model wraps around a one-word answer ("**Yes**", "`B`", "[[A]]", "'4'") that carry
# no meaning. Stripping them lets "**No**." read the same as "No".
_DECORATION = " \t\r\n*_`'\"“”‘’#>[](){}<>-–—:;.,!?"

# ---------------------------------------------------------------------------------------------
# logprobs
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _label_keys(options: Options) -> tuple[dict[str, str], bool]:
    """Normalized spelling -> label. Digit labels keep exact digits, words are case-folded.
    Cached: the same few option sets are read for every verdict of a run."""
    digit = all(label.strip().isdigit() for label, _ in options)
    return {(label.strip() if digit else label.strip().casefold()): label for label, _ in options}, digit


def label_probs(top_logprobs: Any, options: Options) -> dict[str, float]:
    """Probability mass per option label (unnormalized), summed over every token that spells it.

    A model spreads one answer over several tokens ("Yes", " yes", "YES"); their summed
    probability (the logsumexp of their log-probabilities) is what the answer's probability
    actually is. Tokens arrive decoded, with their leading space; they are compared without
    whitespace and, for words, without case. Digit labels match only the exact digit: "1" must
    not absorb "10" or "1." pieces of another answer. Accepts ``{token: logprob}``,
    ``[(token, logprob)]`` or the OpenAI wire form ``[{"token": ..., "logprob": ...}]``.
    """
    keys, digit = _label_keys(options)
    if isinstance(top_logprobs, Mapping):
        pairs: Iterable[Any] = top_logprobs.items()
    else:
        pairs = top_logprobs or ()
    out: dict[str, float] = {}
    exp = math.exp
    for item in pairs:
        if isinstance(item, Mapping):
            token, lp = item.get("token"), item.get("logprob")
        else:
            token, lp = item[0], item[1]
        if not isinstance(token, str) or lp is None:
            continue
        token = token.strip()
        label = keys.get(token if digit else token.casefold())
        if label is None:
            continue
        try:
            prob = exp(float(lp))
        except (TypeError, ValueError, OverflowError):
            continue
        if prob == prob:  # not NaN
            out[label] = out.get(label, 0.0) + prob
    return out


def read_logprobs(top_logprobs: Any, options: Options) -> tuple[float, float, str] | None:
    """``(expected value, coverage, most likely label)`` from one token's top logprobs, or None.

    The one-pass form of :func:`expected_from_logprobs` for judges that also report the label.
    """
    probs = label_probs(top_logprobs, options)
    coverage = sum(probs.values())
    if not probs or coverage <= 0.0:
        return None
    values = dict(options)
    p = sum(values[label] * prob for label, prob in probs.items()) / coverage
    lo, hi = min(values.values()), max(values.values())
    return min(max(p, lo), hi), min(coverage, 1.0), max(probs, key=probs.__getitem__)


def expected_from_logprobs(top_logprobs: Any, options: Options) -> tuple[float | None, float]:
    """Expected option value under the judge's next-token distribution, and the label coverage.

    Probabilities are renormalized over the labels found, so a judge that puts 60% on "Yes",
    20% on "No" and the rest on "The" reads as p = 0.75; ``coverage`` (0.8 there) says how much of
    the distribution the reading rests on, so a caller can distrust a low-coverage answer.
    Returns ``(None, 0.0)`` when no label is among the top tokens.
    """
    hit = read_logprobs(top_logprobs, options)
    return (None, 0.0) if hit is None else (hit[0], hit[1])


# ---------------------------------------------------------------------------------------------
# free-text labels
# ---------------------------------------------------------------------------------------------

_MARKER = (r"(?:final\s+answer|answer|verdict|score|rating|decision|judge?ment|label|choice|grade|result)"
           r"\s*(?:\([^)\n]{0,30}\))?\s*(?::|=|-|–|\bis\b)\s*")


def _label_regex(options: Options) -> tuple[str, dict[str, str]]:
    """One alternation over the labels (longest first), bounded so "Yes" does not match inside
    "Yesterday", "A" not inside "Answer", and "4" not inside "45" or "4.5". Single letters match
    only in capitals: a lowercase "a" is the article, not answer A."""
    labels = sorted((label for label, _ in options), key=len, reverse=True)
    alts = []
    for label in labels:
        bare = label.strip()
        esc = re.escape(bare)
        if bare.isdigit():
            alts.append(rf"(?<![\d.]){esc}(?!\d|\.\d)")
        elif len(bare) == 1 and bare.isalpha():
            alts.append(rf"(?<![A-Za-z0-9_])(?-i:{esc.upper()})(?![A-Za-z0-9_])")
        else:
            alts.append(rf"(?<![A-Za-z0-9_]){esc}(?![A-Za-z0-9_])")
    lookup = {label.strip().casefold(): label for label in labels}
    return "(" + "|".join(alts) + ")", lookup


def _canon(match: str, lookup: dict[str, str]) -> str:
    return lookup[match.strip().casefold()]


# "Yes or No", "A/B", "1 - 5": a label offered together with another one restates the question.
_OFFERED = r"[\s*_`'\"]*(?:/|\||\bor\b|\band\b|\bvs\.?|-|–|\bto\b)[\s*_`'\"]*"


def _is_offered(offered: re.Pattern[str], label: str, rest: str, top: str | None) -> bool:
    """Whether the text right after a label offers another one: "Yes or No", "A/B", "1-5".

    "4/5" and "4 out of 5" are scores on a five-point scale, not a restatement of it.
    """
    if top is not None and label.strip().isdigit() and re.match(rf"\s*(?:/|out\s+of)\s*{top}(?!\d)", rest):
        return False
    return offered.match(rest) is not None


def _leading_ok(label: str, rest: str) -> bool:
    """Whether a label opening the text is an answer rather than prose or a list number.

    "1. The response..." is a numbered list, not a score of 1; "A good answer..." uses the article.
    """
    bare = label.strip()
    if bare.isdigit():
        return re.match(r"[.)]\s+\S", rest) is None
    if len(bare) == 1:
        return re.match(r"\s+\w", rest) is None
    return True


def parse_label(text: str | None, options: Options) -> tuple[str, float] | None:
    """Read an answer label from free text, or ``None`` when the text does not commit to one.

    In order of trust:

    1. the LAST explicit marker, "Answer: Yes", "Verdict - **No**", "Score: 4/5", "[[A]]": models
       that reason first often quote the labels on the way ("should I say Yes?") and commit at
       the end;
    2. a text that is just a label ("Yes.", "**No**", "B", "4");
    3. a label that opens the text ("Yes, it names Paris.") unless it is immediately offered
       alongside another label ("Yes or No", "A/B"), which is a restatement of the question;
    4. a last line that is just a label ("...reasoning...\\n\\nNo").

    Text that mentions labels anywhere else without a marker is ambiguous and is rejected.
    """
    if not text or not options:
        return None
    values = dict(options)
    group, lookup = _label_regex(options)
    rx = re.compile(group, re.IGNORECASE)
    offered = re.compile(_OFFERED + group, re.IGNORECASE)
    digits = [label.strip() for label, _ in options if label.strip().isdigit()]
    top = max(digits, key=int) if digits else None
    body = text.strip()

    # 1. explicit markers; the last one wins, skipping restatements like "Answer: Yes or No".
    marked = re.compile(_MARKER + r"[\s*_`'\"“”‘’\[(]*" + group, re.IGNORECASE)
    brackets = re.compile(r"\[\[\s*" + group + r"\s*\]\]", re.IGNORECASE)
    hits = [(m.start(1), m.group(1)) for pat in (marked, brackets) for m in pat.finditer(body)
            if not _is_offered(offered, m.group(1), body[m.end(1):], top)]
    if hits:
        _, raw = max(hits, key=lambda h: h[0])
        label = _canon(raw, lookup)
        return label, values[label]

    # 2. the whole answer is a label.
    core = body.strip(_DECORATION)
    if core.casefold() in lookup:
        label = lookup[core.casefold()]
        return label, values[label]

    # 3. a label opening the text, not offered together with another label.
    lead = body.lstrip(_DECORATION)
    m = rx.match(lead)
    if m:
        rest = lead[m.end():]
        if _is_offered(offered, m.group(1), rest, top) or not _leading_ok(m.group(1), rest):
            return None
        label = _canon(m.group(1), lookup)
        return label, values[label]

    # 4. a final line that is only a label.
    lines = [ln for ln in body.splitlines() if ln.strip(_DECORATION)]
    if lines:
        last = lines[-1].strip(_DECORATION)
        if last.casefold() in lookup:
            label = lookup[last.casefold()]
            return label, values[label]
    return None


# ---------------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------------

_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n?(.*?)(?:```|\Z)", re.DOTALL)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")
_MAX_JSON_CHARS = 200_000


def _scan_object(text: str, start: int) -> tuple[int | None, list[str], str | None]:
    """Walk from the '{' at ``start`` honouring strings; return the index of its matching '}',
    or (None, open brackets, open quote) when the text ends first (a truncated answer)."""
    stack: list[str] = []
    quote: str | None = None
    i, n = start, len(text)
    while i < n:
        c = text[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "\"'":
            # an apostrophe inside a bare word (it's) is not a quote
            if c == "'" and i > 0 and text[i - 1].isalnum():
                pass
            else:
                quote = c
        elif c in "{[":
            stack.append("}" if c == "{" else "]")
        elif c in "}]":
            if stack and stack[-1] == c:
                stack.pop()
                if not stack:
                    return i, [], None
        i += 1
    return None, stack, quote


def _replace_bare_words(s: str, mapping: dict[str, str]) -> str:
    """Replace unquoted words (true/True, null/None, ...) so one literal syntax can read them."""
    out: list[str] = []
    quote: str | None = None
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if quote:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(s[i + 1])
                i += 2
                continue
            if c == quote:
                quote = None
            i += 1
            continue
        if c in "\"'":
            quote = c
            out.append(c)
            i += 1
            continue
        if c.isalpha() or c == "_":
            j = i
            while j < n and (s[j].isalnum() or s[j] == "_"):
                j += 1
            word = s[i:j]
            out.append(mapping.get(word, word))
            i = j
            continue
        out.append(c)
        i += 1
    return "".join(out)


_TO_JSON = {"True": "true", "False": "false", "None": "null"}
_TO_PY = {"true": "True", "false": "False", "null": "None"}


def _try_load(candidate: str) -> dict | None:
    attempts = (
        lambda s: json.loads(s, strict=False),
        lambda s: json.loads(_TRAILING_COMMA.sub(r"\1", _replace_bare_words(s, _TO_JSON)), strict=False),
        # Python literal syntax reads single quotes, trailing commas and True/False/None.
        lambda s: ast.literal_eval(_replace_bare_words(s, _TO_PY)),
    )
    for load in attempts:
        try:
            obj = load(candidate)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if isinstance(obj, dict):
            return obj
    return None


def parse_json_object(text: str | None) -> dict | None:
    """The first JSON object in a model's answer, repaired where the damage is unambiguous.

    Small judges wrap JSON in code fences, add prose around it, leave trailing commas, use single
    quotes or Python's True/False/None, and get cut off by ``max_tokens``. Each of these is
    repaired; anything else returns ``None`` so the caller re-asks instead of guessing.
    """
    if not text:
        return None
    text = text[:_MAX_JSON_CHARS]
    candidates = [m.group(1) for m in _FENCE.finditer(text) if "{" in m.group(1)]
    candidates.append(text)
    for chunk in candidates:
        start = chunk.find("{")
        if start < 0:
            continue
        end, stack, quote = _scan_object(chunk, start)
        if end is not None:
            obj = _try_load(chunk[start:end + 1])
            if obj is not None:
                return obj
            # a stray brace inside prose can end the scan early: try up to the last '}'
            last = chunk.rfind("}")
            if last > end:
                obj = _try_load(chunk[start:last + 1])
                if obj is not None:
                    return obj
            continue
        # truncated: close the open string and brackets, dropping a dangling key or comma
        tail = chunk[start:].rstrip()
        closing = (quote or "") + "".join(reversed(stack))
        for fixed in (tail + closing, re.sub(r",\s*$", "", tail) + closing,
                      re.sub(r",\s*(\"[^\"]*\"\s*:?\s*)?$", "", tail) + "".join(reversed(stack))):
            obj = _try_load(fixed)
            if obj is not None:
                return obj
    return None


# ---------------------------------------------------------------------------------------------
# verdict fields
# ---------------------------------------------------------------------------------------------

_YES = {"yes", "true", "met", "pass", "passed", "y"}
_NO = {"no", "false", "not met", "unmet", "fail", "failed", "n"}


def _find_key(obj: Mapping[str, Any], field: str) -> Any:
    if field in obj:
        return obj[field]
    folded = field.casefold()
    for key, value in obj.items():
        if isinstance(key, str) and key.strip().casefold() == folded:
            return value
    return None


def _bool_label(flag: bool, options: Options) -> tuple[str, float] | None:
    """Map a JSON boolean onto the yes-like or no-like option (binary checks only)."""
    wanted = _YES if flag else _NO
    for label, value in options:
        if label.strip().casefold() in wanted:
            return label, value
    return None


def label_from_json(obj: Any, field: str | None, options: Options) -> tuple[str, float] | None:
    """Like :func:`value_from_json`, returning ``(label, value)``."""
    if isinstance(obj, Mapping) and field is not None:
        raw = _find_key(obj, field)
    else:
        raw = obj
    if isinstance(raw, Mapping):  # {"verdict": {"answer": "Yes", ...}} and the like
        for key in ("answer", "verdict", "value", "label", "met", "score"):
            inner = _find_key(raw, key)
            if inner is not None and not isinstance(inner, Mapping):
                return label_from_json(inner, None, options)
        return None
    values = dict(options)
    lookup = {label.strip().casefold(): label for label, _ in options}
    if isinstance(raw, bool):
        return _bool_label(raw, options)
    if isinstance(raw, (int, float)):
        if isinstance(raw, float) and not math.isfinite(raw):
            return None
        as_int = int(raw) if float(raw).is_integer() else None
        if as_int is not None and str(as_int) in lookup:
            label = lookup[str(as_int)]
            return label, values[label]
        for label, value in options:  # binary 1/0 answered as numbers
            if value == raw and not label.strip().isdigit():
                return label, value
        return None
    if isinstance(raw, str):
        core = raw.strip(_DECORATION).casefold()
        if core in lookup:
            label = lookup[core]
            return label, values[label]
        if core in _YES or core in _NO:
            return _bool_label(core in _YES, options)
        return parse_label(raw, options)
    return None


def value_from_json(obj: Any, field: str | None, options: Options) -> float | None:
    """Read a verdict field from a parsed JSON answer as an option value, or ``None``.

    Accepts what judges actually write: booleans (``true`` -> the Yes-like option), "yes"/"no"
    strings in any case, integers for 1..5 scales (also "4" or 4.0), "A"/"B" for pairwise, and
    1/0 for binary checks. Anything else is unreadable, never coerced.
    """
    hit = label_from_json(obj, field, options)
    return None if hit is None else hit[1]


_BINARY: Options = (("Yes", 1.0), ("No", 0.0))


def checklist_values(obj: Any, ids: Iterable[str]) -> dict[str, float] | None:
    """Per-criterion 1.0/0.0 from a checklist answer; ``None`` if any id is missing or unreadable.

    Accepted shapes: ``{"c1": true, ...}``, ``{"c1": {"met": true, ...}}``, the same nested under
    one wrapper key (``{"criteria": {...}}``), or ``[{"id": "c1", "met": true}, ...]``.
    """
    ids = list(ids)
    if isinstance(obj, Mapping) and not any(_find_key(obj, i) is not None for i in ids):
        nested = [v for v in obj.values() if isinstance(v, (Mapping, list))]
        if len(nested) == 1:
            obj = nested[0]
    if isinstance(obj, list):
        flat: dict[str, Any] = {}
        for item in obj:
            if isinstance(item, Mapping):
                key = _find_key(item, "id") or _find_key(item, "criterion") or _find_key(item, "criterion_id")
                if isinstance(key, str):
                    flat[key] = item
        obj = flat
    if not isinstance(obj, Mapping):
        return None
    out: dict[str, float] = {}
    for cid in ids:
        raw = _find_key(obj, cid)
        if raw is None:
            return None
        hit = label_from_json(raw, None, _BINARY)
        if hit is None:
            return None
        out[cid] = hit[1]
    return out


# ---------------------------------------------------------------------------------------------
# refusals
# ---------------------------------------------------------------------------------------------

_REFUSAL = re.compile(
    r"(?:(?:i'?m\s+|i\s+am\s+)?(?:sorry|afraid|apologi[sz]e)\b[^.!?\n]{0,20}?[,.!]?\s*(?:but\s+)?"
    r"|unfortunately,?\s*)?"
    r"(?:"
    r"i\s*(?:can(?:no|')t|cannot|can\s+not|won'?t|will\s+not|am\s+(?:not\s+able|unable)|'m\s+(?:not\s+able|unable)"
    r"|must\s+decline|(?:have\s+to|need\s+to)\s+decline|do\s+not\s+feel\s+comfortable|don'?t\s+feel\s+comfortable)"
    r"(?:\s+(?:to\s+)?(?:help|assist|evaluate|provide|comply|judge|answer|do\s+that|fulfil+|complete|engage|"
    r"make|give|rate|score|grade|assess|continue|respond|support|process)|[.!]|$)"
    r"|as\s+an\s+ai(?:\s+language\s+model)?,?\s+i\s+(?:can(?:no|')t|cannot|am\s+(?:not|unable)|don'?t|do\s+not)"
    r"|(?:this|that|the)\s+(?:request\s+)?(?:violates|goes\s+against)\s+(?:my|our|the)\s+"
    r"(?:guidelines|policies|policy|usage\s+polic)"
    r")",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"(?<=[.!?\n])\s+")


def cut_at_stop(text: str, stop: Iterable[str] | None) -> str:
    """``text`` up to the earliest occurrence of any stop string (engines may run past one)."""
    cuts = [i for i in (text.find(s) for s in stop or ()) if i >= 0]
    return text[:min(cuts)] if cuts else text


def looks_like_refusal(text: str | None) -> bool:
    """Whether an unreadable answer is the judge declining rather than garbling the format.

    A refusal opens a sentence ("I can't help with that.", "Sorry, but I cannot evaluate this")
    near the start of the answer; a rationale that *quotes* one from the judged response ("the
    assistant says I cannot help") does not count. Callers only ask this after the answer failed
    to parse, so a readable verdict is never discarded because it mentions a refusal.
    """
    if not text:
        return False
    head = text.strip()[:400].replace("’", "'")
    sentences = _SENTENCE.split(head)[:3]
    return any(_REFUSAL.match(s.lstrip(_DECORATION)) for s in sentences)
