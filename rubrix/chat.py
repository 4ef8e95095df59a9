"""Chat messages as data sets and trainers hold them, checked and turned into text a judge reads.

Data sets in TRL's conversational formats carry prompts, completions and preference sides as lists
of messages, with ``system`` / ``developer`` / ``user`` / ``assistant`` / ``tool`` roles and
OpenAI-shaped tool calls (``{"type": "function", "function": {"name", "arguments"}}``, with or
without an ``id``). A judge reads text, so this module is the one place that

* checks a message list (:func:`normalize_messages`): known roles, text content, well-formed tool
  calls, and every tool call answered by a tool result (a call without its result is a truncated
  trajectory, graded as if the tool had never run — refused rather than guessed about);
* renders it (:func:`format_conversation`), tool calls and results as readable lines;
* picks what is graded (:func:`response_text`): the assistant turns of a completion;
* splits TRL rows whose prompt is implicit (:func:`split_messages`, :func:`split_common_prefix`).

Normalized messages keep only ``role``, ``content`` (text) and, where present, ``tool_calls``,
``tool_call_id`` and ``name``, in TRL/OpenAI shape, so an exported row is still a TRL row and
equal conversations render (and cache) identically.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ._json import kind_of

ROLES = ("system", "developer", "user", "assistant", "tool")

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)


class ChatError(ValueError):
    """A message list that does not validate; ``where`` is the path of the fault (``[2].role``)."""

    def __init__(self, message: str, where: str = ""):
        super().__init__(message)
        self.message = message
        self.where = where


# ------------------------------------------------------------------------------------------------
# text of messages (shared with the trainer adapters)


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


# ------------------------------------------------------------------------------------------------
# checking


def _tool_call(call: Any, where: str) -> dict[str, Any]:
    """One tool call in OpenAI/TRL shape; a flat ``{"name", "arguments"}`` is accepted and reshaped."""
    if not isinstance(call, dict):
        raise ChatError(f"a tool call must be an object, got {kind_of(call)}", where)
    fn = call.get("function") if isinstance(call.get("function"), dict) else call
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        raise ChatError("a tool call needs a function name", f"{where}.function.name")
    arguments = fn.get("arguments")
    if arguments is not None and not isinstance(arguments, str | dict | list):
        raise ChatError(f"tool call arguments must be JSON text or an object, got {kind_of(arguments)}",
                        f"{where}.function.arguments")
    if isinstance(arguments, dict):  # Arrow stores structs with the union of keys: drop the padding
        arguments = {k: v for k, v in arguments.items() if v is not None}
    out: dict[str, Any] = {"type": "function", "function": {"name": name, "arguments": arguments}}
    if isinstance(call.get("id"), str) and call["id"]:
        out["id"] = call["id"]
    return out


def normalize_messages(value: Any, *, check_tools: bool = True) -> list[dict[str, Any]]:
    """Check a message list and return it in the normalized shape (see the module docstring).

    ``check_tools=False`` leaves the "every call has its result" rule to the caller, for a prompt
    whose calls are answered in the completion (see :func:`check_tool_results`).
    """
    if not isinstance(value, list | tuple):
        raise ChatError(f"must be a list of chat messages, got {kind_of(value)}")
    if not value:
        raise ChatError("has no messages")
    out = []
    for i, message in enumerate(value):
        where = f"[{i}]"
        if not isinstance(message, dict):
            raise ChatError(f"a chat message must be an object with 'role' and 'content', got "
                            f"{kind_of(message)}", where)
        role = message.get("role")
        if role not in ROLES:
            raise ChatError(f"role must be one of {', '.join(ROLES)}, got {role!r}", f"{where}.role")
        content = message.get("content")
        calls = message.get("tool_calls")
        if content is not None and not isinstance(content, str | list):
            raise ChatError(f"content must be a string or a list of parts, got {kind_of(content)}",
                            f"{where}.content")
        if content is None and not (role == "assistant" and calls):
            raise ChatError("content must be a string, got null", f"{where}.content")
        norm: dict[str, Any] = {"role": role, "content": content_text(content)}
        if calls is not None:
            if role != "assistant":
                raise ChatError("only assistant messages make tool calls", f"{where}.tool_calls")
            if not isinstance(calls, list | tuple):
                raise ChatError(f"tool_calls must be a list, got {kind_of(calls)}", f"{where}.tool_calls")
            if calls:
                norm["tool_calls"] = [_tool_call(c, f"{where}.tool_calls[{j}]") for j, c in enumerate(calls)]
        if role == "tool":
            for key in ("tool_call_id", "name"):
                if isinstance(message.get(key), str) and message[key]:
                    norm[key] = message[key]
        out.append(norm)
    if check_tools:
        check_tool_results(out)
    return out


def check_tool_results(messages: list[dict[str, Any]], offset: int = 0) -> None:
    """Every tool call must be answered by a later ``tool`` message.

    A result answers the call with its ``tool_call_id`` when both carry ids, else the oldest open
    call (TRL's tool rows carry no ids). A result that answers nothing is let through: it is still
    readable. ``offset`` shifts the reported index (for a completion that follows its prompt).
    """
    pending: list[tuple[int, int, dict[str, Any]]] = []  # (message index, call index, call)
    for i, message in enumerate(messages):
        for j, call in enumerate(message.get("tool_calls") or ()):
            pending.append((i, j, call))
        if message["role"] == "tool" and pending:
            cid = message.get("tool_call_id")
            match = next((k for k, (_, _, c) in enumerate(pending) if cid and c.get("id") == cid), None)
            pending.pop(0 if match is None else match)
    if pending:
        i, j, call = pending[0]
        raise ChatError(f"tool call {call['function']['name']!r} has no tool result after it",
                        f"[{i - offset}].tool_calls[{j}]" if i >= offset else f"prompt[{i}].tool_calls[{j}]")


# ------------------------------------------------------------------------------------------------
# rendering and splitting


def _arguments_text(arguments: Any) -> str:
    if arguments is None:
        return ""
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments, ensure_ascii=False, sort_keys=True)


def format_message(message: dict[str, Any]) -> str:
    """One message as the judge reads it: ``Role: text``, tool calls as ``[tool call] name(args)``."""
    role = str(message.get("role", "user"))
    text = content_text(message.get("content"))
    if role == "tool":
        name = message.get("name")
        head = f"Tool result ({name})" if name else "Tool result"
        return f"{head}: {text}"
    lines = [f"{role.capitalize()}: {text}" if text else f"{role.capitalize()}:"]
    for call in message.get("tool_calls") or ():
        fn = call.get("function") if isinstance(call.get("function"), dict) else call
        lines.append(f"[tool call] {fn.get('name')}({_arguments_text(fn.get('arguments'))})")
    return "\n".join(lines)


def format_conversation(prompt: str | list[dict[str, Any]]) -> str:
    """Plain text for a prompt given as text or as chat messages (tool turns included)."""
    if isinstance(prompt, str):
        return prompt
    return "\n\n".join(format_message(m) for m in prompt)


def response_text(messages: list[dict[str, Any]]) -> str:
    """What is graded when a response is a message list: its assistant turns.

    One plain assistant message is graded as its text (:func:`completion_text`, ``<think>`` blocks
    removed, as the trainer adapters do). A trajectory with tool calls is graded as a transcript of
    the assistant's turns with the calls it made and the results it got, so the judge sees what
    the answer rests on.
    """
    if len(messages) == 1 and messages[0]["role"] == "assistant" and not messages[0].get("tool_calls"):
        return completion_text(messages)
    turns = []
    for m in messages:
        if m["role"] == "assistant":
            m = {**m, "content": strip_reasoning(m["content"])}
        turns.append(format_message(m))
    return "\n\n".join(turns)


def split_messages(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """TRL's ``messages`` rows: (prompt, completion), the completion being every turn after the last
    user message. Raises :class:`ChatError` when there is no user turn or nothing after it."""
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
    if last_user is None:
        raise ChatError("has no user message, so there is no prompt to grade against")
    prompt, completion = messages[:last_user + 1], messages[last_user + 1:]
    if not any(m["role"] == "assistant" for m in completion):
        raise ChatError("has no assistant message after the last user message, so there is no response")
    return prompt, completion


def split_common_prefix(chosen: list[dict[str, Any]], rejected: list[dict[str, Any]]
                        ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """TRL's implicit-prompt preference rows: (prompt, chosen rest, rejected rest).

    The prompt is the longest run of equal leading messages, cut back to end on a user (or tool)
    turn so that each side starts with its own assistant answer.
    """
    n = 0
    while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
        n += 1
    while n and chosen[n - 1]["role"] not in ("user", "tool"):
        n -= 1
    if n == 0:
        raise ChatError("chosen and rejected share no prompt (no common leading user message); give a "
                        "prompt column")
    return chosen[:n], chosen[n:], rejected[n:]


__all__ = ["ROLES", "ChatError", "check_tool_results", "completion_text", "content_text",
           "format_conversation", "format_message", "normalize_messages", "response_text",
           "split_common_prefix", "split_messages", "strip_reasoning"]
