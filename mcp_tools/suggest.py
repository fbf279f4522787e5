"""Near matches for a name a caller got wrong (a status, a field, a type, an argument), and the words saying so.

A leaf module: validation, shaping and the catalog's checks all name near matches the same way.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def near(value: str, known: Iterable[str], *, n: int = 3, cutoff: float = 0.6) -> list[str]:
    """Return up to `n` of `known` closest to `value`, best first; case and spacing do not count against a match.

    A known name equal to `value` but for case comes first, then difflib's close matches, then the names
    containing it (or contained in it).
    """
    names = list(dict.fromkeys(k for k in known if isinstance(k, str) and k))
    folded = {_fold(k): k for k in reversed(names)}  # the first spelling of each folded name wins
    target = _fold(value)
    found: list[str] = []
    if target in folded:
        found.append(folded[target])
    found += [folded[m] for m in difflib.get_close_matches(target, list(folded), n=n, cutoff=cutoff)]
    if len(target) >= 3:
        found += [k for k in names if target in _fold(k) or (len(_fold(k)) >= 3 and _fold(k) in target)]
    return [k for k in dict.fromkeys(found) if k != value][:n]


def did_you_mean(matches: Iterable[str]) -> str:
    """Return " Did you mean 'a' or 'b'?" for near matches, or "" when there are none."""
    quoted = [repr(m) for m in matches]
    if not quoted:
        return ""
    return " Did you mean " + (", ".join(quoted[:-1]) + " or " + quoted[-1] if len(quoted) > 1 else quoted[0]) + "?"


def _fold(name: str) -> str:
    return " ".join(name.replace("_", " ").split()).casefold()
