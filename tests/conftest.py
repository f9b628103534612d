"""Shared fixtures: a fresh database per test on SQLite and on PostgreSQL.

PostgreSQL tests use FOLLOWUP_TEST_POSTGRES_URL (default: the local server as user
postgres). Each test gets its own database cloned from a template migrated once per worker,
and drops it afterwards. Locally, an unreachable server skips those tests; CI sets
FOLLOWUP_REQUIRE_POSTGRES=1, which turns that skip into a failure.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import settings as hypothesis_settings

from followup_cli.db.engine import Database
from followup_cli.db.migrate import upgrade
from followup_cli.service.context import Context
from followup_cli.settings import load_settings, normalize_database_url

# Property tests check rules, not speed: Hypothesis's per-example deadline (200 ms) turned a
# busy moment of these shared 2-core machines into a failure of a property that held.
hypothesis_settings.register_profile("followup", deadline=None)
hypothesis_settings.load_profile("followup")

PG_ADMIN_URL = os.environ.get(
    "FOLLOWUP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE_PG = os.environ.get("FOLLOWUP_REQUIRE_POSTGRES", "") not in ("", "0", "false")
# Tests must not read the operator's environment.
SCRUB = [k for k in os.environ if k.startswith(("FOLLOWUP_", "SCHEDULER_", "REENGAGEMENT_"))
         and k not in ("FOLLOWUP_TEST_POSTGRES_URL", "FOLLOWUP_REQUIRE_POSTGRES")]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [*SCRUB, "DATABASE_URL"]:
        monkeypatch.delenv(key, raising=False)


def _pg_url(dbname: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{dbname}"


def _admin_engine() -> sa.Engine:
    url = PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg2://", 1)
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", connect_args={
        "connect_timeout": 5})


class PostgresServer:
    """Creates and drops test databases; one migrated template per pytest worker."""

    def __init__(self, worker: str):
        self.admin = _admin_engine()
        self.template = f"followup_tpl_{worker}_{os.getpid()}"
        self._templated = False

    def _exec(self, sql: str) -> None:
        with self.admin.connect() as conn:
            conn.exec_driver_sql(sql)

    def _ensure_template(self) -> None:
        if self._templated:
            return
        self._exec(f'DROP DATABASE IF EXISTS "{self.template}"')
        self._exec(f'CREATE DATABASE "{self.template}"')
        db = Database(_pg_url(self.template).replace("postgresql://",
                                                      "postgresql+psycopg2://", 1))
        upgrade(db)
        db.dispose()
        self._templated = True

    def create(self, *, migrated: bool = True) -> str:
        name = f"followup_t_{uuid.uuid4().hex[:12]}"
        if migrated:
            self._ensure_template()
            self._exec(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        else:
            self._exec(f'CREATE DATABASE "{name}"')
        return name

    def drop(self, name: str) -> None:
        self._exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        if self._templated:
            self.drop(self.template)
        self.admin.dispose()


@pytest.fixture(scope="session")
def pg_server(worker_id: str) -> Iterator[PostgresServer]:
    try:
        server = PostgresServer(worker_id)
        with server.admin.connect():
            pass
    except sa.exc.OperationalError as exc:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required (FOLLOWUP_REQUIRE_POSTGRES) but not "
                        f"reachable at {PG_ADMIN_URL}: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}")
    yield server
    server.close()


@pytest.fixture(scope="session")
def worker_id(request: pytest.FixtureRequest) -> str:
    return getattr(request.config, "workerinput", {}).get("workerid", "main")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tpl") / "template.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db)
    db.dispose()
    return path


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database (plain postgresql:// URL, as operators write)."""
    name = pg_server.create()
    yield _pg_url(name)
    pg_server.drop(name)


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[sa.Engine]:
    """An engine on `pg_url` for a test's own SQL beside followup's, disposed before the
    database is dropped."""
    engine = sa.create_engine(normalize_database_url(pg_url))
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def pg_empty_url(pg_server: PostgresServer) -> Iterator[str]:
    """A fresh PostgreSQL database with no schema."""
    name = pg_server.create(migrated=False)
    yield _pg_url(name)
    pg_server.drop(name)


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "followup.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """The same test once on SQLite and once on PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(name))


@dataclass
class FakeClock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now = self.now + timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 20, 12, 0, tzinfo=UTC))


MakeCtx = Callable[..., Context]


@pytest.fixture
def make_ctx(db_url: str, clock: FakeClock) -> Iterator[MakeCtx]:
    """Build a Context on the test database; keyword args are environment settings."""
    made: list[Context] = []

    def factory(**env: Any) -> Context:
        environ = {"DATABASE_URL": db_url, **{k: str(v) for k, v in env.items()}}
        ctx = Context(load_settings(environ), clock=clock)
        made.append(ctx)
        return ctx

    yield factory
    for ctx in made:
        ctx.close()


@pytest.fixture
def ctx(make_ctx: MakeCtx) -> Context:
    return make_ctx()
