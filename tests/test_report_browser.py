"""``rubrix report`` pages opened in real headless Chromium (Debian's package; ``.ci/run`` installs it).

Checked in the browser: no console errors, the charts hold the run's numbers, search and sort
work, and the judge prompt shown for a sample and criterion is exactly ``rubrix prompts render``'s.
Runs are scored with the fake judge: the page is under test, not the verdicts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cdp import Browser, find_chromium
from test_report import EXAMPLES, make_run, rubrix

from rubrix.report import build_model, build_report

pytestmark = pytest.mark.skipif(
    find_chromium() is None, reason="chromium is not installed (apt-get install chromium; .ci/run does this)"
)


@pytest.fixture(scope="module")
def browser():
    with Browser(width=1280, height=900) as b:
        yield b


def _open(browser: Browser, page: Path) -> None:
    browser.events.clear()
    browser.open(page.resolve().as_uri())
    assert browser.console_errors() == []


def search(browser: Browser, text: str) -> None:
    """Type into the search box as a user would (an input event per change)."""
    browser.eval(
        f"{{ const s = document.getElementById('search'); s.value = {json.dumps(text)}; "
        "s.dispatchEvent(new Event('input')) }"
    )


def test_score_page_charts_search_sort(tmp_path: Path, browser: Browser, monkeypatch) -> None:
    monkeypatch.setenv("RUBRIX_HOME", str(tmp_path / "home"))
    out = make_run(tmp_path, fail_rate=0.1)
    model = build_model(out)
    page = build_report(out)
    _open(browser, page)
    # the histogram and the criteria chart carry the model's numbers
    bins = browser.eval("[...document.querySelectorAll('#hist rect.bin')].map(r => +r.dataset.value)")
    assert bins == model["histogram"]["counts"]
    bars = browser.eval(
        "Object.fromEntries([...document.querySelectorAll('#criteria-chart rect.bar')]"
        ".map(r => [r.dataset.label, +r.dataset.value]))"
    )
    assert bars == {c["id"]: c["met_rate"] for c in model["criteria"] if c["met_rate"] is not None}
    assert f"{model['run']['mean_reward']:.3f}" in browser.eval("document.getElementById('g-mean').innerText")
    # sort by reward, descending, then ascending
    browser.eval("document.querySelector('th[data-key=reward]').click()")
    shown = browser.eval("[...document.querySelectorAll('#samples tbody tr')].map(r => r.dataset.id)")
    rewards = dict(zip(model["samples"]["id"], model["samples"]["reward"], strict=True))
    scored = [i for i in shown if rewards[i] is not None]
    assert [rewards[i] for i in scored] == sorted((rewards[i] for i in scored), reverse=True)
    assert shown[len(scored) :] == [i for i in shown if rewards[i] is None]  # failed last
    browser.eval("document.querySelector('th[data-key=reward]').click()")
    shown = browser.eval("[...document.querySelectorAll('#samples tbody tr')].map(r => r.dataset.id)")
    assert [rewards[i] for i in shown if rewards[i] is not None] == sorted(
        r for r in rewards.values() if r is not None
    )
    # search: response text, then an id
    search(browser, "sydney")
    assert browser.eval("[...document.querySelectorAll('#samples tbody tr')].map(r => r.dataset.id)") == [
        "capital-wrong"
    ]
    # the reward breakdown: weight × P / sum of positive weights, largest effect first
    i = model["samples"]["id"].index("capital-good")
    browser.eval("rubrixReport.openId('capital-good')")
    shown = browser.eval(
        "[...document.querySelectorAll('#d-criteria tr[data-criterion]')]"
        ".map(r => [r.dataset.criterion, r.children[4].textContent])"
    )
    rub = model["rubrics"][model["samples"]["rubric"][i]]
    want = {
        c["id"]: "–" if p is None else f"{c['weight'] * p / rub['positive']:+.3f}"
        for c, p in zip(rub["criteria"], model["samples"]["p"][i], strict=True)
    }
    assert dict(shown) == want
    effects = [abs(float(v)) for _, v in shown if v != "–"]
    assert effects == sorted(effects, reverse=True)
    search(browser, "no such text")
    assert browser.eval("document.querySelectorAll('#samples tbody tr').length") == 0
    assert browser.eval("document.getElementById('count').innerText").startswith("0 of 6")
    assert browser.console_errors() == []


@pytest.mark.parametrize(
    "sample_id,criterion",
    [("capital-wrong", "direct"), ("reverse-list", "clarity"), ("email-decline", "filler")],
)
def test_prompt_shown_equals_prompts_render(
    tmp_path: Path, browser: Browser, sample_id: str, criterion: str
) -> None:
    out = make_run(tmp_path)
    page = build_report(out)
    _open(browser, page)
    browser.eval(f"rubrixReport.openId({json.dumps(sample_id)})")
    options = browser.eval("[...document.querySelectorAll('#d-pick option')].map(o => o.textContent)")
    index = next(i for i, o in enumerate(options) if o.startswith(criterion + " "))
    browser.eval(
        f"{{ const p = document.getElementById('d-pick'); p.value = '{index}'; "
        "p.dispatchEvent(new Event('change')) }"
    )
    shown = browser.eval(
        "[...document.querySelectorAll('#d-prompt-view pre.msg')].map(p => [p.dataset.role, p.textContent])"
    )
    proc = rubrix(
        "prompts",
        "render",
        EXAMPLES / "samples.jsonl",
        "-r",
        EXAMPLES / "rubric.yaml",
        "--id",
        sample_id,
        "-c",
        criterion,
        "--json",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    (expected,) = json.loads(proc.stdout)
    assert shown == [[m["role"], m["content"]] for m in expected["messages"]]
    assert browser.console_errors() == []


def test_compare_page(tmp_path: Path, browser: Browser) -> None:
    a, b = make_run(tmp_path, "a"), make_run(tmp_path, "b", seed=3)
    model = build_model(a, compare=b)
    page = build_report(a, tmp_path / "cmp.html", compare=b)
    _open(browser, page)
    assert (
        browser.eval("document.getElementById('cmp-rho').innerText") == f"{model['compare']['spearman']:.3f}"
    )
    deltas = browser.eval(
        "Object.fromEntries([...document.querySelectorAll('#compare-chart rect.bar')]"
        ".map(r => [r.dataset.label, +r.dataset.value]))"
    )
    assert deltas == {c["id"]: c["delta_met"] for c in model["compare"]["criteria"]}
    first = model["compare"]["disagree"][0]["id"]
    browser.eval("document.querySelector('#cmp-disagree a.goto').click()")
    assert browser.eval("document.querySelector('#detail h3').innerText") == f"Sample {first}"


def test_eval_and_audit_pages(tmp_path: Path, browser: Browser) -> None:
    e = tmp_path / "e.json"
    assert (
        rubrix(
            "eval",
            EXAMPLES / "pairs.jsonl",
            "-r",
            EXAMPLES / "rubric.yaml",
            "-m",
            "pairwise",
            "-j",
            "fake",
            "--no-cache",
            "-o",
            e,
            cwd=tmp_path,
        ).returncode
        == 0
    )
    doc = json.loads(e.read_text())
    _open(browser, build_report(e))
    bars = browser.eval(
        "[...document.querySelectorAll('#agreement-chart rect.bar')].map(r => +r.dataset.value)"
    )
    expected = []
    for m in doc["methods"]:
        expected.append(m["summary"]["agreement"])
        expected += [s["agreement"] for s in m["by_source"].values()] if len(m["by_source"]) > 1 else []
    assert bars == expected
    search(browser, "pandalm")
    ids = browser.eval("[...document.querySelectorAll('#pairs tbody tr')].map(r => r.dataset.id)")
    assert ids and all("pandalm" in i.lower() for i in ids)

    a = tmp_path / "a.json"
    assert (
        rubrix(
            "audit",
            "-r",
            EXAMPLES / "rubric.yaml",
            "-j",
            "fake",
            "--no-cache",
            "--limit",
            "3",
            "-o",
            a,
            cwd=tmp_path,
        ).returncode
        == 0
    )
    doc = json.loads(a.read_text())
    _open(browser, build_report(a))
    fpr = browser.eval(
        "Object.fromEntries([...document.querySelectorAll('#fpr-chart rect.bar')]"
        ".map(r => [r.dataset.label, +r.dataset.value]))"
    )
    assert fpr == {k: v["fpr"] for k, v in doc["attacks"].items() if v["fpr"] is not None}


def test_page_without_manifest_says_what_is_missing(tmp_path: Path, browser: Browser) -> None:
    out = make_run(tmp_path)
    Path(str(out) + ".manifest.json").unlink()
    _open(browser, build_report(out))
    assert "no manifest" in browser.eval("document.getElementById('notes').innerText")
    browser.eval("rubrixReport.openId('capital-good')")
    assert browser.eval("document.getElementById('d-noprompt') !== null")
    assert browser.console_errors() == []


def test_large_run_pages_and_opens_quickly(tmp_path: Path, browser: Browser) -> None:
    """2,000 samples: the page lists 50 at a time, pages on, and is ready in well under a second or two."""
    rows = [
        {"id": f"s{i:04d}", "prompt": f"question {i}", "response": f"answer {i} " * 20} for i in range(2000)
    ]
    samples = tmp_path / "many.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = make_run(tmp_path, samples=samples)
    page = build_report(out)
    browser.events.clear()
    seconds = browser.open(page.resolve().as_uri())
    assert seconds < 10 and browser.console_errors() == []
    assert browser.eval("document.querySelectorAll('#samples tbody tr').length") == 50
    assert browser.eval("document.getElementById('count').innerText").startswith("2000 of 2000")
    assert browser.eval("document.getElementById('building').hidden") is True
    browser.eval("document.getElementById('next').click()")
    assert browser.eval("document.querySelector('#samples tbody tr').dataset.id") == "s0050"
    search(browser, "s1999")
    assert browser.eval("[...document.querySelectorAll('#samples tbody tr')].map(r => r.dataset.id)") == [
        "s1999"
    ]
