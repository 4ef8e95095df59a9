"""The trainer configurations of docs/rewards.md, read from the page itself (test helper).

Each block a user copies is preceded by ``<!-- trainer-config: NAME -->``; tests load the text
of that block, change only what must differ on a test machine (the judge's address, a port) and
run it through the trainer's own loader.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "rewards.md"
DOC_JUDGE_URL = "http://127.0.0.1:8000/v1"  # where the page's judge listens; tests put theirs there
_BLOCK = re.compile(r"<!-- trainer-config: ([\w-]+) -->\n```(\w+)\n(.*?)```", re.DOTALL)


def block(name: str) -> str:
    """The text of the block named ``name``."""
    found = {m.group(1): m.group(3) for m in _BLOCK.finditer(DOC.read_text())}
    assert name in found, f"docs/rewards.md has no trainer-config block {name!r} (has {sorted(found)})"
    return found[name]


def commands(text: str) -> list[tuple[dict[str, str], list[str]]]:
    """Shell commands of a bash block: (leading VAR=value assignments, argv); ``$(rubrix ...)`` run."""
    out = []
    for line in text.replace("\\\n", " ").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        words = shlex.split(line)
        env: dict[str, str] = {}
        while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
            key, _, value = words.pop(0).partition("=")
            env[key] = value
        words = [_substitute(w) for w in words if w != "&"]
        out.append((env, words))
    return out


def _substitute(word: str) -> str:
    def run(m: re.Match) -> str:
        argv = [sys.executable, "-m", "rubrix.cli", *m.group(1).split()[1:]]
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()

    return re.sub(r"\$\((rubrix [^)]*)\)", run, word)


def hydra_overrides(argv: list[str]) -> list[str]:
    """verl's ``key=value`` overrides as an OmegaConf dotlist (``+`` only tells Hydra the key is new)."""
    return [w.lstrip("+") for w in argv if "=" in w and not w.startswith("-")]
