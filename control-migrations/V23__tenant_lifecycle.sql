-- The rest of the tenant lifecycle: portal URLs, trials, renames with an alias.
-- Reserved slugs are a setting (`reserved_slugs`) checked by the registry; drover's own
-- names stay in the `tenants_slug_not_reserved` constraint.

ALTER TABLE control_plane.tenants
    -- Set explicitly; NULL: the tenant's portal URL comes from `portal_url_template`.
    ADD COLUMN portal_url text
        CONSTRAINT tenants_portal_url_format CHECK (
            portal_url ~ '^https?://[^[:space:]]+$' AND octet_length(portal_url) <= 2048),
    -- A trial tenant is suspended (reason `trial_expired`) once this has passed.
    ADD COLUMN trial_ends_at timestamptz,
    -- The `trial_ends_at` a `trial_ending` warning was sent for: one warning per trial
    -- end, and a new one when the end moves.
    ADD COLUMN trial_warned_for timestamptz;

-- The leader's trial sweep reads only tenants on a trial.
CREATE INDEX tenants_trial_ends_idx ON control_plane.tenants (trial_ends_at)
    WHERE trial_ends_at IS NOT NULL AND deleted_at IS NULL;

-- The old slug of a renamed tenant: it resolves to the tenant (answering with the new
-- slug) and no new tenant may take it until `expires_at`.
CREATE TABLE control_plane.tenant_aliases (
    slug       text PRIMARY KEY
        CONSTRAINT tenant_aliases_slug_format CHECK (slug ~ '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$'),
    tenant_id  uuid NOT NULL REFERENCES control_plane.tenants (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

CREATE INDEX tenant_aliases_tenant_idx ON control_plane.tenant_aliases (tenant_id);

INSERT INTO control_plane.event_types (name, description) VALUES
    ('trial_ending', 'the trial ends within trial_warning_before; payload {trial_ends_at}'),
    ('trial_expired', 'the trial ended and the tenant was suspended; payload {trial_ends_at}'),
    ('renamed', 'the slug changed; payload {from, to, alias_expires_at}');

-- A rename changes the slug a replica cached the tenant under: tell them about the old
-- slug too, and about every live alias (cached under the old slug) on any change.
CREATE OR REPLACE FUNCTION control_plane.notify_tenant_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('drover_tenant_changed', lower(OLD.slug));
        RETURN NULL;
    END IF;
    PERFORM pg_notify('drover_tenant_changed', lower(NEW.slug));
    IF TG_OP = 'UPDATE' AND lower(OLD.slug) <> lower(NEW.slug) THEN
        PERFORM pg_notify('drover_tenant_changed', lower(OLD.slug));
    END IF;
    PERFORM pg_notify('drover_tenant_changed', a.slug)
    FROM control_plane.tenant_aliases a WHERE a.tenant_id = NEW.id;
    RETURN NULL;
END;
$$;
