"""Standard-code comparison: exact codes, or many spellings of one CCSS standard.

Real files name the same CCSS standard in several ways: ``4.NF.B.3.a`` (Coherence Map),
``4.NF.B.3a`` (the official short form), ``CCSS.Math.Content.4.NF.B.3a`` (the official
identifier), ``http://www.corestandards.org/Math/Content/4/NF/B/3/a/`` (the web address),
and for high school ``HSF-IF.A.1`` / ``HSF.IF.A.1`` next to ``F-IF.A.1``. :func:`code_key`
maps every spelling to one lookup key; the graph keeps an index from keys to its canonical codes.

Only CCSS spellings are normalized, and only in frameworks that ask for it (``codes="ccss"``,
the default and what the bundled Coherence Map uses). Every other code is compared exactly:
``number_sense_weight_l1`` and ``number_sense_weight_L1`` are two exercises, not one.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["CODE_STYLES", "CodeStyle", "ccss_key", "code_key"]

#: how a framework compares codes: ``ccss`` normalizes CCSS spellings (others stay exact);
#: ``exact`` compares every code as written (surrounding blanks aside)
CodeStyle = Literal["ccss", "exact"]
CODE_STYLES: tuple[str, ...] = ("ccss", "exact")

_PREFIX = re.compile(r"^CCSS\.MATH\.CONTENT\.", re.IGNORECASE)
_URL = re.compile(r"^https?://(?:www\.)?corestandards\.org/Math/Content/(?P<path>[^?#]+?)/?$", re.IGNORECASE)
# HSF-IF.A.1, HSF.IF.A.1 -> F-IF.A.1 (the conceptual-category prefix is redundant with the domain).
_HIGH_SCHOOL = re.compile(r"^HS(?P<cat>[NAFGS])[-.](?P<domain>[A-Z]+)(?P<rest>(?:\..*)?)$", re.IGNORECASE)
# 4.NF.B.3a -> 4.NF.B.3.a (a sub-standard letter glued to its number).
_GLUED_LETTER = re.compile(r"(?<=\d)(?P<letter>[a-z])$", re.IGNORECASE)
# What a normalized CCSS code looks like: grade K-8 or a high-school category, a domain, then
# optionally cluster, standard number and sub-standard letter (4.NF, 4.NF.B, 4.NF.B.3, 4.NF.B.3.A).
_CCSS_CODE = re.compile(r"^(?:(?:K|[1-8])\.|[NAFGS]-)[A-Z]{1,4}(?:\.[A-Z](?:\.\d{1,2}(?:\.[A-Z])?)?)?$")


def ccss_key(code: str) -> str | None:
    """The normalized form of a CCSS spelling, or None when ``code`` is not one.

    >>> ccss_key("CCSS.Math.Content.4.NF.B.3a")
    '4.NF.B.3.A'
    >>> ccss_key("number_sense_weight_l1") is None
    True
    """
    text = code.strip()
    url = _URL.match(text)
    if url:
        text = url.group("path").replace("/", ".")
    text = _PREFIX.sub("", text)
    hs = _HIGH_SCHOOL.match(text)
    if hs:
        text = f"{hs.group('cat')}-{hs.group('domain')}{hs.group('rest')}"
    text = _GLUED_LETTER.sub(lambda m: "." + m.group("letter"), text).upper()
    return text if _CCSS_CODE.match(text) else None


def code_key(code: str, style: CodeStyle = "ccss") -> str:
    """Return the lookup key of ``code``: shared by every spelling of a CCSS standard in the
    ``ccss`` style, the code itself (without surrounding blanks) otherwise.

    >>> code_key("CCSS.Math.Content.4.NF.B.3a") == code_key("4.NF.B.3.a")
    True
    >>> code_key("HSF-IF.A.1") == code_key("F-IF.A.1")
    True
    >>> code_key("  k.cc.a.1 ")
    'K.CC.A.1'
    >>> code_key("number_sense_weight_L1") == code_key("number_sense_weight_l1")
    False
    >>> code_key("4.NF.B.3a", "exact")
    '4.NF.B.3a'
    """
    text = code.strip()
    if style == "exact":
        return text
    return ccss_key(text) or text
