-- A target's rank among the targets of its wave, phase and database host (1 for the first
-- tenant of each host by slug). The claim reads candidates in (phase, host_seq, slug)
-- order: the first tenant of every host, then the second of every host, and so on, so a
-- window of candidates spans every host even when the slugs group tenants by host (a
-- fleet placed by region: all `eu-*` tenants on one server). Rows written before this
-- column keep NULL and are read in slug order, as before.
ALTER TABLE control_plane.wave_targets ADD COLUMN host_seq int;
