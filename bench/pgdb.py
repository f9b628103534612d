"""Scratch PostgreSQL databases for the suite: one migrated template per suite run, a fresh
clone of it per measured run, every database dropped at the end (also on Ctrl-C).

Talks to the server with psycopg2 directly: the harness must not share (or pay for) the
code it measures."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg2
import psycopg2.extensions

ADMIN_URL = os.environ.get("FOLLOWUP_BENCH_POSTGRES_URL",
                           "postgresql://postgres@127.0.0.1:5432/postgres")
PREFIX = "followup_bench_"


class Server:
    """The PostgreSQL server under test, and every database the suite made on it."""

    def __init__(self, admin_url: str = ADMIN_URL) -> None:
        self.admin_url = admin_url
        self.base = admin_url.rsplit("/", 1)[0]
        self.created: list[str] = []

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"

    def connect(self, name: str | None = None, *, autocommit: bool = False
                ) -> psycopg2.extensions.connection:
        conn = psycopg2.connect(self.url(name) if name else self.admin_url)
        conn.autocommit = autocommit
        return conn

    def admin(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        conn = self.connect(autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def create(self, label: str, *, template: str | None = None,
               file_copy: bool = False) -> str:
        """A new empty (or cloned) database; FILE_COPY clones a large template by copying
        its files instead of writing every block to the WAL."""
        name = f"{PREFIX}{label}_{uuid.uuid4().hex[:6]}"
        sql = f'CREATE DATABASE "{name}"'
        if template:
            sql += f' TEMPLATE "{template}"'
            if file_copy:
                sql += " STRATEGY = FILE_COPY"
        self.admin(sql)
        self.created.append(name)
        return name

    def drop(self, name: str) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        with suppress(ValueError):
            self.created.remove(name)

    @contextmanager
    def scratch(self, label: str, *, template: str | None = None,
                file_copy: bool = False) -> Iterator[str]:
        name = self.create(label, template=template, file_copy=file_copy)
        try:
            yield name
        finally:
            self.drop(name)

    def cleanup(self) -> None:
        for name in list(self.created):
            with suppress(psycopg2.Error):
                self.drop(name)

    def size(self, name: str) -> int:
        return int(self.admin("SELECT pg_database_size(%s)", (name,))[0][0])

    def version(self) -> str:
        return str(self.admin("SHOW server_version")[0][0]).split()[0]

    def settings(self) -> dict[str, str]:
        names = ("autovacuum", "jit", "max_parallel_workers_per_gather", "shared_buffers",
                 "work_mem", "synchronous_commit", "fsync")
        return {n: str(self.admin(f"SHOW {n}")[0][0]) for n in names}


def execute(server: Server, db: str, *statements: tuple[str, Any]) -> None:
    """Run statements in one transaction of a fresh connection."""
    conn = server.connect(db)
    try:
        with conn, conn.cursor() as cur:
            for sql, params in statements:
                cur.execute(sql, params)
    finally:
        conn.close()


def query(server: Server, db: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    conn = server.connect(db)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


# n due post-event follow-ups, as an import or the original application would leave them,
# in one INSERT ... SELECT; ids are '<prefix>-0000001' and up.
INSERT_DUE = """
INSERT INTO scheduled_followups (id, conversation_id, user_id, trigger_type, trigger_data,
    scheduled_at, next_attempt_at, status, template_id, message_content, created_at,
    retry_count, event_at)
SELECT %(prefix)s || '-' || lpad(g::text, 7, '0'), 'c' || g, 'u' || g, 'post_event',
    jsonb_build_object('event_date', (now() - interval '1 day 10 minutes')::text),
    now() - interval '10 minutes', now() - interval '10 minutes', 'pending',
    'post_event_neutral_emotion', 'Hello ' || g || ', how did the event go?', now(), 0,
    now() - interval '1 day 10 minutes'
FROM generate_series(1, %(n)s) AS g
"""


def insert_due(server: Server, db: str, n: int, *, prefix: str = "f",
               analyze: bool = False) -> list[str]:
    """n due follow-ups; with analyze the table gets statistics, without it the planner
    sees what a claim right after a bulk insert sees (autovacuum is off here)."""
    statements: list[tuple[str, Any]] = [(INSERT_DUE, {"prefix": prefix, "n": n})]
    if analyze:
        statements.append(("ANALYZE scheduled_followups", None))
    execute(server, db, *statements)
    return [f"{prefix}-{g:07d}" for g in range(1, n + 1)]


def status_counts(server: Server, db: str, table: str = "scheduled_followups",
                  column: str = "status") -> dict[str, int]:
    return {str(s): int(n) for s, n in query(
        server, db, f"SELECT {column}, count(*) FROM {table} GROUP BY 1")}


def has_statistics(server: Server, db: str, table: str = "scheduled_followups") -> bool:
    return bool(query(server, db, "SELECT count(*) FROM pg_stats WHERE tablename = %s",
                      (table,))[0][0])
