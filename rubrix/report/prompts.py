"""The judge prompts of a run, in a compact form the page expands on demand.

Embedding every rendered prompt would cost (criteria × samples) copies of the template text: for
10,000 samples and 12 criteria, hundreds of megabytes. Instead each distinct *skeleton* is
rendered once — the real templates and rubric, with sentinel strings in place of the sample's
prompt, response and reference — and the page substitutes a sample's texts and the 8-hex-digit
digests of its fence markers (``render.fence`` hashes the fenced text) back in.

The substitution is checked here, in Python, against a real render of every sample: a sample
whose prompt the skeleton does not reproduce exactly (a user template that transforms the text,
branches on it, or the fence's rare re-hash) gets its rendered messages embedded whole, up to
:data:`MAX_FULL` samples. So what the page shows is what ``rubrix prompts render`` prints, or the
page says that it has no prompt for that sample.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from ..records import Sample
from ..render import format_conversation
from ..rubric import Rubric

SENTINELS = {"p": "\ue000PROMPT\ue000", "r": "\ue000RESPONSE\ue000", "f": "\ue000REFERENCE\ue000"}
MAX_FULL = 200
"""Samples whose prompts the skeletons cannot reproduce are embedded whole up to this many."""


def digest(text: str) -> str:
    """The 8 hex digits ``render.fence`` puts in a marker for ``text``."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


SENTINEL_DIGESTS = {k: digest(v) for k, v in SENTINELS.items()}


def expand(skeleton: str, texts: dict[str, str], digests: dict[str, str]) -> str:
    """What the page's JavaScript does (``expand`` in report.js): put a sample's texts back."""
    out = skeleton
    for key in SENTINELS:
        out = out.replace(SENTINEL_DIGESTS[key], digests.get(key, ""))
    for key, sentinel in SENTINELS.items():
        out = out.replace(sentinel, texts.get(key, ""))
    return out


class PromptTable:
    """Skeletons, an interned string table and the per-sample fallbacks, for the page's JSON."""

    def __init__(self, scorer: Any, verdict: str):
        self.scorer = scorer
        self.verdict = verdict
        self.strings: list[str] = []
        self._index: dict[str, int] = {}
        self.skeletons: list[list[dict[str, Any]]] = []
        self._skeleton_index: dict[str, int] = {}
        self._by_rubric: dict[str, int] = {}
        self.full: dict[int, list[dict[str, Any]]] = {}
        self.unavailable: list[str] = []

    def text(self, segments: list[int], criterion: str) -> str:
        """A skeleton message from its interned segments, ``-1`` standing for the request's criterion
        text (``report.js`` joins them the same way, taking the text from the sample's rubric)."""
        return "".join(criterion if k < 0 else self.strings[k] for k in segments)

    def _intern(self, text: str) -> int:
        idx = self._index.get(text)
        if idx is None:
            idx = self._index[text] = len(self.strings)
            self.strings.append(text)
        return idx

    def _requests(self, sample: Sample) -> list[dict[str, Any]]:
        return [
            {
                "c": r.meta.get("criterion"),
                "kind": r.kind,
                "answer": [o for o, _ in r.options],
                "m": [[m["role"], m["content"]] for m in r.messages],
            }
            for r in self.scorer.requests_for(sample)
        ]

    def _skeleton(self, sample: Sample, rubric: Rubric) -> int:
        """The index of the sample's skeleton. Criterion texts are left out of it (segment ``-1``),
        so rubrics of the same shape — HealthBench rows with ids c1..c10 — share one skeleton."""
        key = f"{rubric.content_hash()}|{'ref' if sample.reference is not None else 'noref'}"
        if key not in self._by_rubric:
            ghost = Sample(
                id=sample.id,
                prompt=SENTINELS["p"],
                response=SENTINELS["r"],
                reference=SENTINELS["f"] if sample.reference is not None else None,
                rubric=sample.rubric,
            )
            skeleton = []
            for r in self._requests(ghost):
                ctext = _criterion_text(rubric, r["c"])
                m = [
                    [role, [k for t in _segments(text) for k in self._pieces(t, ctext)]]
                    for role, text in r["m"]
                ]
                skeleton.append({**r, "m": m})
            blob = json.dumps(skeleton, sort_keys=True)
            if blob not in self._skeleton_index:
                self._skeleton_index[blob] = len(self.skeletons)
                self.skeletons.append(skeleton)
            self._by_rubric[key] = self._skeleton_index[blob]
        return self._by_rubric[key]

    def _pieces(self, segment: str, criterion: str) -> list[int]:
        if not criterion or criterion not in segment:
            return [self._intern(segment)]
        out: list[int] = []
        for n, part in enumerate(segment.split(criterion)):
            if n:
                out.append(-1)
            if part:
                out.append(self._intern(part))
        return out

    def add(
        self, index: int, sample: Sample, rubric: Rubric, texts: dict[str, str], digests: dict[str, str]
    ) -> int | None:
        """Register sample ``index``; returns its skeleton's index, or None when it is embedded whole."""
        key = self._skeleton(sample, rubric)
        skeleton = self.skeletons[key]
        probe = _probe_rubric(rubric, self.scorer.mode)
        if probe is not None:  # one request per template kind stands for the others of that kind
            real = self._requests(dataclasses.replace(sample, rubric=probe))
            ids = {c.id for c in probe.criteria}
            expected = [r for r in skeleton if r["c"] in ids]
        else:
            real, expected = self._requests(sample), skeleton
        rebuilt = [
            [
                [role, expand(self.text(segs, _criterion_text(rubric, r["c"])), texts, digests)]
                for role, segs in r["m"]
            ]
            for r in expected
        ]
        if len(real) == len(rebuilt) and all(r["m"] == b for r, b in zip(real, rebuilt, strict=True)):
            return key
        if len(self.full) < MAX_FULL:
            self.full[index] = self._requests(sample)
        else:
            self.unavailable.append(sample.id)
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "available": True,
            "verdict": self.verdict,
            "sentinels": SENTINELS,
            "sentinel_digests": SENTINEL_DIGESTS,
            "strings": self.strings,
            "skeletons": self.skeletons,
            "full": {str(k): v for k, v in self.full.items()},
            "unavailable": self.unavailable[:50],
            "unavailable_count": len(self.unavailable),
        }


_SPLIT = re.compile(
    "(" + "|".join(re.escape(x) for x in [*SENTINELS.values(), *SENTINEL_DIGESTS.values()]) + ")"
)


def _segments(text: str) -> list[str]:
    """A message cut at the sentinels, so the text around them (the rules, "Question:", the
    question after the answer) is stored once however many criteria and rubrics share it; only
    the criterion's own tail is stored per criterion."""
    return [t for t in _SPLIT.split(text) if t]


def _criterion_text(rubric: Rubric, criterion_id: str | None) -> str:
    if criterion_id is None:
        return ""
    try:
        return rubric.criterion(criterion_id).text
    except KeyError:
        return ""


def _probe_rubric(rubric: Rubric, mode: str) -> Rubric | None:
    """The rubric's first binary and first scale criterion, or None where requests are not one per
    criterion (checklist mode, holistic rubrics): then every request of the sample is checked.

    Requests of one template kind differ only in the criterion text, which is part of the
    skeleton, so checking one of each kind per sample checks the substitution of the sample's
    texts, which is what can go wrong.
    """
    if mode != "criteria" or not rubric.criteria or rubric.aggregation == "implicit":
        return None
    picked = []
    for scale in (False, True):
        first = next((c for c in rubric.criteria if c.is_scale == scale), None)
        if first is not None:
            picked.append(first)
    return dataclasses.replace(rubric, criteria=tuple(picked))


def sample_texts(sample: Sample) -> tuple[dict[str, str], dict[str, str]]:
    """The texts the templates receive for a sample, and their fence digests."""
    texts = {"p": format_conversation(sample.prompt), "r": sample.response or ""}
    if sample.reference is not None:
        texts["f"] = sample.reference
    return texts, {k: digest(v) for k, v in texts.items()}


def build_prompts(
    samples: Sequence[Sample | None],
    run_rubric: Rubric | None,
    *,
    prompts_dir: str | None,
    mode: str,
    verdict: str,
    tick: Callable[[int], None] | None = None,
) -> tuple[dict[str, Any], list[int | None]]:
    """The page's prompt table and each sample's skeleton key (None: embedded whole or unknown)."""
    from ..judges.fake import FakeJudge
    from ..scoring import Scorer

    style = verdict if verdict in ("token", "json") else "token"
    scorer = Scorer(run_rubric, FakeJudge(), prompts=prompts_dir, mode=mode, verdict=style, cache=False)
    table = PromptTable(scorer, style)
    keys: list[int | None] = []
    for i, sample in enumerate(samples):
        if sample is None or (sample.rubric or run_rubric) is None:
            keys.append(None)
        else:
            texts, digests = sample_texts(sample)
            keys.append(table.add(i, sample, sample.rubric or run_rubric, texts, digests))
        if tick and i % 200 == 199:
            tick(200)
    return table.to_dict(), keys
