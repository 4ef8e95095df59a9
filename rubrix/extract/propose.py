"""Per-pair rubric extraction: Propose → Evaluate → Revise, with every step in a provenance log.

For each preference pair (``chosen`` preferred over ``rejected``):

1. **Propose** (``mode="per"``) a few atomic criteria that explain the preference, or
   (``mode="contrastive"``, OpenRubrics / CDRRM style) first contrast the two answers on a few
   dimensions and then synthesize hard rules and principles, in one structured answer.
2. **Evaluate** by scoring *each response on its own* with the proposed criteria (pointwise, so
   the order of presentation cannot matter, unlike Auto-Rubric's single-order pairwise check).
   The set passes only when ``reward(chosen) - reward(rejected) >= margin``; ties, judge
   failures, parse failures and refusals all fail. Auto-Rubric's ``argmax([0.5, 0.5]) == 0``
   loophole (a tie "passes" whenever the chosen answer was shown first) cannot happen here.
3. **Revise** with the evidence — each criterion's verdict on each response and what was
   expected — up to ``max_rounds`` times. A pair that never passes is dropped and counted.

Of a passing set, only the criteria that point the right way on that pair (met more for
``chosen`` than for ``rejected``) enter the pool that :mod:`.generalize` compresses; the others
are logged with their evidence. Structured answers are parsed with repair
(:func:`~rubrix.judges.parsing.parse_json_object`) and re-asked a bounded number of times with
the bad answer shown back; what still fails is a typed :class:`ExtractionError`.

The provenance log (JSONL, append-only, fsync'd per event) is also the resume state: a pair whose
``done`` or ``skip`` event is in the log is never redone.
"""

from __future__ import annotations

import random
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..aggregate import is_met
from ..cost import CostMeter
from ..errors import InputError, UserError
from ..judges.base import Judge
from ..judges.parsing import looks_like_refusal, parse_json_object
from ..records import FieldMap, Pair, pair_from_dict, pair_problem, read_records
from ..render import PromptRenderer, format_conversation
from ..results import ResultWriter
from ..rubric import Criterion, Rubric

if TYPE_CHECKING:
    from ..scoring import Scorer

MODES = ("per", "contrastive")
POOLS = ("validated", "proposed")
#: weight of a criterion by its kind: a hard rule broken is worse than a principle missed
KIND_WEIGHTS = {"rule": 2.0, "principle": 1.0, "pitfall": -1.0}


class ExtractionError(Exception):
    """A structured answer that could not be obtained: ``error`` is one of the judge error types."""

    def __init__(self, error: str, detail: str, raw: list[str] | None = None):
        super().__init__(f"{error}: {detail}")
        self.error = error
        self.detail = detail
        self.raw = raw or []


# ---------------------------------------------------------------------------------------------
# reading pairs leniently


@dataclass
class SkippedPair:
    """A record that cannot teach anything, and why (``line`` is the 1-based line in the file)."""

    line: int | None
    id: str | None
    reason: str


def load_pairs(path: str | Path, fields: FieldMap = FieldMap(), *,  # noqa: B008 - frozen default
               fmt: str | None = None) -> tuple[list[Pair], list[SkippedPair]]:
    """Read preference pairs, skipping (not failing on) bad records, each with a reason.

    A damaged *file* (not JSON, not UTF-8) still raises :class:`InputError`; a bad *record*
    (missing ``chosen``, a number where text belongs, empty or identical responses, a repeated
    id) is returned in the skipped list so a long run is never stopped by one row.
    """
    pairs: list[Pair] = []
    skipped: list[SkippedPair] = []
    seen: set[str] = set()
    name = str(path)
    for line, row in read_records(path, fmt=fmt):
        rid = row.get(fields.id) if isinstance(row, dict) else None
        rid = str(rid) if isinstance(rid, str | int) and not isinstance(rid, bool) else None
        try:
            pair = pair_from_dict(row, fields, file=name, line=line, default_id_prefix="pair-")
        except InputError as exc:
            skipped.append(SkippedPair(line, rid, f"{exc.field or 'record'}: {exc.message}"))
            continue
        problem = pair_problem(pair)
        if problem is None and pair.id in seen:
            problem = f"duplicate id {pair.id!r}"
        if problem is not None:
            skipped.append(SkippedPair(line, pair.id, problem))
            continue
        seen.add(pair.id)
        pairs.append(pair)
    return pairs, skipped


# ---------------------------------------------------------------------------------------------
# structured generation with repair and bounded re-asks


async def ask_json(judge: Judge, messages: list[dict[str, str]], read: Callable[[dict], Any], *,
                   max_tokens: int, reasks: int = 2, meter: CostMeter | None = None, stage: str = "generate",
                   reask_hint: str = "") -> tuple[Any, list[str]]:
    """Generate, parse JSON with repair, validate with ``read``; re-ask at most ``reasks`` times.

    ``read(obj)`` returns the value or raises :class:`ValueError` saying what is wrong. A re-ask
    shows the model its own answer and the problem (greedy decoding would otherwise repeat
    itself). Returns ``(value, raw answers)``; raises :class:`ExtractionError` with type
    ``parse``, ``refused`` or the generation's own error type when every attempt failed. Every
    attempt is recorded in ``meter`` under ``stage``.
    """
    raws: list[str] = []
    convo = list(messages)
    problem = "no answer"
    for attempt in range(reasks + 1):
        t0 = time.perf_counter()
        gen = (await judge.generate([convo], max_tokens=max_tokens, json_mode=True))[0]
        if meter is not None:
            with meter.stage(stage):
                meter.add_generation(judge, convo, gen, seconds=time.perf_counter() - t0)
        if not gen.ok:
            raise ExtractionError(gen.error or "server", gen.error_detail or "generation failed", raws)
        text = gen.text
        raws.append(text)
        obj = parse_json_object(text)
        if obj is None:
            if looks_like_refusal(text):
                raise ExtractionError("refused", text[:200], raws)
            problem = "the reply was not a JSON object"
        else:
            try:
                return read(obj), raws
            except ValueError as exc:
                problem = str(exc)
        if attempt < reasks:
            convo = list(messages) + [
                {"role": "assistant", "content": text[:2000]},
                {"role": "user", "content": f"That reply cannot be used: {problem}. {reask_hint}"
                                            "Reply with the JSON object only."},
            ]
    raise ExtractionError("parse", f"{problem} after {reasks + 1} attempts", raws)


# ---------------------------------------------------------------------------------------------
# criteria from answers


@dataclass(frozen=True)
class Proposed:
    """One proposed criterion: its statement and kind (``rule`` or ``principle``)."""

    text: str
    kind: str = "principle"


_WS = re.compile(r"\s+")
_PLACEHOLDER = re.compile(r"^\s*<[^>]*>\s*$|\.\.\.$")
#: statements that compare two answers cannot be checked on one answer alone (validation is
#: pointwise): "than the other", "the better answer", "provides a more detailed explanation"
_COMPARATIVE = re.compile(
    r"\bthan (?:the|that|this) (?:other|worse|better|first|second)\b"
    r"|\b(?:the )?(?:other|worse|better|first|second) (?:answer|response)\b"
    r"|\b(?:is|are|provides|gives|offers|uses|has|contains) (?:a |an )?(?:more|less) "
    r"(?!than\b)\w+", re.IGNORECASE)
#: a trailing clause about the other answer ("..., while the worse answer says E."): the part
#: before it is a checkable statement, so the clause is cut rather than the criterion dropped
_VS_CLAUSE = re.compile(r"\s*[,;(]?\s*\b(?:while|whereas|unlike|but|compared (?:to|with)|in contrast to"
                        r"|as opposed to)\b[^.]*\b(?:other|worse|better|first|second|rejected|chosen)\b.*$",
                        re.IGNORECASE)


def clean_statement(item: Any) -> str | None:
    """One checkable statement from a model's list item, or ``None`` for a fragment, a placeholder or
    a comparison between answers (criteria are judged on one answer alone)."""
    if isinstance(item, dict):
        item = item.get("text") or item.get("criterion") or item.get("statement")
    if not isinstance(item, str):
        return None
    text = _WS.sub(" ", item).strip().strip("\"'").strip()
    text = re.sub(r"^(?:\d+[.)]|[-*•])\s*", "", text)
    text = _VS_CLAUSE.sub("", text).rstrip(" ,;")
    if len(text.split()) < 3 or len(text) > 300 or _PLACEHOLDER.search(text) or _COMPARATIVE.search(text):
        return None
    if not text.endswith((".", "?", "!")):
        text += "."
    return text[0].upper() + text[1:]


def read_criteria(obj: dict, *, max_criteria: int, mode: str = "per") -> list[Proposed]:
    """The criteria in a proposal answer; :class:`ValueError` (a re-ask reason) when there are none.

    ``per`` answers hold ``criteria``; ``contrastive`` ones ``hard_rules`` and ``principles``
    (``criteria`` is accepted too, as principles). Duplicates (case-insensitive) and fragments
    shorter than three words are dropped; at most ``max_criteria`` are kept, rules first.
    """
    found: list[Proposed] = []
    groups: list[tuple[str, str]] = [("criteria", "principle")]
    if mode == "contrastive":
        groups = [("hard_rules", "rule"), ("principles", "principle"), ("criteria", "principle")]
    present = False
    for key, kind in groups:
        items = obj.get(key)
        if items is None:
            continue
        present = True
        if isinstance(items, str):
            items = [items]
        if not isinstance(items, list):
            continue
        for item in items:
            text = clean_statement(item)
            if text:
                found.append(Proposed(text, kind))
    if not present:
        want = "'hard_rules' and 'principles'" if mode == "contrastive" else "'criteria'"
        raise ValueError(f"the JSON object has no {want} list")
    out: list[Proposed] = []
    seen: set[str] = set()
    for p in found:
        key = p.text.casefold().rstrip(".")
        if key not in seen:
            seen.add(key)
            out.append(p)
    if not out:
        raise ValueError("the list holds no usable statement (each needs at least three words)")
    return out[:max_criteria]


def proposal_rubric(criteria: list[Proposed], name: str = "proposal") -> Rubric:
    """A throw-away rubric over proposed criteria, for pointwise validation."""
    return Rubric(name=name, criteria=tuple(
        Criterion(id=f"c{i + 1}", text=p.text, weight=KIND_WEIGHTS.get(p.kind, 1.0), tags=(p.kind,))
        for i, p in enumerate(criteria)))


# ---------------------------------------------------------------------------------------------
# the per-pair loop


@dataclass
class ExtractConfig:
    """Options of :func:`extract_pairs` (same defaults as ``rubrix extract``)."""

    mode: str = "per"
    max_rounds: int = 2            # revisions after the first proposal
    max_criteria: int = 4          # per proposal
    margin: float = 0.1            # reward(chosen) - reward(rejected) needed to pass
    reasks: int = 2                # re-asks for an unusable structured answer
    max_tokens: int = 256          # per proposal / revision (doubled for a contrastive proposal)
    max_chars: int = 3000          # prompt / response text shown to the proposer, each
    batch_size: int = 4            # pairs per stage call
    pool: str = "validated"        # what generalization starts from: validated or every proposed criterion

    def check(self) -> None:
        if self.mode not in MODES:
            raise UserError(f"mode must be one of {', '.join(MODES)}", field="--mode")
        if self.pool not in POOLS:
            raise UserError(f"must be one of {', '.join(POOLS)}", field="--pool")
        if self.max_rounds < 0:
            raise UserError("must be >= 0", field="--max-rounds")
        if self.max_criteria < 1:
            raise UserError("must be >= 1", field="--max-criteria")
        if self.batch_size < 1:
            raise UserError("must be >= 1", field="--batch-size")


@dataclass
class PairResult:
    """The outcome for one pair: ``passed``, ``failed`` (never passed) or ``error`` (typed)."""

    pair_id: str
    status: str
    rounds: int
    kept: list[dict[str, Any]] = field(default_factory=list)   # validated criteria with evidence
    proposed: int = 0
    error: str | None = None
    source: str | None = None


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... {len(text) - limit} more characters not shown]"


class ProvenanceLog:
    """Append-only JSONL of every proposal, verdict and revision; also the resume state.

    Rows: ``{"id", "run", "event", "pair", ...}`` with events ``skip``, ``propose``, ``verdict``,
    ``revise``, ``error`` and ``done``. Writes go through :class:`ResultWriter` (one fsync per
    event, a damaged last line cut on resume, an advisory lock against two writers). ``subject``
    names the key that holds what a row is about (``pair`` here; ``rubrix generate`` logs
    ``prompt``).
    """

    def __init__(self, path: str | Path, *, resume: bool = False, run_id: str | None = None,
                 subject: str = "pair"):
        self.path = Path(path)
        self.subject = subject
        self.run_id = run_id or time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self._writer = ResultWriter(self.path, resume=resume)
        self._n = 0
        self.previous: list[dict[str, Any]] = self.rows() if resume else []

    def rows(self) -> list[dict[str, Any]]:
        """Every row in the file: earlier runs' and this one's."""
        rows = []
        for _, row in read_records(self.path, fmt="jsonl"):
            rows.append(row)
        return rows

    def write(self, event: str, pair: str | None, **data: Any) -> None:
        self._n += 1
        row = {"id": f"{self.run_id}:{self._n}", "run": self.run_id, "event": event, self.subject: pair,
               "time": round(time.time(), 3), **data}
        self._writer.write([row])

    def finished(self) -> dict[str, dict[str, Any]]:
        """Subject id -> its last ``done`` or ``skip`` row from earlier runs (what resume skips)."""
        out: dict[str, dict[str, Any]] = {}
        for row in self.previous:
            if row.get("event") in ("done", "skip") and isinstance(row.get(self.subject), str):
                out[row[self.subject]] = row
        return out

    def close(self) -> None:
        self._writer.close()


class PairExtractor:
    """Runs Propose → Evaluate → Revise for pairs, logging each step.

    ``proposer`` writes criteria (generation); ``scorer`` (a :class:`~rubrix.scoring.Scorer`
    holding the validator judge, which may be a different model) scores each response pointwise.
    Both report their cost to the scorer's meter, under the stages ``propose``, ``revise`` and
    ``validate``.
    """

    def __init__(self, proposer: Judge, scorer: Scorer, config: ExtractConfig, *,
                 renderer: PromptRenderer | None = None, log: ProvenanceLog | None = None):
        config.check()
        self.proposer = proposer
        self.scorer = scorer
        self.config = config
        self.renderer = renderer or PromptRenderer()
        self.log = log

    @property
    def meter(self) -> CostMeter:
        return self.scorer.meter

    def _log(self, event: str, pair: str | None, **data: Any) -> None:
        if self.log is not None:
            self.log.write(event, pair, **data)

    def _context(self, pair: Pair) -> dict[str, Any]:
        limit = self.config.max_chars
        return {"prompt": _clip(format_conversation(pair.prompt), limit), "chosen": _clip(pair.chosen, limit),
                "rejected": _clip(pair.rejected, limit),
                "rationale": _clip(pair.rationale, limit) if pair.rationale else None,
                "max_criteria": self.config.max_criteria}

    async def _propose(self, pair: Pair, evidence: list[dict] | None) -> tuple[list[Proposed], list[str]]:
        cfg = self.config
        ctx = self._context(pair)
        if evidence is None:
            template = "extract_contrast.j2" if cfg.mode == "contrastive" else "extract_propose.j2"
            stage = "propose"
        else:
            template, stage = "extract_revise.j2", "revise"
            ctx["evidence"] = evidence
        messages = list(self.renderer.messages(template, **ctx))
        read_mode = cfg.mode if evidence is None else "per"
        per_hint = 'Use the form {"difference": "...", "criteria": ["The response ..."]}. '
        hint = (per_hint if read_mode == "per" else
                'Use the form {"differences": [...], "hard_rules": ["The response ..."], '
                '"principles": ["The response ..."]}. ')
        # a contrastive answer writes its differences before any criterion: give it room, or a
        # verbose model is cut off before the rules (seen with the 0.5B judge at 160 tokens)
        budget = cfg.max_tokens * (2 if read_mode == "contrastive" else 1)
        return await ask_json(self.proposer, messages,
                              lambda obj: read_criteria(obj, max_criteria=cfg.max_criteria, mode=read_mode),
                              max_tokens=budget, reasks=cfg.reasks, meter=self.meter, stage=stage,
                              reask_hint=hint)

    async def _validate(self, pairs: list[Pair], proposals: list[list[Proposed]]) -> list[dict[str, Any]]:
        """Score chosen and rejected of each pair with its proposal, all in one judge call."""
        with self.meter.stage("validate"):
            scored = await self.scorer.ascore_pairs(pairs, [proposal_rubric(crit) for crit in proposals])
        out = []
        for ps, crit in zip(scored, proposals, strict=True):
            rc, rr = ps.chosen, ps.rejected
            evidence = []
            for j, p in enumerate(crit):
                pc, pr = ps.values(f"c{j + 1}")
                evidence.append({"text": p.text, "kind": p.kind, "p_chosen": _r(pc), "p_rejected": _r(pr),
                                 "error": ps.error(f"c{j + 1}")})
            if rc.reward is None or rr.reward is None:
                errs = sorted({e["error"] for e in evidence if e["error"]}) or ["judge"]
                out.append({"passed": False, "reason": "judge error: " + ", ".join(errs), "delta": None,
                            "reward_chosen": _r(rc.reward), "reward_rejected": _r(rr.reward),
                            "evidence": evidence})
                continue
            delta = rc.reward - rr.reward
            if delta >= self.config.margin:
                reason = "chosen wins by the margin"
            elif delta > 0:
                reason = f"chosen ahead by {delta:.3f}, under the margin {self.config.margin}"
            elif delta == 0:
                reason = "tie"
            else:
                reason = "rejected scored higher"
            out.append({"passed": delta >= self.config.margin, "reason": reason, "delta": _r(delta),
                        "reward_chosen": _r(rc.reward), "reward_rejected": _r(rr.reward),
                        "evidence": evidence})
        return out

    @staticmethod
    def _feedback(evidence: list[dict]) -> list[dict[str, Any]]:
        """Evidence as the revision prompt shows it: verdicts in words, with what went wrong."""
        def word(p: float | None) -> str:
            return "unknown" if p is None else ("true" if is_met(p) else "false")

        out = []
        for e in evidence:
            pc, pr = e["p_chosen"], e["p_rejected"]
            note = ""
            if pc is not None and pr is not None:
                if pc < 0.5 and pr < 0.5:
                    note = "false for both"
                elif is_met(pc) and is_met(pr):
                    note = "true for both"
                elif pr > pc:
                    note = "backwards"
            out.append({"text": e["text"], "chosen": word(pc), "rejected": word(pr), "note": note})
        return out

    async def run(self, pairs: list[Pair], on_event: Callable[[str, dict], None] | None = None
                  ) -> list[PairResult]:
        """Extract from ``pairs`` in batches of ``config.batch_size``; one :class:`PairResult` each."""
        results: list[PairResult] = []
        size = self.config.batch_size
        for start in range(0, len(pairs), size):
            batch = pairs[start:start + size]
            batch_results = await self._run_batch(batch, on_event)
            results.extend(batch_results)
            if on_event:
                on_event("batch", {"done": start + len(batch), "results": batch_results})
        return results

    async def _run_batch(self, batch: list[Pair], on_event) -> list[PairResult]:
        cfg = self.config
        state: dict[str, dict[str, Any]] = {p.id: {"round": 0, "proposed": set(), "evidence": None,
                                                  "failed_texts": set()}
                                             for p in batch}
        final: dict[str, PairResult] = {}
        active = list(batch)
        t_start = {p.id: time.perf_counter() for p in batch}
        while active:
            proposals: list[list[Proposed]] = []
            ready: list[Pair] = []
            for pair in active:
                st = state[pair.id]
                event = "propose" if st["evidence"] is None else "revise"
                try:
                    crit, raws = await self._propose(pair, st["evidence"])
                except ExtractionError as exc:
                    self._log("error", pair.id, round=st["round"], stage=event, error=exc.error,
                              detail=exc.detail, raw=exc.raw)
                    final[pair.id] = PairResult(pair.id, "error", st["round"], proposed=len(st["proposed"]),
                                                error=f"{event}: {exc.error}: {exc.detail}",
                                                source=pair.source)
                    continue
                if event == "revise" and {p.text for p in crit} <= st["failed_texts"]:
                    # greedy decoding would score the same set the same way: fail now, honestly
                    self._log("revise", pair.id, round=st["round"], mode="revise", repeated=True,
                              criteria=[{"text": p.text, "kind": p.kind} for p in crit], raw=raws,
                              attempts=len(raws))
                    final[pair.id] = PairResult(pair.id, "failed", st["round"], proposed=len(st["proposed"]),
                                                error="the revision repeated criteria that had failed",
                                                source=pair.source)
                    continue
                st["proposed"].update(p.text for p in crit)
                self._log(event, pair.id, round=st["round"],
                          mode=cfg.mode if event == "propose" else "revise",
                          criteria=[{"text": p.text, "kind": p.kind} for p in crit], raw=raws,
                          attempts=len(raws))
                if on_event:
                    on_event(event, {"pair": pair.id, "round": st["round"], "criteria": len(crit)})
                proposals.append(crit)
                ready.append(pair)
            if not ready:
                break
            verdicts = await self._validate(ready, proposals)
            active = []
            for pair, v in zip(ready, verdicts, strict=True):
                st = state[pair.id]
                self._log("verdict", pair.id, round=st["round"], passed=v["passed"], reason=v["reason"],
                          delta=v["delta"], reward_chosen=v["reward_chosen"],
                          reward_rejected=v["reward_rejected"], margin=cfg.margin, evidence=v["evidence"])
                if on_event:
                    on_event("verdict", {"pair": pair.id, "round": st["round"], "passed": v["passed"],
                                         "delta": v["delta"]})
                if v["passed"]:
                    kept = [{"text": e["text"], "kind": e["kind"], "p_chosen": e["p_chosen"],
                             "p_rejected": e["p_rejected"]}
                            for e in v["evidence"]
                            if e["p_chosen"] is not None and e["p_rejected"] is not None
                            and e["p_chosen"] > e["p_rejected"]]
                    final[pair.id] = PairResult(pair.id, "passed", st["round"], kept=kept,
                                                proposed=len(st["proposed"]), source=pair.source)
                elif st["round"] >= cfg.max_rounds:
                    final[pair.id] = PairResult(pair.id, "failed", st["round"], proposed=len(st["proposed"]),
                                                error=v["reason"], source=pair.source)
                else:
                    st["round"] += 1
                    st["evidence"] = self._feedback(v["evidence"])
                    st["failed_texts"] |= {e["text"] for e in v["evidence"]}
                    active.append(pair)
        out = []
        for pair in batch:
            res = final[pair.id]
            self._log("done", pair.id, status=res.status, rounds=res.rounds, kept=res.kept,
                      proposed=res.proposed, error=res.error,
                      source=pair.source, seconds=round(time.perf_counter() - t_start[pair.id], 2))
            out.append(res)
        return out


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def result_from_log(row: dict[str, Any]) -> PairResult:
    """Rebuild a finished pair's result from its ``done`` row (resume)."""
    return PairResult(pair_id=row["pair"], status=row.get("status", "failed"),
                      rounds=int(row.get("rounds") or 0),
                      kept=list(row.get("kept") or []), proposed=int(row.get("proposed") or 0),
                      error=row.get("error"), source=row.get("source"))


def split_pairs(pairs: list[Pair], *, seed: int, max_pairs: int | None = None,
                holdout: float = 0.0) -> tuple[list[Pair], list[Pair]]:
    """A seeded shuffle, then (train, held-out): ``holdout`` is a fraction or a count (>= 1)."""
    order = list(pairs)
    random.Random(seed).shuffle(order)
    n_hold = int(holdout) if holdout >= 1 else int(round(len(order) * holdout))
    n_hold = min(max(n_hold, 0), max(len(order) - 1, 0))
    held, train = order[:n_hold], order[n_hold:]
    if max_pairs is not None:
        train = train[:max_pairs]
    return train, held


def proposal_rows(log_rows: Iterable[dict[str, Any]], sources: dict[str, str | None],
                  run_id: str) -> list[dict[str, Any]]:
    """Every criterion proposed or revised for the pairs in ``sources`` (id → source), one row each.

    The input of generalization with ``--pool proposed``: per-pair validation is skipped and the
    transfer check (:mod:`.transfer`) is what decides which statements the labels support.
    """
    rows = []
    for row in log_rows:
        pair = row.get("pair")
        if row.get("event") not in ("propose", "revise") or pair not in sources:
            continue
        for c in row.get("criteria") or []:
            rows.append({"id": f"{pair}:{len(rows)}", "text": c.get("text"),
                         "kind": c.get("kind", "principle"), "pair": pair, "source": sources[pair],
                         "run": run_id, "stage": "proposed"})
    return rows


def pool_rows(results: Iterable[PairResult], run_id: str) -> list[dict[str, Any]]:
    """The validated criteria of every passing pair, one row each: the input of generalization."""
    rows = []
    for res in results:
        if res.status != "passed":
            continue
        for k in res.kept:
            rows.append({"id": f"{res.pair_id}:{len(rows)}", "text": k["text"], "kind": k.get("kind",
                                                                                              "principle"),
                         "pair": res.pair_id, "source": res.source, "run": run_id,
                         "p_chosen": k.get("p_chosen"), "p_rejected": k.get("p_rejected")})
    return rows
