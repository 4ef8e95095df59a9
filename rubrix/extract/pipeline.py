"""The extraction run: pairs file in, core rubric and its side files out, resumable.

:func:`extract` is what ``rubrix extract`` runs; :func:`generalize_file` is ``rubrix
generalize``. The method lives in the modules this one orchestrates (:mod:`.propose` per pair,
:mod:`.transfer`, :mod:`.embed` and :mod:`.generalize` across pairs); this module owns the run
around it: reading and splitting the pairs, the provenance log as resume state, the batches and
the early stop, the files written, and the summary with its cost (read from the scorer's
:class:`~rubrix.cost.CostMeter`, scoped to this invocation).

Files written next to the rubric ``OUT.yaml`` (:func:`side_paths`):

* ``OUT.log.jsonl``   — provenance: every proposal, verdict, revision, skip and error (also the
  resume state: pairs with a ``done`` row are not redone);
* ``OUT.pool.jsonl``  — the validated per-pair criteria (input of ``rubrix generalize``);
* ``OUT.flat.yaml`` / ``OUT.themes.yaml`` — the two candidate core rubrics;
* ``OUT.summary.json`` — counts, the gate decision, cost (judge calls, tokens, time).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._json import write_json_atomic, write_jsonl_atomic
from ..errors import UserError
from ..judges.base import Judge
from ..records import FieldMap, Pair
from ..rubric import Rubric, save_rubric
from .embed import Embedder, get_embedder
from .generalize import (
    GeneralizeConfig,
    GeneralizeResult,
    NothingKept,
    drop_near_duplicates,
    generalize,
    pool_from_rows,
    read_pool,
    select_coding_rate,
)
from .propose import (
    ExtractConfig,
    PairExtractor,
    PairResult,
    ProvenanceLog,
    load_pairs,
    pool_rows,
    proposal_rows,
    result_from_log,
    split_pairs,
)
from .transfer import TransferConfig

if TYPE_CHECKING:
    from ..scoring import Scorer


def side_paths(output: str | Path) -> dict[str, Path]:
    """The files written beside ``OUT.yaml``."""
    out = Path(output)
    stem = out.name[:-len(out.suffix)] if out.suffix in (".yaml", ".yml") else out.name
    base = out.with_name(stem)
    return {"log": base.with_name(stem + ".log.jsonl"), "pool": base.with_name(stem + ".pool.jsonl"),
            "flat": base.with_name(stem + ".flat.yaml"), "themes": base.with_name(stem + ".themes.yaml"),
            "summary": base.with_name(stem + ".summary.json")}


@dataclass
class ExtractRun:
    """What :func:`extract` did: the kept rubric, per-pair results, counts and cost."""

    rubric: Rubric | None
    results: list[PairResult]
    summary: dict[str, Any]
    generalized: GeneralizeResult | None = None
    paths: dict[str, Path] = field(default_factory=dict)


async def extract(pairs_path: str | Path, output: str | Path, *, proposer: Judge, scorer: Scorer,
                  config: ExtractConfig | None = None, gen_config: GeneralizeConfig | None = None,
                  embedder: Embedder | None = None, fields: FieldMap = FieldMap(),  # noqa: B008 - frozen
                  fmt: str | None = None, max_pairs: int | None = None, seed: int = 0,
                  holdout: float = 0.0, heldout_pairs: list[Pair] | None = None, resume: bool = False,
                  stop_gain: float = 0.0, patience: int = 2, transfer: TransferConfig | None = None,
                  progress: Callable[[str], None] | None = None) -> ExtractRun:
    """Extract a core rubric from the pairs in ``pairs_path`` and write it to ``output``.

    ``proposer`` is a judge that generates; ``scorer`` a :class:`~rubrix.scoring.Scorer` whose
    judge validates (pointwise). ``holdout`` (fraction or count) sets pairs aside for the
    Theme-Tips gate (``heldout_pairs`` names them explicitly instead). With ``stop_gain > 0``,
    extraction stops early once ``patience`` consecutive batches raise the coding rate of the
    selected set by less than ``stop_gain`` (Auto-Rubric's data-consumption rule, made exact).
    With ``transfer``, generalization keeps only criteria that agree with the labels across the
    training pairs (:mod:`.transfer`); ``config.pool == "proposed"`` feeds it every proposed
    criterion instead of the per-pair validated ones, and needs ``transfer``.
    """
    cfg = config or ExtractConfig()
    cfg.check()
    if cfg.pool == "proposed" and transfer is None:
        raise UserError("--pool proposed needs the transfer check (--transfer)", field="--pool")
    gcfg = gen_config or GeneralizeConfig()
    say = progress or (lambda _m: None)
    t_run = time.perf_counter()
    paths = side_paths(output)
    out_path = Path(output)
    if not resume and out_path.exists():
        raise UserError("rubric file already exists; choose another output or pass --resume",
                        file=str(out_path))
    all_pairs, skipped = load_pairs(pairs_path, fields, fmt=fmt)
    say(f"read {len(all_pairs) + len(skipped)} records from {pairs_path}: {len(all_pairs)} usable pairs, "
        f"{len(skipped)} skipped")
    train, held = split_pairs(all_pairs, seed=seed, max_pairs=max_pairs, holdout=holdout)
    if heldout_pairs is not None:
        held = list(heldout_pairs)
    if not train:
        raise UserError("no usable pairs to extract from", file=str(pairs_path))
    log = ProvenanceLog(paths["log"], resume=resume)
    meter = scorer.meter
    spent_before = meter.snapshot()  # the scorer may have judged before: report this run only
    try:
        finished = log.finished()
        logged_skips = {k for k, row in finished.items() if row.get("event") == "skip"}
        for s in skipped:
            say(f"skip line {s.line} ({s.id or 'no id'}): {s.reason}")
            key = s.id or f"line:{s.line}"
            if key not in logged_skips:
                log.write("skip", key, line=s.line, reason=s.reason)
        previous = [result_from_log(finished[p.id]) for p in train
                    if p.id in finished and finished[p.id].get("event") == "done"]
        todo = [p for p in train if p.id not in finished]
        if previous:
            say(f"resume: {len(previous)} pairs already done in {paths['log']}, {len(todo)} to go")
        extractor = PairExtractor(proposer, scorer, cfg, log=log, renderer=scorer.renderer)
        results: list[PairResult] = list(previous)
        total = len(train)
        state = {"done": len(previous)}

        def on_event(kind: str, data: dict) -> None:
            if kind in ("propose", "revise"):
                say(f"[{state['done'] + 1}/{total}] {data['pair']}: {kind} round {data['round']}: "
                    f"{data['criteria']} criteria")
            elif kind == "verdict":
                d = data["delta"]
                say(f"[{state['done'] + 1}/{total}] {data['pair']}: "
                    f"{'PASS' if data['passed'] else 'fail'} "
                    f"(reward gap {'n/a' if d is None else f'{d:+.3f}'})")

        def need_embedder() -> Embedder:
            nonlocal embedder
            if embedder is None:
                say("loading the sentence embedder")
                embedder = get_embedder()
            return embedder

        rates: list[float] = []
        low = 0
        stopped_early = False
        size = cfg.batch_size
        for start in range(0, len(todo), size):
            batch = todo[start:start + size]
            for res in await extractor.run(batch, on_event=on_event):
                results.append(res)
                state["done"] += 1
                t = f" ({res.error})" if res.error else ""
                say(f"[{state['done']}/{total}] {res.pair_id}: {res.status}, "
                    f"{len(res.kept)} criteria kept{t}")
            if stop_gain > 0:
                items = pool_from_rows(pool_rows(results, log.run_id))
                if items:
                    z = need_embedder().embed([it.text for it in items])
                    _, zd, _ = drop_near_duplicates(items, z, gcfg.dedup)
                    rate = select_coding_rate(zd, alpha=gcfg.alpha, max_size=gcfg.max_size,
                                              min_gain=gcfg.min_gain).rate
                    gain = rate - (rates[-1] if rates else 0.0)
                    rates.append(rate)
                    low = low + 1 if gain < stop_gain else 0
                    say(f"coding rate of the selection after {state['done']} pairs: {rate:.3f} (+{gain:.3f})")
                    if low >= patience:
                        say(f"stopping early: {patience} batches in a row gained less than {stop_gain}")
                        stopped_early = True
                        break
        validated = pool_rows(results, log.run_id)
        pool = validated if cfg.pool == "validated" else proposal_rows(
            log.rows(), {p.id: p.source for p in train}, log.run_id)
        write_jsonl_atomic(paths["pool"], pool)
        status = Counter(r.status for r in results)
        say(f"pairs: {status['passed']} passed, {status['failed']} failed, {status['error']} errors; "
            f"{len(validated)} validated criteria" + ("" if cfg.pool == "validated" else
                                                       f"; generalizing from all {len(pool)} proposed"))
        gen: GeneralizeResult | None = None
        rubric: Rubric | None = None
        reason = "no validated criteria"
        try:
            if pool:
                gen = await generalize(pool_from_rows(pool), embedder=need_embedder(), config=gcfg,
                                       judge=proposer, scorer=scorer, heldout=held, run_id=log.run_id,
                                       renderer=scorer.renderer, log=log, progress=say,
                                       transfer_pairs=train if transfer is not None else None,
                                       transfer=transfer)
        except NothingKept as exc:
            reason = str(exc)
        if gen is not None:
            rubric = _with_provenance(gen.kept, gen, cfg, proposer, scorer, log.run_id, pairs_path)
            save_rubric(_with_provenance(gen.flat, gen, cfg, proposer, scorer, log.run_id, pairs_path),
                        paths["flat"])
            if gen.themed is not None:
                save_rubric(_with_provenance(gen.themed, gen, cfg, proposer, scorer, log.run_id, pairs_path),
                            paths["themes"])
            save_rubric(rubric, out_path)
        else:
            say(f"{reason}: no rubric written")
        wall = time.perf_counter() - t_run
        processed = len(results) - len(previous)
        summary = {
            "pairs_file": str(pairs_path), "output": str(out_path) if rubric else None, "run": log.run_id,
            "records": len(all_pairs) + len(skipped),
            "skipped": dict(Counter(s.reason.split(":")[0] for s in skipped)),
            "train_pairs": len(train), "heldout_pairs": len(held), "resumed_pairs": len(previous),
            "processed_pairs": processed, "stopped_early": stopped_early, "coding_rate_per_batch": rates,
            "passed": status["passed"], "failed": status["failed"], "errors": status["error"],
            "criteria_proposed": sum(r.proposed for r in results), "criteria_validated": len(validated),
            "pool": cfg.pool, "pool_size": len(pool),
            "rounds_to_pass": dict(Counter(r.rounds for r in results if r.status == "passed")),
            "generalize": gen.stats if gen else None, "kept": gen.kept_kind if gen else None,
            "reason": gen.reason if gen else reason,
            "transfer": _transfer_summary(gen),
            "config": asdict(cfg), "generalize_config": asdict(gcfg), "seed": seed,
            "transfer_config": asdict(transfer) if transfer is not None else None,
            "proposer": proposer.name, "validator": scorer.judge.name,
            "cost": {"scope": "this invocation (pairs resumed from the log cost nothing here)",
                     "by_stage": meter.to_dict(spent_before), "total": meter.total(spent_before).to_dict(),
                     "wall_s": round(wall, 1),
                     "seconds_per_processed_pair": round(wall / processed, 1) if processed else None},
        }
        write_json_atomic(paths["summary"], summary)
        return ExtractRun(rubric=rubric, results=results, summary=summary, generalized=gen, paths=paths)
    finally:
        log.close()


async def generalize_file(pool_path: str | Path, output: str | Path, *, embedder: Embedder | None = None,
                          config: GeneralizeConfig | None = None, judge: Judge | None = None,
                          scorer: Scorer | None = None,
                          heldout: list[Pair] | None = None, transfer_pairs: list[Pair] | None = None,
                          transfer: TransferConfig | None = None,
                          progress: Callable[[str], None] | None = None) -> GeneralizeResult:
    """``rubrix generalize``: a pool / log / rubric of validated criteria in, a core rubric out.

    With ``transfer_pairs`` the transfer check runs before selection; :class:`NothingKept` is
    raised (and nothing written) when no criterion passes it.
    """
    items = read_pool(pool_path)
    embedder = embedder or get_embedder()
    gen = await generalize(items, embedder=embedder, config=config, judge=judge, scorer=scorer,
                           heldout=heldout, progress=progress,
                           renderer=scorer.renderer if scorer is not None else None,
                           transfer_pairs=transfer_pairs, transfer=transfer)
    paths = side_paths(output)
    prov = {"method": "rubrix generalize (coding-rate selection; Theme-Tips gate)", "pool": str(pool_path),
            **_selection_provenance(gen)}
    if judge is not None:
        prov["grouper"] = judge.name

    def stamp(r: Rubric) -> Rubric:
        return Rubric(name=r.name, criteria=r.criteria, version=r.version, description=r.description,
                      principles=r.principles, aggregation=r.aggregation, provenance=prov)

    save_rubric(stamp(gen.flat), paths["flat"])
    if gen.themed is not None:
        save_rubric(stamp(gen.themed), paths["themes"])
    save_rubric(stamp(gen.kept), output)
    return gen


def _with_provenance(rubric: Rubric, gen: GeneralizeResult, cfg: ExtractConfig, proposer: Judge,
                     scorer: Scorer, run_id: str, pairs_path: str | Path) -> Rubric:
    check = "; transfer check" if "transfer" in gen.stats else ""
    prov = {"method": f"rubrix extract ({cfg.mode}: propose, validate pointwise, revise{check}; "
                      "coding-rate selection; Theme-Tips gate)",
            "run": run_id, "pairs_file": str(pairs_path), "proposer": proposer.name,
            "validator": scorer.judge.name, "margin": cfg.margin, "max_rounds": cfg.max_rounds,
            "pool": cfg.pool, **_selection_provenance(gen)}
    return Rubric(name=rubric.name, criteria=rubric.criteria, version=rubric.version,
                  description=rubric.description, principles=rubric.principles,
                  aggregation=rubric.aggregation,
                  provenance=prov)


def _transfer_summary(gen: GeneralizeResult | None) -> dict[str, Any] | None:
    """The transfer check's counts without its per-criterion table."""
    info = gen.stats.get("transfer") if gen is not None else None
    return None if info is None else {k: v for k, v in info.items() if k != "criteria"}


def _selection_provenance(gen: GeneralizeResult) -> dict[str, Any]:
    """How the core rubric was chosen: selection numbers, the transfer check, the gate decision."""
    prov: dict[str, Any] = {
        "selection": {k: gen.stats[k] for k in ("pool", "after_dedup", "selected", "coding_rate", "alpha",
                                                "min_gain", "max_size", "dedup", "embedder", "stopped")},
        "kept": gen.kept_kind, "reason": gen.reason}
    if "transfer" in gen.stats:
        prov["transfer"] = _transfer_summary(gen)
    if "gate" in gen.stats:
        g = gen.stats["gate"]
        prov["gate"] = {"pairs": g["pairs"], "flat_agreement": g["flat"]["agreement"],
                        "themes_agreement": g["themes"]["agreement"]}
    return prov
