"""Names the database takes as they are: model, field, table and column identifiers."""

from __future__ import annotations

import re

from dataflow_nb.exceptions import ValidationError

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The shortest limit of the databases we run on, for names checked before a database is known.
PORTABLE_IDENTIFIER_LENGTH = 63


def check_identifier(name: str, what: str, max_length: int = PORTABLE_IDENTIFIER_LENGTH) -> str:
    """A name the database takes as it is: letters, digits, underscores, within its length limit."""
    if not IDENTIFIER.match(name) or len(name) > max_length:
        raise ValidationError(
            f"{what} {name!r} is not a valid name: use letters, digits and underscores, "
            f"starting with a letter, at most {max_length} characters"
        )
    return name
