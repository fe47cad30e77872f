-- External provisioners (`[[provision_servers]]` with kind = "external"): drover does not
-- create the role and database itself; it sends a signed request to the server's URL and
-- the job there reports back on POST /v1/tenants/{slug}/provisioning (src/provision/external).
--
-- One row per request. The row is the request's outbox entry (sent by any replica, retried
-- with the same id until the receiver answers 2xx or the request expires) and the record of
-- its single-use callback token, of which only the SHA-256 is kept. Everything a callback
-- needs is here and on the tenant row, so a replica that never sent the request (or one
-- restarted since) completes it.
CREATE TABLE control_plane.provision_requests (
    -- Also the delivery id: X-Drover-Delivery on every attempt.
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES control_plane.tenants (id),
    operation    text NOT NULL
        CONSTRAINT provision_requests_operation_valid CHECK (operation IN ('provision', 'deprovision')),
    server       text NOT NULL,
    -- The tenant event (`provisioning_requested`, `deprovisioning_requested`) the body carries.
    event_id     bigint NOT NULL,
    -- The provisioning attempt this request is (failed attempts before it + 1).
    attempt      integer NOT NULL,
    -- Sending: pending until the receiver answered 2xx; `dead` once the request expired unsent.
    send_state   text NOT NULL DEFAULT 'pending'
        CONSTRAINT provision_requests_send_state_valid CHECK (send_state IN ('pending', 'delivered', 'dead')),
    sends        integer NOT NULL DEFAULT 0,
    next_send_at timestamptz NOT NULL DEFAULT now(),
    claimed_by   text,
    last_status  integer,
    last_error   text,
    -- SHA-256 of the callback token (set by the first send; the token itself is never stored).
    token_sha256 bytea,
    expires_at   timestamptz NOT NULL,
    -- Set by the one callback the token allows.
    used_at      timestamptz,
    -- How the request ended; NULL while it is open.
    outcome      text
        CONSTRAINT provision_requests_outcome_valid CHECK (outcome IN ('succeeded', 'failed', 'expired', 'superseded')),
    finished_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX provision_requests_token_idx ON control_plane.provision_requests (token_sha256)
    WHERE token_sha256 IS NOT NULL;
CREATE INDEX provision_requests_due_idx ON control_plane.provision_requests (next_send_at)
    WHERE send_state = 'pending' AND outcome IS NULL;
CREATE INDEX provision_requests_open_idx ON control_plane.provision_requests (expires_at)
    WHERE outcome IS NULL;
CREATE INDEX provision_requests_tenant_idx ON control_plane.provision_requests (tenant_id);

INSERT INTO control_plane.event_types (name, description) VALUES
    ('provisioning_requested', 'an external provisioner was asked to create the tenant''s database; payload {server, request_id, attempt, expires_at, db_name, db_user, labels}'),
    ('deprovisioning_requested', 'an external provisioner was asked to drop the tenant''s database; payload {server, request_id, expires_at, db_name, db_user}');
