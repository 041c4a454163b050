"""A JSON syntax error in the words of someone editing the file (a config file, a request
body): where it is and what is wrong, instead of the parser's "Expecting property name
enclosed in double quotes" or a bare character offset."""

from __future__ import annotations

import json


def describe_json_error(exc: json.JSONDecodeError, text: str = "the file") -> str:
    """``line L, column C: <the mistake>``, e.g. "line 4, column 3: a trailing comma
    before '}'" (``text``: what held the JSON)."""
    return f"line {exc.lineno}, column {exc.colno}: {_mistake(exc, text)}"


def _mistake(exc: json.JSONDecodeError, text: str) -> str:
    before = exc.doc[: exc.pos].rstrip()
    found = exc.doc[exc.pos : exc.pos + 1]
    if not exc.doc[exc.pos :].strip():
        return f"{text} ends before the JSON object does (empty or cut off)"
    if before.endswith(",") and found in ("}", "]"):
        return f"a trailing comma before {found!r}"
    if exc.msg.startswith("Expecting property name"):
        what = "expected a key in double quotes"
    elif exc.msg.startswith("Expecting ',' delimiter"):
        what = "a comma is missing between two entries"
    elif exc.msg.startswith("Extra data"):
        what = "text after the end of the JSON object"
    else:
        what = exc.msg[0].lower() + exc.msg[1:]
    return f"{what}, found {found!r}"
