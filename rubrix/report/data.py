"""The page's data model for a ``rubrix score`` run: pure Python, built from files, no browser.

Everything the page shows is computed here (counts, the interval, histogram bins, quartiles, tag
scores), so tests can check the numbers without a browser and the page's JavaScript only lays
them out. Per-sample data is stored column-wise with criterion values as arrays in rubric order,
which keeps a 10,000-sample page to a few megabytes.

What is missing is said plainly in ``notes`` (no manifest, samples file moved or changed, rubric
not loadable, templates changed) instead of failing: the rows alone still make a useful page.
Only what makes the page meaningless is an error: no rows, rows damaged before the last line,
rows from different rubrics in a single-rubric run.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._json import is_finite_number
from ..errors import InputError, UserError
from ..records import FieldMap, Sample, decode_line, expect_object, parse_json_line, read_samples
from ..results import read_manifest
from ..rubric import Rubric, load_rubric

BINS = 20


def read_rows(path: str | Path) -> tuple[list[dict[str, Any]], str | None]:
    """Result rows, tolerating one truncated last line (a crash or a run still writing).

    Returns the rows and a note when the last line was left out; damage anywhere else, a row
    without an id or with a non-numeric reward is an :class:`InputError` naming the line.
    """
    name = str(path)
    p = Path(path)
    if not p.is_file():
        raise UserError("no such results file", file=name)
    raw = p.read_bytes()
    lines = raw.split(b"\n")
    rows: list[dict[str, Any]] = []
    note = None
    last = max((i for i, chunk in enumerate(lines) if chunk.strip()), default=-1)
    for i, chunk in enumerate(lines):
        if not chunk.strip():
            continue
        try:
            row = expect_object(parse_json_line(decode_line(chunk, name, i + 1), name, i + 1), name, i + 1)
        except InputError:
            if i == last and not raw.endswith(b"\n"):
                note = (
                    f"the last line ({i + 1}) is cut off — a crash or a run still writing; "
                    f"{len(rows)} complete rows are shown"
                )
                break
            raise
        if "id" not in row:
            raise InputError("result row has no id", file=name, line=i + 1, field="id")
        if row.get("reward") is not None and not is_finite_number(row["reward"]):
            raise InputError("reward must be a number or null", file=name, line=i + 1, field="reward")
        rows.append(row)
    if not rows:
        raise UserError(
            "no result rows: the run is empty" + (" (its only line is cut off)" if note else ""), file=name
        )
    return rows, note


def quartiles(values: list[float]) -> list[float] | None:
    """min, lower quartile, median, upper quartile, max (linear interpolation)."""
    if not values:
        return None
    v = sorted(values)

    def q(f: float) -> float:
        pos = f * (len(v) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(v) - 1)
        return round(v[lo] + (v[hi] - v[lo]) * (pos - lo), 4)

    return [q(0), q(0.25), q(0.5), q(0.75), q(1)]


def histogram(rewards: list[float], bins: int = BINS) -> dict[str, Any]:
    """Counts of rewards in ``bins`` equal bins over [0, 1] (the last bin includes 1)."""
    counts = [0] * bins
    for r in rewards:
        counts[min(bins - 1, max(0, int(r * bins)))] += 1
    return {"edges": [round(i / bins, 4) for i in range(bins + 1)], "counts": counts}


def boot_resamples(n: int) -> int:
    """Bootstrap resamples for ``n`` values: 1000, fewer for large runs so a build stays seconds."""
    return max(200, min(1000, 2_000_000 // max(1, n)))


def _rubric_entry(rubric: Rubric) -> dict[str, Any]:
    ids = rubric.result_ids()
    if ids == ("principles",):
        crit = [
            {
                "id": "principles",
                "text": " / ".join(rubric.principles) or "holistic rating",
                "weight": 1.0,
                "tags": [],
                "scale": True,
                "veto": False,
            }
        ]
    else:
        # only what differs from the default: a per-row rubric is stored once per sample
        crit = [
            {
                "id": c.id,
                "text": c.text,
                "weight": c.weight,
                **({"tags": list(c.tags)} if c.tags else {}),
                **({"scale": True} if c.is_scale else {}),
                **({"veto": True} if c.veto else {}),
            }
            for c in rubric.criteria
        ]
    return {
        "name": rubric.name,
        "hash": rubric.content_hash(),
        "aggregation": rubric.aggregation,
        "criteria": crit,
        "positive": sum(c["weight"] for c in crit if c["weight"] > 0),
    }


def locate(name: str | None, results: Path) -> str | None:
    """A path the manifest recorded, relative to wherever ``rubrix score`` ran: as given, else
    beside the results or in a folder above them (``out/results.jsonl`` run from the repository
    root names ``examples/samples.jsonl``). Hashes are checked after, so a wrong match is caught."""
    if not name or Path(name).is_absolute() or Path(name).exists():
        return name
    for base in [results.resolve().parent, *results.resolve().parents][:4]:
        if (base / name).exists():
            return str(base / name)
    return name


def _load_samples(manifest: dict[str, Any], notes: list[str], results: Path) -> dict[str, Sample] | None:
    inp = manifest.get("input") or {}
    path = locate(inp.get("path"), results)
    if not path or not Path(path).is_file():
        notes.append(
            f"the samples file the run scored ({path or 'not named'}) is not there: prompts, "
            "responses and judge prompts are not shown"
        )
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    if inp.get("sha256") and h.hexdigest() != inp["sha256"]:
        notes.append(
            f"the samples file {path} changed since the run (sha256 differs): prompts, responses "
            "and judge prompts are not shown"
        )
        return None
    fields = FieldMap.parse((manifest.get("options") or {}).get("fields") or [])
    try:
        return {s.id: s for s in read_samples(path, fields)}
    except UserError as exc:
        notes.append(f"cannot read the samples file: {exc}")
        return None


def _run_rubric(manifest: dict[str, Any], notes: list[str], results: Path) -> Rubric | None:
    info = manifest.get("rubric")
    if not info:
        return None
    origin = info.get("origin")
    if origin and not Path(origin).is_file():
        found = locate(origin, results)
        origin = found if found and Path(found).is_file() else origin  # else a built-in name
    try:
        rubric = load_rubric(origin) if origin else None
    except UserError as exc:
        notes.append(f"cannot load the run's rubric {origin}: {exc}")
        return None
    if rubric is None:
        notes.append("the manifest does not say where the run's rubric came from")
    elif rubric.content_hash() != info.get("hash"):
        notes.append(
            f"the rubric {origin} changed since the run (hash {rubric.content_hash()}, run "
            f"{info.get('hash')}): criterion texts and judge prompts are not shown"
        )
        return None
    return rubric


def score_model(results: str | Path, *, tick: Callable[[int], None] | None = None) -> dict[str, Any]:
    """The page model of a score run: run summary, charts' numbers, samples, prompts."""
    from ..stats import dataset_mean

    results = Path(results)
    rows, cut = read_rows(results)
    notes: list[str] = [cut] if cut else []
    manifest = read_manifest(results)
    if manifest is None:
        notes.append(
            f"no manifest beside {results.name} ({results.name}.manifest.json): judge, options, "
            "time, tokens, criterion texts and judge prompts are not known; only the rows are shown"
        )
        manifest = {}
    rubric = _run_rubric(manifest, notes, results) if manifest else None
    hashes = Counter(str(r.get("rubric_hash")) for r in rows)
    per_row = bool(manifest) and manifest.get("rubric") is None
    if len(hashes) > 1 and not manifest:  # per-row rubrics, or two runs in one file: cannot tell
        notes.append(
            f"the rows carry {len(hashes)} rubric hashes; without the manifest this page cannot tell "
            "per-row rubrics from rows of different runs"
        )
    elif len(hashes) > 1 and not per_row:
        (a, na), (b, nb) = hashes.most_common(2)
        raise UserError(
            f"rows from different rubrics ({len(hashes)} rubric hashes: {a} ×{na}, {b} ×{nb}, ...); "
            "report one run at a time",
            file=str(results),
            field="rubric_hash",
        )
    if rubric is not None and rows[0].get("rubric_hash") != rubric.content_hash():
        notes.append("the rows' rubric hash differs from the manifest's rubric")
    samples = _load_samples(manifest, notes, results) if manifest else None

    # rubrics: the run's, or each row's own, or (no manifest) the criteria ids seen in the rows
    rubrics: dict[str, dict[str, Any]] = {}
    if rubric is not None:
        rubrics[rubric.content_hash()] = _rubric_entry(rubric)
    order: list[Sample | None] = []
    for row in rows:
        s = samples.get(str(row["id"])) if samples else None
        order.append(s)
        if s is not None and s.rubric is not None and s.rubric.content_hash() not in rubrics:
            rubrics[s.rubric.content_hash()] = _rubric_entry(s.rubric)
    if samples is not None:
        missing = sum(1 for s in order if s is None)
        if missing:
            notes.append(f"{missing} result ids are not in the samples file: no texts for them")
    for row in rows:  # rows whose rubric is not known: criteria from the row itself, texts unknown
        h = str(row.get("rubric_hash"))
        if h not in rubrics:
            ids = list((row.get("criteria") or {}).keys())
            rubrics[h] = {
                "name": "(unknown rubric)",
                "hash": h,
                "aggregation": None,
                "unknown": True,
                "criteria": [
                    {"id": c, "text": None, "weight": None, "tags": [], "scale": False, "veto": False}
                    for c in ids
                ],
                "positive": None,
            }
    rubric_keys = list(rubrics)
    rubric_pos = {k: n for n, k in enumerate(rubric_keys)}

    ids, rewards, raws, statuses, rub_idx, ps, errs, texts, digests = [], [], [], [], [], [], [], [], []
    status = Counter()
    errors = Counter()
    crit_p: dict[str, list[float]] = {}
    crit_met: dict[str, list[int]] = {}
    crit_err: dict[str, int] = Counter()
    for row, s in zip(rows, order, strict=True):
        h = str(row.get("rubric_hash"))
        rk = h if h in rubrics else rubric_keys[0]
        crit_ids = [c["id"] for c in rubrics[rk]["criteria"]]
        values = row.get("criteria") or {}
        p_row, e_row = [], {}
        for cid in crit_ids:
            v = values.get(cid) or {}
            p = v.get("p")
            p_row.append(p)
            if v.get("error"):
                errors[v["error"]] += 1
                crit_err[cid] += 1
                e_row[cid] = (row.get("errors") or {}).get(cid) or v["error"]
            elif p is not None:
                crit_p.setdefault(cid, []).append(p)
                crit_met.setdefault(cid, [0, 0])
                crit_met[cid][0] += int(bool(v.get("met", p >= 0.5)))
                crit_met[cid][1] += 1
        st = row.get("status") or ("ok" if row.get("reward") is not None else "failed")
        status[st] += 1
        ids.append(str(row["id"]))
        rewards.append(row.get("reward"))
        raws.append(row.get("reward_raw"))
        statuses.append(st)
        rub_idx.append(rubric_pos[rk])
        ps.append(p_row)
        errs.append(e_row or None)
        if s is not None:
            from .prompts import sample_texts

            t, d = sample_texts(s)
            texts.append(t)
            digests.append(d)
        else:
            texts.append(None)
            digests.append(None)
    if tick:
        tick(len(rows) // 4)

    scored = [r for r in rewards if r is not None]
    counts = manifest.get("counts") or {}
    interval = None
    n_boot = boot_resamples(len(scored))
    if len(scored) >= 2:
        from ..stats import bootstrap_ci

        ci = bootstrap_ci([min(1.0, max(0.0, r)) for r in scored], n_boot=n_boot, seed=0)
        interval = [round(ci[0], 4), round(ci[1], 4)] if ci else None
    criteria = []
    seen: set[str] = set()
    for rk in rubric_keys:
        for c in rubrics[rk]["criteria"]:
            if c["id"] in seen:
                continue
            seen.add(c["id"])
            met, n = crit_met.get(c["id"], [0, 0])
            criteria.append(
                {
                    **c,
                    "met_rate": round(met / n, 4) if n else None,
                    "met": met,
                    "judged": n,
                    "errors": crit_err.get(c["id"], 0),
                    "p_quartiles": quartiles(crit_p.get(c["id"], [])),
                    "mean_p": round(sum(crit_p[c["id"]]) / n, 4) if n else None,
                }
            )
        if len(criteria) > 200:
            break
    mean = dataset_mean(rewards)
    run = {
        "results": str(results),
        "samples": len(rows),
        "status": dict(status),
        "scored": len(scored),
        "mean_reward": None if mean is None else round(mean, 4),
        "interval95": interval,
        "bootstrap_resamples": n_boot,
        "judge": manifest.get("judge") or (rows[0].get("judge")),
        "rubric": manifest.get("rubric"),
        "rubric_hashes": dict(hashes),
        "template_hash": manifest.get("template_hash") or rows[0].get("template_hash"),
        "mode": manifest.get("mode"),
        "verdict": manifest.get("verdict"),
        "started_at": manifest.get("started_at"),
        "finished_at": manifest.get("finished_at"),
        "wall_s": counts.get("wall_s"),
        "tokens": counts.get("tokens"),
        "verdicts": counts.get("verdicts"),
        "verdicts_cached": counts.get("verdicts_cached"),
        "errors": dict(errors),
        "input": (manifest.get("input") or {}).get("path"),
        "rubrix_version": manifest.get("rubrix_version"),
        "interrupted": counts.get("interrupted"),
        "manifest": bool(manifest),
    }
    if counts.get("samples_scored") is not None and counts.get("samples_scored", 0) + counts.get(
        "samples_skipped_resume", 0
    ) != len(rows):
        notes.append(
            f"the manifest counts {counts.get('samples_scored')} scored samples, the file has "
            f"{len(rows)} rows"
        )
    tags = _tags(rows, samples, rubric, n_boot) if samples is not None else {}
    model: dict[str, Any] = {
        "kind": "score",
        "title": f"rubrix report — {results.name}",
        "notes": notes,
        "run": run,
        "histogram": histogram([min(1.0, max(0.0, r)) for r in scored]),
        "criteria": criteria,
        "tags": tags,
        "rubrics": [rubrics[k] for k in rubric_keys],
        "samples": {
            "id": ids,
            "reward": rewards,
            "reward_raw": raws,
            "status": statuses,
            "rubric": rub_idx,
            "p": ps,
            "errors": errs,
            "text": texts,
            "digest": digests,
        },
    }
    model["prompts"] = _prompts(manifest, order, rubric, samples, notes, results, tick)
    return model


def _tags(
    rows: list[dict[str, Any]], samples: dict[str, Sample], rubric: Rubric | None, n_boot: int
) -> dict[str, Any]:
    from ..export import tag_report

    try:
        report = tag_report(rows, samples, rubric, n_bootstrap=min(n_boot, 200))
    except UserError:
        return {}
    report.pop("overall", None)
    return report


def _prompts(
    manifest: dict[str, Any],
    order: list[Sample | None],
    rubric: Rubric | None,
    samples: dict[str, Sample] | None,
    notes: list[str],
    results: Path,
    tick: Callable[[int], None] | None,
) -> dict[str, Any]:
    from ..render import PromptRenderer
    from .prompts import build_prompts

    if not manifest or samples is None:
        return {
            "available": False,
            "reason": "no manifest or no samples file: judge prompts cannot be rebuilt",
        }
    if manifest.get("rubric") and rubric is None:
        return {"available": False, "reason": "the run's rubric is not available as it was"}
    options = manifest.get("options") or {}
    prompts_dir = locate(options.get("prompts"), results)
    try:
        renderer = PromptRenderer(prompts_dir)
    except UserError as exc:
        notes.append(f"judge prompts are not shown: {exc}")
        return {"available": False, "reason": str(exc)}
    if renderer.template_hash() != manifest.get("template_hash"):
        reason = (
            f"the templates changed since the run (template hash {renderer.template_hash()}, run "
            f"{manifest.get('template_hash')}): judge prompts are not shown"
        )
        notes.append(reason)
        return {"available": False, "reason": reason}
    table, keys = build_prompts(
        order,
        rubric,
        prompts_dir=prompts_dir,
        mode=manifest.get("mode") or "criteria",
        verdict=manifest.get("verdict") or "auto",
        tick=tick,
    )
    table["keys"] = keys
    if (manifest.get("verdict") or "auto") == "auto" and str(manifest.get("judge", "")).startswith("openai"):
        # auto asks an API judge for a short JSON answer when its server gives no logprobs
        notes.append(
            "the run's verdict style was auto with an API judge: if its server gave no logprobs, the "
            "judge was asked the json template, not the one-token prompts shown here"
        )
    if table["unavailable_count"]:
        notes.append(f"judge prompts of {table['unavailable_count']} samples could not be embedded")
    return table
