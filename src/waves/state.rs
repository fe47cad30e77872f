//! The wave state machine as a type: [`WaveState`], the [`Snapshot`] the engine decides
//! from, and the pure functions [`step`] (what the engine does next) and [`operate`] (what
//! an operator's action does). Nothing here touches the database; [`super::timeline`]
//! writes a chosen [`Transition`] and its event in one transaction.
//!
//! Each arrow is one transition and one event of the wave timeline (docs/design.md#wave-states
//! explains the diagram, docs/design.md#wave-timeline the events):
//!
//! ```text
//!  pending ─canary_started─► canary ─canary_passed─► soaking ─soak_started─► soaking (timed)
//!  soaking (timed) ─soak_passed─► rolling (batch 0) ─batch_started{1}─► rolling (batch 1) …
//!  rolling (last batch done) ─completed─► completed
//!  pending ─batch_started{n}─► rolling                  (no canaries; dry runs)
//!  canary ─halted─► halted                              (a canary failed or was skipped)
//!  soaking ─halted─► halted                             (an analysis check failed)
//!  soaking ─paused─► paused                             (analysis inconclusive; actor drover)
//!  rolling ─halted─► halted                             (failure budget spent; in a dry
//!                                                        run, a tenant that needs attention)
//!  soaking | paused(from soaking) ─promoted─► rolling   (operator; the soak is cut short)
//!  pending | canary | soaking | rolling ─paused─► paused          (operator)
//!  paused ─resumed─► the state it was paused in         (a soak starts over)
//!  halted ─resumed─► canary (phase 0) | rolling         (failed targets run again)
//!  any state but completed | aborted ─aborted─► aborted (operator)
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Where a wave is. Stored as text in `control_plane.waves.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WaveState {
    Pending,
    Canary,
    Soaking,
    Rolling,
    Completed,
    Halted,
    Paused,
    Aborted,
}

impl WaveState {
    /// Every state, in the order of the diagram (metrics label every one).
    pub const ALL: [WaveState; 8] = [
        WaveState::Pending,
        WaveState::Canary,
        WaveState::Soaking,
        WaveState::Rolling,
        WaveState::Completed,
        WaveState::Halted,
        WaveState::Paused,
        WaveState::Aborted,
    ];

    /// The states in which the engine moves a wave by itself.
    pub const ACTIVE: [WaveState; 4] = [
        WaveState::Pending,
        WaveState::Canary,
        WaveState::Soaking,
        WaveState::Rolling,
    ];

    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            WaveState::Pending => "pending",
            WaveState::Canary => "canary",
            WaveState::Soaking => "soaking",
            WaveState::Rolling => "rolling",
            WaveState::Completed => "completed",
            WaveState::Halted => "halted",
            WaveState::Paused => "paused",
            WaveState::Aborted => "aborted",
        }
    }

    /// The engine moves it by itself (claims, gates, batches).
    pub fn is_active(self) -> bool {
        Self::ACTIVE.contains(&self)
    }

    /// Nothing will ever happen to it again.
    pub fn is_finished(self) -> bool {
        matches!(self, WaveState::Completed | WaveState::Aborted)
    }

    /// Tenants are being migrated (claims are allowed).
    pub fn claims_work(self) -> bool {
        matches!(self, WaveState::Canary | WaveState::Rolling)
    }
}

impl fmt::Display for WaveState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored state name that this binary does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown wave state {0:?}")]
pub struct UnknownState(pub String);

impl FromStr for WaveState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WaveState::ALL
            .into_iter()
            .find(|w| w.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

/// Per-state target counts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Counts {
    pub pending: i64,
    pub running: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub skipped: i64,
}

impl Counts {
    /// Adds `n` targets in the stored target state `state`.
    pub fn add(&mut self, state: &str, n: i64) {
        match state {
            "pending" => self.pending += n,
            "running" => self.running += n,
            "succeeded" => self.succeeded += n,
            "failed" => self.failed += n,
            _ => self.skipped += n,
        }
    }

    /// All targets.
    pub fn total(&self) -> i64 {
        self.pending + self.running + self.succeeded + self.failed + self.skipped
    }

    /// Targets not finished yet.
    pub fn open(&self) -> i64 {
        self.pending + self.running
    }
}

/// The failure budget of the plan.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Budget {
    pub max_failures: Option<i32>,
    pub max_failure_percent: Option<f64>,
}

impl Budget {
    fn describe(&self) -> String {
        match (self.max_failures, self.max_failure_percent) {
            (None, None) => "0".to_string(),
            (n, p) => [n.map(|n| n.to_string()), p.map(|p| format!("{p}%"))]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" / "),
        }
    }
}

/// What the canary analysis says about a soaking wave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Keep soaking.
    Wait,
    /// The soak is over and every check passed: start the batches.
    Pass,
    /// A check failed more often than it may: halt, with the reason.
    Halt(String),
    /// A check was inconclusive more often than it may: pause for a person.
    Pause(String),
}

/// Everything the engine decides from, read under the wave's row lock.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub state: WaveState,
    /// 0 for the canaries, then the batch being rolled out.
    pub phase: i32,
    pub phase_count: i32,
    /// The state a paused wave returns to.
    pub paused_from: Option<WaveState>,
    /// The soak timer runs (`soak_until` is set).
    pub soak_started: bool,
    pub soak_seconds: i32,
    pub dry_run: bool,
    pub budget: Budget,
    /// Target counts per phase (phases without targets are absent).
    pub phases: BTreeMap<i32, Counts>,
    /// The analysis verdict; only read for a soaking wave whose timer runs.
    pub gate: Gate,
    /// `slug: error` of the first failed canary, when one failed.
    pub failed_canary: Option<String>,
    /// `slug: error` of the first target of a dry run that failed needing attention (a
    /// file ended the dry run's transaction: its work may be committed on the tenant).
    pub dry_run_attention: Option<String>,
}

impl Snapshot {
    fn all(&self) -> Counts {
        let mut all = Counts::default();
        for c in self.phases.values() {
            all.pending += c.pending;
            all.running += c.running;
            all.succeeded += c.succeeded;
            all.failed += c.failed;
            all.skipped += c.skipped;
        }
        all
    }

    /// Open targets of every phase up to `p`: after a halted wave is resumed, failed
    /// tenants of earlier batches are pending again and must finish before it moves on.
    fn open_through(&self, p: i32) -> i64 {
        self.phases.range(..=p).map(|(_, c)| c.open()).sum()
    }

    fn next_batch(&self, after: i32) -> Option<i32> {
        (after + 1..=self.phase_count).find(|p| self.phases.contains_key(p))
    }

    /// Tenants in the phases started so far: the budget's percentage is of these, not of
    /// the whole wave, so a failing first batch of a large wave stops it.
    fn started(&self) -> i64 {
        self.phases
            .range(..=self.phase)
            .map(|(_, c)| c.total())
            .sum()
    }

    fn over_budget(&self) -> bool {
        // A dry run never halts on failures: finding every failing tenant is its point.
        if self.dry_run {
            return false;
        }
        let (failed, started) = (self.all().failed, self.started());
        match (self.budget.max_failures, self.budget.max_failure_percent) {
            (None, None) => failed > 0,
            (n, p) => {
                n.is_some_and(|n| failed > n as i64)
                    || p.is_some_and(|p| started > 0 && failed as f64 * 100.0 / started as f64 > p)
            }
        }
    }

    /// The next batch, or completion when no batch is left.
    fn batch_or_complete(&self, after: i32) -> Option<Transition> {
        match self.next_batch(after) {
            Some(batch) => Some(Transition::StartBatch { batch }),
            None if self.all().open() == 0 => Some(Transition::Complete),
            None => None,
        }
    }
}

/// One arrow of the diagram: the new state, and the event that records it.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// pending → canary.
    StartCanary,
    /// → rolling, the batch given (pending without canaries, or the previous batch done).
    StartBatch { batch: i32 },
    /// canary → soaking; the soak timer starts with the next step.
    CanaryPassed,
    /// soaking → soaking with the timer running (after the canaries, or after a resume).
    StartSoak { seconds: i32 },
    /// soaking → rolling, before the first batch.
    SoakPassed,
    /// → completed.
    Complete,
    /// → halted.
    Halt { reason: String },
    /// → paused, remembering where to return; the reason when the engine paused it.
    Pause {
        from: WaveState,
        reason: Option<String>,
    },
    /// paused → the state it was paused in, or halted → canary / rolling.
    Resume { from: WaveState, to: WaveState },
    /// soaking (or paused while soaking) → rolling: the operator cut the soak short.
    Promote,
    /// → aborted; pending targets are skipped.
    Abort,
}

impl Transition {
    /// The state the wave is in afterwards.
    pub fn to(&self) -> WaveState {
        match self {
            Transition::StartCanary => WaveState::Canary,
            Transition::StartBatch { .. } | Transition::SoakPassed | Transition::Promote => {
                WaveState::Rolling
            }
            Transition::CanaryPassed | Transition::StartSoak { .. } => WaveState::Soaking,
            Transition::Complete => WaveState::Completed,
            Transition::Halt { .. } => WaveState::Halted,
            Transition::Pause { .. } => WaveState::Paused,
            Transition::Resume { to, .. } => *to,
            Transition::Abort => WaveState::Aborted,
        }
    }

    /// The timeline event's type (docs/design.md#wave-timeline).
    pub fn event_type(&self) -> &'static str {
        match self {
            Transition::StartCanary => "canary_started",
            Transition::StartBatch { .. } => "batch_started",
            Transition::CanaryPassed => "canary_passed",
            Transition::StartSoak { .. } => "soak_started",
            Transition::SoakPassed => "soak_passed",
            Transition::Complete => "completed",
            Transition::Halt { .. } => "halted",
            Transition::Pause { .. } => "paused",
            Transition::Resume { .. } => "resumed",
            Transition::Promote => "promoted",
            Transition::Abort => "aborted",
        }
    }

    /// The timeline event's payload.
    pub fn payload(&self) -> Value {
        match self {
            Transition::StartBatch { batch } => json!({ "batch": batch }),
            Transition::StartSoak { seconds } => json!({ "soak_seconds": seconds }),
            Transition::Halt { reason } => json!({ "reason": reason }),
            Transition::Pause {
                from,
                reason: Some(reason),
            } => json!({ "from": from, "reason": reason }),
            Transition::Pause { from, reason: None } => json!({ "from": from }),
            Transition::Resume { from, to } => json!({ "from": from, "to": to }),
            _ => json!({}),
        }
    }
}

/// What the engine does next with the wave, if anything. Pure: the same snapshot always
/// gives the same answer, and every answer is one arrow of the diagram.
pub fn step(s: &Snapshot) -> Option<Transition> {
    let canaries = s.phases.get(&0).cloned().unwrap_or_default();
    match s.state {
        WaveState::Pending if s.phases.contains_key(&0) => Some(Transition::StartCanary),
        WaveState::Pending => s.batch_or_complete(0),
        WaveState::Canary if canaries.failed > 0 => Some(Transition::Halt {
            reason: match &s.failed_canary {
                Some(which) => format!("canary {which}"),
                None => "a canary failed".into(),
            },
        }),
        // A skipped canary (deleted or provisioning meanwhile) is no evidence: halt.
        WaveState::Canary if canaries.skipped > 0 => Some(Transition::Halt {
            reason: "a canary tenant was skipped (its status changed); choose canaries again"
                .into(),
        }),
        WaveState::Canary if s.open_through(0) == 0 => Some(Transition::CanaryPassed),
        WaveState::Canary => None,
        WaveState::Soaking if !s.soak_started => Some(Transition::StartSoak {
            seconds: s.soak_seconds,
        }),
        WaveState::Soaking => match &s.gate {
            Gate::Wait => None,
            Gate::Pass => Some(Transition::SoakPassed),
            Gate::Halt(reason) => Some(Transition::Halt {
                reason: reason.clone(),
            }),
            Gate::Pause(reason) => Some(Transition::Pause {
                from: WaveState::Soaking,
                reason: Some(reason.clone()),
            }),
        },
        // A dry run never halts on failures, but a tenant it may have changed is a person's.
        WaveState::Rolling if s.dry_run && s.dry_run_attention.is_some() => {
            Some(Transition::Halt {
                reason: format!(
                    "dry run on {}",
                    s.dry_run_attention.as_deref().unwrap_or_default()
                ),
            })
        }
        WaveState::Rolling if s.over_budget() => Some(Transition::Halt {
            reason: format!(
                "failure budget spent: {} of {} tenants started so far failed (budget {})",
                s.all().failed,
                s.started(),
                s.budget.describe()
            ),
        }),
        WaveState::Rolling if s.open_through(s.phase) == 0 => s.batch_or_complete(s.phase),
        WaveState::Rolling
        | WaveState::Completed
        | WaveState::Halted
        | WaveState::Paused
        | WaveState::Aborted => None,
    }
}

/// An operator's action on a wave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pause,
    Resume,
    Abort,
    Promote,
}

impl Action {
    /// The verb in messages and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Abort => "abort",
            Action::Promote => "promote",
        }
    }
}

/// What an operator's action does in the wave's state; `None` when it does not apply.
pub fn operate(
    state: WaveState,
    paused_from: Option<WaveState>,
    phase: i32,
    action: Action,
) -> Option<Transition> {
    use WaveState::*;
    match (action, state) {
        (Action::Pause, s) if s.is_active() => Some(Transition::Pause {
            from: s,
            reason: None,
        }),
        (Action::Resume, Paused) => Some(Transition::Resume {
            from: Paused,
            to: paused_from.unwrap_or(Pending),
        }),
        // After a fix: the failed tenants run again; the succeeded ones are never touched.
        (Action::Resume, Halted) => Some(Transition::Resume {
            from: Halted,
            to: if phase == 0 { Canary } else { Rolling },
        }),
        (Action::Promote, Soaking) => Some(Transition::Promote),
        (Action::Promote, Paused) if paused_from == Some(Soaking) => Some(Transition::Promote),
        (Action::Abort, s) if !s.is_finished() => Some(Transition::Abort),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
