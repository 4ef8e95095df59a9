"""``rubrix extract`` and ``rubrix generalize``: rubrics from preference pairs (:mod:`rubrix.extract`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import UserError
from ..extract import ExtractConfig, GeneralizeConfig, TransferConfig
from ..extract import extract as run_extract
from ..extract.embed import DEFAULT_EMBEDDER
from ._common import (
    BaseUrlOpt,
    FieldOpt,
    JudgeOpt,
    PromptsOpt,
    TransferAgreementOpt,
    TransferMaxPairsOpt,
    TransferOpt,
    TransferPitfallsOpt,
    TransferTieOpt,
    default,
    err,
    extract_scorer,
    judge_options,
    out,
    resume_command,
    say,
    transfer_config,
    with_judge_flags,
)

# the library's defaults, read by the options below (one source: the config classes)
EXTRACT = ExtractConfig()
GENERALIZE = GeneralizeConfig()
TRANSFER = TransferConfig()

# options extract and generalize share (the selection of the core rubric)
MaxSize = Annotated[int, typer.Option(help="most criteria in the core rubric")]
MinGain = Annotated[float, typer.Option(help="stop selecting when the coding-rate gain is below")]
Alpha = Annotated[float, typer.Option(help="alpha in 1/2 logdet(I + alpha Z^T Z)")]
Dedup = Annotated[float, typer.Option(help="cosine at which criteria count as near-duplicates")]


@with_judge_flags
def extract(
    pairs: Annotated[Path, typer.Argument(help="preference pairs: JSONL/CSV/Parquet with prompt, chosen, "
                                          "rejected (optional rationale, source)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="core rubric YAML to write; the provenance "
                                         "log, pool, flat/themes rubrics and summary go beside it")],
    proposer: Annotated[str | None, typer.Option(help="judge that writes criteria "
                                                 "(default: the --judge)")] = None,
    judge: JudgeOpt = None,
    base_url: BaseUrlOpt = None,
    mode: Annotated[str, typer.Option(help="per: propose criteria; contrastive: contrast the answers, then "
                                      "synthesize hard rules and principles")] = EXTRACT.mode,
    max_rounds: Annotated[int, typer.Option(help="revisions after the first proposal")] = EXTRACT.max_rounds,
    max_pairs: Annotated[int | None, typer.Option(help="use at most N training pairs")] = None,
    max_criteria: Annotated[int, typer.Option(help="criteria per proposal")] = EXTRACT.max_criteria,
    margin: Annotated[float, typer.Option(help="reward(chosen) - reward(rejected) needed to "
                                          "pass")] = EXTRACT.margin,
    holdout: Annotated[float, typer.Option(help="pairs set aside for the Theme-Tips gate: a fraction, or a "
                                           "count >= 1")] = default(run_extract, "holdout"),
    heldout: Annotated[Path | None, typer.Option(help="held-out pairs file for the Theme-Tips gate "
                                                 "(instead of --holdout)")] = None,
    seed: Annotated[int, typer.Option(help="seed of the pair shuffle / "
                                      "split")] = default(run_extract, "seed"),
    batch_size: Annotated[int, typer.Option(help="pairs per stage call")] = EXTRACT.batch_size,
    max_size: MaxSize = GENERALIZE.max_size,
    min_gain: MinGain = GENERALIZE.min_gain,
    alpha: Alpha = GENERALIZE.alpha,
    dedup: Dedup = GENERALIZE.dedup,
    themes: Annotated[bool, typer.Option("--themes/--no-themes",
                                         help="group into Theme-Tips")] = GENERALIZE.themes,
    stop_gain: Annotated[float, typer.Option(help="stop consuming pairs when a batch raises the coding rate "
                                             "by less than this, --patience times in a row "
                                             "(0: off)")] = default(run_extract, "stop_gain"),
    patience: Annotated[int, typer.Option(help="see --stop-gain")] = default(run_extract, "patience"),
    transfer: TransferOpt = False,
    pool: Annotated[str, typer.Option(help="what generalization starts from: validated (criteria that "
                                      "passed their own pair) or proposed (every proposed criterion; "
                                      "needs --transfer)")] = EXTRACT.pool,
    transfer_min_agreement: TransferAgreementOpt = TRANSFER.min_agreement,
    transfer_tie: TransferTieOpt = TRANSFER.tie,
    transfer_max_pairs: TransferMaxPairsOpt = TRANSFER.max_pairs,
    transfer_pitfalls: TransferPitfallsOpt = TRANSFER.pitfalls,
    field: FieldOpt = None,
    prompts: PromptsOpt = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue a stopped run: pairs already done in "
                                         "the provenance log are not redone")] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="do not use the verdict cache")] = False,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (local judges)")] = None,
    judge_flags: dict | None = None,
) -> None:
    """Extract a rubric from preference pairs: propose, validate pointwise, revise; then generalize."""
    from .. import _aio
    from ..extract import load_pairs
    from ..judges import get_judge
    from ..records import FieldMap

    fields = FieldMap.parse(field or [])
    cfg = ExtractConfig(mode=mode, max_rounds=max_rounds, max_criteria=max_criteria, margin=margin,
                        batch_size=batch_size, pool=pool)
    cfg.check()
    tcfg = transfer_config(transfer, transfer_min_agreement, transfer_tie, transfer_max_pairs, seed,
                            transfer_pitfalls)
    gcfg = GeneralizeConfig(alpha=alpha, min_gain=min_gain, max_size=max_size, dedup=dedup, themes=themes,
                            name=output.stem)
    held = None
    if heldout is not None:
        held, bad = load_pairs(heldout, fields)
        say(f"held-out pairs: {len(held)} from {heldout} ({len(bad)} skipped)")
    scorer = extract_scorer(judge, base_url, device, prompts, no_cache, flags=judge_flags)
    if proposer is None or proposer == judge:
        prop = scorer.judge
    else:
        prop = get_judge(proposer, **judge_options(base_url, None, device, judge_flags))
    try:
        run = _aio.run(run_extract(pairs, output, proposer=prop, scorer=scorer, config=cfg, gen_config=gcfg,
                                   fields=fields, max_pairs=max_pairs, seed=seed, holdout=holdout,
                                   heldout_pairs=held, resume=resume, stop_gain=stop_gain, patience=patience,
                                   transfer=tcfg, progress=say))
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]: finished pairs are in the provenance log. "
                  f"Resume with:\n  {escape(resume_command())}", soft_wrap=True)
        raise typer.Exit(130) from None
    finally:
        scorer.close()
    s = run.summary
    table = Table(title="rubrix extract — summary", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    skipped = sum(s["skipped"].values())
    table.add_row("pairs", f"{s['train_pairs']} train ({s['resumed_pairs']} resumed), {s['heldout_pairs']} "
                           f"held out, {skipped} skipped" + (f" {s['skipped']}" if skipped else ""))
    table.add_row("passed", f"{s['passed']} passed, {s['failed']} failed, {s['errors']} errors")
    g = s["generalize"] or {}
    tr = s["transfer"]
    table.add_row("criteria", f"{s['criteria_proposed']} proposed, {s['criteria_validated']} validated, "
                              f"{g.get('after_dedup', 0)} after dedup, "
                              + (f"{tr['kept']} pass the transfer check on {tr['pairs']} pairs "
                                 f"({tr['pitfalls']} as pitfalls), " if tr else "")
                              + f"{g.get('selected', 0)} kept")
    table.add_row("themes", str(g.get("themes", 0)))
    table.add_row("rubric kept", f"{s['kept'] or '-'}: {s['reason']}")
    cost = s["cost"]["total"]
    table.add_row("cost", f"{cost['calls']} judge calls, {cost['prompt_tokens']} prompt + "
                          f"{cost['completion_tokens']} generated tokens, {s['cost']['wall_s']} s "
                          f"({s['cost']['seconds_per_processed_pair'] or '-'} s per pair)")
    out.print(table)
    paths = run.paths
    if run.rubric is not None:
        out.print(f"rubric: {output}")
    out.print(f"provenance log: {paths['log']}\npool: {paths['pool']}\nsummary: {paths['summary']}")
    if run.rubric is None:
        raise typer.Exit(1)


@with_judge_flags
def generalize(
    pool: Annotated[Path, typer.Argument(help="validated criteria: a *.pool.jsonl or *.log.jsonl from "
                                         "extract, or a rubric YAML")],
    output: Annotated[Path, typer.Option("--output", "-o", help="core rubric YAML to write")],
    judge: JudgeOpt = None,
    base_url: BaseUrlOpt = None,
    heldout: Annotated[Path | None, typer.Option(help="held-out pairs for the Theme-Tips gate")] = None,
    embedder: Annotated[str, typer.Option(help="minilm (bundled, offline) or openai:MODEL "
                                          "(uses --embed-url)")] = DEFAULT_EMBEDDER,
    embed_url: Annotated[str | None, typer.Option(help="OpenAI-compatible endpoint for openai:MODEL "
                                                  "embeddings")] = None,
    max_size: MaxSize = GENERALIZE.max_size,
    min_gain: MinGain = GENERALIZE.min_gain,
    alpha: Alpha = GENERALIZE.alpha,
    dedup: Dedup = GENERALIZE.dedup,
    themes: Annotated[bool, typer.Option("--themes/--no-themes", help="group into Theme-Tips with the "
                                         "judge")] = GENERALIZE.themes,
    pairs: Annotated[Path | None, typer.Option(help="labelled training pairs for the transfer check: keep "
                                               "only criteria that agree with the labels across "
                                               "them")] = None,
    transfer_min_agreement: TransferAgreementOpt = TRANSFER.min_agreement,
    transfer_tie: TransferTieOpt = TRANSFER.tie,
    transfer_max_pairs: TransferMaxPairsOpt = TRANSFER.max_pairs,
    transfer_pitfalls: TransferPitfallsOpt = TRANSFER.pitfalls,
    seed: Annotated[int, typer.Option(help="seed of the --transfer-max-pairs sample")] = TRANSFER.seed,
    field: FieldOpt = None,
    prompts: PromptsOpt = None,
    no_cache: Annotated[bool, typer.Option("--no-cache")] = False,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (local judges)")] = None,
    judge_flags: dict | None = None,
) -> None:
    """Compress validated criteria into a core rubric: dedup, coding-rate selection, Theme-Tips, gate."""
    from .. import _aio
    from ..extract import NothingKept, generalize_file, get_embedder, load_pairs
    from ..records import FieldMap

    gcfg = GeneralizeConfig(alpha=alpha, min_gain=min_gain, max_size=max_size, dedup=dedup, themes=themes,
                            name=output.stem)
    tcfg = transfer_config(pairs is not None, transfer_min_agreement, transfer_tie, transfer_max_pairs, seed,
                            transfer_pitfalls)
    fields = FieldMap.parse(field or [])
    held = train = None
    if heldout is not None:
        held, _ = load_pairs(heldout, fields)
    if pairs is not None:
        train, bad = load_pairs(pairs, fields)
        say(f"transfer pairs: {len(train)} from {pairs} ({len(bad)} skipped)")
        if not train:
            raise UserError("no usable pairs for the transfer check", file=str(pairs))
    emb = get_embedder(embedder, base_url=embed_url)
    need_judge = themes or held or train
    scorer = (extract_scorer(judge, base_url, device, prompts, no_cache, flags=judge_flags) if need_judge
              else None)
    try:
        gen = _aio.run(generalize_file(pool, output, embedder=emb, config=gcfg,
                                       judge=scorer.judge if scorer and themes else None, scorer=scorer,
                                       heldout=held, transfer_pairs=train, transfer=tcfg, progress=say))
    except NothingKept as exc:
        err.print(f"{exc}: no rubric written", markup=False)
        raise typer.Exit(1) from None
    finally:
        if scorer is not None:
            scorer.close()
    s = gen.stats
    if "transfer" in s:
        t = s["transfer"]
        out.print(f"transfer check: {t['kept']} of {t['checked']} criteria kept on {t['pairs']} pairs "
                  f"({t['pitfalls']} as pitfalls)", markup=False)
    out.print(f"{s['pool']} criteria, {s['after_dedup']} after dedup, {s['selected']} selected "
              f"(coding rate {s['coding_rate']:.3f}, stopped: {s['stopped']}), {s['themes']} themes; "
              f"kept {gen.kept_kind}: {gen.reason}", markup=False)
    out.print(f"rubric: {output}")

