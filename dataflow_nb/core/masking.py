"""The masking marker and mask: sensitive values are stored as they are and shown as ``***``.

Models mark fields here (``Annotated[str, Sensitive]``); every layer that shows values (error
messages, previews, filters, audit lines) masks them with these functions. Which columns of a
node's output are sensitive is ``security/sensitive.py``'s business.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final


class Sensitive:
    """Marks a field as sensitive: ``email: Annotated[str, Sensitive]``.

    Or list the fields in the model: ``__dataflow__ = {"sensitive": ["email"]}``.
    """


MASK: Final = "***"


def mask_values(text: str, values: Iterable[Any]) -> str:
    """``text`` with every sensitive value in it replaced by ``***`` (longest first)."""
    shown = sorted({str(v) for v in values if v is not None and str(v)}, key=len, reverse=True)
    for value in shown:
        text = text.replace(value, MASK)
    return text


def mask_exception(exc: BaseException, values: Iterable[Any]) -> None:
    """Mask ``values`` in the messages of ``exc`` and of every exception chained to it.

    A traceback prints the whole chain, so the database's own message (a unique key's value, a
    failing row) must be masked as well as dataflow_nb's.
    """
    values = list(values)
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.args = tuple(mask_values(a, values) if isinstance(a, str) else a for a in current.args)
        current = current.__cause__ or current.__context__
