"""Converting scored results into what trainers and hosted fine-tuning take (``rubrix export``).

* ``trl-pairs``: TRL preference rows ``{"prompt", "chosen", "rejected"}`` — per group the
  best-scored response against the worst. Groups with fewer than two scored responses, and groups
  whose best and worst differ by no more than ``margin`` (ties), make no pair and are counted.
* ``kto``: TRL KTO rows ``{"prompt", "completion", "label"}`` with ``label = reward ≥ threshold``.
* ``openai-grader``: an OpenAI reinforcement fine-tuning grader built from a rubric — a ``multi``
  grader of one ``score_model`` per criterion combined by the rubric's weighted formula, or one
  ``score_model`` over the whole rubric.
* ``verifiers``: the criteria file of verifiers' ``RubricJudge`` (TOML, or JSON by file suffix).
* ``tags``: a JSON report of HealthBench-style per-tag scores (``axis:*``, ``theme:*`` ...).

Result rows carry ids, rewards and criterion values but not the texts; the prompt and response
come from the samples file the results were scored from (``--samples``, by default the input named
in the results' manifest), joined by id. Rows whose judgment failed (``reward`` null) are never
exported as preferences or labels; they are counted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._json import dumps_row, write_bytes_atomic, write_json_atomic, write_jsonl_atomic
from .errors import UserError
from .records import FieldMap, Sample, read_samples
from .results import read_manifest, read_results, samples_path_from_manifest
from .rubric import Rubric, load_rubric

TARGETS = ("trl-pairs", "kto", "openai-grader", "verifiers", "tags")


@dataclass
class ExportStats:
    """Counts an export reports, so nothing is dropped silently."""

    rows: int = 0
    written: int = 0
    failed_rows: int = 0
    missing_samples: int = 0
    groups: int = 0
    groups_too_small: int = 0
    groups_tied: int = 0
    labels: dict[str, int] = field(default_factory=dict)
    criteria: int = 0

    def to_dict(self) -> dict[str, Any]:
        if self.criteria:
            return {"criteria": self.criteria}
        return {k: v for k, v in self.__dict__.items() if v or k in ("rows", "written")}


# ------------------------------------------------------------------------------------------------
# reading


def rubric_from_manifest(results: str | Path) -> Rubric | None:
    """The run rubric named by the results' manifest, when its file is still there and unchanged."""
    info = (read_manifest(results) or {}).get("rubric") or {}
    origin = info.get("origin") or info.get("name")
    if not origin:
        return None
    try:
        rubric = load_rubric(origin)
    except UserError:
        return None
    if info.get("hash") and rubric.content_hash() != info["hash"]:
        raise UserError(f"the rubric {origin} changed since these results were scored "
                        f"(hash {rubric.content_hash()} != {info['hash']}); name it with --rubric",
                        field="rubric")
    return rubric


def load_samples(path: str | Path, fields: FieldMap = FieldMap()) -> dict[str, Sample]:  # noqa: B008
    return {s.id: s for s in read_samples(path, fields)}


def _joined(results: Iterable[dict[str, Any]], samples: dict[str, Sample], stats: ExportStats
            ) -> list[tuple[dict[str, Any], Sample]]:
    out = []
    for row in results:
        stats.rows += 1
        if row.get("reward") is None:
            stats.failed_rows += 1
            continue
        sample = samples.get(str(row["id"]))
        if sample is None:
            stats.missing_samples += 1
            continue
        out.append((row, sample))
    return out


def _group_key(row: dict[str, Any], sample: Sample) -> str:
    group = row.get("group_id") or sample.group_id
    if group is not None:
        return f"g:{group}"
    return "p:" + json.dumps(sample.prompt, sort_keys=True, ensure_ascii=False)


def _response(prompt: Any, text: str) -> Any:
    """TRL's conversational format when the prompt is messages, its standard format otherwise."""
    return [{"role": "assistant", "content": text}] if isinstance(prompt, list) else text


# ------------------------------------------------------------------------------------------------
# preference pairs and KTO


def to_trl_pairs(results: Iterable[dict[str, Any]], samples: dict[str, Sample], *, margin: float = 0.0
                 ) -> tuple[list[dict[str, Any]], ExportStats]:
    """Best vs worst response per group (``group_id``, else identical prompts form a group).

    A group yields a pair when it has ≥ 2 scored responses and ``best − worst > margin``. Among
    equal rewards the first in file order is taken, so the output is deterministic.
    """
    stats = ExportStats()
    groups: dict[str, list[tuple[dict[str, Any], Sample]]] = {}
    for row, sample in _joined(results, samples, stats):
        groups.setdefault(_group_key(row, sample), []).append((row, sample))
    pairs = []
    stats.groups = len(groups)
    for key, members in groups.items():
        if len(members) < 2:
            stats.groups_too_small += 1
            continue
        best = max(members, key=lambda m: m[0]["reward"])
        worst = min(members, key=lambda m: m[0]["reward"])
        if best[0]["reward"] - worst[0]["reward"] <= margin:
            stats.groups_tied += 1
            continue
        prompt = best[1].prompt
        pairs.append({"prompt": prompt, "chosen": _response(prompt, best[1].response),
                      "rejected": _response(prompt, worst[1].response),
                      "chosen_id": best[1].id, "rejected_id": worst[1].id,
                      "chosen_reward": best[0]["reward"], "rejected_reward": worst[0]["reward"],
                      "group_id": key.split(":", 1)[1] if key.startswith("g:") else None})
    stats.written = len(pairs)
    return pairs, stats


def to_kto(results: Iterable[dict[str, Any]], samples: dict[str, Sample], *, threshold: float = 0.5
           ) -> tuple[list[dict[str, Any]], ExportStats]:
    """One KTO row per scored result: ``label = reward ≥ threshold`` (desirable / undesirable)."""
    stats = ExportStats()
    rows = []
    counts = {"true": 0, "false": 0}
    for row, sample in _joined(results, samples, stats):
        label = row["reward"] >= threshold
        counts["true" if label else "false"] += 1
        rows.append({"prompt": sample.prompt, "completion": _response(sample.prompt, sample.response),
                     "label": label, "id": sample.id, "reward": row["reward"]})
    stats.written = len(rows)
    stats.labels = counts
    return rows, stats


# ------------------------------------------------------------------------------------------------
# per-tag report (HealthBench axes and themes)


def tag_report(results: Iterable[dict[str, Any]], samples: dict[str, Sample], rubric: Rubric | None = None, *,
               hard: bool = False, n_bootstrap: int = 1000) -> dict[str, dict[str, float | int | None]]:
    """HealthBench-style per-tag scores of a scored data set.

    For every sample: :func:`~rubrix.aggregate.tag_scores` over its rubric (the row's own, else
    ``rubric``) with the criterion values from its result row, plus its ``example_tags`` column
    (HealthBench's record-level tags) at the sample's reward. Then, per tag, the clipped mean over
    the samples carrying it, its bootstrap std and ``n`` (:func:`~rubrix.stats.dataset_tag_scores`).
    Failed rows are left out. ``"overall"`` is the clipped mean reward.
    """
    from .aggregate import CriterionValue, tag_scores
    from .stats import dataset_tag_scores

    per_sample = []
    for row in results:
        sample = samples.get(str(row.get("id")))
        if sample is None or row.get("reward") is None:
            continue
        r = sample.rubric or rubric
        if r is None:
            raise UserError(f"sample {sample.id!r} has no rubric of its own; name the run rubric",
                            field="rubric")
        values = row.get("criteria") or {}
        items = [CriterionValue(c, (values.get(c.id) or {}).get("p"),
                                na=bool((values.get(c.id) or {}).get("na"))) for c in r.criteria]
        example_tags = sample.meta.get("example_tags") or []
        scores = tag_scores(items, hard=hard, example_tags=example_tags, overall=row["reward"])
        scores["overall"] = row["reward"]
        per_sample.append(scores)
    return dataset_tag_scores(per_sample, n_bootstrap=n_bootstrap)


# ------------------------------------------------------------------------------------------------
# OpenAI RFT grader

_VAR = re.compile(r"[^a-zA-Z0-9_]")


def _var(cid: str, used: set[str]) -> str:
    name = _VAR.sub("_", cid)
    if not name or name[0].isdigit():
        name = "c_" + name
    base, i = name, 2
    while name in used:
        name, i = f"{base}_{i}", i + 1
    used.add(name)
    return name


_SAMPLE_BLOCK = ("Conversation:\n{{ item.%s }}\n\n"
                 "Response to grade:\n{{ sample.output_text }}")


def _judged_only(r: Rubric, target: str) -> None:
    """Grader and criteria files hold judged statements only: a check, a gate, an N/A condition or
    length shaping would silently turn into a judged statement (or vanish), so refuse instead."""
    used = [name for name, present in (
        ("checks", any(c.is_checked for c in r.criteria)), ("gates", bool(r.gates)),
        ("applies_if", any(c.applies_if is not None for c in r.criteria)),
        ("allow_na", any(c.allow_na for c in r.criteria)), ("length", r.length is not None)) if present]
    if used:
        raise UserError(f"{target} holds judged criteria only; rubric {r.name!r} uses {', '.join(used)}, "
                        "which it cannot express", field="--rubric")


def openai_grader(rubric: str | Rubric | dict, *, model: str = "gpt-4.1-mini", kind: str = "multi",
                  prompt_field: str = "prompt", seed: int = 42) -> dict[str, Any]:
    """An OpenAI RFT grader definition for ``rubric``.

    ``kind="multi"``: ``{"type": "multi", "graders": {<criterion>: score_model}, "calculate_output":
    ...}``. Each binary criterion is a ``score_model`` answering 1 (the statement is true of the
    response — for a pitfall, the fault is present) or 0; a 1..5 scale criterion answers its level
    and enters as ``(x − 1)/4``. ``calculate_output`` is the rubric's ``weighted`` formula
    ``Σ w·v / Σ_{w>0} w``, clipped to [0, 1] with ``max``/``min`` because a hosted trainer should get a
    bounded reward. ``kind="score_model"``: one grader shown every criterion with its points, told to
    compute the same formula. Templates read the dataset field ``prompt_field`` (``{{ item.prompt }}``)
    and the policy output (``{{ sample.output_text }}``). Principles-only and ``implicit`` rubrics use
    ``score_model``.
    """
    r = load_rubric(rubric)
    _judged_only(r, "openai-grader")
    sampling = {"temperature": 0.0, "seed": seed}
    block = _SAMPLE_BLOCK % prompt_field
    if kind not in ("multi", "score_model"):
        raise UserError("grader kind must be multi or score_model", field="kind")
    if kind == "score_model" or not r.criteria or r.aggregation == "implicit":
        if r.criteria:
            fault = " (a fault: its points are subtracted when present)"
            lines = [f"- [{c.weight:g} points] {c.text}" + (fault if c.weight < 0 else "")
                     for c in r.criteria]
            positive = sum(c.weight for c in r.criteria if c.weight > 0)
            task = ("Grade the response against this rubric. Decide for every item whether its statement is "
                    "true of the response. The score is the sum of the points of the true items divided by "
                    f"{positive:g} (the total of the positive points), clipped to the range 0 to 1.\n\n"
                    "Rubric:\n" + "\n".join(lines))
        else:
            task = ("Rate how well the response follows these principles as a whole, from 0 (ignores them) "
                    "to 1 (follows all of them).\n\nPrinciples:\n"
                    + "\n".join(f"- {p}" for p in r.principles))
        return {"type": "score_model", "name": f"rubrix_{r.name}", "model": model,
                "input": [{"role": "system", "content": task}, {"role": "user", "content": block}],
                "range": [0, 1], "sampling_params": sampling}
    graders: dict[str, Any] = {}
    terms: list[str] = []
    used: set[str] = set()
    for c in r.criteria:
        var = _var(c.id, used)
        if c.is_scale:
            levels = "\n".join(f"{k}: {v}" for k, v in sorted(c.scale.items()))
            system = (f"Grade the response on this criterion: {c.text}\nLevels:\n{levels}\n"
                      "Answer with the level (an integer from 1 to 5) that best describes the response.")
            graders[var] = {"type": "score_model", "name": c.id, "model": model,
                            "input": [{"role": "system", "content": system},
                                      {"role": "user", "content": block}],
                            "range": [1, 5], "sampling_params": sampling}
            value = f"(({var} - 1) / 4)"
        else:
            system = (f"Decide whether this statement is true of the response: {c.text}\n"
                      "Answer 1 if it is true and 0 if it is not.")
            graders[var] = {"type": "score_model", "name": c.id, "model": model,
                            "input": [{"role": "system", "content": system},
                                      {"role": "user", "content": block}],
                            "range": [0, 1], "sampling_params": sampling}
            value = var
        terms.append(f"{c.weight:g} * {value}")
    positive = sum(c.weight for c in r.criteria if c.weight > 0)
    expr = " + ".join(terms).replace("+ -", "- ")
    # floor(v + 0.5) is 1 when a binary grader said 1, else 0: the formula language has no conditionals
    passed = [f"floor({var} + 0.5)" if c.weight > 0 else f"(1 - floor({var} + 0.5))"
              for var, c in zip(graders, r.criteria, strict=True) if not c.is_scale]
    vetoes = [p for p, c in zip(passed, [c for c in r.criteria if not c.is_scale], strict=True) if c.veto]
    if r.aggregation == "raw":
        formula = expr
    elif r.aggregation == "all_or_nothing":
        formula = " * ".join(passed) or "1"
    else:  # weighted, veto: clipped weighted score, times 0 when a veto criterion fails (the cap is 0)
        formula = f"max(0, min(1, ({expr}) / {positive:g}))" + "".join(f" * {v}" for v in vetoes)
    return {"type": "multi", "name": f"rubrix_{r.name}", "graders": graders, "calculate_output": formula}


# ------------------------------------------------------------------------------------------------
# one entry point for the CLI


def export(results_path: str | Path, target: str, output: str | Path, *,
           samples_path: str | Path | None = None, rubric: str | None = None, fields: FieldMap = FieldMap(),  # noqa: B008
           margin: float = 0.0, threshold: float = 0.5, grader_model: str = "gpt-4.1-mini",
           grader_kind: str = "multi", prompt_field: str = "prompt") -> ExportStats:
    """Export ``results_path`` to ``target`` at ``output``; returns the counts. ``output="-"`` writes
    the JSONL targets (``trl-pairs``, ``kto``) to standard output."""
    if target not in TARGETS:
        raise UserError(f"unknown export target {target!r} (known: {', '.join(TARGETS)})", field="--to")
    if str(output) == "-" and target not in ("trl-pairs", "kto"):
        raise UserError(f"only trl-pairs and kto can go to standard output; name a file for {target}",
                        field="--output")
    output = Path(output)
    results_path = Path(results_path)
    if target in ("trl-pairs", "kto", "tags"):
        if not results_path.is_file():
            raise UserError("results file does not exist", file=str(results_path))
        src = samples_path if samples_path else samples_path_from_manifest(results_path)
        if src is None:
            raise UserError("the prompts and responses are not in the results: name the scored samples file "
                            "with --samples", field="--samples")
        rows = read_results(results_path)
        samples = load_samples(src, fields)
        if target == "tags":
            run_rubric = load_rubric(rubric) if rubric else rubric_from_manifest(results_path)
            report = tag_report(rows, samples, run_rubric)
            write_json_atomic(output, report)
            return ExportStats(rows=len(rows), written=len(report))
        if target == "trl-pairs":
            out_rows, stats = to_trl_pairs(rows, samples, margin=margin)
        else:
            out_rows, stats = to_kto(rows, samples, threshold=threshold)
        if str(output) == "-":  # a pipe: `rubrix export r.jsonl --to kto -o - | ...`
            import sys

            sys.stdout.buffer.write("".join(dumps_row(row) + "\n" for row in out_rows).encode("utf-8"))
            sys.stdout.buffer.flush()
        else:
            write_jsonl_atomic(output, out_rows)
        return stats
    if rubric:
        r: Rubric | None = load_rubric(rubric)
    else:
        r = rubric_from_manifest(results_path) if results_path.is_file() else None
    if r is None:
        raise UserError("no rubric: name one with --rubric (the results' manifest names none, e.g. per-row "
                        "rubrics)", field="--rubric")
    _judged_only(r, target)
    stats = ExportStats(written=1, criteria=len(r.criteria) or len(r.principles))
    if target == "openai-grader":
        grader = openai_grader(r, model=grader_model, kind=grader_kind, prompt_field=prompt_field)
        write_json_atomic(output, grader)
    else:
        from .integrations.verifiers import criteria_file, criteria_toml

        data = criteria_file(r)
        if output.suffix.lower() == ".json":
            write_json_atomic(output, data)
        else:
            header = (f"verifiers RubricJudge criteria exported by rubrix from {r.name} v{r.version} "
                      f"({r.content_hash()})\npitfalls: weight |w|, choices [yes, no] (present = worst)")
            write_bytes_atomic(output, criteria_toml(data, header=header).encode("utf-8"))
    return stats


__all__ = ["TARGETS", "ExportStats", "export", "openai_grader", "tag_report", "to_kto",
           "to_trl_pairs"]
