"""Sensitive fields: stored and returned as they are, masked wherever dataflow_nb shows them."""

from __future__ import annotations

from typing import Final


class Sensitive:
    """Marks a field as sensitive: ``email: Annotated[str, Sensitive]``.

    Or list the fields in the model: ``__dataflow__ = {"sensitive": ["email"]}``.
    """


MASK: Final = "***"
