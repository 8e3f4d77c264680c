"""Reading a JSON object out of a model's answer, repairing what small models and token limits break.

A model's answer may wrap the object in prose or a Markdown fence, stop in
the middle of it (``max_tokens`` reached), or leave a trailing comma. The
repair keeps every value that was complete: it cuts the text after the last
complete value and closes the open strings, arrays and objects in order.
:func:`read_object` says whether it had to repair anything, so callers can
count it; what it cannot read at all is ``None``.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple


class ReadResult(NamedTuple):
    """The object read (or None), and whether the text needed repair to read it."""

    value: dict[str, Any] | None
    repaired: bool


def _closing(stack: list[str]) -> str:
    return "".join("}" if opener == "{" else "]" for opener in reversed(stack))


def _cut_points(text: str) -> list[tuple[int, list[str]]]:
    """Positions right after a complete value or an opening bracket, with the brackets open there.

    Cutting the text at such a position and appending the closers gives valid
    JSON (after dropping a trailing comma or a key left without its value).
    """
    points: list[tuple[int, list[str]]] = []
    stack: list[str] = []
    in_string = escaped = False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
                points.append((index + 1, list(stack)))
            continue
        if char == '"':
            in_string = True
        elif char in "{[":
            stack.append(char)
            points.append((index + 1, list(stack)))
        elif char in "}]":
            if not stack or {"}": "{", "]": "["}[char] != stack[-1]:
                break
            stack.pop()
            points.append((index + 1, list(stack)))
            if not stack:
                break
        elif char.isalnum() and (  # a number or true/false/null ends at the next delimiter
            index + 1 == len(text) or not text[index + 1].isalnum() and text[index + 1] not in ".-+"
        ):
            points.append((index + 1, list(stack)))
    return points


def _close(prefix: str, stack: list[str]) -> Any:
    """``prefix`` closed by ``stack``'s brackets, tolerating a dangling comma or key; raises ValueError."""
    body = prefix.rstrip()
    for _ in range(2):  # drop a trailing comma, then a trailing '"key":' or '"key"' inside an object
        body = body.rstrip().rstrip(",").rstrip()
        if stack and stack[-1] == "{" and body.endswith(":"):
            body = body[: body.rfind('"', 0, body.rfind('"'))].rstrip()
        elif stack and stack[-1] == "{" and body.endswith('"'):
            start = body.rfind('"', 0, len(body) - 1)
            before = body[:start].rstrip()
            if before.endswith((",", "{")):  # a key without its value
                body = before
    return json.loads(body + _closing(stack))


def read_object(answer: str) -> ReadResult:
    """The first JSON object in ``answer`` (see the module docstring)."""
    start = answer.find("{")
    if start < 0:
        return ReadResult(None, False)
    text = answer[start:]
    decoder = json.JSONDecoder()
    try:
        value, _ = decoder.raw_decode(text)
        if isinstance(value, dict):
            return ReadResult(value, False)
    except ValueError:
        pass
    for position, stack in reversed(_cut_points(text)):
        try:
            value = _close(text[:position], stack)
        except ValueError:
            continue
        if isinstance(value, dict):
            return ReadResult(value, True)
    return ReadResult(None, False)
