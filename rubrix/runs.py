"""A scoring run over a file: validate input, resume, score in batches, append results, write a manifest.

This is what ``rubrix score`` does, as a library function so that scripts get the same behaviour:

* the whole input is validated before the first judge call, so a bad line 9,000 fails in seconds,
  not after hours of judging;
* results are appended and flushed per batch; ``resume=True`` skips ids already written (and
  drops a half-written last line left by a crash);
* a manifest beside the output records inputs, options, counts, failures, timing and tokens, and
  is rewritten after every batch so that it is current even after an interruption;
* the input is read twice as a stream — once to validate, once to score — so a data set larger
  than memory (an ``hf:`` data set, a large JSONL) is never held whole; standard input (``-``) is
  spooled to a temporary file for the second pass;
* :func:`failure_reason` turns a run with too many failed samples into a reason to exit non-zero
  (``--max-failure-rate``).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import _aio
from ._version import __version__
from .errors import UserError
from .groupwise import GroupRewards
from .hfdata import is_hf_spec
from .records import FieldMap, Sample, read_samples
from .results import iter_results, open_results, results_format, write_manifest
from .scoring import SampleResult, Scorer
from .stats import bootstrap_std, dataset_mean

DEFAULT_BATCH_SIZE = 16
"""Samples per judge call and per flush, for :func:`score_file` and ``rubrix score`` alike. Large
enough that a local judge shares prompt prefixes across samples and an API judge fills its
concurrency; small enough that an interruption loses little work."""


@dataclass
class RunSummary:
    """Totals of a run, for the summary table and the manifest."""

    total: int = 0
    skipped: int = 0
    scored: int = 0
    status: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    rewards: list[float | None] = field(default_factory=list)
    met: dict[str, list[int]] = field(default_factory=dict)  # criterion id -> [met, judged]
    usage: Counter = field(default_factory=Counter)
    verdicts: int = 0
    checked: int = 0  # criteria computed by a deterministic check: no judge call
    not_applicable: Counter = field(default_factory=Counter)  # criterion id -> samples where it was N/A
    skipped_by_gate: int = 0  # criteria not judged because a failed checked gate decided the reward
    cached: int = 0
    adjusted: Counter = field(default_factory=Counter)  # group rules: length_penalty / relative -> rows
    started: float = field(default_factory=time.time)
    wall_s: float = 0.0
    interrupted: bool = False

    def add(self, result: SampleResult) -> None:
        self.scored += 1
        self.status[result.status] += 1
        self.rewards.append(result.reward)
        for cid, c in result.criteria.items():
            if c.na:  # not applicable: neither judged nor failed
                self.not_applicable[cid] += 1
                continue
            if c.skipped:  # not judged: a failed checked gate decided the reward
                self.skipped_by_gate += 1
                continue
            if c.source == "check":
                self.checked += 1
            else:
                self.verdicts += 1
            if c.error:
                self.errors[c.error] += 1
                continue
            counts = self.met.setdefault(cid, [0, 0])
            counts[0] += int(bool(c.met))
            counts[1] += 1
        self.usage.update(result.usage)
        self.cached += result.cached
        self.adjusted.update(k for k in ("length_penalty", "relative") if k in result.adjustments)

    def add_previous(self, row: dict[str, Any]) -> None:
        """Count a row written by an earlier run of the same output (``--resume``)."""
        self.status[row.get("status", "failed")] += 1
        self.rewards.append(row.get("reward"))
        for cid, c in (row.get("criteria") or {}).items():
            if not isinstance(c, dict):
                continue
            if c.get("na"):
                self.not_applicable[cid] += 1
                continue
            if c.get("skipped"):
                self.skipped_by_gate += 1
                continue
            if c.get("error"):
                self.errors[c["error"]] += 1
                continue
            counts = self.met.setdefault(cid, [0, 0])
            counts[0] += int(bool(c.get("met")))
            counts[1] += 1

    @property
    def rows(self) -> int:
        """Rows in the output: scored now plus those kept from an earlier run (``--resume``)."""
        return sum(self.status.values())

    @property
    def failed_samples(self) -> int:
        """Samples without a reward: every criterion failed, or some did (``partial``)."""
        return self.status.get("failed", 0) + self.status.get("partial", 0)

    @property
    def failure_rate(self) -> float | None:
        return self.failed_samples / self.rows if self.rows else None

    @property
    def mean_reward(self) -> float | None:
        return dataset_mean(self.rewards)

    def to_dict(self) -> dict[str, Any]:
        return {
            "samples_total": self.total, "samples_skipped_resume": self.skipped,
            "samples_scored": self.scored,
            "status": dict(self.status), "criterion_errors": dict(self.errors),
            "mean_reward_clipped": self.mean_reward, "bootstrap_std": bootstrap_std(self.rewards, n=200),
            "met_rate": {cid: round(m / n, 4) for cid, (m, n) in self.met.items() if n},
            "verdicts": self.verdicts, "verdicts_cached": self.cached, "tokens": dict(self.usage),
            **({"checked": self.checked} if self.checked else {}),
            **({"not_applicable": dict(self.not_applicable)} if self.not_applicable else {}),
            **({"skipped_by_gate": self.skipped_by_gate} if self.skipped_by_gate else {}),
            **({"adjusted": dict(self.adjusted)} if self.adjusted else {}),
            "wall_s": round(self.wall_s, 3),
            "samples_per_s": round(self.scored / self.wall_s, 4) if self.wall_s else None,
            "failure_rate": None if self.failure_rate is None else round(self.failure_rate, 6),
            "interrupted": self.interrupted,
        }


DEFAULT_MAX_FAILURE_RATE = 1.0
"""``rubrix score`` exits non-zero when more than this share of samples failed; ``1`` is read as
"every sample failed", since no share is larger. A run that produced nothing usable must not look
like a success to a pipeline, while a few judge timeouts in a long run are left to the user."""


def failure_reason(summary: RunSummary,
                   max_failure_rate: float | None = DEFAULT_MAX_FAILURE_RATE) -> str | None:
    """One line saying why a finished run counts as failed, or ``None`` (``max_failure_rate=None``: never).

    Failed means no reward (status ``failed`` or ``partial``), counted over every row of the output.
    """
    rate = summary.failure_rate
    if max_failure_rate is None or rate is None:
        return None
    over = rate >= 1.0 if max_failure_rate >= 1.0 else rate > max_failure_rate
    if not over:
        return None
    kinds = ", ".join(f"{k} {v}" for k, v in summary.errors.most_common(3)) or "no judge errors recorded"
    limit = "all" if max_failure_rate >= 1.0 else f"{max_failure_rate:g}"
    return (f"{summary.failed_samples} of {summary.rows} samples failed ({rate:.0%}; {kinds}); "
            f"--max-failure-rate is {limit}")


Engine = Callable[[Scorer, list[Sample], int], Iterator[list[SampleResult]]]


#: how many batches ``rubrix score`` looks ahead to gather the answers of one prompt
GROUP_LOOKAHEAD = 8


def local_engine(scorer: Scorer, todo: Iterable[Sample], batch_size: int) -> Iterator[list[SampleResult]]:
    """Score in this process, one judge call per batch; ``todo`` may be a stream.

    Answers to one prompt (GRPO groups, pairs) share the judge's prompt prefix, which a local judge
    computes once per batch, so batches are formed by prompt within a window of
    :data:`GROUP_LOOKAHEAD` batches rather than in file order. Results still come out in input
    order, a batch at a time as soon as everything before them is done, so the output file and
    ``--resume`` are the same as with file-order batches; an interruption can lose the results of
    at most one window, which a resumed run scores again.
    """
    it = iter(todo)
    while window := list(itertools.islice(it, batch_size * GROUP_LOOKAHEAD)):
        yield from _score_window(scorer, window, batch_size)


def _score_window(scorer: Scorer, window: list[Sample], batch_size: int) -> Iterator[list[SampleResult]]:
    order = sorted(range(len(window)), key=_first_seen_prompt(window))
    done: dict[int, SampleResult] = {}
    emitted = 0
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        for i, result in zip(idx, _aio.run(scorer.ascore([window[i] for i in idx])), strict=True):
            done[i] = result
        ready = emitted
        while ready < len(window) and ready in done:
            ready += 1
        if ready > emitted:
            yield [done.pop(i) for i in range(emitted, ready)]
            emitted = ready


def _first_seen_prompt(window: list[Sample]):
    """Sort key: samples of the prompt seen first come first, input order within a prompt."""
    first: dict[str, int] = {}
    keys = []
    for i, sample in enumerate(window):
        prompt = sample.prompt if isinstance(sample.prompt, str) else json.dumps(sample.prompt,
                                                                                   sort_keys=True)
        keys.append(first.setdefault(prompt, i))
    return lambda i: (keys[i], i)


class GroupEngine:
    """Score whole groups per batch and apply the group rules (:mod:`rubrix.groupwise`) to them.

    Length shaping relative to a group and group-relative rewards need every answer of a group at
    once, so this engine reads the samples still to do, gathers them by ``group_id`` (a sample
    without one is alone) and fills each batch with whole groups — a batch grows past
    ``batch_size`` rather than split a group. Rows are therefore written group by group, groups in
    the order they first appear (the input order when groups are contiguous, as trainers write
    them); since a batch is written wholly or not at all, an interrupted run never leaves half a
    group, and ``--resume`` shapes the rest against complete groups.
    """

    name = "local"

    def __init__(self, rules: GroupRewards):
        self.rules = rules
        self.counts: Counter = Counter()

    def __call__(self, scorer: Scorer, todo: Iterable[Sample], batch_size: int
                 ) -> Iterator[list[SampleResult]]:
        groups: dict[Any, list[Sample]] = {}
        for sample in todo:
            groups.setdefault(sample.group_id if sample.group_id is not None else ("", sample.id),
                              []).append(sample)
        batch: list[Sample] = []
        for members in groups.values():
            batch.extend(members)
            if len(batch) >= batch_size:
                yield self._score(scorer, batch)
                batch = []
        if batch:
            yield self._score(scorer, batch)

    def _score(self, scorer: Scorer, batch: list[Sample]) -> list[SampleResult]:
        async def score() -> list[SampleResult]:
            results = await scorer.ascore(batch)
            return await self.rules.aapply(scorer, batch, results, self.counts)

        return _aio.run(score())


ENGINES = ("local", "ray")  # the first is the default: score in this process


def make_engine(name: str, scorer: Scorer, *, judge_options: dict[str, Any], cache: bool | str,
                input_path: str | Path, fmt: str | None = None,
                fields: FieldMap = FieldMap(),  # noqa: B008 - frozen, so sharing the default is safe
                actors: int | None = None, address: str | None = None) -> Engine | None:
    """The engine ``rubrix score --engine NAME`` runs: ``None`` (score in this process) or a Ray engine.

    The Ray engine rebuilds the scorer in each actor from its settings (``judge_options`` and
    ``cache`` as given to the scorer), and streams a JSONL input from disk instead of shipping the
    samples.
    """
    if name == "local":
        return None
    if name != "ray":
        raise UserError(f"engine must be {' or '.join(ENGINES)}", field="--engine")
    from .distributed import RayEngine, ScorerConfig

    config = ScorerConfig.from_scorer(scorer, judge_options, cache)
    input_path = Path(input_path)
    streamed = str(input_path) if (fmt or input_path.suffix.lstrip(".")) in ("jsonl", "ndjson") else None
    return RayEngine(config, actors=actors, address=address, input_path=streamed, fields=fields)


def _file_fingerprint(path: Path, shown: str | None = None) -> dict[str, Any]:
    if is_hf_spec(path):
        from .hfdata import fingerprint

        return fingerprint(str(path))
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return {"path": shown or str(path), "bytes": path.stat().st_size, "sha256": h.hexdigest()}


@contextlib.contextmanager
def _spooled_stdin(fmt: str | None) -> Iterator[Path]:
    """Standard input copied to a temporary file, so it can be validated and then scored."""
    suffix = "." + (fmt or "jsonl")
    fd, name = tempfile.mkstemp(prefix="rubrix-stdin-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            shutil.copyfileobj(sys.stdin.buffer, fh, 1 << 20)
        yield Path(name)
    finally:
        os.unlink(name)


def score_file(input_path: str | Path, output: str | Path, *, scorer: Scorer,
               fields: FieldMap = FieldMap(),  # noqa: B008 - frozen, so sharing the default is safe
               fmt: str | None = None, resume: bool = False, batch_size: int = DEFAULT_BATCH_SIZE,
               limit: int | None = None,
               options: dict[str, Any] | None = None,
               on_start: Callable[[int], None] | None = None,
               on_batch: Callable[[list[SampleResult]], None] | None = None,
               engine: Engine | None = None, groups: GroupRewards | None = None,
               _shown_input: str | None = None) -> RunSummary:
    """Score every sample of ``input_path`` into ``output``, one row per sample.

    ``input_path``: a records file, an ``hf:`` data set (:mod:`rubrix.hfdata`) or ``-`` (standard
    input). ``output``: JSONL, Parquet (``.parquet``) or ``-`` (JSONL on standard output, no
    manifest, no resume). ``engine`` turns the samples still to do into batches of results; the
    default scores them in this process. :mod:`rubrix.distributed` provides one that runs on a Ray
    cluster, so both engines share validation, resume, output rows and the manifest. ``groups``:
    length shaping / group-relative rules on top of the rubrics' own ``length:`` sections; when
    any applies, samples are scored a whole group at a time (:class:`GroupEngine`).
    """
    if str(input_path) == "-":
        with _spooled_stdin(fmt) as spooled:
            return score_file(spooled, output, scorer=scorer, fields=fields, fmt=fmt, resume=resume,
                              batch_size=batch_size, limit=limit, options=options, on_start=on_start,
                              on_batch=on_batch, engine=engine, groups=groups, _shown_input="-")
    if not is_hf_spec(input_path):
        input_path = Path(input_path)
        if not input_path.is_file():
            raise UserError("input file does not exist", file=str(input_path))
    to_stdout = results_format(output) == "stdout"
    ids: list[str] = []
    first: Sample | None = None
    groups = groups or GroupRewards()
    grouped = groups.applies_to([], scorer.rubric)
    for sample in read_samples(input_path, fields, fmt=fmt):  # validates everything up front
        if limit is not None and len(ids) >= limit:
            continue
        ids.append(sample.id)
        first = first or sample
        grouped = grouped or (sample.rubric is not None and sample.rubric.length is not None)
        if scorer.rubric is None and sample.rubric is None:
            raise UserError("no rubric given (-r) and this row has none of its own", file=str(input_path),
                            line=sample.line, field="rubric")
    if grouped:
        if engine is not None:
            raise UserError("length shaping and group-relative rewards score whole groups in this "
                            "process; they cannot run on --engine ray", field="--engine")
        engine = GroupEngine(groups)
    if first is not None:  # render one sample now, so a broken --prompts template fails before any output
        scorer.requests_for(first)
    summary = RunSummary(total=len(ids))
    writer = open_results(output, resume=resume)
    done = writer.done_ids
    summary.skipped = sum(1 for i in ids if i in done)
    todo_count = len(ids) - summary.skipped
    del ids
    if summary.skipped:
        for row in iter_results(getattr(writer, "journal_path", output)):  # Parquet: rows are in the journal
            summary.add_previous(row)
    todo: Iterable[Sample] = (s for s in itertools.islice(read_samples(input_path, fields, fmt=fmt), limit)
                              if s.id not in done)
    if engine is not None and not isinstance(engine, GroupEngine):
        todo = list(todo)
    manifest = {
        "rubrix_version": __version__, "command": "score",
        "input": _file_fingerprint(input_path, _shown_input),
        "output": str(output), "engine": "local" if engine is None else getattr(engine, "name", "custom"),
        "judge": scorer.judge_label, "judge_identity": scorer.judge_identity,
        "rubric": None if scorer.rubric is None else {
            "name": scorer.rubric.name, "hash": scorer.rubric.content_hash(), "origin": scorer.rubric.origin},
        "template_hash": scorer.template_hash, "mode": scorer.mode, "verdict": scorer.verdict,
        "options": options or {}, "resume": resume,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()},
    }
    if on_start:
        on_start(todo_count)
    started = time.perf_counter()

    def flush_manifest() -> None:
        summary.wall_s = time.perf_counter() - started
        manifest["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        manifest["counts"] = summary.to_dict()
        if isinstance(engine, GroupEngine):
            manifest["counts"]["group_rules"] = _describe(groups, engine.counts)
        if not to_stdout:
            write_manifest(output, manifest)

    try:
        for results in (engine or local_engine)(scorer, todo, batch_size):  # type: ignore[arg-type]
            if results and manifest["judge"] != results[0].judge:
                manifest["judge"] = results[0].judge
                manifest["judge_identity"] = scorer.judge_identity
            with _sigint_deferred():  # a batch is in the output and the manifest wholly, or not at all
                writer.write([r.to_row() for r in results])
                for r in results:
                    summary.add(r)
                flush_manifest()
            if on_batch:
                on_batch(results)
    except KeyboardInterrupt:
        summary.interrupted = True
        raise
    finally:
        writer.close()
        flush_manifest()
    return summary


def _describe(groups: GroupRewards, counts: Counter) -> dict[str, Any]:
    """The manifest's account of the group rules: what was asked for and what it did."""
    shaping = groups.shaping.to_data() if groups.shaping else "from the rubric"
    out: dict[str, Any] = {"length_shaping": shaping}
    if groups.relative is not None:
        out["relative"] = f"{groups.relative.mode}:{groups.relative.blend:g}"
    out.update({k: counts.get(k, 0) for k in ("length_shaped", "relative_verdicts", "relative_failed")})
    return out


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C back while a batch is written and counted, then deliver it.

    Without this, an interrupt between the output write and the manifest update (or inside a
    large write) leaves rows on disk that the manifest does not count. Only the main thread can
    own signal handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    except ValueError:  # pragma: no cover - not the main interpreter
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
    if caught:
        raise KeyboardInterrupt


__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_MAX_FAILURE_RATE", "ENGINES", "Engine", "GroupEngine", "RunSummary",
           "GROUP_LOOKAHEAD", "failure_reason", "local_engine", "make_engine", "score_file"]
