-- Soft archiving of projects; NULL means live.
ALTER TABLE projects ADD COLUMN archived_at timestamptz;
CREATE INDEX projects_live_idx ON projects (owner_id) WHERE archived_at IS NULL;
