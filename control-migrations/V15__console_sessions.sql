-- Web console sessions (SPEC §18). Server-side, in the control DB, so a session made on one
-- replica works on every other. The session id is a random 256-bit value held only in the
-- browser's HttpOnly cookie; the row keeps its SHA-256, so reading this table does not let
-- anyone take a session over.
--
-- token_check re-validates the login token on every request without storing it:
--   named tokens: the SHA-256 of the token, the value access_tokens.token_hash already holds
--                 (revoking or expiring the token ends its sessions);
--   root:         HMAC-SHA256(key = the admin token, message = the session id), which only
--                 the cookie's holder and a replica knowing the admin token can recompute
--                 (rotating the admin token ends root's sessions).
CREATE TABLE control_plane.console_sessions (
    id_hash     bytea PRIMARY KEY
        CONSTRAINT console_sessions_id_length CHECK (octet_length(id_hash) = 32),
    -- `root` or `token:<name>`: the actor of what the session does.
    identity    text NOT NULL,
    token_check bytea NOT NULL
        CONSTRAINT console_sessions_check_length CHECK (octet_length(token_check) = 32),
    -- The role at login, for display; every request uses the token's role as looked up.
    role        text NOT NULL
        CONSTRAINT console_sessions_role_valid CHECK (role IN ('viewer', 'operator', 'admin')),
    csrf        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);

-- Expired rows are swept at each login.
CREATE INDEX console_sessions_expires_idx ON control_plane.console_sessions (expires_at);
