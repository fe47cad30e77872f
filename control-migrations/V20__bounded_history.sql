-- Bounded history: the three event tables become monthly range partitions on created_at,
-- so that a month whose events are all past `event_retention` is dropped whole instead of
-- deleted row by row (src/events/history.rs does both, on the leader, every prune_interval).
--
-- What the readers rely on stays as it was:
--   * ids: one sequence for the three tables (the feed's cursor and the stream's
--     Last-Event-ID compare ids across them). The tables' old identity sequence cannot be
--     kept without its table, so a plain sequence takes over at the same value;
--   * every index the feed, the stream and the timelines use, now partitioned indexes;
--     the primary key is (id, created_at): the partition key must be in it, and ids stay
--     unique by construction (one sequence);
--   * the outbox trigger, now on the partitioned tables (a row trigger there fires for
--     every partition). It is created after the rows are copied: copying the history
--     must not queue webhook deliveries for old events.
--
-- Partitions are named `<table>_yYYYYmMM` and cover one UTC month. A `<table>_default`
-- partition takes rows outside every month partition (written with an explicit old
-- created_at), so an insert never fails for want of a partition; creating a month moves
-- its rows out of the default partition first. Existing rows are copied into partitions
-- from the oldest event's month to three months ahead; the pruner keeps three months ahead.

CREATE SEQUENCE control_plane.event_id_seq AS bigint;
SELECT setval('control_plane.event_id_seq', last_value, is_called)
FROM control_plane.tenant_events_id_seq;

ALTER TABLE control_plane.tenant_events RENAME TO tenant_events_unpartitioned;
ALTER TABLE control_plane.wave_events RENAME TO wave_events_unpartitioned;
ALTER TABLE control_plane.control_events RENAME TO control_events_unpartitioned;

CREATE TABLE control_plane.tenant_events (
    id         bigint NOT NULL DEFAULT nextval('control_plane.event_id_seq'),
    -- Deferrable so an event can be written before the row it describes within one transaction.
    tenant_id  uuid NOT NULL
        CONSTRAINT tenant_events_tenant_id_fkey REFERENCES control_plane.tenants (id) DEFERRABLE INITIALLY DEFERRED,
    event_type text NOT NULL CONSTRAINT tenant_events_event_type_fkey REFERENCES control_plane.event_types (name),
    actor      text NOT NULL,
    payload    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    xid        xid8 NOT NULL DEFAULT pg_current_xact_id()
) PARTITION BY RANGE (created_at);

CREATE TABLE control_plane.wave_events (
    id         bigint NOT NULL DEFAULT nextval('control_plane.event_id_seq'),
    wave_id    uuid NOT NULL CONSTRAINT wave_events_wave_id_fkey REFERENCES control_plane.waves (id) ON DELETE CASCADE,
    event_type text NOT NULL
        CONSTRAINT wave_events_type_valid CHECK (event_type IN
            ('created', 'canary_started', 'canary_passed', 'soak_started', 'soak_passed',
             'promoted', 'batch_started', 'halted', 'paused', 'resumed', 'aborted', 'completed')),
    actor      text NOT NULL,
    payload    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    xid        xid8 NOT NULL DEFAULT pg_current_xact_id()
) PARTITION BY RANGE (created_at);

CREATE TABLE control_plane.control_events (
    id         bigint NOT NULL DEFAULT nextval('control_plane.event_id_seq'),
    event_type text NOT NULL
        CONSTRAINT control_events_type_dotted CHECK (event_type ~ '^[a-z_]+\.[a-z_]+$'),
    actor      text NOT NULL,
    payload    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    xid        xid8 NOT NULL DEFAULT pg_current_xact_id()
) PARTITION BY RANGE (created_at);

CREATE TABLE control_plane.tenant_events_default PARTITION OF control_plane.tenant_events DEFAULT;
CREATE TABLE control_plane.wave_events_default PARTITION OF control_plane.wave_events DEFAULT;
CREATE TABLE control_plane.control_events_default PARTITION OF control_plane.control_events DEFAULT;

-- Creates the partition of `parent` for the UTC month starting at `month` (a first of the
-- month) unless it exists; returns whether it did. Built beside the table and attached
-- (a SHARE UPDATE EXCLUSIVE lock on the parent: the feed and the writers go on), after
-- moving that month's rows out of the default partition, which attaching requires.
CREATE FUNCTION control_plane.event_partition_create(parent text, month date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    part text := format('%s_y%sm%s', parent, to_char(month, 'YYYY'), to_char(month, 'MM'));
    lo   timestamptz := month::timestamp AT TIME ZONE 'UTC';
    hi   timestamptz := (month + interval '1 month') AT TIME ZONE 'UTC';
BEGIN
    IF parent NOT IN ('tenant_events', 'wave_events', 'control_events') THEN
        RAISE EXCEPTION 'not an event table: %', parent;
    END IF;
    IF extract(day FROM month) <> 1 THEN
        RAISE EXCEPTION 'not the first of a month: %', month;
    END IF;
    IF to_regclass(format('control_plane.%I', part)) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE control_plane.%I (LIKE control_plane.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                   part, parent);
    EXECUTE format('WITH moved AS (DELETE FROM control_plane.%I WHERE created_at >= $1 AND created_at < $2 RETURNING *) '
                   'INSERT INTO control_plane.%I SELECT * FROM moved', parent || '_default', part)
        USING lo, hi;
    EXECUTE format('ALTER TABLE control_plane.%I ATTACH PARTITION control_plane.%I FOR VALUES FROM (%L) TO (%L)',
                   parent, part, lo, hi);
    RETURN true;
END;
$$;

-- The months of the existing history, and three ahead.
SELECT control_plane.event_partition_create(t.name, m::date)
FROM (VALUES ('tenant_events'), ('wave_events'), ('control_events')) AS t (name),
     generate_series(
         date_trunc('month', (SELECT least(now(),
                                           (SELECT min(created_at) FROM control_plane.tenant_events_unpartitioned),
                                           (SELECT min(created_at) FROM control_plane.wave_events_unpartitioned),
                                           (SELECT min(created_at) FROM control_plane.control_events_unpartitioned)))
                      AT TIME ZONE 'UTC'),
         date_trunc('month', now() AT TIME ZONE 'UTC') + interval '3 months',
         interval '1 month') AS m;

INSERT INTO control_plane.tenant_events (id, tenant_id, event_type, actor, payload, created_at, xid)
SELECT id, tenant_id, event_type, actor, payload, created_at, xid FROM control_plane.tenant_events_unpartitioned;
INSERT INTO control_plane.wave_events (id, wave_id, event_type, actor, payload, created_at, xid)
SELECT id, wave_id, event_type, actor, payload, created_at, xid FROM control_plane.wave_events_unpartitioned;
INSERT INTO control_plane.control_events (id, event_type, actor, payload, created_at, xid)
SELECT id, event_type, actor, payload, created_at, xid FROM control_plane.control_events_unpartitioned;

-- The old defaults use the identity sequence of the old tenant_events: drop them first.
DROP TABLE control_plane.control_events_unpartitioned;
DROP TABLE control_plane.wave_events_unpartitioned;
DROP TABLE control_plane.tenant_events_unpartitioned;

ALTER TABLE control_plane.tenant_events ADD PRIMARY KEY (id, created_at);
ALTER TABLE control_plane.wave_events ADD PRIMARY KEY (id, created_at);
ALTER TABLE control_plane.control_events ADD PRIMARY KEY (id, created_at);

-- The same indexes as before (V1, V6, V10, V18), on every partition.
CREATE INDEX tenant_events_tenant_created_idx ON control_plane.tenant_events (tenant_id, created_at DESC, id DESC);
CREATE INDEX tenant_events_created_idx ON control_plane.tenant_events (created_at, id);
CREATE INDEX tenant_events_type_idx ON control_plane.tenant_events (event_type, created_at, id);
CREATE INDEX tenant_events_actor_idx ON control_plane.tenant_events (actor, created_at, id);
CREATE INDEX tenant_events_wave_idx ON control_plane.tenant_events ((payload->>'wave_id'), created_at, id)
    WHERE payload ? 'wave_id';
CREATE INDEX tenant_events_xid_idx ON control_plane.tenant_events (xid, id);
CREATE INDEX wave_events_wave_idx ON control_plane.wave_events (wave_id, id);
CREATE INDEX wave_events_created_idx ON control_plane.wave_events (created_at, id);
CREATE INDEX wave_events_type_idx ON control_plane.wave_events (event_type, created_at, id);
CREATE INDEX wave_events_actor_idx ON control_plane.wave_events (actor, created_at, id);
CREATE INDEX wave_events_wave_created_idx ON control_plane.wave_events (wave_id, created_at, id);
CREATE INDEX wave_events_xid_idx ON control_plane.wave_events (xid, id);
CREATE INDEX control_events_created_idx ON control_plane.control_events (created_at, id);
CREATE INDEX control_events_type_idx ON control_plane.control_events (event_type, created_at, id);
CREATE INDEX control_events_actor_idx ON control_plane.control_events (actor, created_at, id);
CREATE INDEX control_events_xid_idx ON control_plane.control_events (xid, id);

CREATE TRIGGER tenant_events_outbox AFTER INSERT ON control_plane.tenant_events
    FOR EACH ROW EXECUTE FUNCTION control_plane.events_after_insert('tenant');
CREATE TRIGGER wave_events_outbox AFTER INSERT ON control_plane.wave_events
    FOR EACH ROW EXECUTE FUNCTION control_plane.events_after_insert('wave');
CREATE TRIGGER control_events_outbox AFTER INSERT ON control_plane.control_events
    FOR EACH ROW EXECUTE FUNCTION control_plane.events_after_insert('');

-- The pruner's other tables: what it deletes, found by an index range scan per batch.
CREATE INDEX webhook_deliveries_finished_idx ON control_plane.webhook_deliveries (state, finished_at)
    WHERE state IN ('delivered', 'dead');
CREATE INDEX wave_check_evaluations_evaluated_idx ON control_plane.wave_check_evaluations (evaluated_at);
CREATE INDEX schedule_fires_handled_idx ON control_plane.schedule_fires (handled_at);
