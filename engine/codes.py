"""Standard-code normalization: many spellings, one standard.

Real files name the same CCSS standard in several ways: ``4.NF.B.3.a`` (Coherence Map),
``4.NF.B.3a`` (the official short form), ``CCSS.Math.Content.4.NF.B.3a`` (the official
identifier), ``http://www.corestandards.org/Math/Content/4/NF/B/3/a/`` (the web address),
and for high school ``HSF-IF.A.1`` / ``HSF.IF.A.1`` next to ``F-IF.A.1``. :func:`code_key`
maps every spelling to one lookup key; the graph keeps an index from keys to its canonical codes.
"""

from __future__ import annotations

import re

__all__ = ["code_key"]

_PREFIX = re.compile(r"^CCSS\.MATH\.CONTENT\.", re.IGNORECASE)
_URL = re.compile(r"^https?://(?:www\.)?corestandards\.org/Math/Content/(?P<path>[^?#]+?)/?$", re.IGNORECASE)
# HSF-IF.A.1, HSF.IF.A.1 -> F-IF.A.1 (the conceptual-category prefix is redundant with the domain).
_HIGH_SCHOOL = re.compile(r"^HS(?P<cat>[NAFGS])[-.](?P<domain>[A-Z]+)(?P<rest>(?:\..*)?)$", re.IGNORECASE)
# 4.NF.B.3a -> 4.NF.B.3.a (a sub-standard letter glued to its number).
_GLUED_LETTER = re.compile(r"(?<=\d)(?P<letter>[a-z])$", re.IGNORECASE)


def code_key(code: str) -> str:
    """Return the lookup key shared by every spelling of a standard code.

    >>> code_key("CCSS.Math.Content.4.NF.B.3a") == code_key("4.NF.B.3.a")
    True
    >>> code_key("HSF-IF.A.1") == code_key("F-IF.A.1")
    True
    >>> code_key("  k.cc.a.1 ")
    'K.CC.A.1'
    """
    text = code.strip()
    url = _URL.match(text)
    if url:
        text = url.group("path").replace("/", ".")
    text = _PREFIX.sub("", text)
    hs = _HIGH_SCHOOL.match(text)
    if hs:
        text = f"{hs.group('cat')}-{hs.group('domain')}{hs.group('rest')}"
    text = _GLUED_LETTER.sub(lambda m: "." + m.group("letter"), text)
    return text.upper()
