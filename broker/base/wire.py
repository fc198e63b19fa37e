"""What the hub accepts from the wire before any handler reads it: a header section within its size, each
signature header once, no content coding; a request target in canonical form; query parameters that are text,
each named once; and JSON bodies as I-JSON (RFC 7493). Pure checks, each raising the problem that refuses; and
the lines of an NDJSON file, each read within its limit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from math import isfinite
from typing import Any, BinaryIO

from multidict import MultiMapping

from broker.base import errors

MAX_DEPTH = 32  # nesting of JSON arrays and objects a body may use
MAX_SAFE_INTEGER = 2**53 - 1  # I-JSON: integers every JSON implementation holds exactly
SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")  # RFC 3986 unreserved characters: nothing needs percent-encoding
SIGNATURE_HEADERS = ("signature", "signature-input", "content-digest")  # aiohttp refuses a second Content-Type
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class _NotIJson(ValueError):
    """A JSON text the hub refuses although it parses: duplicate names, numbers out of range."""


def check_headers(raw_headers: Iterable[tuple[bytes, bytes]], limit: int) -> None:
    """The header section within `limit` bytes; each signature header once; no content coding."""
    headers = list(raw_headers)
    size = sum(len(name) + len(value) + 4 for name, value in headers)
    if size > limit:
        raise errors.HeadersTooLarge(f"the header section holds {size} bytes, more than {limit}")
    names = [name.decode("latin-1").lower() for name, _ in headers]
    repeated = sorted({name for name in SIGNATURE_HEADERS if names.count(name) > 1})
    if repeated:
        raise errors.BadSignature(f"{', '.join(repeated)} sent more than once: the signature is ambiguous")
    codings = {value.strip().lower() for name, value in headers if name.lower() == b"content-encoding"}
    if codings - {b"identity"}:
        raise errors.UnsupportedMediaType("the body must not be compressed or otherwise encoded (Content-Encoding)")


def check_target(raw_path: str, query: MultiMapping[str]) -> None:
    """A path of unreserved segments (no `.`, `..`, empty segment or percent-encoding), and query parameters
    that are text without control characters, each named once."""
    path = raw_path.split("?", 1)[0]
    segments = path.split("/")
    if segments[0] != "" or any(not SEGMENT.fullmatch(part) or part in (".", "..") for part in segments[1:]):
        raise errors.NotFound(
            "no resource at this path: a path is /-separated segments of [A-Za-z0-9._~-], "
            "with no empty, . or .. segment and no percent-encoding"
        )
    names = [name for name, _ in query.items()]
    if len(names) != len(set(names)):
        raise errors.Invalid("a query parameter is named more than once")
    for name, value in query.items():
        if not is_text(name) or not is_text(value):
            raise errors.Invalid("query parameters may not hold control characters or invalid Unicode")


def is_text(value: str) -> bool:
    """No control character (C0, DEL, C1) and no unpaired surrogate: what may be stored, logged and shown."""
    if CONTROL.search(value):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def loads(body: bytes) -> Any:
    """The body as I-JSON: UTF-8 JSON text (400 `malformed` otherwise) with unique member names, integers
    within ±(2**53 - 1), finite numbers, strings without NUL or unpaired surrogates and at most MAX_DEPTH
    levels of nesting (422 `invalid` otherwise)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise errors.Malformed("the body is not UTF-8") from error
    try:
        document = json.loads(
            text,
            object_pairs_hook=_unique_members,
            parse_int=_safe_integer,
            parse_float=_finite_number,
            parse_constant=_no_constant,
        )
    except _NotIJson as error:
        raise errors.Invalid(f"the body is not I-JSON (RFC 7493): {error}") from error
    except RecursionError as error:
        raise errors.Invalid(f"the body nests arrays and objects deeper than {MAX_DEPTH} levels") from error
    except ValueError as error:
        raise errors.Malformed("the body is not valid JSON") from error
    _check_values(document)
    return document


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        raise _NotIJson("an object names a member more than once")
    return document


def _safe_integer(text: str) -> int:
    if len(text) > 17 or abs(int(text)) > MAX_SAFE_INTEGER:
        raise _NotIJson(f"integers must lie within ±{MAX_SAFE_INTEGER}")
    return int(text)


def _finite_number(text: str) -> float:
    number = float(text)
    if not isfinite(number):
        raise _NotIJson("a number is too large to be represented")
    return number


def _no_constant(text: str) -> None:
    raise ValueError(f"{text} is not JSON")


def _check_values(document: Any) -> None:
    """Depth and strings, walked without recursion: the document may be as deep as the parser allowed."""
    pending: list[tuple[Any, int]] = [(document, 0)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, dict | list):
            if depth >= MAX_DEPTH:
                raise errors.Invalid(f"the body nests arrays and objects deeper than {MAX_DEPTH} levels")
            children: Iterable[Any] = node.values() if isinstance(node, dict) else node
            if isinstance(node, dict) and not all(_storable(name) for name in node):
                raise errors.Invalid("a member name holds a NUL or an unpaired surrogate")
            pending.extend((child, depth + 1) for child in children)
        elif isinstance(node, str) and not _storable(node):
            raise errors.Invalid("a string holds a NUL or an unpaired surrogate")


def _storable(value: str) -> bool:
    """Text a store can hold: free text may carry line breaks, but never NUL or an unpaired surrogate."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def bounded_line(file: BinaryIO, limit: int) -> tuple[bytes, bool]:
    """The file's next line (b"" at its end), never more than `limit` bytes of it held, and whether it was longer
    than `limit` (then the rest of it is skipped: the next read starts on the line after)."""
    raw = file.readline(limit + 1)
    if len(raw) <= limit or raw.endswith(b"\n"):
        return raw, False
    while (rest := file.readline(1 << 16)) and not rest.endswith(b"\n"):
        pass  # the rest of the over-long line
    return raw, True
