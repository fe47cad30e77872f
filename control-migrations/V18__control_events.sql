-- Changes that belong to neither a tenant nor a wave: schedules, webhooks, access tokens,
-- migration sets (src/events/control.rs writes them, in the transaction of the change).
--
-- Same shape as wave_events: ids from the one event sequence, the writer's xid for the
-- stream's commit-safe order, the feed's indexes, and the outbox trigger. The type is
-- stored dotted (`schedule.updated`): the table holds several families, and the list of
-- types lives in the code, not in a CHECK here.

CREATE TABLE control_plane.control_events (
    id         bigint PRIMARY KEY DEFAULT nextval('control_plane.tenant_events_id_seq'),
    event_type text NOT NULL
        CONSTRAINT control_events_type_dotted CHECK (event_type ~ '^[a-z_]+\.[a-z_]+$'),
    actor      text NOT NULL,
    payload    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    xid        xid8 NOT NULL DEFAULT pg_current_xact_id()
);

CREATE INDEX control_events_created_idx ON control_plane.control_events (created_at, id);
CREATE INDEX control_events_type_idx ON control_plane.control_events (event_type, created_at, id);
CREATE INDEX control_events_actor_idx ON control_plane.control_events (actor, created_at, id);
CREATE INDEX control_events_xid_idx ON control_plane.control_events (xid, id);

-- A tenant's limits changed: its own type, so a subscription can follow it alone.
INSERT INTO control_plane.event_types (name, description) VALUES
    ('limits_updated', 'tenant limits changed; payload {changed: {limits: {from, to}}}');

-- An empty prefix argument: the row's type is dotted already.
CREATE OR REPLACE FUNCTION control_plane.events_after_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    dotted text := CASE WHEN TG_ARGV[0] = '' THEN NEW.event_type
                        ELSE TG_ARGV[0] || '.' || NEW.event_type END;
BEGIN
    INSERT INTO control_plane.webhook_deliveries (webhook_id, event_id, event_type)
    SELECT w.id, NEW.id, dotted FROM control_plane.webhooks w
    WHERE control_plane.event_type_matches(w.events, dotted);
    -- One payload for all: PostgreSQL folds identical notifications of a transaction.
    PERFORM pg_notify('drover_events', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER control_events_outbox AFTER INSERT ON control_plane.control_events
    FOR EACH ROW EXECUTE FUNCTION control_plane.events_after_insert('');
