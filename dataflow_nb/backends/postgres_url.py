"""PostgreSQL URLs as libpq reads them: several hosts for failover, and the time limits.

libpq takes a list of hosts in two spellings, ``postgresql://h1:5432,h2:5433/db`` and
``postgresql:///db?host=h1,h2&port=5432,5433`` (https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-MULTIPLE-HOSTS).
SQLAlchemy's URL parser refuses the first, so it is rewritten into the second before parsing.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlencode

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from dataflow_nb.exceptions import DataflowError

DEFAULT_PORT = 5432
# A password anywhere after the host: ``password=``, ``sslpassword=``, or a ``-c ...password=``
# setting inside ``options`` (raw or percent-encoded); the value runs to the next separator.
_SECRET = re.compile(r"(?i)(password\s*(?:=|%3D))(?:(?!%20|%26|%2B)[^&#+\s])*")
_URL = re.compile(r"^(?P<scheme>[^:/]+)://(?:(?P<userinfo>[^@/]*)@)?(?P<hosts>[^/?]*)(?P<rest>.*)$", re.S)
# What the checkout check asks, per target_session_attrs: true means "not the server we want".
_WRONG_SERVER = {
    "read-write": "SELECT current_setting('transaction_read_only') = 'on'",  # a standby is read-only too
    "primary": "SELECT pg_is_in_recovery()",
}


@dataclass(frozen=True)
class PostgresURL:
    """A parsed URL: what to show, what to hand libpq, and what the pool checks at checkout."""

    url: URL
    hosts: tuple[tuple[str, int], ...]
    target_session_attrs: str | None

    @property
    def where(self) -> str:
        shown = ", ".join(f"{h}:{p}" for h, p in self.hosts)
        return f"database {self.url.database!r} at {shown}"

    @property
    def checkout_check(self) -> str:
        """One round trip that also begins the run's transaction; true: discard the connection."""
        return _WRONG_SERVER.get(self.target_session_attrs or "", "SELECT false")

    def libpq(self, *, connect_timeout: float | None, statement_timeout: float | None) -> str:
        """The URL for libpq, with the time limits added (a value already in the URL wins)."""
        query = dict(self.url.query)
        if connect_timeout is not None and "connect_timeout" not in query:
            query["connect_timeout"] = str(max(math.ceil(connect_timeout), 1))  # libpq takes whole seconds
        if statement_timeout is not None:
            limit = f"-c statement_timeout={max(round(statement_timeout * 1000), 1)}"
            options = query.get("options")
            query["options"] = f"{options} {limit}" if isinstance(options, str) and options else limit
        base = self.url.set(drivername="postgresql", query={}).render_as_string(hide_password=False)
        # libpq decodes %20 but not "+" (SQLAlchemy's rendering) as a space.
        pairs = [(k, v) for k, values in query.items() for v in ((values,) if isinstance(values, str) else values)]
        return base + ("?" + urlencode(pairs, quote_via=quote, safe=",") if pairs else "")


def mask_url(url: str) -> str:
    """``url`` as it may be shown or stored: every password in it replaced by ``***``.

    The userinfo password, ``password=`` and ``sslpassword=`` in the query, and a password
    setting given in ``options``; a URL SQLAlchemy cannot parse (a libpq host list) is masked
    as text.

    Examples:
        >>> mask_url("postgresql://app:pw@db/x?sslpassword=k&options=-cmy.password%3Dz")
        'postgresql://app:***@db/x?options=-cmy.password%3D***&sslpassword=***'
    """
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):  # ValueError: a libpq host list, h1:5432,h2:5432
        match = _URL.match(url)
        if match is None:
            return "(a URL that could not be parsed)"
        userinfo = match.group("userinfo")
        if userinfo is not None:
            user, colon, _ = userinfo.partition(":")
            userinfo = f"{user}:***" if colon else user
        shown = f"{match.group('scheme')}://{'' if userinfo is None else userinfo + '@'}{match.group('hosts')}"
        shown += match.group("rest")
    return _SECRET.sub(r"\1***", shown)


def url_secrets(url: URL) -> list[str]:
    """The passwords in a parsed URL, longest first, to scrub from a driver's message."""
    found = [url.password] if url.password else []
    for key, values in url.query.items():
        for value in (values,) if isinstance(values, str) else values:
            if "password" in key.lower():
                found.append(value)
            found += [m.group(0).partition("=")[2] for m in _SECRET.finditer(value) if "=" in m.group(0)]
    return sorted({str(v) for v in found if v}, key=len, reverse=True)


def parse_postgres_url(url: str) -> PostgresURL:
    """Parse either multi-host spelling (or a plain URL); raise DataflowError for a malformed host list."""
    match = _URL.match(url)
    if match and "," in match.group("hosts"):
        hosts, ports = [], []
        for entry in match.group("hosts").split(","):
            host, _, port = entry.rpartition(":") if not entry.endswith("]") else (entry, "", "")
            if not host:  # no port given
                host, port = entry, ""
            if not host or (port and not port.isdigit()):
                raise DataflowError(
                    f"database URL: the host list {match.group('hosts')!r} is not host:port,host:port; "
                    "write postgresql://h1:5432,h2:5432/db or postgresql:///db?host=h1,h2&port=5432,5432"
                )
            hosts.append(unquote(host))
            ports.append(port or str(DEFAULT_PORT))
        rest = match.group("rest")
        path, _, query = rest.partition("?")
        extra = f"host={quote(','.join(hosts), safe=',')}&port={','.join(ports)}"
        userinfo = f"{match.group('userinfo')}@" if match.group("userinfo") is not None else ""
        url = f"{match.group('scheme')}://{userinfo}{path or '/'}?{extra}" + (f"&{query}" if query else "")
    parsed = make_url(url)
    query = parsed.query
    host_list = _as_list(query.get("host")) or ([parsed.host] if parsed.host else ["localhost"])
    port_list = _as_list(query.get("port")) or [str(parsed.port or DEFAULT_PORT)]
    if len(port_list) == 1:
        port_list *= len(host_list)
    if len(port_list) != len(host_list) or not all(p.isdigit() for p in port_list):
        raise DataflowError(
            f"database URL: {len(host_list)} host(s) but port(s) {port_list}: give one port, or one per host"
        )
    target = query.get("target_session_attrs")
    return PostgresURL(
        parsed,
        tuple(zip(host_list, map(int, port_list), strict=True)),
        target if isinstance(target, str) else None,
    )


def _as_list(value: str | tuple[str, ...] | None) -> list[str]:
    if value is None:
        return []
    joined = ",".join(value) if isinstance(value, tuple) else value
    return [v for v in joined.split(",") if v]
