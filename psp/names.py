"""Comparing names: a recipient's name with the one the PSP holds, and bank names across lists.

Both comparisons start from ``fold``: Unicode NFKD, combining marks dropped (``Adébáyọ̀`` -> ``adebayo``),
case folded, every run of characters that are not letters or digits turned into one space.

Person names (``person_names_match``), the rule of the pre-payout name check:
    the names are split into tokens of two or more characters (initials carry too little to compare);
    they match when they share at least ``min(2, tokens of the shorter name)`` tokens. So word order,
    a middle name present on one side only, accents, case and spacing never cause a mismatch
    (``"Adébáyọ̀ Ọlá"`` = ``"OLA ADEBAYO"`` = ``"ADEBAYO OLA JOHNSON"``), one shared surname is not
    enough when both sides have two names (``"ADEBAYO JOHNSON"`` differs), and a one-word name matches
    any name containing it. A name with no usable token cannot be compared: ``None``.

Bank names (``bank_name_key``): folded, ``&`` read as ``and``, ``mfb`` as ``microfinance``, and the words that
differ between lists without naming a different bank (``bank``, ``plc``, ``limited``, country names...)
dropped; a name made only of such words keeps them all (``Bank of Ghana``).
"""

from __future__ import annotations

import re
import unicodedata

_NOT_ALNUM = re.compile(r"[^0-9a-z]+")
BANK_NAME_NOISE = frozenset(
    {"bank", "plc", "ltd", "limited", "the", "of", "and", "for", "co", "company"}
    | {"nigeria", "nig", "ng", "malawi", "zambia", "ghana", "kenya", "uganda", "tanzania"}
)
_BANK_NAME_ALIASES = {"mfb": "microfinance", "mfbank": "microfinance"}


def fold(text: str) -> str:
    """Lower-case ASCII-ish words separated by single spaces: accents, case and punctuation removed."""
    decomposed = unicodedata.normalize("NFKD", text.replace("&", " and "))
    stripped = "".join(char for char in decomposed if not unicodedata.combining(char))
    return _NOT_ALNUM.sub(" ", stripped.casefold()).strip()


def person_name_tokens(name: str) -> set[str]:
    return {token for token in fold(name).split() if len(token) >= 2}


def person_names_match(expected: str, actual: str) -> bool | None:
    """Whether two person names agree under the rule above; None when either has nothing to compare."""
    left, right = person_name_tokens(expected), person_name_tokens(actual)
    if not left or not right:
        return None
    return len(left & right) >= min(2, len(left), len(right))


def bank_name_key(name: str) -> str:
    """A bank name reduced to the words that tell banks apart (``"ACCESS BANK PLC"`` -> ``"access"``)."""
    words = [_BANK_NAME_ALIASES.get(word, word) for word in fold(name).split()]
    kept = [word for word in words if word not in BANK_NAME_NOISE]
    return " ".join(kept or words)
