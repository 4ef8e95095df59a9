"""One self-contained HTML file from a page model: inline CSS, inline JS, inline SVG, embedded JSON.

Nothing is fetched when the page opens (no CDN, no server), so it works from ``file://`` and
offline. The model travels as a ``<script type="application/json">`` block with ``</`` escaped,
which the page's JavaScript reads for the sample browser and the prompt viewer; the charts are
drawn here, so they show even before (or without) the script.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import jinja2
from markupsafe import Markup

from .charts import bars_svg, histogram_svg


def _asset(name: str) -> str:
    return resources.files("rubrix.report").joinpath("assets", name).read_text(encoding="utf-8")


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _num(x: Any, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _score_charts(model: dict[str, Any]) -> dict[str, str]:
    run = model["run"]
    failed = run["samples"] - run["scored"]
    crit = model["criteria"]
    charts = {"hist": histogram_svg(model["histogram"], failed=failed)}
    rows = [
        {
            "label": c["id"],
            "value": c["met_rate"],
            "spread": c["p_quartiles"],
            "text": "failed"
            if c["met_rate"] is None
            else f"{100 * c['met_rate']:.0f}% met, mean P {c['mean_p']:.2f}"
            + (f" (n={c['judged']})" if c["judged"] != run["samples"] else ""),
        }
        for c in crit
    ]
    charts["criteria"] = bars_svg(
        rows,
        chart_id="criteria-chart",
        note="Bar: share of samples where the criterion is met (P ≥ 0.5). Box: the "
        "spread of P over samples (whiskers min–max, box quartiles, tick median).",
    )
    if model["tags"]:
        trows = [
            {
                "label": t,
                "value": v["mean"],
                "text": f"{_num(v['mean'])} ± {_num(v['bootstrap_std'])} (n={v['n']})",
            }
            for t, v in model["tags"].items()
        ]
        charts["tags"] = bars_svg(
            trows,
            chart_id="tags-chart",
            fmt=".2f",
            note="Mean score of the criteria carrying each tag (HealthBench style), ± its "
            "bootstrap standard deviation.",
        )
    cmp = model.get("compare")
    if cmp:
        drows = [
            {
                "label": c["id"],
                "value": c["delta_met"],
                "text": "only in one run"
                if c["delta_met"] is None
                else f"{100 * c['a']['met_rate']:.0f}% → {100 * c['b']['met_rate']:.0f}% "
                f"({100 * c['delta_met']:+.0f})",
            }
            for c in cmp["criteria"]
        ]
        charts["compare"] = bars_svg(
            drows,
            chart_id="compare-chart",
            lo=-1,
            hi=1,
            note="Change in met rate from run A to run B, per criterion (same ids).",
        )
    return charts


def _eval_charts(model: dict[str, Any]) -> dict[str, str]:
    rows = []
    for m in model["methods"]:
        s = m["summary"]
        rows.append(
            {
                "label": m["name"],
                "group": True,
                "value": s.get("agreement"),
                "ci": s.get("ci95"),
                "text": f"{_pct(s.get('agreement'))} of {s.get('judged')}",
            }
        )
        if len(m["by_source"]) > 1:
            for src, st in m["by_source"].items():
                rows.append(
                    {
                        "label": src,
                        "value": st.get("agreement"),
                        "ci": st.get("ci95"),
                        "text": f"{_pct(st.get('agreement'))} of {st.get('judged')}",
                    }
                )
    charts = {
        "agreement": bars_svg(
            rows,
            chart_id="agreement-chart",
            label_w=260,
            note="Agreement: share of judged pairs where chosen scored above rejected "
            "(bold: the method over all pairs; below it, per source); whiskers: 95% "
            "bootstrap interval. 50% is a coin flip.",
        )
    }
    cons = [
        {"label": m["name"], "value": m["summary"].get("order_consistency")}
        for m in model["methods"]
        if m["summary"].get("order_consistency") is not None
    ]
    if cons:
        charts["consistency"] = bars_svg(
            cons,
            chart_id="consistency-chart",
            label_w=280,
            note="Order consistency (pairwise): share of pairs where both orders picked the same response.",
        )
    return charts


def _audit_charts(model: dict[str, Any]) -> dict[str, str]:
    att = model["attacks"]
    return {
        "fpr": bars_svg(
            [
                {
                    "label": a["name"],
                    "value": a.get("fpr"),
                    "text": f"{_pct(a.get('fpr'))} (n={a.get('judged')})",
                }
                for a in att
            ],
            chart_id="fpr-chart",
            note="False-positive rate: share of positive criteria judged met "
            "on an attack response that contains no answer.",
        ),
        "beats": bars_svg(
            [
                {
                    "label": a["name"],
                    "value": a.get("beats_good"),
                    "text": f"{_pct(a.get('beats_good'))}, reward {_num(a.get('reward'), 2)}",
                }
                for a in att
            ],
            chart_id="beats-chart",
            note="How often the attack's reward reaches the real answer's on the same prompt.",
        ),
        "crit": bars_svg(
            [
                {
                    "label": c["id"],
                    "value": c.get("fpr"),
                    "text": f"{_pct(c.get('fpr'))} (n={c.get('judged')})",
                }
                for c in model["criteria"]
            ],
            chart_id="crit-fpr-chart",
            note="False-positive rate per criterion, over all attacks.",
        ),
    }


def render_html(model: dict[str, Any]) -> str:
    """The whole page as one string."""
    env = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = _pct
    env.filters["num"] = _num
    template = env.from_string(_asset("report.html.j2"))
    charts = {"score": _score_charts, "eval": _eval_charts, "audit": _audit_charts}[model["kind"]](model)
    data = json.dumps(model, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    data = data.replace("<", "\\u003c")  # no "</script>" or "<!--" can end the block early
    return template.render(
        m=model,
        charts={k: Markup(v) for k, v in charts.items()},
        css=Markup(_asset("report.css")),
        js=Markup(_asset("report.js")),
        data=Markup(data),
    )
