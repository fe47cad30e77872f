-- Every replica checks bearer tokens against an in-memory copy of this table, so a request
-- with a made-up token costs no query. Any committed change that matters to a check
-- (a token created, revoked, renamed, given another role or expiry; by drover or by hand
-- in psql) tells every replica at commit time, and they reload the copy. Recording
-- `last_used_at` changes nothing a check reads, so it notifies nobody. Each replica also
-- reloads every second, for when its LISTEN connection is down.
CREATE FUNCTION control_plane.notify_access_tokens_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('drover_tokens_changed', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER access_tokens_notify_changed
    AFTER INSERT OR DELETE OR TRUNCATE OR UPDATE OF name, role, token_hash, expires_at
    ON control_plane.access_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION control_plane.notify_access_tokens_changed();
