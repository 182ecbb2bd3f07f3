"""PostgreSQL through psycopg 3: a query run in a read-only transaction.

``url`` must be ``${env:NAME}``; the variable is read at run time from the environment
given to ``read_source``. The URL is a secret: it never appears in an error, a log line or
an origin. Driver messages are scrubbed of it (whole, and its password, raw and
percent-decoded) before they are shown, and the driver's exception is not chained.

Columns: the query's result columns with the driver's types (``json``/``jsonb`` values as
JSON text, arrays as lists, UUIDs and network addresses as text). Origins: ``NAME:row N``
(the source name, never the URL; N is the row's position in the result). Units: rows.
"""

from __future__ import annotations

import re
from typing import Mapping

from ._common import Part, concat_rejects, contract_rejects, data_error
from .secrets import scrub, secrets_of
from .tabular import frame_from_rows

_ENV_REF = re.compile(r"^\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}$")
_CONNECT_TIMEOUT_S = 10


def resolve_url(url: str, env: Mapping[str, str], name: str) -> str:
    m = _ENV_REF.match(url.strip())
    if not m:
        # Not echoed: a literal URL here may well hold a password.
        raise data_error(f"{name}: `url` must name an environment variable as ${{env:NAME}}; a literal "
                         "connection URL is not accepted (it would end up in the spec, plans and logs)",
                         code="literal-secret")
    var = m.group(1)
    value = env.get(var)
    if not value:
        raise data_error(f"{name}: environment variable {var} is not set (it holds the connection URL)",
                         code="missing-env", hint=f"export {var}=postgresql://USER:PASSWORD@HOST:PORT/DB")
    return value


def read(name: str, spec, contract, env: Mapping[str, str]) -> Part:
    from llmspec.spec.sql import read_only_problem

    problem = read_only_problem(spec.query)
    if problem:  # validate refuses it; checked again for callers that skip validation
        raise data_error(f"{name}: the query {problem}", code="unsafe-query")
    url = resolve_url(spec.url, env, name)
    secrets = secrets_of(url)
    try:
        import psycopg
    except ImportError:
        raise data_error(f"{name}: reading PostgreSQL needs the psycopg package",
                         code="missing-driver", hint="pip install 'psycopg[binary]'") from None
    message = None
    names: list[str] = []
    rows: list = []
    try:
        with psycopg.connect(url, connect_timeout=_CONNECT_TIMEOUT_S, autocommit=False) as conn:
            conn.read_only = True
            with conn.cursor() as cur:
                cur.execute(spec.query)
                if cur.description is None:
                    message = "the query returns no rows (is it a SELECT?)"
                else:
                    names = [d.name for d in cur.description]
                    rows = cur.fetchall()
            conn.rollback()
    except psycopg.Error as exc:
        message = _describe(exc)
    except Exception as exc:  # noqa: BLE001 - anything from the driver (bad URL syntax...) may echo the URL
        message = f"{type(exc).__name__}: {exc}"
    if message is not None:
        # Raised outside the except block: the driver's exception (which may hold the URL)
        # must not ride along as __context__.
        raise data_error(f"{name}: PostgreSQL: {scrub(message, secrets)}", code="query-failed")
    origins = [f"{name}:row {i}" for i in range(1, len(rows) + 1)]
    good, wrong = frame_from_rows(names, rows, origins, contract, name)
    return Part(good, concat_rejects([contract_rejects(wrong)]), len(rows))


def _describe(exc) -> str:
    text = str(exc).strip() or type(exc).__name__
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return " ".join(lines)[:400]
