"""``rubrix report``: one self-contained HTML page for a score run, an eval or an audit.

:func:`build_report` reads the file (a ``rubrix score`` results JSONL with its manifest, or the
JSON ``rubrix eval`` / ``rubrix audit`` wrote), builds the page model (:mod:`.data`,
:mod:`.compare`, :mod:`.judging`: pure Python, testable without a browser) and writes one HTML
file (:mod:`.html`) that opens offline from ``file://``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import UserError

__all__ = ["build_model", "build_report", "default_output", "write_page"]


def default_output(results: str | Path) -> Path:
    """``RESULTS.html`` beside the input (``out/results.jsonl`` → ``out/results.html``)."""
    return Path(results).with_suffix(".html")


def build_model(
    results: str | Path, compare: str | Path | None = None, *, tick: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """The page model of ``results``; the kind (score, eval, audit) is read from the file itself."""
    from .judging import audit_model, eval_model, kind_of, load_json

    path = Path(results)
    if not path.is_file():
        raise UserError("no such file", file=str(path))
    if path.suffix == ".json":
        doc = load_json(path)
        kind = kind_of(doc)
        if kind is None:
            raise UserError(
                "not a rubrix eval or audit report (no 'methods' or 'attacks'); give a score run's "
                "results JSONL, or the JSON rubrix eval / rubrix audit wrote",
                file=str(path),
            )
        if compare is not None:
            raise UserError("--compare works with score runs only", field="--compare")
        return eval_model(path, doc) if kind == "eval" else audit_model(path, doc)
    from .data import score_model

    model = score_model(path, tick=tick)
    if compare is not None:
        from .compare import compare_model

        model["compare"] = compare_model(path, compare)
    return model


def write_page(model: dict[str, Any], results: str | Path, output: str | Path | None = None) -> Path:
    """Render ``model`` and write it (default ``RESULTS.html`` beside the input); never over the input."""
    from .._json import write_bytes_atomic
    from .html import render_html

    target = Path(output) if output is not None else default_output(results)
    if target.resolve() == Path(results).resolve():
        raise UserError("the report would overwrite its input; name another output", field="--output")
    write_bytes_atomic(target, render_html(model).encode("utf-8"))
    return target


def build_report(
    results: str | Path,
    output: str | Path | None = None,
    compare: str | Path | None = None,
    *,
    tick: Callable[[int], None] | None = None,
) -> Path:
    """Write the report page for ``results`` (default ``RESULTS.html`` beside it); returns its path.
    Same defaults as ``rubrix report``."""
    return write_page(build_model(results, compare, tick=tick), results, output)
