//! The tenant status and the state machine operators drive it through.
//!
//! ```text
//!                 activate                 suspend
//!  provisioning ───────────► active ◄──────────────► suspended
//!       │                      │        resume            │
//!       │ delete               │ delete                   │ delete
//!       └──────────────────────┴──────────► deleting ◄────┘
//!                                              │ (same tx, or after the DB is dropped)
//!                                              ▼
//!                                           deleted   (terminal; slug and db_name reusable)
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::fields::invalid;
use crate::registry::RegistryError;

/// Lifecycle state of a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    /// Registered; database not ready yet.
    Provisioning,
    /// Serving.
    Active,
    /// Refused by resolution (423) until resumed.
    Suspended,
    /// Being deleted.
    Deleting,
    /// Gone; kept for history.
    Deleted,
}

impl TenantStatus {
    /// The database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Provisioning => "provisioning",
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
            TenantStatus::Deleting => "deleting",
            TenantStatus::Deleted => "deleted",
        }
    }
}

impl fmt::Display for TenantStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TenantStatus {
    type Err = RegistryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "provisioning" => TenantStatus::Provisioning,
            "active" => TenantStatus::Active,
            "suspended" => TenantStatus::Suspended,
            "deleting" => TenantStatus::Deleting,
            "deleted" => TenantStatus::Deleted,
            _ => {
                return Err(invalid(
                    "status",
                    "must be one of provisioning, active, suspended, deleting, deleted",
                ))
            }
        })
    }
}

/// The statuses a new tenant may start in (`NewTenant.status`; default provisioning).
pub(in crate::registry) const NEW_TENANT_STATUSES: &[TenantStatus] =
    &[TenantStatus::Provisioning, TenantStatus::Active];
/// The statuses `PATCH` may set: only provisioning → active; the other changes have
/// endpoints of their own because they carry a reason or side effects.
pub(in crate::registry) const PATCH_STATUSES: &[TenantStatus] = &[TenantStatus::Active];

/// An operator action that changes status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// provisioning → active (`status_changed`).
    Activate,
    /// active → suspended (`suspended`).
    Suspend,
    /// suspended → active (`resumed`).
    Resume,
    /// provisioning | active | suspended → deleting (`deleting`).
    StartDelete,
    /// deleting → deleted (`deleted`).
    FinishDelete,
}

impl Transition {
    /// The verb shown in errors.
    pub fn verb(self) -> &'static str {
        match self {
            Transition::Activate => "activate",
            Transition::Suspend => "suspend",
            Transition::Resume => "resume",
            Transition::StartDelete | Transition::FinishDelete => "delete",
        }
    }

    /// The event written for this transition.
    pub fn event_type(self) -> &'static str {
        match self {
            Transition::Activate => "status_changed",
            Transition::Suspend => "suspended",
            Transition::Resume => "resumed",
            Transition::StartDelete => "deleting",
            Transition::FinishDelete => "deleted",
        }
    }

    /// The state reached from `from`, or `None` when the transition is not allowed.
    pub fn apply(self, from: TenantStatus) -> Option<TenantStatus> {
        use TenantStatus::*;
        match (self, from) {
            (Transition::Activate, Provisioning) => Some(Active),
            (Transition::Suspend, Active) => Some(Suspended),
            (Transition::Resume, Suspended) => Some(Active),
            (Transition::StartDelete, Provisioning | Active | Suspended) => Some(Deleting),
            (Transition::FinishDelete, Deleting) => Some(Deleted),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_allow_only_the_drawn_arrows() {
        use TenantStatus::*;
        assert_eq!(Transition::Resume.apply(Active), None);
        assert_eq!(Transition::Suspend.apply(Active), Some(Suspended));
        assert_eq!(Transition::Suspend.apply(Deleted), None);
        assert_eq!(Transition::StartDelete.apply(Deleted), None);
        assert_eq!(Transition::Activate.apply(Provisioning), Some(Active));
        assert_eq!(Transition::Activate.apply(Suspended), None);
    }
}
