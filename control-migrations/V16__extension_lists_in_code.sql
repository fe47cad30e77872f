-- The secret schemes and the webhook formats are lists in the code (`secrets::SCHEMES`,
-- `events::webhooks::FORMATS`), which validates every write. The copies of those lists in
-- the constraints below made every new scheme or format a control migration as well, and
-- the two could drift. The shape rules stay as the last line of defence: a reference is
-- `scheme:locator`, and never carries a URL, credentials or a path escape.
--
-- A stored format this drover does not know (written by a newer replica, or by hand)
-- fails its deliveries with an error naming it; it is never sent in another format.
ALTER TABLE control_plane.webhooks DROP CONSTRAINT webhooks_format_valid;

ALTER TABLE control_plane.tenants
    DROP CONSTRAINT tenants_db_secret_ref_format,
    ADD CONSTRAINT tenants_db_secret_ref_format CHECK (
        db_secret_ref ~ '^[a-z][a-z0-9-]*:[^[:space:]]+$'
        AND position('://' IN db_secret_ref) = 0
        AND position('@' IN db_secret_ref) = 0
        AND position('..' IN db_secret_ref) = 0);

ALTER TABLE control_plane.webhooks
    DROP CONSTRAINT webhooks_secret_ref_format,
    ADD CONSTRAINT webhooks_secret_ref_format CHECK (
        secret_ref ~ '^[a-z][a-z0-9-]*:[^[:space:]]+$'
        AND position('://' IN secret_ref) = 0
        AND position('@' IN secret_ref) = 0
        AND position('..' IN secret_ref) = 0);
