//! The wave counts behind the `/metrics` gauges: waves by state and targets of unfinished
//! waves by phase kind and state. Read on a scrape (at most every few seconds), so each
//! is one aggregate; label values are as exported.

use tokio_postgres::GenericClient;

/// Waves (every wave ever created) in one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateCount {
    /// The state as stored (`WaveState::as_str`).
    pub state: String,
    pub waves: i64,
}

/// Targets of unfinished waves in one phase kind and target state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetCount {
    /// `canary` (phase 0) or `batch` (any later phase).
    pub phase: String,
    /// The target's state as stored (`pending`, `running`, …).
    pub state: String,
    pub targets: i64,
}

/// Waves by state.
pub async fn waves_by_state(
    client: &impl GenericClient,
) -> Result<Vec<StateCount>, tokio_postgres::Error> {
    const SQL: &str = "SELECT state, count(*) AS n FROM control_plane.waves GROUP BY 1";
    client
        .query(SQL, &[])
        .await?
        .iter()
        .map(|r| {
            Ok(StateCount {
                state: r.try_get("state")?,
                waves: r.try_get("n")?,
            })
        })
        .collect()
}

/// Targets of waves not completed or aborted, by phase kind and target state.
pub async fn open_targets(
    client: &impl GenericClient,
) -> Result<Vec<TargetCount>, tokio_postgres::Error> {
    const SQL: &str =
        "SELECT CASE WHEN t.phase = 0 THEN 'canary' ELSE 'batch' END AS phase, t.state, count(*) AS n \
         FROM control_plane.wave_targets t JOIN control_plane.waves w ON w.id = t.wave_id \
         WHERE w.state NOT IN ('completed', 'aborted') GROUP BY 1, 2";
    client
        .query(SQL, &[])
        .await?
        .iter()
        .map(|r| {
            Ok(TargetCount {
                phase: r.try_get("phase")?,
                state: r.try_get("state")?,
                targets: r.try_get("n")?,
            })
        })
        .collect()
}
