"""Distributed batch grading on Ray Data: the same scoring, one judge per actor.

``rubrix score --engine ray`` validates the input, handles ``--resume`` and writes rows and the
manifest exactly like a local run (it plugs into :func:`rubrix.runs.score_file` as an engine).
Only the judging moves: the samples still to do stream through ``map_batches`` into a pool of
actors, each holding one judge (and one GPU where the cluster has GPUs), and the scored rows
stream back to the driver in input order, which appends them to the output as they arrive.

On a real cluster, start Ray on the nodes (``ray start --head`` / ``ray start --address=...``),
install rubrix with the judge's extra on every node, and run the command on the head node with
``RAY_ADDRESS`` set (or ``--ray-address``). Without an address a local Ray instance is started.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .errors import MissingExtraError
from .records import Sample
from .scoring import CriterionResult, SampleResult, Scorer


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise MissingExtraError("--engine ray", "ray", "ray[data]") from None
    return ray


def sample_to_record(sample: Sample) -> dict[str, Any]:
    """A JSON-safe record of a validated sample, to ship to an actor."""
    return {"id": sample.id, "prompt": sample.prompt, "response": sample.response,
            "rubric": None if sample.rubric is None else sample.rubric.to_dict(),
            "group_id": sample.group_id, "reference": sample.reference, "line": sample.line}


def record_to_sample(record: dict[str, Any]) -> Sample:
    from .rubric import rubric_from_data

    rubric = record.get("rubric")
    return Sample(id=record["id"], prompt=record["prompt"], response=record["response"],
                  rubric=None if rubric is None else rubric_from_data(rubric),
                  group_id=record.get("group_id"), reference=record.get("reference"), line=record.get("line"))


def result_from_payload(payload: dict[str, Any]) -> SampleResult:
    """Rebuild a :class:`SampleResult` from what an actor sent back (its row plus usage)."""
    row = payload["row"]
    criteria = {cid: CriterionResult(p=c["p"], met=c["met"], error=c["error"], level=c.get("level"),
                                     na=bool(c.get("na")), source=c.get("source", "judge"),
                                     skipped=bool(c.get("skipped")))
                for cid, c in row["criteria"].items()}
    return SampleResult(id=row["id"], group_id=row.get("group_id"), reward=row["reward"],
                        reward_raw=row["reward_raw"], status=row["status"], criteria=criteria,
                        judge=row["judge"], rubric_hash=row["rubric_hash"],
                        template_hash=row["template_hash"],
                        errors=row.get("errors", {}), usage=payload.get("usage", {}),
                        cached=payload.get("cached", 0))


@dataclass
class ScorerConfig:
    """What an actor needs to build its own Scorer (plain data, so Ray can ship it)."""

    rubric: dict[str, Any] | None
    judge: str
    judge_options: dict[str, Any]
    prompts: str | None
    mode: str
    verdict: str
    hard: bool
    cache: bool | str
    keep_rationale: bool = False

    @classmethod
    def from_scorer(cls, scorer: Scorer, judge_options: dict[str, Any], cache: bool | str) -> ScorerConfig:
        rubric = None if scorer.rubric is None else scorer.rubric.to_dict()
        return cls(rubric=rubric, judge=scorer.judge_spec,
                   judge_options=judge_options, prompts=scorer.renderer.override_dir, mode=scorer.mode,
                   verdict=scorer.verdict, hard=scorer.hard, cache=cache,
                   keep_rationale=scorer.keep_rationale)

    def build(self) -> Scorer:
        return Scorer(self.rubric, self.judge, prompts=self.prompts, mode=self.mode, verdict=self.verdict,
                      cache=self.cache, hard=self.hard, keep_rationale=self.keep_rationale,
                      **self.judge_options)


class _ScoreActor:
    """One judge per actor; scores a batch of records (validated samples or raw JSONL lines)."""

    def __init__(self, config: ScorerConfig, fields: Any = None, keep_ids: frozenset[str] | None = None):
        self.scorer = config.build()
        self.fields = fields
        self.keep_ids = keep_ids

    def _samples(self, batch: dict[str, Any]) -> list[Sample]:
        if "record" in batch:
            return [record_to_sample(json.loads(r)) for r in batch["record"]]
        from .records import sample_from_dict

        out = []
        for line in batch["text"]:  # raw JSONL lines, already validated by the driver
            if not line.strip():
                continue
            sample = sample_from_dict(json.loads(line), self.fields)
            if self.keep_ids is None or sample.id in self.keep_ids:  # resume / --limit
                out.append(sample)
        return out

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        from . import _aio

        samples = self._samples(batch)
        if not samples:
            return {"payload": []}
        results = _aio.run(self.scorer.ascore(samples))
        payloads = [json.dumps({"row": r.to_row(), "usage": r.usage, "cached": r.cached}) for r in results]
        return {"payload": payloads}


class RayEngine:
    """A :data:`rubrix.runs.Engine` that scores on Ray Data."""

    name = "ray"

    def __init__(self, config: ScorerConfig, *, actors: int | None = None, address: str | None = None,
                 gpus_per_actor: float | None = None, input_path: str | None = None, fields: Any = None):
        self.config = config
        self.input_path = input_path  # a JSONL input is streamed from disk by Ray instead of shipped
        self.fields = fields
        self.actors = actors
        self.address = address
        self.gpus_per_actor = gpus_per_actor

    def __call__(self, scorer: Scorer, todo: list[Sample], batch_size: int) -> Iterator[list[SampleResult]]:
        if not todo:
            return
        ray = _import_ray()
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     ignore_reinit_error=True)
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # rows come back in input order, like a local run
        ctx.enable_progress_bars = False
        gpus = self.gpus_per_actor
        if gpus is None:
            gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        actors = self.actors or max(1, int(ray.cluster_resources().get("GPU", 0))) or 1
        if self.input_path is not None:
            ds = ray.data.read_text(str(self.input_path), drop_empty_lines=True)
            kwargs = {"config": self.config, "fields": self.fields, "keep_ids": frozenset(s.id for s in todo)}
        else:
            records = [{"record": json.dumps(sample_to_record(s), ensure_ascii=False)} for s in todo]
            ds = ray.data.from_items(records, override_num_blocks=max(1, len(records) // max(1, batch_size)))
            kwargs = {"config": self.config}
        scored = ds.map_batches(_ScoreActor, fn_constructor_kwargs=kwargs, batch_size=batch_size,
                                compute=ray.data.ActorPoolStrategy(size=actors), num_gpus=gpus,
                                batch_format="numpy")
        pending: list[SampleResult] = []
        for row in scored.iter_rows():
            pending.append(result_from_payload(json.loads(row["payload"])))
            if len(pending) >= batch_size:
                yield pending
                pending = []
        if pending:
            yield pending
