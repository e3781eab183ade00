"""Whether an upsert's input repeats a key, told on the client while it streams: a load whose
keys are all distinct skips the database's DISTINCT ON sort."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    from dataflow_nb.core.spec import Field, ModelSpec


class KeyHashes:
    """Whether the rows streamed repeat a key, told on the client while they stream.

    Each row's key is kept as a 64-bit hash (8 bytes a row, whatever the key's width). Equal keys
    always hash alike, so a repeat is never missed; two different keys that collide only make the
    load take the careful way (``LoadJob.last_per_key``). Only keys whose values compare in Arrow as in
    the database are hashed (ints, text, booleans, dates and times, bytes): a float's ``-0.0``, a
    decimal's scale or a UUID's spelling could differ, and those loads always take the careful way.
    """

    MAX_ROWS = 8_000_000  # 64 MB of hashes; a larger input takes the careful way

    def __init__(self, model: ModelSpec, keys: Sequence[str]):
        fields = [model.fields[k] for k in keys if k != "tenant_id"]  # one tenant a run: a constant
        self.names = [f.name for f in fields]
        self.usable = bool(fields) and all(_compares_as_stored(f) for f in fields)
        self.rows = 0
        self.hashes: list[Any] = []

    def add(self, batch: pa.RecordBatch) -> None:
        if not self.usable:
            return
        self.rows += batch.num_rows
        if self.rows > self.MAX_ROWS:
            self.usable, self.hashes = False, []
            return
        import polars as pl

        keys = pl.from_arrow(batch.select(self.names))
        assert isinstance(keys, pl.DataFrame)
        self.hashes.append(keys.hash_rows(seed=0))

    def unique(self) -> bool:
        """True when no key was written twice (checked on every row streamed)."""
        if not self.usable:
            return False
        if not self.hashes:
            return True
        import polars as pl

        hashes = pl.concat(self.hashes)
        return bool(hashes.n_unique() == hashes.len())


def _compares_as_stored(field: Field) -> bool:
    kind = field.type.arrow
    if field.type.as_object:
        return False
    checks = [pa.types.is_integer, pa.types.is_string, pa.types.is_boolean, pa.types.is_binary, pa.types.is_date]
    checks += [pa.types.is_timestamp, pa.types.is_time]
    return any(bool(check(kind)) for check in checks)
