"""Screenshots of ``rubrix report`` pages for the docs, taken with headless Chromium over CDP.

    python scripts/report_screenshots.py SCORE.html EVAL.html AUDIT.html [--sample ID] [--out docs]

Each shot is a region of the page (from one element's top to another's bottom), 1100 px wide,
so the PNGs stay readable and small (under ~300 KB).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from cdp import Browser  # noqa: E402


def region(b: Browser, first: str, last: str, out: Path, max_h: int = 1700) -> None:
    box = b.eval(
        f"(() => {{ const a = document.querySelector({json.dumps(first)}).getBoundingClientRect(); "
        f"const z = document.querySelector({json.dumps(last)}).getBoundingClientRect(); "
        "return [a.top + scrollY - 8, z.bottom + scrollY + 8]; })()"
    )
    top, bottom = box
    clip = {"x": 0, "y": top, "width": 1100, "height": min(max_h, bottom - top), "scale": 1}
    data = b.call("Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True)["data"]
    out.write_bytes(base64.b64decode(data))
    print(f"{out}: {out.stat().st_size // 1024} KiB")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("score")
    ap.add_argument("eval")
    ap.add_argument("audit")
    ap.add_argument("--sample", default="capital-wrong")
    ap.add_argument("--criterion", default="direct")
    ap.add_argument("--out", default="docs")
    args = ap.parse_args()
    out = Path(args.out)
    with Browser(width=1100, height=900) as b:
        b.open(Path(args.score).resolve().as_uri())
        region(b, "header", "#criteria", out / "report-score.png")
        if b.eval("!!document.getElementById('compare')"):
            region(b, "#compare", "#cmp-disagree", out / "report-compare.png")
        b.eval(f"rubrixReport.openId({json.dumps(args.sample)})")
        b.eval(
            "{ const p = document.getElementById('d-pick'); "
            "p.value = [...p.options].findIndex(o => "
            f"o.textContent.startsWith({json.dumps(args.criterion + ' ')})); "
            "p.dispatchEvent(new Event('change')) }"
        )
        region(b, "#browser", "#detail", out / "report-sample.png", max_h=2100)
        b.open(Path(args.eval).resolve().as_uri())
        region(b, "header", "#methods", out / "report-eval.png")
        b.open(Path(args.audit).resolve().as_uri())
        region(b, "header", "#beats", out / "report-audit.png")
        if b.console_errors():
            raise SystemExit(f"console errors: {b.console_errors()}")


if __name__ == "__main__":
    main()
