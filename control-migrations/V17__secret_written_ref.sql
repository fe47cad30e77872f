-- The secret reference drover itself wrote a password behind when it provisioned the tenant.
-- Deprovisioning removes a secret only when the tenant's reference still equals this one (and
-- is still inside the tenant scope): a reference PATCHed afterwards may point at anything,
-- drover's own files or a whole Vault secret among them, and is kept.
ALTER TABLE control_plane.tenants ADD COLUMN secret_written_ref text;

COMMENT ON COLUMN control_plane.tenants.secret_written_ref IS
    'the secret reference provisioning wrote a generated password behind; NULL: drover wrote none';

-- Tenants provisioned before the column existed: provisioning wrote behind the reference they
-- were created with, which is the one they have unless a PATCH changed it since.
UPDATE control_plane.tenants t
   SET secret_written_ref = t.db_secret_ref
 WHERE t.deleted_at IS NULL
   AND EXISTS (SELECT 1 FROM control_plane.tenant_events e
                WHERE e.tenant_id = t.id AND e.event_type = 'created'
                  AND e.payload->>'provision' = 'true')
   AND NOT EXISTS (SELECT 1 FROM control_plane.tenant_events e
                    WHERE e.tenant_id = t.id AND e.event_type = 'updated'
                      AND e.payload->'changed' ? 'db_secret_ref');
