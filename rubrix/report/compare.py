"""Two score runs over the same ids (another judge, rubric or template): where do they differ?

Per criterion: the met rate and mean P in each run and their difference (criteria matched by id).
Over the samples both scored: Spearman's rank correlation of the rewards (ranks are what a
trainer's advantage uses) and the samples whose rewards differ most. Ids present in only one run
are counted and named, never silently compared against nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UserError
from ..results import read_manifest
from .data import read_rows

TOP = 25


def _ranks(values: list[float]) -> list[float]:
    """Average ranks (ties share the mean of their positions)."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(a: list[float], b: list[float]) -> float | None:
    """Spearman's rho (Pearson correlation of average ranks); None when undefined."""
    if len(a) < 3:
        return None
    ra, rb = _ranks(a), _ranks(b)
    n = len(a)
    ma, mb = sum(ra) / n, sum(rb) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    va = sum((x - ma) ** 2 for x in ra)
    vb = sum((y - mb) ** 2 for y in rb)
    if va == 0 or vb == 0:
        return None
    return round(cov / (va * vb) ** 0.5, 4)


def _criteria_stats(rows: list[dict[str, Any]], ids: set[str]) -> dict[str, dict[str, float | int]]:
    out: dict[str, list[float]] = {}
    for row in rows:
        if str(row["id"]) not in ids:
            continue
        for cid, v in (row.get("criteria") or {}).items():
            if isinstance(v, dict) and v.get("p") is not None and not v.get("error"):
                out.setdefault(cid, []).append(float(v["p"]))
    return {
        cid: {
            "met_rate": round(sum(p >= 0.5 for p in ps) / len(ps), 4),
            "mean_p": round(sum(ps) / len(ps), 4),
            "n": len(ps),
        }
        for cid, ps in out.items()
    }


def _describe(path: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    m = read_manifest(path) or {}
    return {
        "results": str(path),
        "judge": m.get("judge") or rows[0].get("judge"),
        "rubric_hash": (m.get("rubric") or {}).get("hash") or rows[0].get("rubric_hash"),
        "rubric": (m.get("rubric") or {}).get("name"),
        "template_hash": m.get("template_hash") or rows[0].get("template_hash"),
        "samples": len(rows),
    }


def compare_model(
    a_path: str | Path, b_path: str | Path, a_rows: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The comparison section: run descriptions, id overlap, criterion deltas, rank correlation."""
    a_path, b_path = Path(a_path), Path(b_path)
    if a_rows is None:
        a_rows, _ = read_rows(a_path)
    b_rows, cut = read_rows(b_path)
    a_ids = {str(r["id"]) for r in a_rows}
    b_ids = {str(r["id"]) for r in b_rows}
    common = a_ids & b_ids
    if not common:
        raise UserError(
            f"--compare: no sample id in common between {a_path.name} ({len(a_ids)} ids) and "
            f"{b_path.name} ({len(b_ids)} ids); compare two runs over the same samples",
            file=str(b_path),
        )
    notes = [cut] if cut else []
    only_a, only_b = sorted(a_ids - common), sorted(b_ids - common)
    if only_a or only_b:
        notes.append(
            f"ids differ: {len(only_a)} only in {a_path.name}, {len(only_b)} only in {b_path.name}; "
            f"compared on the {len(common)} in both"
        )
    ra = {str(r["id"]): r.get("reward") for r in a_rows}
    rb = {str(r["id"]): r.get("reward") for r in b_rows}
    both = [i for i in sorted(common) if ra[i] is not None and rb[i] is not None]
    ca, cb = _criteria_stats(a_rows, common), _criteria_stats(b_rows, common)
    criteria = []
    for cid in list(ca) + [c for c in cb if c not in ca]:
        x, y = ca.get(cid), cb.get(cid)
        criteria.append(
            {
                "id": cid,
                "a": x,
                "b": y,
                "delta_met": round(y["met_rate"] - x["met_rate"], 4) if x and y else None,
                "delta_p": round(y["mean_p"] - x["mean_p"], 4) if x and y else None,
            }
        )
    diffs = sorted(both, key=lambda i: (-abs(rb[i] - ra[i]), i))[:TOP]
    mean_a = sum(ra[i] for i in both) / len(both) if both else None
    mean_b = sum(rb[i] for i in both) / len(both) if both else None
    return {
        "a": _describe(a_path, a_rows),
        "b": _describe(b_path, b_rows),
        "notes": notes,
        "common": len(common),
        "only_a": only_a[:20],
        "only_b": only_b[:20],
        "only_a_count": len(only_a),
        "only_b_count": len(only_b),
        "both_scored": len(both),
        "mean_a": None if mean_a is None else round(mean_a, 4),
        "mean_b": None if mean_b is None else round(mean_b, 4),
        "spearman": spearman([ra[i] for i in both], [rb[i] for i in both]),
        "criteria": criteria,
        "disagree": [{"id": i, "a": ra[i], "b": rb[i], "delta": round(rb[i] - ra[i], 4)} for i in diffs],
    }
