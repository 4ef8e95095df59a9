"""Transfer check: does a criterion separate chosen from rejected beyond the pair it came from?

Per-pair validation (:mod:`.propose`) shows only that a criterion set separated the two responses
of *its own* pair. That lets through statements that name a fact of one prompt ("the response
gives the ESRB rating M"): true there, silent everywhere else. It also throws away useful general
statements when the validator is weak: a small judge's P(met) for "the response is complete"
moves a few hundredths between two answers, never the per-pair margin, yet it may move the right
way on most pairs.

The transfer check asks the question at the level of the training set instead. Every candidate
criterion is scored on the chosen and the rejected response of every training pair (one rubric
holding all candidates, so the local judge encodes each response once and reads every criterion
off the shared prefix; pairs are scored with :meth:`~rubrix.scoring.Scorer.ascore_pairs`, a batch
of pairs per judge call, and charged to the ``transfer`` stage of the scorer's meter). Per
criterion and pair the outcome is a *win* when ``P(met | chosen) - P(met | rejected) > tie``, a
*loss* when it is below ``-tie``, otherwise a *tie*; a judge error on either side is *failed*,
never a number. A criterion is kept when ``wins / (wins + losses) >= min_agreement`` on at least
``min_decided`` decided pairs: it has to point the same way as the human labels on most pairs
where it says anything.

A criterion that points the *other* way just as consistently (``losses / decided >=
min_agreement``) is evidence too: what it describes is typical of the rejected answers. Small
proposers often write such statements ("The response does not mention the location", copied
from what the worse answer lacked). With ``pitfalls`` on, it is kept as a **pitfall** — negative
weight, *met means the fault is present* — so the labels, not the wording, decide its polarity.

Everything counted is written to the provenance log and the summary, so a user can see which
statements the labels supported and by how much.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import UserError
from ..records import Pair
from ..rubric import Criterion, Rubric

if TYPE_CHECKING:
    from ..scoring import Scorer


@dataclass
class TransferConfig:
    """Options of the transfer check (same defaults as ``--transfer-*`` on the command line)."""

    tie: float = 0.02            # |P(met|chosen) - P(met|rejected)| at most this is a tie
    min_agreement: float = 0.6   # wins / (wins + losses) needed to keep a criterion
    min_decided: int = 3         # fewest non-tied, non-failed pairs to judge a criterion on
    max_pairs: int | None = None  # score at most this many training pairs (seeded sample)
    seed: int = 0
    pitfalls: bool = True        # keep consistently reversed criteria as pitfalls (negative weight)

    def check(self) -> None:
        if not 0.0 <= self.tie < 1.0:
            raise UserError("must be in [0, 1)", field="--transfer-tie")
        if not 0.0 <= self.min_agreement <= 1.0:
            raise UserError("must be in [0, 1]", field="--transfer-min-agreement")
        if self.min_decided < 1:
            raise UserError("must be >= 1", field="--transfer-min-decided")
        if self.max_pairs is not None and self.max_pairs < 1:
            raise UserError("must be >= 1", field="--transfer-max-pairs")


@dataclass
class TransferStat:
    """How one criterion fared across the training pairs."""

    text: str
    wins: int = 0
    losses: int = 0
    ties: int = 0
    failed: int = 0
    gap_sum: float = 0.0

    @property
    def decided(self) -> int:
        return self.wins + self.losses

    @property
    def agreement(self) -> float | None:
        return self.wins / self.decided if self.decided else None

    @property
    def mean_gap(self) -> float | None:
        n = self.decided + self.ties
        return self.gap_sum / n if n else None

    def polarity(self, cfg: TransferConfig) -> int:
        """+1: keep as a criterion; -1: keep as a pitfall; 0: drop."""
        a = self.agreement
        if a is None or self.decided < cfg.min_decided:
            return 0
        if a >= cfg.min_agreement:
            return 1
        if cfg.pitfalls and 1.0 - a >= cfg.min_agreement:
            return -1
        return 0

    def passes(self, cfg: TransferConfig) -> bool:
        return self.polarity(cfg) != 0

    def to_dict(self) -> dict[str, Any]:
        a, g = self.agreement, self.mean_gap
        return {"text": self.text, "wins": self.wins, "losses": self.losses, "ties": self.ties,
                "failed": self.failed, "agreement": None if a is None else round(a, 4),
                "mean_gap": None if g is None else round(g, 4)}


def sample_pairs(pairs: Sequence[Pair], cfg: TransferConfig) -> list[Pair]:
    """The pairs to check on: all of them, or a seeded sample of ``max_pairs``."""
    chosen = list(pairs)
    if cfg.max_pairs is not None and len(chosen) > cfg.max_pairs:
        chosen = random.Random(cfg.seed).sample(chosen, cfg.max_pairs)
    return chosen


def _candidate_rubric(texts: Sequence[str]) -> Rubric:
    return Rubric(name="transfer-check", criteria=tuple(
        Criterion(id=f"t{i + 1}", text=t, weight=1.0) for i, t in enumerate(texts)))


def tally(stats: list[TransferStat], chosen_ps: Sequence[float | None], rejected_ps: Sequence[float | None],
          tie: float) -> None:
    """Add one pair's per-criterion probabilities (chosen side, rejected side) to ``stats``."""
    for st, pc, pr in zip(stats, chosen_ps, rejected_ps, strict=True):
        if pc is None or pr is None:
            st.failed += 1
            continue
        gap = pc - pr
        st.gap_sum += gap
        if gap > tie:
            st.wins += 1
        elif gap < -tie:
            st.losses += 1
        else:
            st.ties += 1


async def transfer_stats(scorer: Scorer, texts: Sequence[str], pairs: Iterable[Pair], *, tie: float,
                         batch_size: int = 8,
                         progress: Callable[[int], None] | None = None) -> list[TransferStat]:
    """Score every criterion in ``texts`` on both responses of every pair and count the outcomes."""
    rubric = _candidate_rubric(texts)
    ids = [c.id for c in rubric.criteria]
    stats = [TransferStat(text=t) for t in texts]
    todo = list(pairs)
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        with scorer.meter.stage("transfer"):
            scored = await scorer.ascore_pairs(batch, rubric)
        for ps in scored:
            values = [ps.values(cid) for cid in ids]
            tally(stats, [c for c, _ in values], [r for _, r in values], tie)
        if progress is not None:
            progress(start + len(batch))
    return stats
