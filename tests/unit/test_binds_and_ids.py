"""Two per-run savings that must not change what a run does (issue 24): numbers bound as their
bytes give exactly the batch pyarrow's own conversion gives, and run ids stay unique v4 UUIDs."""

from __future__ import annotations

import math
import os
import random
import uuid
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from dataflow_nb.backends.postgres_binds import param_batch
from dataflow_nb.workflow.runtime import new_run_id

INT64, FLOAT64 = pa.int64(), pa.float64()


def converted(values: list[Any], types: list[pa.DataType]) -> pa.RecordBatch:
    """The batch as pyarrow converts the Python values itself."""
    arrays = [pa.array([v], type=t) for v, t in zip(values, types, strict=True)]
    return pa.record_batch(arrays, names=[f"p{i}" for i in range(len(arrays))])


@pytest.mark.parametrize(
    ("values", "types"),
    [
        ([7], [INT64]),
        ([-(2**63), 2**63 - 1, 0], [INT64] * 3),
        ([0.5, -0.0, math.inf, -math.inf, 1.7976931348623157e308, 5e-324], [FLOAT64] * 6),
        ([1.25, 42], [FLOAT64, INT64]),  # an Update: the value, then the id
        ([None, 3], [INT64, INT64]),  # None: pyarrow's conversion, for the whole row
        ([True, 3], [pa.bool_(), INT64]),
        ([np.int64(5), 2.5], [INT64, FLOAT64]),  # a numpy scalar is not packed
        ([3, "x"], [INT64, pa.string()]),
    ],
)
def test_a_bound_row_is_the_batch_pyarrow_makes(values: list[Any], types: list[pa.DataType]) -> None:
    batch = param_batch(values, types)
    assert batch.equals(converted(values, types))
    assert batch.schema.types == types


def test_a_value_of_no_known_type_is_bound_as_pyarrow_infers_it() -> None:
    batch = param_batch([5, "a", None], [None, None, INT64])
    assert batch.schema.types == [pa.int64(), pa.string(), pa.int64()]
    assert batch.to_pylist() == [{"p0": 5, "p1": "a", "p2": None}]


def test_one_statement_binds_packed_and_converted_rows_alike() -> None:
    types = [FLOAT64, INT64]  # the same shape, so the same plan, whichever way a row goes
    for values in ([1.5, 7], [None, 7], [np.float64(2.5), 8], [3.5, 2**62]):
        assert param_batch(values, types).equals(converted(values, types))


def test_nan_is_bound_as_nan() -> None:
    assert math.isnan(param_batch([math.nan], [FLOAT64]).column(0)[0].as_py())


def test_an_int_out_of_range_gets_pyarrows_error() -> None:
    with pytest.raises((OverflowError, pa.ArrowInvalid)):
        converted([2**63], [INT64])
    with pytest.raises((OverflowError, pa.ArrowInvalid)):
        param_batch([2**63], [INT64])


def test_run_ids_are_unique_version_4_uuids() -> None:
    ids = [new_run_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    for run_id in ids[:100]:
        parsed = uuid.UUID(hex=run_id)
        assert (parsed.hex, parsed.version, parsed.variant) == (run_id, 4, uuid.RFC_4122)


def test_a_notebooks_random_seed_does_not_repeat_run_ids() -> None:
    random.seed(0)
    first = new_run_id()
    random.seed(0)
    assert new_run_id() != first


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork exists on POSIX only")
def test_a_forked_process_draws_other_run_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first id, then out without any cleanup of the parent's
        os.write(write, new_run_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        child = pipe.read()
    assert len(child) == 32 and child != new_run_id()
