"""libpq URLs: both multi-host spellings, the time limits, and clear errors for malformed lists."""

from __future__ import annotations

import pytest

from dataflow_nb import DataflowError
from dataflow_nb.backends.postgres_url import mask_url, parse_postgres_url, url_secrets


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:s3cret@h1:5432,h2:5433/db?target_session_attrs=read-write",
        "postgresql://app:s3cret@/db?host=h1,h2&port=5432,5433&target_session_attrs=read-write",
    ],
)
def test_both_multi_host_spellings_mean_the_same(url: str) -> None:
    parsed = parse_postgres_url(url)
    assert parsed.hosts == (("h1", 5432), ("h2", 5433))
    assert parsed.target_session_attrs == "read-write"
    assert parsed.where == "database 'db' at h1:5432, h2:5433"
    assert "s3cret" not in parsed.url.render_as_string(hide_password=True)
    libpq = parsed.libpq(connect_timeout=10, statement_timeout=None)
    assert libpq.startswith("postgresql://app:s3cret@/db?")
    assert "host=h1,h2" in libpq and "port=5432,5433" in libpq and "connect_timeout=10" in libpq
    assert "transaction_read_only" in parsed.checkout_check


def test_a_host_without_a_port_gets_the_default() -> None:
    assert parse_postgres_url("postgresql://u@h1,h2:6000/db").hosts == (("h1", 5432), ("h2", 6000))


def test_time_limits_join_the_urls_options() -> None:
    parsed = parse_postgres_url("postgresql://u@h/db?options=-csearch_path%3Dx&connect_timeout=3")
    libpq = parsed.libpq(connect_timeout=10, statement_timeout=1.5)
    assert "connect_timeout=3" in libpq  # the URL's own value wins
    assert "options=-csearch_path%3Dx%20-c%20statement_timeout%3D1500" in libpq  # %20: libpq reads no "+"


def test_a_single_host_checks_only_that_the_connection_lives() -> None:
    assert parse_postgres_url("postgresql://u@h/db").checkout_check == "SELECT false"
    assert parse_postgres_url("postgresql://u@h/db?target_session_attrs=primary").checkout_check == (
        "SELECT pg_is_in_recovery()"
    )


@pytest.mark.parametrize("url", ["postgresql://u@h1:x,h2/db", "postgresql://u@/db?host=a,b,c&port=1,2"])
def test_malformed_host_lists_say_how_to_write_them(url: str) -> None:
    with pytest.raises(DataflowError, match="port"):
        parse_postgres_url(url)


@pytest.mark.parametrize(
    ("url", "secrets"),
    [
        ("postgresql://app:pw-1@db/x", ["pw-1"]),
        ("postgresql://app@db/x?password=pw-2&sslmode=require", ["pw-2"]),
        ("postgresql://app@db/x?sslpassword=key-3", ["key-3"]),
        ("postgresql://app@db/x?options=-csearch_path%3Dapp%20-cmy.password%3Dopt-4", ["opt-4"]),
        ("postgresql://app:pw-5@h1:5432,h2:5433/x?PASSWORD=pw-6", ["pw-5", "pw-6"]),
    ],
)
def test_mask_url_hides_every_password_a_url_can_carry(url: str, secrets: list[str]) -> None:
    shown = mask_url(url)
    assert all(secret not in shown for secret in secrets), shown
    assert "***" in shown and "app" in shown
    assert sorted(url_secrets(parse_postgres_url(url).url)) == sorted(secrets)
