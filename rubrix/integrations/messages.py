"""Completions and prompts as trainers hand them over, turned into what a judge should read.

Trainers pass text, chat messages with content parts, ``reasoning_content`` beside ``content``,
and ``<think>`` blocks inside it. Every adapter (and the HTTP server) reads them through these
functions, so a judge grades the same text whichever trainer sent it.
"""

from __future__ import annotations

import re
from typing import Any

Prompt = str | list[dict[str, Any]]

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)


def content_text(content: Any) -> str:
    """Text of a message's ``content``: a string, or a list of parts whose text parts are joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "".join(parts)
    return str(content)


def strip_reasoning(text: str) -> str:
    """Drop ``<think>...</think>`` blocks (and an unclosed trailing ``<think>``) from a response."""
    text = _THINK.sub("", text)
    if "<think>" in text:
        text = text[:text.index("<think>")]
    return text.strip()


def completion_text(completion: Any, *, include_reasoning: bool = False) -> str:
    """The response text a judge should grade, from a completion as trainers hand it over.

    A string is taken as is. A list of chat messages (TRL's conversational format, possibly with
    tool turns) gives the content of the **last assistant message**; its ``reasoning_content`` is
    prepended only with ``include_reasoning``. ``<think>`` blocks are removed unless
    ``include_reasoning``.
    """
    if isinstance(completion, dict):
        completion = [completion]
    if isinstance(completion, list | tuple):
        assistant = [m for m in completion
                     if isinstance(m, dict) and m.get("role", "assistant") == "assistant"]
        if not assistant:
            return ""
        last = assistant[-1]
        text = content_text(last.get("content"))
        if include_reasoning and last.get("reasoning_content"):
            text = f"<think>{last['reasoning_content']}</think>\n{text}"
        return text if include_reasoning else strip_reasoning(text)
    text = "" if completion is None else str(completion)
    return text if include_reasoning else strip_reasoning(text)


def prompt_messages(prompt: Any) -> Prompt:
    """A prompt as text or as ``{"role", "content"}`` messages with text content (other keys dropped)."""
    if isinstance(prompt, list | tuple):
        return [{"role": str(m.get("role", "user")), "content": content_text(m.get("content"))}
                for m in prompt if isinstance(m, dict)]
    return "" if prompt is None else str(prompt)


__all__ = ["completion_text", "content_text", "prompt_messages", "strip_reasoning"]
