//! Claim step 2: which claimable targets to take, decided by the database in the claim's
//! one statement (the `WITH` part of [`super::take`]'s `UPDATE`). Per locked wave:
//!
//! ```text
//!  tally   failed, started (phases so far), running (unexpired leases, this replica's
//!          buffered tenants and pending outcomes included)
//!  room    over the failure budget → 0
//!          budget with failures to spare (max_failures, max_failure_percent):
//!              min(max_concurrency − running, allowed − failed + 1 − running)
//!          otherwise max_concurrency − running
//!          "tight": a canary phase, or fewer failures to spare than max_concurrency
//!  cand    per wave with room, its claimable targets of the phases so far (pending and
//!          due, or a lease that expired), four times max_concurrency of them (enough to
//!          fill the room past hosts at their cap), FOR UPDATE SKIP LOCKED, MATERIALIZED;
//!          read hosts interleaved (`host_seq`: each host's first tenant, then each
//!          host's second, ...), or a window of one host's tenants would leave the
//!          others idle whenever the slugs group tenants by host
//!  fit     per (wave, host) rank ≤ min(max_per_host, adaptive limit) − running on it
//!  pick    per wave rank ≤ room (≤ the free slots when tight), round robin over waves,
//!          LIMIT what the replica asked for
//! ```
//!
//! The budget is read from the targets' states, which completion transactions write:
//! a wave over its budget gets nothing more even before its state machine halts it. With
//! failures to spare, running + failed never exceeds what the budget allows plus one, so
//! a burst of failures halts the wave at most one failure past `max_failures`; with none
//! to spare (no budget set) the first failure halts, and what runs is bounded by
//! `max_concurrency` as it always was. A tight wave's tenants are claimed only for slots
//! free now: none waits in the replica's buffer while a failure may be on its way.
//!
//! `$1` the locked waves, `$2` how many tenants the replica wants, `$3` its free slots.

/// The `WITH` list of the claim statement, ending in `pick (wave_id, tenant_id, tight, n)`.
pub(super) const PICK: &str = "WITH wv AS (\
        SELECT id, state, current_phase, max_concurrency, max_per_host, max_failures, \
               max_failure_percent, dry_run FROM control_plane.waves WHERE id = ANY($1)), \
     tally AS (\
        SELECT t.wave_id, count(*) FILTER (WHERE t.state = 'failed') AS failed, \
               count(*) FILTER (WHERE t.phase <= wv.current_phase) AS started, \
               count(*) FILTER (WHERE t.state = 'running' AND t.lease_expires_at > now()) AS running \
        FROM control_plane.wave_targets t JOIN wv ON wv.id = t.wave_id GROUP BY t.wave_id), \
     allowed AS (\
        SELECT wv.*, tl.failed, tl.running, \
               CASE WHEN wv.dry_run OR (wv.max_failures IS NULL AND wv.max_failure_percent IS NULL) THEN NULL \
                    ELSE least(coalesce(wv.max_failures::float8, 'infinity'), \
                               coalesce(floor(wv.max_failure_percent * tl.started / 100.0), 'infinity')) END AS spare_total, \
               (NOT wv.dry_run AND wv.max_failures IS NULL AND wv.max_failure_percent IS NULL AND tl.failed > 0) AS spent_none \
        FROM wv JOIN tally tl ON tl.wave_id = wv.id), \
     room AS (\
        SELECT id AS wave_id, max_per_host, \
               CASE WHEN spent_none OR failed > spare_total THEN 0 \
                    WHEN spare_total IS NOT NULL \
                        THEN least(max_concurrency - running, spare_total - failed + 1 - running) \
                    ELSE max_concurrency - running END AS free, \
               (state = 'canary' OR coalesce(spare_total - failed < max_concurrency, false)) AS tight \
        FROM allowed), \
     cand AS MATERIALIZED (\
        SELECT c.* FROM room r JOIN wv ON wv.id = r.wave_id CROSS JOIN LATERAL (\
            SELECT t.wave_id, t.tenant_id, t.db_host, t.phase, t.host_seq, t.slug \
            FROM control_plane.wave_targets t \
            WHERE t.wave_id = r.wave_id AND t.phase <= wv.current_phase \
              AND ((t.state = 'pending' AND t.next_attempt_at <= now()) \
                   OR (t.state = 'running' AND t.lease_expires_at <= now())) \
            ORDER BY t.phase, t.host_seq, t.slug LIMIT 4 * wv.max_concurrency FOR UPDATE SKIP LOCKED) c \
        WHERE r.free > 0), \
     on_host AS (\
        SELECT wave_id, db_host, count(*) AS n FROM control_plane.wave_targets \
        WHERE wave_id = ANY($1) AND state = 'running' AND lease_expires_at > now() GROUP BY 1, 2), \
     fit AS (\
        SELECT c.*, row_number() OVER (PARTITION BY c.wave_id ORDER BY c.phase, c.host_seq, c.slug) AS n \
        FROM (SELECT c.*, row_number() OVER (PARTITION BY c.wave_id, c.db_host ORDER BY c.phase, c.host_seq, c.slug) AS host_n \
              FROM cand c) c \
        JOIN room m ON m.wave_id = c.wave_id \
        LEFT JOIN on_host h ON h.wave_id = c.wave_id AND h.db_host = c.db_host \
        LEFT JOIN control_plane.wave_host_limits l ON l.wave_id = c.wave_id AND l.db_host = c.db_host \
        WHERE c.host_n <= least(m.max_per_host, coalesce(l.current_limit, m.max_per_host)) - coalesce(h.n, 0)), \
     pick AS (\
        SELECT f.wave_id, f.tenant_id, m.tight, f.n FROM fit f JOIN room m ON m.wave_id = f.wave_id \
        WHERE f.n <= m.free AND (NOT m.tight OR f.n <= $3) \
        ORDER BY m.tight DESC, f.n, f.phase, f.slug LIMIT $2) ";
