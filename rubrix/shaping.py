"""Correctness-gated length shaping: shorter is better only among answers that are right.

A length penalty on every answer teaches a policy to be short *and wrong*; LEAD and LASER
penalize length only for answers that pass (are correct), relative to the other passing answers of
the same group. :class:`LengthShaping` is that rule, read from a rubric's ``length:`` section or
given to the reward core (CLI ``--length``, server, adapters)::

    length:
      mode: group        # group: relative to the group's passing answers | target: relative to `target`
      target: 300        # mode target: the length that costs nothing
      unit: words        # words | chars | tokens (rubrix.checks.count_units)
      penalty: 0.5       # the most that is subtracted
      criteria: [correct]   # what "passing" means; default: every gate level (veto criteria and gates)

``group``: among the passing answers of a group, ``p_i = penalty · (n_i − n_min)/(n_max − n_min)``
(0 when they are all as long, or alone). ``target``: ``p = penalty · min(1, max(0, (n − T)/T))``.
The shaped reward is ``r − p``, floored at 0 for a reward that was not negative. Failing answers,
failed judgments (``None``) and answers outside any group in ``group`` mode are left unchanged.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from .checks import UNITS, count_units

MODES = ("group", "target")
_KEYS = {"mode", "target", "unit", "penalty", "criteria"}


class ShapingError(ValueError):
    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class LengthShaping:
    mode: str = "group"
    target: int | None = None
    unit: str = "words"
    penalty: float = 0.5
    criteria: tuple[str, ...] = ()

    @classmethod
    def from_data(cls, data: Any) -> LengthShaping:
        """From a rubric's ``length:`` mapping (raises :class:`ShapingError` naming the field)."""
        if not isinstance(data, dict):
            raise ShapingError("must be a mapping (mode, target, unit, penalty, criteria)")
        for key in data:
            if key not in _KEYS:
                raise ShapingError(f"unknown key (allowed: {', '.join(sorted(_KEYS))})", str(key))
        mode = data.get("mode", "group")
        if mode not in MODES:
            raise ShapingError(f"must be one of {', '.join(MODES)}", "mode")
        target = data.get("target")
        if mode == "target" and target is None:
            raise ShapingError("mode target needs a target length", "target")
        if target is not None and (isinstance(target, bool) or not isinstance(target, int) or target < 1):
            raise ShapingError("must be a positive integer", "target")
        unit = data.get("unit", "words")
        if unit not in UNITS:
            raise ShapingError(f"must be one of {', '.join(UNITS)}", "unit")
        penalty = data.get("penalty", 0.5)
        if isinstance(penalty, bool) or not isinstance(penalty, int | float) or not 0 <= penalty <= 10:
            raise ShapingError("must be a number between 0 and 10", "penalty")
        criteria = data.get("criteria") or []
        if isinstance(criteria, str):
            criteria = [criteria]
        if not isinstance(criteria, list) or not all(isinstance(c, str) for c in criteria):
            raise ShapingError("must be a list of criterion ids", "criteria")
        return cls(mode=mode, target=target, unit=unit, penalty=float(penalty), criteria=tuple(criteria))

    @classmethod
    def parse(cls, spec: str) -> LengthShaping:
        """From the CLI / server form ``group[:PENALTY]`` or ``target:N[:PENALTY]``, optionally ``@unit``."""
        text, _, unit = str(spec).partition("@")
        parts = [p.strip() for p in text.split(":")]
        try:
            if parts[0] == "group" and len(parts) <= 2:
                data: dict[str, Any] = {"mode": "group",
                                        **({"penalty": float(parts[1])} if len(parts) > 1 else {})}
            elif parts[0] == "target" and 2 <= len(parts) <= 3:
                data = {"mode": "target", "target": int(parts[1]),
                        **({"penalty": float(parts[2])} if len(parts) > 2 else {})}
            else:
                raise ValueError
        except ValueError:
            raise ShapingError(f"length shaping must be group[:PENALTY] or target:N[:PENALTY], "
                               f"optionally @words|chars|tokens; got {spec!r}") from None
        if unit:
            data["unit"] = unit
        return cls.from_data(data)

    def to_data(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode}
        if self.target is not None:
            out["target"] = self.target
        out.update({"unit": self.unit, "penalty": self.penalty})
        if self.criteria:
            out["criteria"] = list(self.criteria)
        return out

    def penalties(self, texts: Sequence[str], passed: Sequence[bool],
                  group_ids: Sequence[Hashable | None]) -> list[float]:
        """The penalty of every answer (0 for one that does not pass)."""
        lengths = [count_units(t or "", self.unit) for t in texts]
        out = [0.0] * len(texts)
        if self.mode == "target":
            for i, (n, ok) in enumerate(zip(lengths, passed, strict=True)):
                if ok:
                    out[i] = self.penalty * min(1.0, max(0.0, (n - self.target) / self.target))  # type: ignore
            return out
        groups: dict[Hashable, list[int]] = {}
        for i, (g, ok) in enumerate(zip(group_ids, passed, strict=True)):
            if ok and g is not None:
                groups.setdefault(g, []).append(i)
        for members in groups.values():
            lo, hi = min(lengths[i] for i in members), max(lengths[i] for i in members)
            if hi > lo:
                for i in members:
                    out[i] = self.penalty * (lengths[i] - lo) / (hi - lo)
        return out

    def apply(self, rewards: Sequence[float | None], texts: Sequence[str], passed: Sequence[bool],
              group_ids: Sequence[Hashable | None]) -> list[float | None]:
        """Shaped rewards: ``r − p`` for passing answers (floored at 0 when r ≥ 0); others unchanged."""
        pens = self.penalties(texts, [ok and r is not None for ok, r in zip(passed, rewards, strict=True)],
                              group_ids)
        out: list[float | None] = []
        for r, p in zip(rewards, pens, strict=True):
            if r is None or p == 0:
                out.append(r)
            else:
                out.append(max(0.0, r - p) if r >= 0 else r - p)
        return out
