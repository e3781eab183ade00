"""Reader options, and text values turned into typed values by polars' parsers.

Text from a CSV file (or a text column of a frame) becomes a model's type here: numbers by
polars' casts, dates and times by its ``strptime`` with one format per column. A format is given
(``date_format=``) or found the way DuckDB's CSV sniffer finds one: the first candidate that reads
every value of the column's first batch; day/month orders that both fit are ambiguous and need
an explicit format. A value that does not parse becomes null here and is reported by the bulk
node as a bad row with its row number; nothing is guessed per value.

Timestamps: a column may mix values with an offset (``Z``, ``+01:00``) and without one; values
without an offset are read as UTC, the rule single records follow too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from dataflow_nb.core.reading import ReadOptions
from dataflow_nb.exceptions import ValidationError

_YEAR_FIRST = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d")
_AMBIGUOUS = tuple(
    (f"%m{s}%d{s}%{y}", f"%d{s}%m{s}%{y}") for s in ("/", "-", ".") for y in ("Y", "y")
)  # month-first and day-first orders of one separator: both may fit a column
DATE_FORMATS = (
    *_YEAR_FIRST,
    *(order for pair in _AMBIGUOUS for order in pair),
    "%b %d %Y",
    "%b %d, %Y",
    "%d %b %Y",
    "%B %d %Y",
    "%B %d, %Y",
    "%d %B %Y",
)
TIME_FORMATS = ("%H:%M:%S%.f", "%H:%M", "%I:%M:%S %p", "%I:%M %p")
DATETIME_FORMATS = (
    tuple(f"{date}{sep}{time}" for date in DATE_FORMATS for sep in ("T", " ") for time in TIME_FORMATS[:2])
    + DATE_FORMATS
)
FORMAT_SAMPLE = 2000  # values a format is chosen on (the first of the column's first batch)


def pl_text(array: pa.Array) -> Any:
    """Arrow text as a polars String series, surrounding spaces removed."""
    import polars as pl

    return pl.Series(values=array).cast(pl.String).str.strip_chars()


def _variants(kind: str, fmt: str) -> list[str]:
    """The formats one chosen format stands for: ISO 8601's other separator, and for timestamps
    the same with an offset (first) and without one (read as UTC)."""
    if kind != "datetime":
        return [fmt]
    variants = [fmt]
    if fmt[8:9] in ("T", " ") and fmt.startswith("%Y-%m-%d"):  # ISO 8601 takes either separator
        variants.append(fmt[:8] + ("T" if fmt[8] == " " else " ") + fmt[9:])
    if not any(zone in fmt for zone in ("%z", "%#z", "%:z")):
        variants = [v + "%#z" for v in variants] + variants  # with an offset first, then UTC
    return variants


def _strptime(value: Any, kind: str, fmt: str) -> Any:
    """A polars expression reading ``value`` with exactly one format (null where it does not fit)."""
    if kind == "date":
        return value.str.to_date(fmt, strict=False)
    if kind == "time":
        return value.str.to_time(fmt, strict=False)
    return value.str.to_datetime(fmt, strict=False, time_unit="us", time_zone="UTC")


def _temporal(value: Any, kind: str, fmt: str) -> Any:
    """A polars expression: one format applied to every value (all its variants, the first that fits)."""
    import polars as pl

    parsed = [_strptime(value, kind, v) for v in _variants(kind, fmt)]
    return pl.coalesce(*parsed) if len(parsed) > 1 else parsed[0]


def _parse_temporal(text: Any, kind: str, fmt: str) -> Any:
    """``text`` read as ``_temporal`` does, each further variant only on the values still unread:
    clean data pays one pass (the coalesce of every variant pays one per variant)."""
    import polars as pl

    out = None
    for variant in _variants(kind, fmt):
        if out is None:
            out = _apply(text, _strptime(pl.col("v"), kind, variant)).to_series()
            continue
        unread = out.is_null() & text.is_not_null()
        if not unread.any():
            break
        rows = unread.arg_true()
        again = _apply(text.gather(rows), _strptime(pl.col("v"), kind, variant)).to_series()
        out = out.scatter(rows, again)
    return out


def _apply(series: Any, expression: Any) -> Any:
    import polars as pl

    return pl.DataFrame({"v": series}).select(expression)


def choose_format(series: Any, kind: str, column: str) -> str:
    """The first format that reads every sampled value; an error when day and month may be swapped."""
    import polars as pl

    sample = series.drop_nulls().head(FORMAT_SAMPLE)
    candidates = {"date": DATE_FORMATS, "time": TIME_FORMATS, "datetime": DATETIME_FORMATS}[kind]
    if sample.is_empty():
        return candidates[0]
    value = pl.col("v")
    counts = _apply(sample, [_temporal(value, kind, f).count().alias(str(i)) for i, f in enumerate(candidates)])
    scores = dict(zip(candidates, counts.row(0), strict=True))  # every candidate in one parallel pass
    best = max(scores.values())
    if best == 0:
        return candidates[0]  # nothing fits: every value is reported as a bad row
    fitting = [fmt for fmt in candidates if scores[fmt] == best]
    for month_first, day_first in _AMBIGUOUS:
        if any(month_first in f for f in fitting) and any(day_first in f for f in fitting):
            raise ValidationError(
                f"column {column!r}: its values fit both {month_first!r} and {day_first!r} "
                f"(e.g. {sample[0]!r}); pass {kind}_format= to say which"
            )
    return fitting[0]


def parse_text(array: pa.Array, target: pa.DataType, fmt: str | None, options: ReadOptions) -> pa.Array:
    """Text as ``target`` values; text that does not parse becomes null (the caller reports it).

    Ints take plain decimal digits with an optional sign and ``.0`` (``" 42"``, ``+5``, ``2009.0``),
    never ``0x10`` or ``1e3``.
    """
    import polars as pl

    fast = _iso_fast(array, target, fmt) if fmt is not None else _arrow_fast(array, target, options)
    if fast is not None:
        return fast
    text = pl_text(array)
    if pa.types.is_integer(target):
        out = text.cast(pl.Int64, strict=False)  # plain digits with a sign: the one pass clean data pays
        unread = out.is_null() & text.is_not_null()
        if unread.any():  # e.g. 2009.0: the pattern and the cast again, on these values alone
            rows = unread.arg_true()
            rest = text.gather(rows)
            plain = rest.str.contains(r"^[+-]?[0-9]+(\.0*)?$")
            digits = rest.str.replace(r"\.0*$", "").str.strip_prefix("+")
            again = pl.select(pl.when(pl.lit(plain)).then(pl.lit(digits)).cast(pl.Int64, strict=False)).to_series()
            out = out.scatter(rows, again)
    elif pa.types.is_floating(target):
        out = text.cast(pl.Float64, strict=False)
    elif pa.types.is_boolean(target):
        lowered = text.str.to_lowercase()
        truthy = [v.lower() for v in options.true_values]
        falsy = [v.lower() for v in options.false_values]
        out = pl.select(
            pl.when(pl.lit(lowered).is_in(truthy)).then(True).when(pl.lit(lowered).is_in(falsy)).then(False)
        ).to_series()
    elif pa.types.is_date(target) or pa.types.is_time(target) or pa.types.is_timestamp(target):
        kind = "date" if pa.types.is_date(target) else "time" if pa.types.is_time(target) else "datetime"
        assert fmt is not None, "a date/time column is parsed with the format chosen for it"
        out = _parse_temporal(text, kind, fmt)
    else:
        raise TypeError(target)
    return out.to_arrow(compat_level=pl.CompatLevel.oldest()).cast(target)


def _every(text: pa.Array, pattern: str) -> bool:
    """Whether every value (nulls aside) matches ``pattern`` whole."""
    import pyarrow.compute as pc

    return bool(pc.all(pc.match_substring_regex(text, f"^{pattern}$")).as_py())


def _arrow_fast(array: pa.Array, target: pa.DataType, options: ReadOptions) -> pa.Array | None:
    """Numbers and booleans by Arrow compute, one call a column, where it reads exactly what polars
    does: plain ints (Arrow would also read ``0x10``, so that is checked first), floats
    (both read the same spellings), booleans by the option lists. None: polars reads the column
    (a value of another spelling, or a bad one: it is then reported as polars finds it).
    """
    for text in _spellings(array):
        try:
            read = _arrow_read(text, target, options)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        if read is not None:
            return read
    return None


def _spellings(array: pa.Array) -> Iterator[pa.Array]:
    """The text as it is, then without surrounding spaces: most files have none to strip."""
    import pyarrow.compute as pc

    text = array.cast(pa.string())
    yield text
    yield pc.utf8_trim_whitespace(text)


def _arrow_read(text: pa.Array, target: pa.DataType, options: ReadOptions) -> pa.Array | None:
    import pyarrow.compute as pc

    if pa.types.is_integer(target):
        # Arrow's parser takes what polars' does, and hex ("0x10") besides: no x, no hex.
        # Two plain searches cost a fifth of one that ignores case.
        hexadecimal = any(pc.any(pc.match_substring(text, x)).as_py() for x in ("x", "X"))
        return None if hexadecimal else pc.cast(pc.cast(text, pa.int64()), target)
    if pa.types.is_floating(target):
        return pc.cast(pc.cast(text, pa.float64()), target)
    if pa.types.is_boolean(target):
        lowered = pc.utf8_lower(text)
        truthy = pa.array([v.lower() for v in options.true_values], pa.string())
        falsy = pa.array([v.lower() for v in options.false_values], pa.string())
        unknown = pa.scalar(None, pa.bool_())
        false_or_null = pc.if_else(pc.is_in(lowered, value_set=falsy), pa.scalar(False), unknown)
        read = pc.if_else(pc.is_in(lowered, value_set=truthy), pa.scalar(True), false_or_null)
        return read.cast(target) if read.null_count == text.null_count else None
    return None


_ISO_DATE = "[0-9]{4}-[0-9]{2}-[0-9]{2}"
_ISO_TIME = r"[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
_ISO_OFFSET = "(Z|[+-][0-9]{2}(:?[0-9]{2})?)"
# The ISO 8601 formats whose every value Arrow's own parser reads as strptime does (same fields,
# same checks of each), at a twentieth of the cost: format -> the shape of a value without offset.
_ISO_SHAPES = {
    "%Y-%m-%d": _ISO_DATE,
    "%Y-%m-%dT%H:%M:%S%.f": f"{_ISO_DATE}[T ]{_ISO_TIME}",
    "%Y-%m-%d %H:%M:%S%.f": f"{_ISO_DATE}[T ]{_ISO_TIME}",
}


def _iso_fast(array: pa.Array, target: pa.DataType, fmt: str) -> pa.Array | None:
    """An ISO 8601 date or timestamp column read by Arrow's parser, when every value has exactly the
    shape ``fmt`` reads (a timestamp column: all with an offset, or none); None: strptime reads it.

    A value of another shape, or one Arrow refuses (a 30 February), sends the whole column to
    strptime, so the values read and those reported as bad rows are the same either way.
    """
    import pyarrow.compute as pc

    shape = _ISO_SHAPES.get(fmt)
    if shape is None or not (pa.types.is_date32(target) or pa.types.is_timestamp(target)):
        return None
    if pa.types.is_date32(target) != (fmt == "%Y-%m-%d"):
        return None

    for text in _spellings(array):
        try:
            if pa.types.is_date32(target):
                if _every(text, shape):
                    return pc.cast(text, target)
            elif _every(text, shape + _ISO_OFFSET):
                return pc.cast(text, target)  # every value with an offset: converted to UTC
            elif _every(text, shape):
                return pc.cast(pc.cast(text, pa.timestamp(target.unit)), target)  # none: read as UTC
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None  # a value Arrow refuses: strptime reads the column and reports it
    return None


def iso_format(array: pa.Array, target: pa.DataType) -> str | None:
    """What ``choose_format`` picks for a column of ISO 8601 dates or timestamps, found by Arrow:
    the first candidate, when it reads every sampled value (none of the day/month orders can read
    ``2024-...``, so no ambiguity either). None: ask ``choose_format``."""
    import pyarrow.compute as pc

    kind = temporal_kind(target)
    if kind not in ("date", "datetime"):
        return None
    fmt = DATE_FORMATS[0] if kind == "date" else DATETIME_FORMATS[0]
    sample = pc.drop_null(array).slice(0, FORMAT_SAMPLE)
    return fmt if len(sample) and _iso_fast(sample, target, fmt) is not None else None


def temporal_kind(target: pa.DataType) -> str | None:
    if pa.types.is_date(target):
        return "date"
    if pa.types.is_time(target):
        return "time"
    return "datetime" if pa.types.is_timestamp(target) else None


def given_format(target: pa.DataType, options: ReadOptions) -> str | None:
    kind = temporal_kind(target)
    return None if kind is None else getattr(options, f"{kind}_format")


def parses_text(target: pa.DataType) -> bool:
    """Whether text for this Arrow type goes through ``parse_text`` (the rest is Arrow's cast)."""
    kinds = (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean, pa.types.is_date, pa.types.is_time)
    return any(bool(check(target)) for check in (*kinds, pa.types.is_timestamp))


def is_text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind))
