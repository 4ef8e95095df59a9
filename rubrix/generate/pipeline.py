"""The generation run: prompts in, one per-row rubric per prompt out, resumable.

:func:`generate` is what ``rubrix generate`` runs. For each prompt (plain text or chat; with a
reference answer when the row has one):

1. **good answer** — the reference, or (without one) an answer the generator writes;
2. **draft** — the generator writes weighted criteria with ``prompts/generate_rubric.j2``
   (parsed with repair and bounded re-asks by :func:`~rubrix.extract.propose.ask_json`, the same
   machinery as extraction; :mod:`.draft` reads the answer);
3. **lint** — :mod:`.lint` drops compound, vague, prompt-restating and length-rewarding criteria
   before any judge call;
4. **contrasts** — :mod:`.degrade` builds the degraded answers (generator edits, deterministic
   padding and an off-topic answer);
5. **discrimination** — the judge scores every contrast with the remaining criteria through the
   :class:`~rubrix.scoring.Scorer` (all prompts of a batch in one judge call) and
   :mod:`.discriminate` keeps the criteria that separate them the expected way;
6. the kept criteria become the row's rubric, written beside the row's own columns in the form
   ``rubrix score`` reads, with provenance (generator, judge, template hash, prompt id, what each
   criterion caught).

Bad input never stops a run and never yields an empty rubric: a bad record, an empty prompt, a
prompt longer than the judge's context, a missing reference (when the reference field was named),
a generator answer that is no rubric, or a rubric whose criteria all fail the checks is counted,
logged with its reason, and the row is left out of the output.

Files: ``ROWS.jsonl`` (the output, appended per prompt), ``ROWS.log.jsonl`` (every draft, lint
finding, contrast, verdict and skip; also the resume state) and ``ROWS.summary.json`` (counts,
what was caught, cost per stage from the scorer's :class:`~rubrix.cost.CostMeter`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._json import write_json_atomic
from ..chat import ChatError, format_conversation, split_messages
from ..errors import InputError, UserError
from ..extract.propose import ExtractionError, ProvenanceLog, ask_json
from ..judges.base import Judge
from ..records import FieldMap, Prompt, prompt_from_dict, read_records
from ..results import ResultWriter
from ..rubric import Condition, Criterion, Rubric, rubric_from_items, slugify
from .degrade import GENERATED, HINTS, KINDS, READERS, Contrast, normalize, off_topic, padded, truncated
from .discriminate import CriterionCheck, check_criteria, contrast_samples
from .draft import Draft, read_drafts
from .lint import lint

if TYPE_CHECKING:
    from ..scoring import Scorer

TEMPLATES = ("generate_rubric.j2", "generate_degrade.j2")
LINT_MODES = ("drop", "warn", "off")
MISSING_REFERENCE = ("generate", "skip")
DEFAULT_FIELDS = FieldMap()
DRAFT_HINT = (
    'Use the form {"essential": ["The response ..."], "important": ["The response ..."], '
    '"pitfalls": ["The response ..."]}. '
)


@dataclass
class GenerateConfig:
    """Options of :func:`generate` (same defaults as ``rubrix generate``)."""

    min_criteria: int = 5  # asked of the generator
    max_criteria: int = 10  # asked of the generator, and the most read from its answer
    margin: float = 0.3  # P(met) gap that counts as separating two answers
    min_caught: int = 1  # degradations a criterion must catch to be kept
    lint: str = "drop"  # drop: flagged criteria are not judged; warn: judged, finding kept
    degradations: tuple[str, ...] = KINDS
    reasks: int = 2  # re-asks for an unusable structured answer
    max_tokens: int = 640  # for the drafted rubric
    edit_tokens: int = 256  # for one degradation
    answer_tokens: int = 512  # for a good answer, when the row has no reference
    max_chars: int = 6000  # prompt / reference text shown to the generator, each
    max_input_tokens: int = 6000  # prompt + reference; longer rows are skipped (and the judge's own limit)
    batch_size: int = 4  # prompts whose contrasts go to the judge in one call
    missing_reference: str = "skip"  # with a reference field: skip a row without one, or generate an answer

    def check(self) -> None:
        if self.lint not in LINT_MODES:
            raise UserError(f"must be one of {', '.join(LINT_MODES)}", field="--lint")
        if self.missing_reference not in MISSING_REFERENCE:
            raise UserError(f"must be one of {', '.join(MISSING_REFERENCE)}", field="--missing-reference")
        unknown = [k for k in self.degradations if k not in KINDS]
        if unknown:
            raise UserError(
                f"unknown degradation {unknown[0]!r} (known: {', '.join(KINDS)})", field="--degradations"
            )
        if not self.degradations:
            raise UserError(
                "at least one degradation is needed for the discrimination check", field="--degradations"
            )
        if not 0 < self.margin <= 1:
            raise UserError("must be in (0, 1]", field="--margin")
        if self.min_caught < 1:
            raise UserError("must be >= 1", field="--min-caught")
        if not 1 <= self.min_criteria <= self.max_criteria:
            raise UserError("need 1 <= --min-criteria <= --max-criteria", field="--max-criteria")
        if self.batch_size < 1:
            raise UserError("must be >= 1", field="--batch-size")


# ---------------------------------------------------------------------------------------------
# reading prompts leniently


@dataclass
class PromptRow:
    """One prompt to write a rubric for; ``row`` is the record as read (its columns are kept)."""

    id: str
    prompt: Prompt
    reference: str | None
    row: dict[str, Any]
    line: int | None = None


@dataclass
class Skipped:
    """A row left out, and why: ``code`` is the short reason the summary counts."""

    line: int | None
    id: str | None
    code: str
    reason: str


def load_prompts(
    path: str | Path,
    fields: FieldMap = DEFAULT_FIELDS,
    *,
    fmt: str | None = None,
) -> tuple[list[PromptRow], list[Skipped]]:
    """Read prompt rows, skipping (not failing on) bad records, each with a reason.

    A damaged *file* still raises :class:`InputError`; a bad *record* (a prompt that is neither text
    nor messages, an empty prompt, a repeated id) is returned in the skipped list. A TRL
    ``messages`` row without a prompt column gives its prompt, and its last assistant turn as the
    reference. Rows without an id are numbered ``prompt-LINE``.
    """
    rows: list[PromptRow] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    name = str(path)
    for line, row in read_records(path, fmt=fmt):
        raw_id = row.get(fields.id)
        if raw_id is None or raw_id == "":
            rid = f"prompt-{line}"
        elif isinstance(raw_id, str | int) and not isinstance(raw_id, bool):
            rid = str(raw_id)
        else:
            skipped.append(Skipped(line, None, "record", f"{fields.id}: must be a string or an integer"))
            continue
        reference = row.get(fields.reference)
        try:
            if fields.prompt not in row and fields.prompt == "prompt" and "messages" in row:
                messages = prompt_from_dict(row, "messages", file=name, line=line)
                try:
                    prompt, completion = split_messages(messages)  # type: ignore[arg-type]
                    reference = reference or "\n\n".join(
                        m.get("content") or "" for m in completion if m["role"] == "assistant"
                    )
                except ChatError:
                    prompt = messages
            else:
                prompt = prompt_from_dict(row, fields.prompt, file=name, line=line)
        except InputError as exc:
            skipped.append(Skipped(line, rid, "record", f"{exc.field or 'record'}: {exc.message}"))
            continue
        if _is_empty(prompt):
            skipped.append(Skipped(line, rid, "empty prompt", "the prompt is empty"))
            continue
        if rid in seen:
            skipped.append(Skipped(line, rid, "duplicate id", f"duplicate id {rid!r}"))
            continue
        if reference is not None and not isinstance(reference, str):
            skipped.append(Skipped(line, rid, "record", f"{fields.reference}: must be a string"))
            continue
        seen.add(rid)
        rows.append(
            PromptRow(rid, prompt, reference if reference and reference.strip() else None, dict(row), line)
        )
    return rows, skipped


def _is_empty(prompt: Prompt) -> bool:
    """No text to write a rubric for: blank text, or messages whose contents are all blank."""
    if isinstance(prompt, str):
        return not prompt.strip()
    return not any(str(m.get("content") or "").strip() for m in prompt)


# ---------------------------------------------------------------------------------------------
# one prompt's rubric


@dataclass
class Prepared:
    """A prompt between drafting and discrimination: its good answer, drafts, lint and contrasts."""

    item: PromptRow
    reference: str
    reference_kind: str  # given | generated
    drafts: list[Draft]
    findings: dict[int, list[str]]  # draft index -> lint findings
    rubric: Rubric  # the drafts that go to the judge
    contrasts: list[Contrast]
    contrast_errors: dict[str, str] = field(default_factory=dict)
    draft_ids: dict[str, int] = field(default_factory=dict)  # criterion id -> draft index


@dataclass
class PromptResult:
    """The outcome for one prompt: ``generated`` (a rubric was written) or ``skipped`` (with a reason)."""

    id: str
    status: str
    rubric: Rubric | None = None
    code: str | None = None
    reason: str | None = None
    drafted: int = 0
    linted_out: int = 0
    checked: list[CriterionCheck] = field(default_factory=list)
    lint: dict[str, int] = field(default_factory=dict)
    contrasts: list[str] = field(default_factory=list)
    reference_kind: str | None = None


class _Skip(Exception):
    def __init__(self, code: str, reason: str, **data: Any):
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.data = data


def _clip(text: str, limit: int) -> str:
    return (
        text
        if len(text) <= limit
        else text[:limit] + f"\n[... {len(text) - limit} more characters not shown]"
    )


class RubricGenerator:
    """Writes, lints and checks per-prompt rubrics (see the module docstring).

    ``generator`` writes (good answers, drafts, degradations); ``scorer`` holds the judge that
    checks. Both report to the scorer's meter under the stages ``answer``, ``draft``, ``degrade``
    and ``discriminate``.
    """

    def __init__(
        self,
        generator: Judge,
        scorer: Scorer,
        config: GenerateConfig,
        *,
        log: ProvenanceLog | None = None,
        fields: FieldMap = DEFAULT_FIELDS,
    ):
        config.check()
        self.generator = generator
        self.scorer = scorer
        self.config = config
        self.renderer = scorer.renderer
        self.log = log
        self.fields = fields
        self.template_hash = self.renderer.template_hash(TEMPLATES)

    def _log(self, event: str, prompt: str, **data: Any) -> None:
        if self.log is not None:
            self.log.write(event, prompt, **data)

    # -- steps -----------------------------------------------------------------------------------

    def _check_size(self, item: PromptRow) -> None:
        """Skip a row whose prompt + reference exceeds ``max_input_tokens`` (counted with the generator's
        own tokenizer). A backend that still refuses the input answers a typed ``input`` error, which
        is skipped as ``too long`` as well (:meth:`_draft`)."""
        text = format_conversation(item.prompt)
        tokens = sum(self.generator.count_tokens([text, item.reference or ""]))
        limit = self.config.max_input_tokens
        if tokens > limit:
            raise _Skip(
                "too long",
                f"prompt and reference are {tokens} tokens, more than --max-input-tokens {limit} "
                "(sized to fit the judge's context with the instructions and the answer)",
            )

    async def _good_answer(self, item: PromptRow) -> tuple[str, str]:
        if item.reference is not None:
            return item.reference, "given"
        if self.config.missing_reference == "skip":
            raise _Skip("missing reference", f"no reference answer in field {self.fields.reference!r}")
        convo = item.prompt if isinstance(item.prompt, list) else [{"role": "user", "content": item.prompt}]
        convo = [{"role": m["role"], "content": m.get("content") or ""} for m in convo]
        t0 = time.perf_counter()
        gen = (await self.generator.generate([convo], max_tokens=self.config.answer_tokens))[0]
        with self.scorer.meter.stage("answer"):
            self.scorer.meter.add_generation(self.generator, convo, gen, seconds=time.perf_counter() - t0)
        if gen.error == "input":
            raise _Skip("too long", f"the generator refused the prompt as input ({gen.error_detail})")
        if not gen.ok or not gen.text.strip():
            why = f"{gen.error}: {gen.error_detail}" if not gen.ok else "an empty answer"
            raise _Skip("no good answer", f"no reference, and the generator wrote {why}")
        return gen.text.strip(), "generated"

    async def _draft(self, item: PromptRow, reference: str, kind: str) -> list[Draft]:
        cfg = self.config
        messages = list(
            self.renderer.messages(
                "generate_rubric.j2",
                prompt=_clip(format_conversation(item.prompt), cfg.max_chars),
                reference=_clip(reference, cfg.max_chars),
                reference_kind=kind,
                min_criteria=cfg.min_criteria,
                max_criteria=cfg.max_criteria,
            )
        )
        try:
            drafts, raws = await ask_json(
                self.generator,
                messages,
                lambda obj: read_drafts(obj, max_criteria=cfg.max_criteria),
                max_tokens=cfg.max_tokens,
                reasks=cfg.reasks,
                meter=self.scorer.meter,
                stage="draft",
                reask_hint=DRAFT_HINT,
            )
        except ExtractionError as exc:
            if exc.error == "input":  # the backend refused the input itself: it does not fit
                raise _Skip("too long", f"the generator refused the prompt as input ({exc.detail})") from None
            raise _Skip(
                "no parseable rubric",
                f"the generator returned no parseable rubric ({exc.error}: {exc.detail})",
                raw=exc.raw,
            ) from None
        self._log("draft", item.id, criteria=[d.to_dict() for d in drafts], raw=raws, attempts=len(raws))
        return drafts

    async def _degrade(self, item: PromptRow, good: str) -> tuple[list[Contrast], dict[str, str]]:
        cfg = self.config
        contrasts = [Contrast("good", good, "reference")]
        errors: dict[str, str] = {}
        prompt_text = format_conversation(item.prompt)
        for kind in cfg.degradations:
            made: Contrast | None = None
            if kind in GENERATED:
                messages = list(
                    self.renderer.messages(
                        "generate_degrade.j2",
                        kind=kind,
                        prompt=_clip(prompt_text, cfg.max_chars),
                        reference=_clip(good, cfg.max_chars),
                        max_words=120,
                    )
                )
                try:
                    made, _ = await ask_json(
                        self.generator,
                        messages,
                        lambda obj, k=kind: READERS[k](obj, good),
                        max_tokens=cfg.edit_tokens,
                        reasks=cfg.reasks,
                        meter=self.scorer.meter,
                        stage="degrade",
                        reask_hint=HINTS[kind],
                    )
                except ExtractionError as exc:
                    errors[kind] = f"{exc.error}: {exc.detail}"
                    if kind == "missing_part":
                        made = truncated(good)
            elif kind == "padded":
                made = padded(good, item.id)
            elif kind == "off_topic":
                made = off_topic(prompt_text, item.id)
            if made is None:
                continue
            if normalize(made.text) == normalize(good):
                errors[kind] = "the degraded answer is the same as the good one"
                continue
            contrasts.append(made)
        return contrasts, errors

    def _lint(self, item: PromptRow, drafts: list[Draft]) -> tuple[list[int], dict[int, list[str]]]:
        prompt_text = format_conversation(item.prompt)
        findings = {
            i: [str(f) for f in lint(d.text, prompt_text, pitfall=d.pitfall)] for i, d in enumerate(drafts)
        }
        findings = {i: f for i, f in findings.items() if f}
        keep = [i for i in range(len(drafts)) if self.config.lint != "drop" or i not in findings]
        if self.config.lint == "off":
            findings = {}
        return keep, findings

    async def prepare(self, item: PromptRow) -> Prepared:
        """Steps 1-4 for one prompt; raises :class:`_Skip` with the reason when it cannot go on."""
        self._check_size(item)
        good, kind = await self._good_answer(item)
        drafts = await self._draft(item, good, kind)
        keep, findings = self._lint(item, drafts)
        if findings:
            self._log(
                "lint",
                item.id,
                findings={drafts[i].text: f for i, f in findings.items()},
                mode=self.config.lint,
            )
        candidates = [d for i, d in enumerate(drafts) if i in keep]
        if not any(not d.pitfall for d in candidates):
            raise _Skip(
                "lint removed every criterion",
                "the lint removed every criterion a good answer meets",
                findings={drafts[i].text: f for i, f in findings.items()},
            )
        criteria, ids = [], {}
        for i, d in enumerate(drafts):
            if i not in keep:
                continue
            cid = slugify(d.text, fallback=f"c{i + 1}")
            while cid in ids:
                cid = f"{cid[:44]}_{i + 1}"
            ids[cid] = i
            criteria.append(
                Criterion(
                    id=cid,
                    text=d.text,
                    weight=d.weight,
                    category=d.category,
                    applies_if=Condition("judged", text=d.applies_if) if d.applies_if else None,
                )
            )
        rubric = Rubric(name=f"generated:{item.id}", criteria=tuple(criteria))
        contrasts, errors = await self._degrade(item, good)
        self._log("contrasts", item.id, contrasts=[c.to_dict() for c in contrasts], errors=errors)
        if len(contrasts) < 2:
            raise _Skip(
                "no contrast",
                "no degraded answer could be built, so no criterion can be checked",
                errors=errors,
            )
        return Prepared(item, good, kind, drafts, findings, rubric, contrasts, errors, ids)

    def finish(self, prep: Prepared, checks: list[CriterionCheck]) -> PromptResult:
        """Step 6: the rubric of the kept criteria, with provenance; a skip when none is usable."""
        item = prep.item
        kept_ids = {c.id for c in checks if c.kept}
        by_id = {c.id: c for c in checks}
        criteria = []
        for c in prep.rubric.criteria:
            if c.id in kept_ids:
                source = {"prompt": item.id, "caught": by_id[c.id].caught}
                lint_notes = prep.findings.get(prep.draft_ids[c.id])
                if lint_notes:  # --lint warn: judged and kept, the finding travels with it
                    source["lint"] = lint_notes
                criteria.append(
                    Criterion(
                        id=c.id,
                        text=c.text,
                        weight=c.weight,
                        category=c.category,
                        applies_if=c.applies_if,
                        source=source,
                    )
                )
        lint_counts = Counter(f.split(":")[0] for notes in prep.findings.values() for f in notes)
        linted_out = len(prep.drafts) - len(prep.rubric.criteria)
        base = dict(
            id=item.id,
            drafted=len(prep.drafts),
            linted_out=linted_out,
            checked=checks,
            lint=dict(lint_counts),
            contrasts=[c.kind for c in prep.contrasts],
            reference_kind=prep.reference_kind,
        )
        if not any(c.weight > 0 for c in criteria):
            return PromptResult(
                status="skipped",
                code="none kept",
                reason="no criterion a good answer meets passed the discrimination check",
                **base,
            )
        provenance = {
            "method": "rubrix generate (draft from a good answer, lint, discrimination check)",
            "generator": self.generator.name,
            "judge": self.scorer.judge.name,
            "template": TEMPLATES[0],
            "template_hash": self.template_hash,
            "prompt_id": item.id,
            "run": self.log.run_id if self.log is not None else None,
            "reference": prep.reference_kind,
            "contrasts": [c.kind for c in prep.contrasts],
            "margin": self.config.margin,
            "drafted": len(prep.drafts),
            "linted_out": linted_out,
            "kept": len(criteria),
        }
        data = Rubric(name=f"generated:{item.id}", criteria=tuple(criteria), provenance=provenance).to_dict()
        # what rubrix score will read: validated the same way, so nothing invalid is ever written
        rubric = rubric_from_items(data, name=data["name"], filename="<generated>")
        return PromptResult(status="generated", rubric=rubric, **base)

    async def run_batch(
        self, batch: list[PromptRow], on_result: Callable[[PromptResult], None] | None = None
    ) -> list[PromptResult]:
        """Prepare each prompt, judge all their contrasts in one scorer call, then decide."""
        results: dict[str, PromptResult] = {}
        prepared: list[Prepared] = []
        for item in batch:
            try:
                prepared.append(await self.prepare(item))
            except _Skip as exc:
                self._log("skip", item.id, code=exc.code, reason=exc.reason, line=item.line, **exc.data)
                results[item.id] = PromptResult(item.id, "skipped", code=exc.code, reason=exc.reason)
        if prepared:
            samples = [
                s for p in prepared for s in contrast_samples(p.item.id, p.item.prompt, p.rubric, p.contrasts)
            ]
            with self.scorer.meter.stage("discriminate"):
                scored = await self.scorer.ascore(samples)
            pos = 0
            for p in prepared:
                n = len(p.contrasts)
                checks = check_criteria(
                    p.rubric,
                    p.contrasts,
                    scored[pos : pos + n],
                    margin=self.config.margin,
                    min_caught=self.config.min_caught,
                )
                pos += n
                self._log(
                    "verdicts",
                    p.item.id,
                    criteria=[
                        {"text": c.text, "category": c.category, **ch.to_dict()}
                        for c, ch in zip(p.rubric.criteria, checks, strict=True)
                    ],
                )
                res = self.finish(p, checks)
                if res.status == "skipped":
                    self._log("skip", p.item.id, code=res.code, reason=res.reason, line=p.item.line)
                results[p.item.id] = res
        out = [results[item.id] for item in batch]
        if on_result is not None:
            for res in out:
                on_result(res)
        return out


# ---------------------------------------------------------------------------------------------
# the run


def side_paths(output: str | Path) -> dict[str, Path]:
    """The files written beside ``ROWS.jsonl``: the provenance log and the summary."""
    out = Path(output)
    stem = out.name[: -len(out.suffix)] if out.suffix in (".jsonl", ".json") else out.name
    return {"log": out.with_name(stem + ".log.jsonl"), "summary": out.with_name(stem + ".summary.json")}


@dataclass
class GenerateRun:
    """What :func:`generate` did: per-prompt results, the summary, the files."""

    results: list[PromptResult]
    summary: dict[str, Any]
    paths: dict[str, Path]


async def generate(
    prompts_path: str | Path,
    output: str | Path,
    *,
    generator: Judge,
    scorer: Scorer,
    config: GenerateConfig | None = None,
    fields: FieldMap = DEFAULT_FIELDS,
    reference_field: str | None = None,
    fmt: str | None = None,
    limit: int | None = None,
    resume: bool = False,
    progress: Callable[[str], None] | None = None,
) -> GenerateRun:
    """Write a per-row rubric for every prompt in ``prompts_path`` to ``output`` (JSONL).

    ``reference_field`` names the column holding reference answers; a row without it is skipped
    or gets a generated answer (``config.missing_reference``). Without it, a ``reference`` column is
    used where present and a good answer is generated elsewhere. ``resume`` continues a stopped
    run: prompts already written or skipped in the log are not redone.
    """
    if str(output) in ("-", ""):
        raise UserError("name an output file: the provenance log and the summary are written beside it",
                        field="--output")
    cfg = config or GenerateConfig()
    if reference_field is None:
        cfg = GenerateConfig(**{**asdict(cfg), "missing_reference": "generate"})
    else:
        fields = FieldMap(
            **{**{f: getattr(fields, f) for f in fields.__dataclass_fields__}, "reference": reference_field}
        )
    cfg.check()
    say = progress or (lambda _m: None)
    t_run = time.perf_counter()
    paths = side_paths(output)
    rows, skipped = load_prompts(prompts_path, fields, fmt=fmt)
    if limit is not None:
        rows = rows[:limit]
    say(
        f"read {len(rows) + len(skipped)} records from {prompts_path}: {len(rows)} prompts, "
        f"{len(skipped)} skipped"
    )
    writer = ResultWriter(output, resume=resume)
    log = ProvenanceLog(paths["log"], resume=resume, subject="prompt")
    meter = scorer.meter
    spent_before = meter.snapshot()
    try:
        finished = log.finished()
        for s in skipped:
            say(f"skip line {s.line} ({s.id or 'no id'}): {s.reason}")
            key = s.id or f"line:{s.line}"
            if key not in finished:
                log.write("skip", key, code=s.code, reason=s.reason, line=s.line)
        done = set(writer.done_ids) | set(finished)
        todo = [r for r in rows if r.id not in done]
        resumed = len(rows) - len(todo)
        if resumed:
            say(f"resume: {resumed} prompts already done in {output} / {paths['log']}, {len(todo)} to go")
        gen = RubricGenerator(generator, scorer, cfg, log=log, fields=fields)
        results: list[PromptResult] = []
        total = len(todo)

        def on_result(res: PromptResult) -> None:
            results.append(res)
            item = by_id[res.id]
            if res.rubric is not None:
                row = {**item.row, fields.id: item.id, "rubric": res.rubric.to_dict()}
                writer.write([row])
                caught = Counter(k for c in res.checked if c.kept for k in c.caught)
                say(
                    f"[{len(results)}/{total}] {res.id}: {res.drafted} drafted, {res.linted_out} linted out, "
                    f"{len(res.rubric.criteria)} kept (caught: "
                    + (", ".join(f"{k} {v}" for k, v in caught.items()) or "-")
                    + ")"
                )
            else:
                say(f"[{len(results)}/{total}] {res.id}: skipped: {res.reason}")
            log.write(
                "done",
                res.id,
                status=res.status,
                code=res.code,
                reason=res.reason,
                kept=len(res.rubric.criteria) if res.rubric is not None else 0,
                drafted=res.drafted,
            )

        by_id = {r.id: r for r in todo}
        for start in range(0, len(todo), cfg.batch_size):
            await gen.run_batch(todo[start : start + cfg.batch_size], on_result=on_result)
        summary = _summary(
            prompts_path,
            output,
            rows,
            skipped,
            results,
            resumed,
            cfg,
            generator,
            scorer,
            gen.template_hash,
            log.run_id,
            meter,
            spent_before,
            time.perf_counter() - t_run,
        )
        write_json_atomic(paths["summary"], summary)
        return GenerateRun(results=results, summary=summary, paths=paths)
    finally:
        log.close()
        writer.close()


def _summary(
    prompts_path,
    output,
    rows,
    skipped,
    results,
    resumed,
    cfg,
    generator,
    scorer,
    template_hash,
    run_id,
    meter,
    spent_before,
    wall,
) -> dict[str, Any]:
    checks = [c for r in results for c in r.checked]
    kept = [c for c in checks if c.kept]
    dropped = Counter(_reason_class(c.reason) for c in checks if not c.kept)
    skip_codes = Counter(s.code for s in skipped) + Counter(r.code for r in results if r.status == "skipped")
    processed = len(results)
    return {
        "prompts_file": str(prompts_path),
        "output": str(output),
        "run": run_id,
        "records": len(rows) + len(skipped),
        "prompts": len(rows),
        "resumed": resumed,
        "processed": processed,
        "generated": sum(r.status == "generated" for r in results),
        "skipped": dict(skip_codes),
        "references": dict(Counter(r.reference_kind for r in results if r.reference_kind)),
        "criteria": {
            "drafted": sum(r.drafted for r in results),
            "linted_out": sum(r.linted_out for r in results),
            "checked": len(checks),
            "kept": len(kept),
            "dropped": dict(dropped),
        },
        "lint": dict(sum((Counter(r.lint) for r in results), Counter())),
        "caught": dict(Counter(k for c in kept for k in c.caught)),
        "contrasts": dict(Counter(k for r in results for k in r.contrasts)),
        "config": {**asdict(cfg), "degradations": list(cfg.degradations)},
        "generator": generator.name,
        "judge": scorer.judge.name,
        "template_hash": template_hash,
        "cost": {
            "scope": "this invocation (prompts resumed from the log cost nothing here)",
            "by_stage": meter.to_dict(spent_before),
            "total": meter.total(spent_before).to_dict(),
            "wall_s": round(wall, 1),
            "seconds_per_prompt": round(wall / processed, 1) if processed else None,
        },
    }


def _reason_class(reason: str) -> str:
    for prefix, name in (
        ("untested", "untested"),
        ("the good answer does not", "good answer fails it"),
        ("pitfall present", "pitfall in the good answer"),
        ("prefers", "prefers a worse answer"),
        ("catches no", "catches nothing"),
        ("catches", "catches too few"),
    ):
        if reason.startswith(prefix):
            return name
    return reason


__all__ = [
    "GenerateConfig",
    "GenerateRun",
    "PromptResult",
    "PromptRow",
    "RubricGenerator",
    "Skipped",
    "generate",
    "load_prompts",
    "side_paths",
]
