"""The audit's digest of a bulk input: bulk loads feed it batches, the audit log records it."""

from __future__ import annotations

import hashlib
import hmac

import pyarrow as pa


class InputDigest:
    """A running HMAC-SHA-256 over the Arrow batches a bulk node writes (their IPC bytes)."""

    def __init__(self, key: bytes) -> None:
        self._hash = hmac.new(key, digestmod=hashlib.sha256)

    def update(self, batch: pa.RecordBatch) -> None:
        self._hash.update(batch.serialize())

    def hexdigest(self) -> str:
        return self._hash.hexdigest()
