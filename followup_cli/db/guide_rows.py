"""Rows written with only the guide's columns become complete follow-ups.

The original application inserts into scheduled_followups with the guide's columns alone
(status, scheduled_at, message_content, trigger_data, ...). The columns followup added
either default to NULL or are completed here:
- `next_attempt_at` (when the next delivery may start) becomes the row's own
  `scheduled_at`, which no column DEFAULT can express;
- `event_at` (the event instant of a post-event follow-up, for the ±1 day duplicate rule)
  is read from `trigger_data->>'event_date'` when that text is a time; any other text
  leaves it NULL, and the row is accepted all the same.

PostgreSQL: a BEFORE INSERT trigger fills NEW, so `next_attempt_at` stays NOT NULL. Its
WHEN clause is false for every row followup writes, so followup's own inserts (COPY
included) do not call the function.

SQLite cannot assign to NEW, and any trigger on the table costs every INSERT statement a
statement journal of each page it touches: measured, it doubled the time of a
`schedule import` (50,000 rows: 2.5 s → 5.3 s). So on SQLite `next_attempt_at` admits NULL
in the table definition, and followup completes such rows itself at the start of each of
its write transactions (`complete_rows`): one probe of an index that holds only the
incomplete rows, empty unless another program wrote some. The idle `run-due` check treats
an incomplete row as work, so the next pass completes it and delivers it when it is due.

The DDL is attached to the declared table (tests build the schema from it); migration
0003 carries its own frozen copy, and the drift test keeps the two equal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the idle run-due check imports this module and must not load SQLAlchemy
    import sqlalchemy as sa

PG_FUNCTION = r"""
CREATE FUNCTION followup_fill_defaults() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.next_attempt_at IS NULL THEN
        NEW.next_attempt_at := NEW.scheduled_at;
    END IF;
    IF NEW.event_at IS NULL AND NEW.trigger_type = 'post_event'
            AND jsonb_typeof(NEW.trigger_data -> 'event_date') = 'string'
            AND (NEW.trigger_data ->> 'event_date') ~ '^\d{4}-\d{2}-\d{2}' THEN
        BEGIN
            NEW.event_at := (NEW.trigger_data ->> 'event_date')::timestamptz;
            IF NOT isfinite(NEW.event_at) THEN
                NEW.event_at := NULL;
            END IF;
        EXCEPTION WHEN others THEN
            NEW.event_at := NULL;  -- not a time: the row is accepted without it
        END;
    END IF;
    RETURN NEW;
END
$$
"""

PG_TRIGGER = """
CREATE TRIGGER scheduled_followups_fill_defaults
BEFORE INSERT ON scheduled_followups
FOR EACH ROW
WHEN (NEW.next_attempt_at IS NULL OR (NEW.event_at IS NULL AND NEW.trigger_type = 'post_event'))
EXECUTE FUNCTION followup_fill_defaults()
"""

# SQLite: the rows another program wrote without next_attempt_at, and nothing else.
SQLITE_INDEX = """
CREATE INDEX ix_scheduled_followups_incomplete ON scheduled_followups (id)
WHERE next_attempt_at IS NULL
"""

SQLITE_PROBE = "SELECT 1 FROM scheduled_followups WHERE next_attempt_at IS NULL LIMIT 1"

# Text times as SQLAlchemy writes them on SQLite (naive UTC with microseconds), so they
# order correctly against the times followup writes; text that is no time stays as it is.
_STAMP = ("'[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]"
          ".[0-9][0-9][0-9][0-9][0-9][0-9]'")
_DATE_PREFIX = "'[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*'"

SQLITE_COMPLETE = f"""
UPDATE scheduled_followups SET
    next_attempt_at = CASE
        WHEN scheduled_at GLOB {_STAMP} THEN scheduled_at
        WHEN scheduled_at GLOB {_DATE_PREFIX} THEN COALESCE(
            strftime('%Y-%m-%d %H:%M:%f', scheduled_at) || '000', scheduled_at)
        ELSE scheduled_at END,
    event_at = CASE
        WHEN event_at IS NOT NULL OR trigger_type <> 'post_event' THEN event_at
        WHEN NOT json_valid(trigger_data) THEN NULL
        WHEN json_type(trigger_data, '$.event_date') IS NOT 'text' THEN NULL
        WHEN json_extract(trigger_data, '$.event_date') GLOB {_DATE_PREFIX}
            THEN strftime('%Y-%m-%d %H:%M:%f', json_extract(trigger_data, '$.event_date'))
                 || '000'
        ELSE NULL END
WHERE next_attempt_at IS NULL
"""

DDL = {"postgresql": (PG_FUNCTION, PG_TRIGGER), "sqlite": (SQLITE_INDEX,)}


def complete_rows(conn: sa.Connection) -> None:
    """SQLite: complete the rows another program wrote with only the guide's columns. Call
    it inside a write transaction; it costs one probe of an (almost always) empty index."""
    if conn.exec_driver_sql(SQLITE_PROBE).first() is not None:
        conn.exec_driver_sql(SQLITE_COMPLETE)


def attach(table: sa.Table) -> None:
    """Create the trigger (PostgreSQL) or the index of incomplete rows (SQLite) whenever
    the declared table is created (create_all)."""

    import sqlalchemy as sa

    def create(target: sa.Table, connection: sa.Connection, **_kw: Any) -> None:
        for statement in DDL.get(connection.dialect.name, ()):
            connection.exec_driver_sql(statement)

    # propagate: copies made with Table.to_metadata() (tests mutate such copies) keep it.
    sa.event.listen(table, "after_create", create, propagate=True)
