"""Page models for the two judge-choosing documents: ``rubrix eval`` and ``rubrix audit`` JSON.

Both are already summaries; the model checks that the document is what it claims to be (a file
that is neither is a one-line error, not a blank page) and reshapes it into rows the page draws.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._json import loads_strict
from ..errors import UserError


def load_json(path: str | Path) -> Any:
    p = Path(path)
    if not p.is_file():
        raise UserError("no such file", file=str(path))
    text = p.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise UserError("the file is empty", file=str(path))
    try:
        return loads_strict(text)
    except (ValueError, RecursionError) as exc:
        raise UserError(
            f"not a JSON document ({exc}); a score run's results are JSONL", file=str(path)
        ) from None


def kind_of(doc: Any) -> str | None:
    """``eval``, ``audit`` or None, from the document's own keys."""
    if isinstance(doc, dict) and isinstance(doc.get("methods"), list) and "pairs_evaluated" in doc:
        return "eval"
    if isinstance(doc, dict) and isinstance(doc.get("attacks"), dict) and "overall" in doc:
        return "audit"
    return None


def eval_model(path: str | Path, doc: dict[str, Any]) -> dict[str, Any]:
    """Agreement per method and source, order consistency, paired differences, per-pair outcomes."""
    notes = []
    methods = []
    for m in doc["methods"]:
        s = m.get("summary") or {}
        methods.append(
            {
                "name": m.get("name"),
                "mode": m.get("mode"),
                "rubric": m.get("rubric"),
                "summary": s,
                "by_source": m.get("by_source") or {},
                "cost": m.get("cost") or {},
            }
        )
    if not methods:
        notes.append("the evaluation has no methods")
    if not doc.get("pairs_evaluated"):
        notes.append("no pairs were evaluated")
    if doc.get("pairs_skipped"):
        notes.append(f"{len(doc['pairs_skipped'])} pairs were skipped when the file was read")
    # one row per pair, one column group per method
    pair_ids: list[str] = []
    index: dict[str, int] = {}
    cells: list[list[Any]] = []
    for mi, m in enumerate(doc["methods"]):
        for o in m.get("outcomes") or []:
            pid = str(o.get("id"))
            if pid not in index:
                index[pid] = len(pair_ids)
                pair_ids.append(pid)
                cells.append([None] * len(doc["methods"]) + [o.get("source")])
            cells[index[pid]][mi] = [
                o.get("outcome"),
                o.get("chosen"),
                o.get("rejected"),
                o.get("consistent"),
                o.get("error"),
            ]
    return {
        "kind": "eval",
        "title": f"rubrix report — {Path(path).name}",
        "notes": notes,
        "run": {
            "file": str(path),
            "judge": doc.get("judge"),
            "pairs_file": doc.get("pairs_file"),
            "pairs": doc.get("pairs_evaluated"),
            "bootstrap": doc.get("bootstrap"),
            "tie_margin": doc.get("tie_margin"),
            "principle": doc.get("principle"),
            "rubrix_version": doc.get("rubrix_version"),
        },
        "methods": methods,
        "differences": doc.get("differences") or [],
        "pairs": {"id": pair_ids, "cells": cells},
    }


def audit_model(path: str | Path, doc: dict[str, Any]) -> dict[str, Any]:
    """False-positive rate per attack and per criterion, reward of attacks against the real answers."""
    notes = []
    if not doc["attacks"]:
        notes.append("the audit ran no attacks")
    pw = (doc.get("pairwise") or {}).get("attacks") or {}
    attacks = [{"name": name, **a, "pairwise": pw.get(name)} for name, a in doc["attacks"].items()]
    criteria = [{"id": cid, **c} for cid, c in (doc.get("criteria") or {}).items()]
    return {
        "kind": "audit",
        "title": f"rubrix report — {Path(path).name}",
        "notes": notes,
        "run": {
            "file": str(path),
            "judge": doc.get("judge"),
            "rubric": doc.get("rubric"),
            "template_hash": doc.get("template_hash"),
            "prompts": doc.get("prompts"),
            "samples": doc.get("samples"),
            "seconds": doc.get("seconds"),
        },
        "overall": doc.get("overall") or {},
        "pairwise_overall": (doc.get("pairwise") or {}).get("overall"),
        "attacks": attacks,
        "criteria": criteria,
        "definitions": doc.get("definitions") or {},
    }
