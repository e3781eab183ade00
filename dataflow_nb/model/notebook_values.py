"""Values a notebook holds (numpy and pandas scalars, Series, arrays) as their Python equivalents.

A cell that computed ``df["id"].max()`` holds an ``np.int64``, not an ``int``; a pandas column
gives ``Timestamp`` and ``NaT``. Parameters accept them as the Python values they stand for.
numpy, pandas and polars are never imported here: a value can only be one of theirs when its
library is already loaded (``sys.modules``), as narwhals' ``dependencies.py`` checks.
"""

from __future__ import annotations

import datetime as dt
import reprlib
import sys
from typing import Any

from dataflow_nb.exceptions import ValidationError

_SHORT = reprlib.Repr()
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxset = _SHORT.maxfrozenset = _SHORT.maxdict = 6
_SHORT.maxstring = 80
_SHORT.maxother = 120
_SHORT.maxlevel = 3
_LIBRARIES = ("numpy", "pandas", "polars")
_PLAIN = frozenset({int, float, str, bool, type(None), dt.datetime, dt.date, bytes})


def preview(value: Any) -> str:
    """A short repr for messages: a list of 100,000 values shows its first few and ``...``."""
    if is_sequence(value):
        items = as_list(value)
        head = ", ".join(_SHORT.repr(v) for v in items[:6])
        return f"{type(value).__name__} of {len(items)} values [{head}{', ...' if len(items) > 6 else ''}]"
    return _SHORT.repr(value)


def _library(value: Any) -> str | None:
    root = type(value).__module__.partition(".")[0]
    return root if root in _LIBRARIES and root in sys.modules else None


def to_python(value: Any) -> Any:
    """A numpy or pandas scalar as the Python value it stands for; anything else unchanged.

    ``NaT`` and ``pd.NA`` become None; a ``datetime64`` of days or coarser becomes a date,
    finer ones a (naive) datetime. Nanoseconds that a datetime cannot hold are refused
    (``ValueError``) rather than cut off.
    """
    if type(value) in _PLAIN:  # most values: one set lookup (asked of every value a node binds)
        return value
    library = _library(value)
    if library is None:
        return value
    if library == "pandas":
        import pandas as pd

        if value is pd.NaT or value is pd.NA:
            return None
        if isinstance(value, pd.Timestamp):
            if value.nanosecond:
                raise ValueError("has nanoseconds, which a datetime column cannot keep")
            return value.to_pydatetime()
        if isinstance(value, pd.Timedelta):
            return value.to_pytimedelta()
        return value
    if library != "numpy":
        return value
    import numpy as np

    if isinstance(value, np.datetime64):
        if np.isnat(value):
            return None
        unit = np.datetime_data(value.dtype)[0]
        if unit in ("Y", "M", "W", "D"):
            return value.astype("datetime64[D]").item()
        micro = value.astype("datetime64[us]")
        if micro != value:
            raise ValueError("has nanoseconds, which a datetime column cannot keep")
        found = micro.item()
        assert isinstance(found, dt.datetime)
        return found
    if isinstance(value, np.generic):
        return value.item()  # np.int64 -> int, np.bool_ -> bool, np.str_ -> str, np.float64 -> float
    return value


def is_sequence(value: Any) -> bool:
    """A polars or pandas Series, or a one-dimensional numpy array."""
    library = _library(value)
    if library is None:
        return False
    if library == "numpy":
        import numpy as np

        return isinstance(value, np.ndarray) and value.ndim == 1
    name = type(value).__name__
    return name == "Series"


def as_list(value: Any) -> Any:
    """A Series or 1-D array as a list of Python values; other values unchanged."""
    if not is_sequence(value):
        return value
    items = value.to_list() if hasattr(value, "to_list") else list(value)
    return [to_python(v) for v in items]


def python_value(where: str, value: Any) -> Any:
    """``to_python`` with a ValueError turned into a ValidationError naming ``where``."""
    try:
        return to_python(value)
    except ValueError as exc:
        raise ValidationError(f"{where}: value {preview(value)} {exc}") from None
