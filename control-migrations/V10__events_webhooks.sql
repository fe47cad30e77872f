-- The fleet's event feed, its live stream and signed webhooks (SPEC §16; src/events).
--
-- Events stay where their owners write them (tenant_events, wave_events, one id sequence).
-- This migration adds what the feed needs to read them fast and in commit-safe order, and
-- the webhook outbox: a trigger on both tables writes one delivery row per matching
-- subscription in the very transaction that writes the event, and wakes every replica's
-- streams and delivery workers with NOTIFY (delivered at commit, never before).

INSERT INTO control_plane.event_types (name, description) VALUES
    ('provisioning_failed', 'a provisioning job failed; payload {operation, step, error, retryable}');

-- The writing transaction's id. The stream emits an event only once every transaction
-- older than the reader's snapshot xmin has ended, ordered by (xid, id): see src/events/stream.rs.
ALTER TABLE control_plane.tenant_events ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id();
ALTER TABLE control_plane.wave_events ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id();

-- The feed pages newest first by (created_at, id); one index per filter keeps every
-- filter an index range scan that stops after one page.
CREATE INDEX tenant_events_created_idx ON control_plane.tenant_events (created_at, id);
CREATE INDEX tenant_events_type_idx ON control_plane.tenant_events (event_type, created_at, id);
CREATE INDEX tenant_events_actor_idx ON control_plane.tenant_events (actor, created_at, id);
CREATE INDEX tenant_events_wave_idx ON control_plane.tenant_events ((payload->>'wave_id'), created_at, id)
    WHERE payload ? 'wave_id';
CREATE INDEX tenant_events_xid_idx ON control_plane.tenant_events (xid, id);
CREATE INDEX wave_events_created_idx ON control_plane.wave_events (created_at, id);
CREATE INDEX wave_events_type_idx ON control_plane.wave_events (event_type, created_at, id);
CREATE INDEX wave_events_actor_idx ON control_plane.wave_events (actor, created_at, id);
CREATE INDEX wave_events_wave_created_idx ON control_plane.wave_events (wave_id, created_at, id);
CREATE INDEX wave_events_xid_idx ON control_plane.wave_events (xid, id);

CREATE TABLE control_plane.webhooks (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL UNIQUE
        CONSTRAINT webhooks_name_format CHECK (name ~ '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$'),
    url        text NOT NULL
        CONSTRAINT webhooks_url_http CHECK (url ~ '^https?://[^[:space:]]+$' AND octet_length(url) <= 2048),
    -- Dotted types (`tenant.migrated`) or prefixes (`wave.*`, `*`), validated in Rust.
    events     text[] NOT NULL CONSTRAINT webhooks_events_nonempty CHECK (cardinality(events) BETWEEN 1 AND 64),
    -- The HMAC key is only ever a reference, resolved through the secret store when sending.
    secret_ref text NOT NULL
        CONSTRAINT webhooks_secret_ref_format CHECK (
            secret_ref ~ '^(env|file|vault):[^[:space:]]+$'
            AND position('://' IN secret_ref) = 0
            AND position('@' IN secret_ref) = 0
            AND position('..' IN secret_ref) = 0),
    format     text NOT NULL DEFAULT 'json' CONSTRAINT webhooks_format_valid CHECK (format IN ('json', 'slack')),
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The outbox. A delivery is claimed by pushing next_attempt_at past the send timeout (the
-- claim is its lease: a replica killed mid-send leaves it due again); the id never
-- changes, so every retry carries the same X-Drover-Delivery.
CREATE TABLE control_plane.webhook_deliveries (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    webhook_id      uuid NOT NULL REFERENCES control_plane.webhooks (id) ON DELETE CASCADE,
    event_id        bigint NOT NULL,
    event_type      text NOT NULL,
    state           text NOT NULL DEFAULT 'pending'
        CONSTRAINT webhook_deliveries_state_valid CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    claimed_by      text,
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    UNIQUE (webhook_id, event_id)
);

-- Due deliveries of one subscription, oldest event first (its per-subscription order).
CREATE INDEX webhook_deliveries_due_idx ON control_plane.webhook_deliveries (webhook_id, next_attempt_at, event_id)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_pending_age_idx ON control_plane.webhook_deliveries (created_at)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_state_idx ON control_plane.webhook_deliveries (webhook_id, state);

-- Whether a subscription pattern matches a dotted event type.
CREATE FUNCTION control_plane.event_type_matches(patterns text[], event_type text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT EXISTS (
        SELECT 1 FROM unnest(patterns) AS p
        WHERE p = event_type OR p = '*'
           OR (right(p, 2) = '.*' AND starts_with(event_type, left(p, -1))))
$$;

-- One delivery per matching subscription, and a wake-up for streams and workers.
CREATE FUNCTION control_plane.events_after_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    dotted text := TG_ARGV[0] || '.' || NEW.event_type;
BEGIN
    INSERT INTO control_plane.webhook_deliveries (webhook_id, event_id, event_type)
    SELECT w.id, NEW.id, dotted FROM control_plane.webhooks w
    WHERE control_plane.event_type_matches(w.events, dotted);
    -- One payload for all: PostgreSQL folds identical notifications of a transaction.
    PERFORM pg_notify('drover_events', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER tenant_events_outbox AFTER INSERT ON control_plane.tenant_events
    FOR EACH ROW EXECUTE FUNCTION control_plane.events_after_insert('tenant');
CREATE TRIGGER wave_events_outbox AFTER INSERT ON control_plane.wave_events
    FOR EACH ROW EXECUTE FUNCTION control_plane.events_after_insert('wave');
