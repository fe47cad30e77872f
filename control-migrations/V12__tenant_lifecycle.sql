-- The tenant lifecycle (SPEC §20): which provisioning server a tenant was placed on, when
-- its provisioning finished, the last provisioning failure (cleared on success), and the
-- e-mail lookup.

-- The `[[provision_servers]]` name the tenant's role and database were created on; NULL
-- for tenants registered without provisioning (and for tenants provisioned before this
-- migration: deprovisioning finds their server by host and port).
ALTER TABLE control_plane.tenants
    ADD COLUMN server text
        CONSTRAINT tenants_server_format CHECK (server ~ '^[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?$'),
    ADD COLUMN provisioned_at timestamptz,
    -- {step, message, retryable, at}: the last failed provisioning attempt.
    ADD COLUMN provisioning_error jsonb
        CONSTRAINT tenants_provisioning_error_object CHECK (
            provisioning_error IS NULL OR jsonb_typeof(provisioning_error) = 'object');

-- Tenants provisioned before this migration finished at their `provisioned` event.
UPDATE control_plane.tenants t SET provisioned_at = e.created_at
FROM (SELECT tenant_id, max(created_at) AS created_at FROM control_plane.tenant_events
      WHERE event_type = 'provisioned' GROUP BY tenant_id) e
WHERE e.tenant_id = t.id;

-- Placement counts live tenants per server under a lock, on every provisioned create.
CREATE INDEX tenants_server_idx ON control_plane.tenants (server) WHERE deleted_at IS NULL;

-- GET /v1/tenants?email= : case-insensitive exact match.
CREATE INDEX tenants_contact_email_idx ON control_plane.tenants (lower(contact_email));

-- Notes on limits are short, as the API says (1 KB).
ALTER TABLE control_plane.tenant_limits
    ADD CONSTRAINT tenant_limits_notes_length CHECK (octet_length(notes) <= 1024);
