"""Triggers that make a row written with only the guide's columns a complete follow-up.

The original application inserts into scheduled_followups with the guide's columns alone
(status, scheduled_at, message_content, trigger_data, ...). The columns followup added
either default to NULL or are filled here, before anything reads the row:
- `next_attempt_at` (when the next delivery may start) defaults to the row's own
  `scheduled_at`, which no column DEFAULT can express;
- `event_at` (the event instant of a post-event follow-up, for the ±1 day duplicate rule)
  is derived from `trigger_data->>'event_date'` when that text reads as a time; any other
  text leaves it NULL and the row is accepted all the same.

PostgreSQL fills NEW in a BEFORE INSERT trigger, so `next_attempt_at` stays NOT NULL.
SQLite cannot assign to NEW: there `next_attempt_at` admits NULL in the table definition,
an AFTER INSERT trigger fills it within the same statement, and a BEFORE UPDATE trigger
refuses to set it NULL again, so no statement ever leaves a NULL behind.

Each trigger's WHEN clause is false for the rows followup writes itself, so bulk inserts
do not pay for the function. These are attached to the declared table (tests build the
schema from it); migration 0003 carries its own frozen copy, and the drift test keeps the
two equal.
"""

from __future__ import annotations

from typing import Any

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

# Text times as SQLAlchemy writes them on SQLite (naive UTC, microseconds), so that
# comparisons with the times followup writes order correctly.
_SQLITE_STAMP = ("'[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]"
                 ".[0-9][0-9][0-9][0-9][0-9][0-9]'")
_SQLITE_DATE_PREFIX = "'[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*'"

SQLITE_FILL = f"""
CREATE TRIGGER scheduled_followups_fill_defaults
AFTER INSERT ON scheduled_followups
FOR EACH ROW
WHEN NEW.next_attempt_at IS NULL OR (NEW.event_at IS NULL AND NEW.trigger_type = 'post_event')
BEGIN
    UPDATE scheduled_followups SET
        next_attempt_at = CASE
            WHEN NEW.next_attempt_at IS NOT NULL THEN NEW.next_attempt_at
            WHEN NEW.scheduled_at GLOB {_SQLITE_STAMP} THEN NEW.scheduled_at
            WHEN NEW.scheduled_at GLOB {_SQLITE_DATE_PREFIX} THEN COALESCE(
                strftime('%Y-%m-%d %H:%M:%f', NEW.scheduled_at) || '000', NEW.scheduled_at)
            ELSE NEW.scheduled_at END,
        event_at = CASE
            WHEN NEW.event_at IS NOT NULL OR NEW.trigger_type <> 'post_event' THEN NEW.event_at
            WHEN NOT json_valid(NEW.trigger_data) THEN NULL
            WHEN json_type(NEW.trigger_data, '$.event_date') IS NOT 'text' THEN NULL
            WHEN json_extract(NEW.trigger_data, '$.event_date') GLOB {_SQLITE_DATE_PREFIX}
                THEN strftime('%Y-%m-%d %H:%M:%f',
                              json_extract(NEW.trigger_data, '$.event_date')) || '000'
            ELSE NULL END
    WHERE rowid = NEW.rowid;
END
"""

SQLITE_NOT_NULL = """
CREATE TRIGGER scheduled_followups_next_attempt_not_null
BEFORE UPDATE OF next_attempt_at ON scheduled_followups
FOR EACH ROW
WHEN NEW.next_attempt_at IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: scheduled_followups.next_attempt_at');
END
"""

DDL = {"postgresql": (PG_FUNCTION, PG_TRIGGER), "sqlite": (SQLITE_FILL, SQLITE_NOT_NULL)}


def attach(table: sa.Table) -> None:
    """Create the triggers whenever the declared table is created (create_all)."""

    def create(target: sa.Table, connection: sa.Connection, **_kw: Any) -> None:
        for statement in DDL.get(connection.dialect.name, ()):
            connection.exec_driver_sql(statement)

    # propagate: copies made with Table.to_metadata() (tests mutate such copies) keep them.
    sa.event.listen(table, "after_create", create, propagate=True)
