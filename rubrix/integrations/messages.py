"""Completions and prompts as trainers hand them over, turned into what a judge should read.

Trainers pass text, chat messages with content parts, ``reasoning_content`` beside ``content``,
and ``<think>`` blocks inside it. Every adapter (and the HTTP server) reads them through these
functions, so a judge grades the same text whichever trainer sent it. The text rules themselves
live in :mod:`rubrix.chat`, shared with the file readers, so a file and a trainer agree.
"""

from __future__ import annotations

from typing import Any

from ..chat import completion_text, content_text, strip_reasoning

Prompt = str | list[dict[str, Any]]


def prompt_messages(prompt: Any) -> Prompt:
    """A prompt as text or as ``{"role", "content"}`` messages with text content (other keys dropped)."""
    if isinstance(prompt, list | tuple):
        return [{"role": str(m.get("role", "user")), "content": content_text(m.get("content"))}
                for m in prompt if isinstance(m, dict)]
    return "" if prompt is None else str(prompt)


__all__ = ["completion_text", "content_text", "prompt_messages", "strip_reasoning"]
