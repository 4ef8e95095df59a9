"""``rubrix cache info|clear``: what the verdict cache holds, and emptying it (:mod:`rubrix.cache`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ._common import out

app = typer.Typer(no_args_is_help=True, help="The verdict cache: size, location, journal mode; clear it.")

CachePathOpt = Annotated[Path | None, typer.Option("--cache-path", help="cache file (default "
                                                   "$RUBRIX_HOME/verdicts.sqlite, ~/.cache/rubrix/...)")]


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


@app.command("info")
def info(cache_path: CachePathOpt = None,
         as_json: Annotated[bool, typer.Option("--json", help="print the facts as one JSON object")] = False
         ) -> None:
    """Where the cache is, how big, how many verdicts, its journal mode and row cap."""
    from ..cache import cache_info

    facts = cache_info(cache_path)
    if as_json:
        out.print(json.dumps(facts), soft_wrap=True, highlight=False, markup=False)
        return
    cap = facts["max_rows"]
    lines = [f"path: {facts['path']}" + ("" if facts["exists"] else " (not created yet)"),
             f"rows: {facts['rows']} (cap {'none' if cap is None else cap}, RUBRIX_CACHE_MAX_ROWS)",
             f"size on disk: {_size(facts['bytes'])}",
             f"journal mode: {facts['journal_mode'] or '-'} (file system {facts['filesystem'] or 'unknown'}; "
             "RUBRIX_CACHE_JOURNAL)"]
    out.print("\n".join(lines), soft_wrap=True, highlight=False, markup=False)


@app.command("clear")
def clear(cache_path: CachePathOpt = None) -> None:
    """Delete the cache file (and its journal files); the next run starts empty."""
    from ..cache import clear_cache

    done = clear_cache(cache_path)
    out.print(f"removed {done['path']} ({done['rows']} verdicts, {_size(done['bytes'])})"
              if done["files"] else f"nothing to remove at {done['path']}",
              soft_wrap=True, highlight=False, markup=False)
