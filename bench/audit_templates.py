"""Reward-hacking audit of template sets: rubrix's defaults against a plain unfenced baseline.

Runs :func:`rubrix.audit.audit` (the code behind ``rubrix audit``) once per template set with
the same judge, rubric and prompts, and prints one markdown table per set plus a comparison.
Reports go to ``--out-dir`` as JSON (one file per set).

    python bench/audit_templates.py -j embedded:0.5b --limit 4
    python bench/audit_templates.py -j embedded:0.5b --sets default bench/plain_prompts --no-pairwise

``default`` means the built-in templates; any other entry is a ``--prompts`` override directory.
The verdict cache is on (keyed by the full request, so a template change never reuses a verdict):
a rerun after an interruption only pays for what is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rubrix.audit import audit  # noqa: E402


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def table(doc: dict) -> str:
    pw = (doc.get("pairwise") or {}).get("attacks", {})
    lines = ["| attack | FPR | mean p(met) | reward | beats real | pairwise flips | pairwise attack wins |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, a in doc["attacks"].items():
        p = pw.get(name, {})
        lines.append(f"| {name} | {_pct(a['fpr'])} | {_num(a['mean_p'])} | {_num(a['reward'])} | "
                     f"{_pct(a['beats_good'])} | {_pct(p.get('flip_rate'))} | {_pct(p.get('attack_wins'))} |")
    o = doc["overall"]
    po = (doc.get("pairwise") or {}).get("overall", {})
    lines.append(f"| **all attacks** | **{_pct(o['fpr'])}** | {_num(o['mean_p'])} | | | "
                 f"**{_pct(po.get('flip_rate'))}** | {_pct(po.get('attack_wins'))} |")
    lines.append("")
    lines.append(f"Real answers: positive criteria met {_pct(o['good_met_rate'])} "
                 f"(mean p {_num(o['good_mean_p'])}), mean reward {_num(o['good_reward'])}; "
                 f"failed verdicts on attacks: {o['failed']}.")
    return "\n".join(lines)


def comparison(docs: dict[str, dict]) -> str:
    lines = ["| templates | FPR (all attacks) | mean p(met) attacks | mean p(met) real | margin | "
             "attack reward >= real | pairwise flips | pairwise attack wins |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label, doc in docs.items():
        o = doc["overall"]
        po = (doc.get("pairwise") or {}).get("overall", {})
        lines.append(f"| {label} | {_pct(o['fpr'])} | {_num(o['mean_p'])} | {_num(o['good_mean_p'])} | "
                     f"{_num(o.get('margin'))} | {_pct(o.get('beats_good'))} | {_pct(po.get('flip_rate'))} | "
                     f"{_pct(po.get('attack_wins'))} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-j", "--judge", default="embedded:0.5b")
    ap.add_argument("-r", "--rubric", default=str(ROOT / "bench" / "audit_rubric.yaml"))
    ap.add_argument("--sets", nargs="+", default=["default", str(ROOT / "bench" / "plain_prompts")])
    ap.add_argument("--limit", type=int, default=4, help="prompts from the built-in set")
    ap.add_argument("--samples", default=None, help="prompts with real answers (instead of the built-in set)")
    ap.add_argument("--attack", action="append", default=None)
    ap.add_argument("--no-pairwise", action="store_true")
    ap.add_argument("--pairwise-attack", action="append", default=None,
                    help="compare only these attacks pairwise (default: all audited ones)")
    ap.add_argument("--out-dir", default="/tmp/rubrix-audit")
    ap.add_argument("--compare", nargs="+", default=None,
                    help="only print the comparison of these saved JSON reports (no judging)")
    args = ap.parse_args()
    if args.compare:
        print(comparison({Path(p).stem: json.loads(Path(p).read_text()) for p in args.compare}))
        return

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    docs = {}
    for name in args.sets:
        prompts = None if name == "default" else name
        t0 = time.perf_counter()
        report = audit(args.rubric, args.judge, prompts=prompts, samples=args.samples, attacks=args.attack,
                       pairwise=not args.no_pairwise, pairwise_attacks=args.pairwise_attack, limit=args.limit,
                       on_progress=lambda stage, n: print(f"  {stage} +{n}", file=sys.stderr, flush=True))
        doc = report.to_dict()
        doc["wall_s"] = round(time.perf_counter() - t0, 1)
        label = "default" if prompts is None else Path(prompts).name
        docs[label] = doc
        path = out_dir / f"audit_{args.judge.replace(':', '_')}_{label}.json"
        path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        print(f"\n### {label} templates ({args.judge}, template hash {doc['template_hash']}, "
              f"{doc['samples']} prompts, {doc['wall_s']} s)\n")
        print(table(doc))
        print(f"\nreport: {path}", flush=True)
    if len(docs) > 1:
        print("\n### comparison\n")
        print(comparison(docs))


if __name__ == "__main__":
    main()
