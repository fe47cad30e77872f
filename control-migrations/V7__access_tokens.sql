-- Named API tokens (SPEC §17). Only the SHA-256 of a token is stored: the token itself is
-- shown once, when it is created. Revoking deletes the row (the name may be reused); the
-- event of who created or revoked it is in the log.
CREATE TABLE control_plane.access_tokens (
    name         text PRIMARY KEY
        CONSTRAINT access_tokens_name_format CHECK (name ~ '^[a-z0-9](?:[a-z0-9._-]{0,61}[a-z0-9])?$'),
    role         text NOT NULL
        CONSTRAINT access_tokens_role_valid CHECK (role IN ('viewer', 'resolver', 'operator', 'admin')),
    token_hash   bytea NOT NULL
        CONSTRAINT access_tokens_hash_length CHECK (octet_length(token_hash) = 32),
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    last_used_at timestamptz
);

-- Every authenticated request looks its token up by hash.
CREATE UNIQUE INDEX access_tokens_hash_idx ON control_plane.access_tokens (token_hash);
