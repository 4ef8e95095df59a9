"""Turning (rubric, criterion, sample) into judge requests with readable Jinja templates.

Each template in ``prompts/`` has a ``system`` block and a ``user`` block; users override any
template (or the shared ``_judge_rules.j2`` / ``_sample.j2`` pieces) by putting a file with the
same name in a directory passed as ``--prompts DIR``.

Two rules hold for every built-in template and are enforced here, not left to template authors:

* **Weights never reach the judge.** Templates receive criterion *text* only.
* **The graded text is fenced.** The ``fence`` filter wraps it between marker lines whose name
  includes a hash of the content itself, so the content cannot contain its own closing marker
  and cannot pretend to end the quote.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from .chat import format_conversation
from .errors import UserError
from .judges.base import JudgeRequest
from .resources import prompts_dir
from .rubric import Criterion, Rubric

TEMPLATES = {
    "yesno": "criterion_yesno.j2",
    "json": "criterion_json.j2",
    "scale": "criterion_scale.j2",
    "pairwise": "pairwise.j2",
    "principle": "principle.j2",
    "checklist": "checklist.j2",
}
#: templates outside the default template hash: a row's template_hash covers them only when its
#: rubric uses them (so adding one leaves every other row's hash as it was)
EXTRA_TEMPLATES = {"yesno_na": "criterion_yesno_na.j2"}
YES_NO = (("Yes", 1.0), ("No", 0.0))
#: the three-way verdict read as "does it apply": Yes and No both mean it applies, NA that it does not
APPLIES = (("Yes", 1.0), ("No", 1.0), ("NA", 0.0))
LEVELS = tuple((str(i), float(i)) for i in range(1, 6))
A_B = (("A", 1.0), ("B", 0.0))


def fence(text: str, label: str) -> str:
    """Quote ``text`` between marker lines that the text itself cannot contain."""
    text = "" if text is None else str(text)
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    marker = f"{label}-{digest[:8]}"
    while marker in text:  # practically unreachable: the text would have to contain its own hash
        digest = hashlib.sha256(digest.encode()).hexdigest()
        marker = f"{label}-{digest[:8]}"
    return f"<<<{marker}>>>\n{text}\n<<<END {marker}>>>"


@dataclass(frozen=True)
class SampleView:
    """The parts of a sample that templates may see."""

    prompt: str | list[dict[str, str]]
    response: str
    reference: str | None = None


class PromptRenderer:
    """Renders judge requests from the built-in templates, with optional user overrides."""

    def __init__(self, override_dir: str | Path | None = None):
        search = [str(prompts_dir())]
        if override_dir is not None:
            override = Path(override_dir)
            if not override.is_dir():
                raise UserError("prompts directory does not exist", file=str(override), field="--prompts")
            search.insert(0, str(override))
        self.override_dir = override_dir
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(search),
                                      undefined=jinja2.StrictUndefined,
                                      keep_trailing_newline=False, autoescape=False)
        self.env.filters["fence"] = fence

    # -- raw rendering -----------------------------------------------------------------------

    def messages(self, template: str, **context: Any) -> tuple[dict[str, str], ...]:
        """Render a template's ``system`` and ``user`` blocks into chat messages."""
        name = TEMPLATES.get(template) or EXTRA_TEMPLATES.get(template, template)
        try:
            tmpl = self.env.get_template(name)
            ctx = tmpl.new_context(context)
            out = []
            for role in ("system", "user"):
                block = tmpl.blocks.get(role)
                if block is None:
                    continue
                text = "".join(block(ctx)).strip()
                if text:
                    out.append({"role": role, "content": text})
        except jinja2.TemplateNotFound as exc:
            raise UserError(f"template not found: {exc.name}", field="--prompts") from None
        except jinja2.TemplateError as exc:
            where = getattr(exc, "filename", None) or name
            raise UserError(f"template error: {exc}", file=where, line=getattr(exc, "lineno", None)) from None
        if not any(m["role"] == "user" for m in out):
            raise UserError("template has no 'user' block", file=name)
        return tuple(out)

    def template_hash(self, templates: tuple[str, ...] = tuple(TEMPLATES)) -> str:
        """Hash of the template sources in effect (built-in or overridden), for result rows."""
        h = hashlib.sha256()
        names = sorted({TEMPLATES.get(t) or EXTRA_TEMPLATES.get(t, t) for t in templates}
                       | {"_judge_rules.j2", "_sample.j2"})
        for name in names:
            try:
                source, _, _ = self.env.loader.get_source(self.env, name)
            except jinja2.TemplateNotFound:
                continue
            h.update(name.encode() + b"\0" + source.encode() + b"\0")
        return "sha256:" + h.hexdigest()[:16]

    # -- requests ----------------------------------------------------------------------------

    def _sample_context(self, sample: SampleView) -> dict[str, Any]:
        return {"prompt": format_conversation(sample.prompt), "response": sample.response or "",
                "reference": sample.reference}

    def criterion_request(self, sample: SampleView, criterion: Criterion, *, verdict: str = "token",
                          meta: dict | None = None) -> JudgeRequest:
        """A request for one criterion: one-token Yes/No (or digit for scales), or JSON rationale."""
        ctx = self._sample_context(sample)
        ctx["criterion"] = criterion.text
        meta = {"criterion": criterion.id, **(meta or {})}
        if criterion.is_scale:
            ctx["levels"] = sorted(criterion.scale.items())
            return JudgeRequest(messages=self.messages("scale", **ctx), kind="scale", options=LEVELS,
                                max_tokens=1 if verdict == "token" else 4, meta=meta)
        if verdict == "json":
            return JudgeRequest(messages=self.messages("json", **ctx), kind="binary", options=YES_NO,
                                json_field="met", max_tokens=160, meta=meta)
        return JudgeRequest(messages=self.messages("yesno", **ctx), kind="binary", options=YES_NO,
                            max_tokens=1, meta=meta)

    def three_way_requests(self, sample: SampleView, criterion: Criterion, *, meta: dict | None = None
                           ) -> tuple[JudgeRequest, JudgeRequest]:
        """A criterion that may not apply (``allow_na``): one Yes / No / NA prompt, read twice.

        The first request reads P(applies) (Yes and No count 1, NA 0), the second P(met) over Yes and
        No only: the same messages, so a local judge shares the whole prompt and pays for one more
        read of the same next token; an API judge is asked twice.
        """
        ctx = {**self._sample_context(sample), "criterion": criterion.text}
        messages = self.messages("yesno_na", **ctx)
        meta = {"criterion": criterion.id, **(meta or {})}
        return (JudgeRequest(messages=messages, kind="binary", options=APPLIES, max_tokens=1,
                             meta={**meta, "read": "applies"}),
                JudgeRequest(messages=messages, kind="binary", options=YES_NO, max_tokens=1,
                             meta={**meta, "read": "met"}))

    def checklist_request(self, sample: SampleView, rubric: Rubric, meta: dict | None = None,
                          criteria: list[Criterion] | None = None) -> JudgeRequest:
        """All binary judged criteria of a rubric (or the given ones) in one call, as a JSON object of
        booleans. Checked criteria are never sent: they cost no judge call."""
        chosen = criteria if criteria is not None else [c for c in rubric.criteria if not c.is_checked]
        criteria = [{"id": c.id, "text": c.text} for c in chosen if not c.is_scale]
        ctx = {**self._sample_context(sample), "criteria": criteria}
        return JudgeRequest(messages=self.messages("checklist", **ctx), kind="checklist", options=YES_NO,
                            checklist_ids=tuple(c["id"] for c in criteria),
                            max_tokens=24 + 16 * len(criteria),
                            meta=meta or {})

    def principle_request(self, sample: SampleView, principles: tuple[str, ...],
                          meta: dict | None = None) -> JudgeRequest:
        """One holistic 1..5 rating of how well the response follows the principles."""
        ctx = {**self._sample_context(sample), "principles": list(principles)}
        return JudgeRequest(messages=self.messages("principle", **ctx), kind="scale", options=LEVELS,
                            max_tokens=1, meta=meta or {})

    def pairwise_request(self, prompt: str | list[dict], response_a: str, response_b: str, *,
                         principles: tuple[str, ...] = (), criteria: tuple[str, ...] = (),
                         reference: str | None = None, meta: dict | None = None) -> JudgeRequest:
        """One order of a pairwise comparison; callers ask both orders and combine them."""
        ctx = {"prompt": format_conversation(prompt), "response_a": response_a, "response_b": response_b,
               "principles": list(principles), "criteria": list(criteria), "reference": reference}
        return JudgeRequest(messages=self.messages("pairwise", **ctx), kind="pairwise", options=A_B,
                            max_tokens=1, meta=meta or {})
