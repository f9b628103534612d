"""The schema Alembic builds is the schema the code declares, on both databases, as the
catalog itself reports it: columns, defaults, constraints, index predicates, triggers.

The comparison this replaced (Alembic's compare_metadata) did not look at partial-index
predicates or CHECK constraints and had server defaults switched off: each of those could
change in the declared schema and the test still passed. `test_drift_is_caught` shows
that every such change is now seen.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from followup_cli.db import compat, guide_rows
from followup_cli.db.engine import Database
from followup_cli.db.migrate import alembic_config, head_revision, script_location, upgrade
from followup_cli.db.schema import metadata
from followup_cli.errors import SchemaError
from followup_cli.settings import normalize_database_url
from tests.catalog import differences, snapshot
from tests.conftest import PostgresServer, _pg_url


def copy_of_models() -> sa.MetaData:
    """The declared schema, copied so a test may change it (listeners come along)."""
    model = sa.MetaData()
    for table in metadata.sorted_tables:
        copy = table.to_metadata(model)
        # to_metadata leaves Index.info behind, where partial indexes keep their predicate
        # (followup_cli/db/partial.py)
        infos = {ix.name: ix.info for ix in table.indexes}
        for index in copy.indexes:
            index.info.update(infos.get(index.name, {}))
    return model


KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module")
def pg_scratch(pg_server: PostgresServer) -> Iterator[str]:
    """One migrated PostgreSQL database for the module; model builds go into schemas."""
    name = pg_server.create()
    yield normalize_database_url(_pg_url(name))
    pg_server.drop(name)


@pytest.fixture(scope="module")
def migrated_catalogs() -> dict[str, dict]:
    return {}


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def migrated(kind: str, request: pytest.FixtureRequest, migrated_catalogs: dict,
             sqlite_template: Path) -> dict:
    """The catalog of a database built by the migrations (read once per module)."""
    if kind not in migrated_catalogs:
        url = (request.getfixturevalue("pg_scratch") if kind == "postgres"
               else f"sqlite:///{sqlite_template}")
        migrated_catalogs[kind] = migrated_catalog(url)
    return migrated_catalogs[kind]


@pytest.fixture
def build_from_models(kind: str, request: pytest.FixtureRequest, tmp_path: Path
                      ) -> Iterator[Callable[[sa.MetaData], dict]]:
    """Build a schema from (a copy of) the models with create_all, on the same kind of
    database, and return its catalog: a fresh SQLite file, or a fresh PostgreSQL schema."""
    cleanups: list[Callable[[], None]] = []

    def build(model: sa.MetaData) -> dict:
        if kind == "postgres":
            schema = f"model_{uuid.uuid4().hex[:10]}"
            engine = sa.create_engine(request.getfixturevalue("pg_scratch"), connect_args={
                "options": f"-c search_path={schema}"})
            with engine.begin() as conn:
                conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
            cleanups.append(lambda: _drop_schema(engine, schema))
        else:
            engine = sa.create_engine(f"sqlite:///{tmp_path / f'model{len(cleanups)}.db'}")
            cleanups.append(engine.dispose)
        with engine.begin() as conn:
            model.create_all(conn)
        with engine.connect() as conn:
            return snapshot(conn)

    yield build
    for cleanup in cleanups:
        cleanup()


def _drop_schema(engine: sa.Engine, schema: str) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    engine.dispose()


def migrated_catalog(db_url: str) -> dict:
    db = Database(normalize_database_url(db_url))
    try:
        assert db.current_revision() == compat.head_revision()
        with db.engine.connect() as conn:
            return snapshot(conn)
    finally:
        db.dispose()


def test_code_knows_the_head_revision() -> None:
    """The cheap parse of alembic/versions agrees with Alembic itself."""
    assert compat.head_revision() == head_revision()
    assert [m.revision for m in compat.migrations()][:3] == [
        "0001_initial", "0002_admission_guards", "0003_compat_and_defaults"]


def test_every_migration_declares_a_compatible_release() -> None:
    import followup_cli

    for migration in compat.migrations():
        assert compat.release_at_least(followup_cli.__version__,
                                       migration.oldest_compatible_release), migration


def test_migrated_schema_matches_declared_models(migrated: dict, build_from_models) -> None:
    built = build_from_models(copy_of_models())
    assert differences(migrated, built) == []
    # the comparison reads what matters: the rules are in the catalog it compares
    flat = repr(migrated)
    guide_rows_ddl = ("scheduled_followups_fill_defaults" if "functions" in migrated
                      else "ix_scheduled_followups_incomplete")
    for rule in ("uq_scheduled_followups_live_reengagement", "ck_scheduled_followups_status",
                 guide_rows_ddl, "'processing'"):
        assert rule in flat, rule


def _index(model: sa.MetaData, name: str) -> sa.Index:
    return next(ix for t in model.tables.values() for ix in t.indexes if ix.name == name)


def change_predicate(model: sa.MetaData) -> None:
    ix = _index(model, "uq_scheduled_followups_live_reengagement")
    ix.info["where"] = sa.text("trigger_type = 'reengagement' AND status = 'pending'")


def change_check(model: sa.MetaData) -> None:
    table = model.tables["scheduled_followups"]
    check = next(c for c in table.constraints if c.name == "ck_scheduled_followups_status")
    table.constraints.remove(check)
    table.append_constraint(sa.CheckConstraint(
        "status IN ('pending', 'processing', 'executed', 'failed')",
        name="ck_scheduled_followups_status"))


def change_server_default(model: sa.MetaData) -> None:
    column = model.tables["scheduled_followups"].c.status
    column.server_default = sa.DefaultClause("executed")
    column.server_default._set_parent(column)


def change_nullability(model: sa.MetaData) -> None:
    model.tables["scheduled_followups"].c.locked_by.nullable = False


def change_uniqueness(model: sa.MetaData) -> None:
    _index(model, "ix_scheduled_followups_conversation_id").unique = True


def change_type(model: sa.MetaData) -> None:
    model.tables["scheduled_followups"].c.template_id.type = sa.String(40)


def add_column(model: sa.MetaData) -> None:
    model.tables["scheduled_followups"].append_column(sa.Column("not_migrated", sa.Integer()))


def add_foreign_key_action(model: sa.MetaData) -> None:
    table = model.tables["ai_messages"]
    fk = next(iter(table.foreign_key_constraints))
    table.constraints.remove(fk)
    table.append_constraint(sa.ForeignKeyConstraint(
        ["conversation_id"], ["ai_conversations.id"], name=fk.name))  # no ON DELETE CASCADE


DRIFTS = {
    "partial-index predicate": change_predicate,
    "CHECK constraint": change_check,
    "server default": change_server_default,
    "nullability": change_nullability,
    "index uniqueness": change_uniqueness,
    "column type": change_type,
    "extra column": add_column,
    "foreign key action": add_foreign_key_action,
}


@pytest.mark.parametrize("change", DRIFTS.values(), ids=DRIFTS.keys())
def test_drift_is_caught(migrated: dict, build_from_models, change) -> None:
    model = copy_of_models()
    change(model)
    assert differences(migrated, build_from_models(model)) != []


def test_changed_guide_row_ddl_is_caught(migrated: dict, build_from_models,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The DDL that completes guide-column rows differs from the migration's: a trigger
    function that no longer derives event_at (PostgreSQL), an index of incomplete rows
    with another predicate (SQLite)."""
    changed = {dialect: tuple(s.replace("post_event", "post_evnt").replace(
        "WHERE next_attempt_at IS NULL", "WHERE next_attempt_at IS NULL AND status = 'x'")
        for s in ddl) for dialect, ddl in guide_rows.DDL.items()}
    monkeypatch.setattr(guide_rows, "DDL", changed)
    assert differences(migrated, build_from_models(copy_of_models())) != []


@pytest.mark.postgres
def test_postgres_without_schema_refuses_then_upgrades(pg_empty_url: str) -> None:
    db = Database(normalize_database_url(pg_empty_url))
    try:
        with pytest.raises(SchemaError, match="followup db upgrade"), db.transaction():
            pass
        upgrade(db)
        assert db.current_revision() == compat.head_revision()
        with db.transaction(readonly=True) as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM scheduled_followups")).scalar() == 0
    finally:
        db.dispose()


def test_downgrade_to_base_and_up_again(db_url: str) -> None:
    """River's check: down and up again, twice, lands on the same catalog."""
    from alembic import command

    before = migrated_catalog(db_url)
    db = Database(normalize_database_url(db_url))
    try:
        for _ in range(2):
            command.downgrade(alembic_config(db), "base")
            assert db.current_revision() is None
            with db.engine.connect() as conn:
                assert not sa.inspect(conn).has_table("scheduled_followups")
                assert not sa.inspect(conn).has_table("followup_schema_versions")
            upgrade(db)
        with db.engine.connect() as conn:
            assert differences(snapshot(conn), before) == []
            recorded = conn.execute(sa.text(
                "SELECT revision FROM followup_schema_versions")).scalars().all()
        # every step from the one that made the record table on
        chain = [m.revision for m in compat.migrations()]
        assert recorded == chain[chain.index("0003_compat_and_defaults"):]
    finally:
        db.dispose()


def test_each_step_down_and_up_keeps_the_record(db_url: str) -> None:
    """Down one step removes that revision's record with its table; up writes it again,
    with this release and the migration's declaration."""
    from alembic import command

    import followup_cli

    db = Database(normalize_database_url(db_url))
    try:
        command.downgrade(alembic_config(db), "0002_admission_guards")
        assert db.schema_state().state == compat.OUTDATED
        upgrade(db)
        with db.engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT revision, migrated_by, oldest_compatible_release "
                "FROM followup_schema_versions")).all()
        declared = {m.revision: m.oldest_compatible_release for m in compat.migrations()}
        chain = list(declared)
        assert [tuple(r) for r in rows] == [
            (rev, followup_cli.__version__, declared[rev])
            for rev in chain[chain.index("0003_compat_and_defaults"):]]
    finally:
        db.dispose()


def test_sqlite_file_is_created_and_migrated_on_first_use(tmp_path) -> None:
    path = tmp_path / "deep" / "dir" / "f.db"
    db = Database(f"sqlite:///{path}")
    try:
        with db.transaction(readonly=True) as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM ai_messages")).scalar() == 0
        assert path.exists() and db.current_revision() == compat.head_revision()
    finally:
        db.dispose()


def test_a_sqlite_upgrade_reads_the_revision_and_applies_every_step_in_one_transaction(
        tmp_path: Path) -> None:
    """Processes meeting a fresh file take turns on its write lock. Were it released
    between steps, a second process could apply steps the first still means to apply
    ("table followup_user_guards already exists", seen in CI): so from reading the revision
    to the last step, one transaction, begun with the write lock."""
    db = Database(f"sqlite:///{tmp_path / 'f.db'}")
    seen: list[str] = []
    sa.event.listen(db.engine, "commit", lambda conn: seen.append("COMMIT"))
    sa.event.listen(db.engine, "before_cursor_execute",
                    lambda conn, cursor, sql, *args: seen.append(sql.strip()))
    try:
        upgrade(db)
        assert db.current_revision() == compat.head_revision()
    finally:
        db.dispose()
    # From the transaction in which Alembic first looks for its version table to the end.
    read = next(i for i, sql in enumerate(seen) if "alembic_version" in sql)
    begun = max(i for i, sql in enumerate(seen[:read]) if sql.startswith("BEGIN"))
    upgrading = seen[begun:]
    assert upgrading[0] == "BEGIN IMMEDIATE"
    steps = [i for i, sql in enumerate(upgrading) if sql.upper().startswith(("CREATE", "DROP"))]
    commits = [i for i, sql in enumerate(upgrading) if sql == "COMMIT"]
    assert steps and commits, upgrading
    assert commits[0] > steps[-1], upgrading  # no commit, so no other process, in between
    assert not any(sql.startswith("BEGIN") for sql in upgrading[1:commits[0]])


RECENT = "ix_ai_messages_conversation_recent"


def _index_oid(conn: sa.Connection) -> tuple[int, bool] | None:
    row = conn.execute(sa.text(
        "SELECT i.indexrelid::int, i.indisvalid FROM pg_index i"
        " WHERE i.indexrelid = to_regclass(:name)"), {"name": RECENT}).first()
    return None if row is None else (int(row[0]), bool(row[1]))


def _upgrade_with_prebuilt(pg_url: str, *prepare: str) -> tuple[tuple[int, bool] | None,
                                                                tuple[int, bool] | None]:
    """Down to 0004, run `prepare` outside a transaction (as an operator's psql would), up
    to the head; the new index (oid, valid) before and after, and the catalog checked
    against the declared schema."""
    from alembic import command

    before = migrated_catalog(pg_url)
    db = Database(normalize_database_url(pg_url))
    try:
        command.downgrade(alembic_config(db), "0004_index_diet")
        with db.engine.connect() as conn:
            auto = conn.execution_options(isolation_level="AUTOCOMMIT")
            for statement in prepare:
                with contextlib.suppress(sa.exc.DBAPIError):
                    auto.exec_driver_sql(statement)
            prebuilt = _index_oid(auto)
        upgrade(db)
        with db.engine.connect() as conn:
            assert differences(snapshot(conn), before) == []
            names = conn.execute(sa.text(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'ai_messages'"
                " ORDER BY 1")).scalars().all()
            after = _index_oid(conn)
        assert names == ["ai_messages_pkey", RECENT, "ix_ai_messages_user_activity"]
        return prebuilt, after
    finally:
        db.dispose()


@pytest.mark.postgres
def test_recent_scores_index_built_beforehand_is_kept(pg_url: str) -> None:
    """Migration 0005's docstring tells an operator with a large ai_messages how to build
    the new index CONCURRENTLY before upgrading; the step then keeps that very index (the
    same relation) and only drops the old one."""
    doc = (Path(script_location()) / "versions" / "0005_recent_scores_index.py").read_text()
    start = doc.index("CREATE INDEX CONCURRENTLY")
    statement = " ".join(doc[start:doc.index(";", start)].split())
    prebuilt, after = _upgrade_with_prebuilt(pg_url, statement)
    assert prebuilt is not None and prebuilt[1]
    assert after == prebuilt


@pytest.mark.postgres
def test_an_invalid_or_different_prebuilt_index_is_built_again(pg_url: str) -> None:
    """A CONCURRENTLY build that fails leaves an INVALID index of the name, which the
    planner never uses; here it is also the wrong definition. The step replaces it."""
    failing = (f"CREATE UNIQUE INDEX CONCURRENTLY {RECENT} ON ai_messages (conversation_id)"
               " WHERE emotion_score IS NOT NULL")
    prebuilt, after = _upgrade_with_prebuilt(
        pg_url,
        "INSERT INTO ai_conversations (id, user_id) VALUES ('c-dup', 'u-dup')",
        "INSERT INTO ai_messages (id, conversation_id, user_id, role, emotion_score)"
        " VALUES ('m1', 'c-dup', 'u-dup', 'user', 0.5), ('m2', 'c-dup', 'u-dup', 'user', 0.7)",
        failing)  # fails on the two scored messages of c-dup
    assert prebuilt is not None and not prebuilt[1]  # INVALID, as operators would find it
    assert after is not None and after[1] and after[0] != prebuilt[0]
