"""Shared fixtures: the PostgreSQL server that `@pytest.mark.postgres` tests need.

`.ci/run` starts a real server and exports `WORKBENCH_PG_URL` (no password in it) and
`WORKBENCH_PG_PASSWORD`. Locally, without `WORKBENCH_PG_URL`, the postgres tests are skipped;
under CI (`CI` set) they fail instead, so CI can never skip the real-database tests silently.
A server that is configured but unreachable fails them everywhere.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

pytest_plugins = ["pytester"]  # tests/test_readers.py runs this conftest in an inner session

PG_URL_ENV = "WORKBENCH_PG_URL"
PG_PASSWORD_ENV = "WORKBENCH_PG_PASSWORD"
START_HINT = "start one with `source .ci/postgres.sh && start_postgres` (or run `.ci/run`)"


def _in_ci() -> bool:
    """`CI` is set to anything but an explicit no (`''`, `0`, `false`, `no`)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@dataclass(frozen=True)
class PostgresServer:
    """The server the postgres tests use: its URL (no password), the password's variable, an engine."""

    url: str
    password_env: str
    password: str
    engine: object  # sqlalchemy.engine.Engine


@pytest.fixture(scope="session")
def postgres_server():
    """The CI PostgreSQL server: skip when not configured locally, fail under CI or when unreachable."""
    url = os.environ.get(PG_URL_ENV)
    if not url:
        if _in_ci():
            pytest.fail(f"CI is set but {PG_URL_ENV} is not, so the PostgreSQL reader tests cannot run: "
                        "run the suite through `.ci/run`, which starts the server and exports it.", pytrace=False)
        pytest.skip(f"{PG_URL_ENV} is unset: no PostgreSQL server ({START_HINT}; under CI this fails)")
    password = os.environ.get(PG_PASSWORD_ENV)
    if password is None:
        pytest.fail(f"{PG_URL_ENV} is set but {PG_PASSWORD_ENV} is not; {START_HINT}.", pytrace=False)

    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    # The tests' own engine (to create and drop tables) names psycopg2, the driver the project pins:
    # SQLAlchemy 2.1 maps a bare `postgresql://` to psycopg 3. What the readers do with the URL
    # exactly as given is what tests/test_readers.py checks.
    admin_url = make_url(url).set(password=password)
    if admin_url.drivername == "postgresql":
        admin_url = admin_url.set(drivername="postgresql+psycopg2")
    engine = sa.create_engine(admin_url)
    try:
        with engine.connect() as con:
            con.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        engine.dispose()
        detail = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        if password:
            detail = detail.replace(password, "***")
        shown = make_url(url).render_as_string(hide_password=True)
        pytest.fail(f"PostgreSQL at {shown} ({PG_URL_ENV}) is unreachable: {detail}. {START_HINT}.", pytrace=False)
    yield PostgresServer(url=url, password_env=PG_PASSWORD_ENV, password=password, engine=engine)
    engine.dispose()


@pytest.fixture(autouse=True)
def _postgres_marker_needs_server(request):
    """Every `@pytest.mark.postgres` test goes through `postgres_server`, even one that forgets to ask."""
    if request.node.get_closest_marker("postgres") is not None:
        request.getfixturevalue("postgres_server")
