//! The fleet's event feed, its live stream and signed webhooks (the contract:
//! docs/design.md#events-and-webhooks).
//!
//! Events are written by their owners: the registry (`tenant_events`, through
//! `registry::record_event`), the wave timeline (`wave_events`, through
//! `waves::timeline`) and the modules changing schedules, webhooks, tokens and migration
//! sets (`control_events`, through [`crate::audit::record`]), all drawing ids from one
//! sequence. The feed reads them as one list of dotted types (`tenant.migrated`,
//! `wave.halted`, `token.revoked`):
//!
//! ```text
//!  record_event / timeline::apply / control::record
//!        ──► tenant_events | wave_events | control_events  (same transaction:)
//!        trigger events_after_insert ─┬─► webhook_deliveries (one row per matching webhook)
//!                                     └─► NOTIFY drover_events (sent at commit)
//!
//!  feed     GET /v1/events          newest first, (created_at, id) keyset pages
//!  stream   GET /v1/events/stream   SSE in commit-safe (xid, id) order, see [`stream`]
//!  notify   task `events-notify`    LISTEN drover_events ─► wakes streams and the worker
//!  webhooks task `webhook-worker`   claim (SKIP LOCKED) ─► commit ─► POST ─► record
//! ```
//!
//! The outbox rows come from a database trigger rather than a Rust call after each
//! insert: the trigger cannot be forgotten by a new caller, and it keeps the event and its
//! deliveries atomic even for callers that write one event outside a transaction.
//!
//! Settings: [`DeliverySettings`] (`webhook_retry_backoff`, `webhook_give_up_after`,
//! `webhook_timeout`, `stream_max_clients` and the replica's `instance_id`), filled by the
//! configuration; [`Events::new`] takes nothing else of it.

pub mod feed;
pub mod history;
pub mod notify;
pub mod stream;
pub mod webhooks;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::db::DbError;

/// Tenant event types (`control_plane.event_types`), without the `tenant.` prefix.
pub const TENANT_TYPES: &[&str] = &[
    "created",
    "updated",
    "limits_updated",
    "provisioned",
    "provisioning_failed",
    "migrated",
    "suspended",
    "resumed",
    "deleting",
    "deleted",
    "status_changed",
    "error",
    "trial_ending",
    "trial_expired",
    "renamed",
    "provisioning_requested",
    "deprovisioning_requested",
    "drift_detected",
    "drift_resolved",
];

/// Wave timeline types (docs/design.md#wave-timeline), without the `wave.` prefix.
pub const WAVE_TYPES: &[&str] = &crate::waves::timeline::EVENT_TYPES;

/// Why an events or webhooks operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// A parameter or field failed validation; nothing was written.
    #[error("{field}: {message}")]
    Invalid {
        /// The offending parameter or field.
        field: &'static str,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// No webhook with this name.
    #[error("no webhook '{0}'")]
    NotFound(String),
    /// A webhook with this name exists.
    #[error("a webhook named '{0}' already exists")]
    Duplicate(String),
    /// Every stream slot of this replica is taken.
    #[error(
        "too many event streams on this replica ({0}); retry later or raise stream_max_clients"
    )]
    TooManyStreams(usize),
    /// The token (with its console sessions) holds as many streams as it may.
    #[error(
        "this token already holds {0} open event streams on this replica (stream_max_per_token); close one and retry"
    )]
    TooManyStreamsForToken(usize),
    /// The control database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl EventsError {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            EventsError::Db(e) => e.is_retryable(),
            EventsError::TooManyStreams(_) | EventsError::TooManyStreamsForToken(_) => true,
            _ => false,
        }
    }

    fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        EventsError::Invalid {
            field,
            message: message.into(),
        }
    }
}

impl From<tokio_postgres::Error> for EventsError {
    fn from(e: tokio_postgres::Error) -> Self {
        if let Some(db) = e.as_db_error() {
            if db.code().code() == "23505" && db.constraint() == Some("webhooks_name_key") {
                return EventsError::Duplicate(String::new());
            }
        }
        EventsError::Db(DbError::Postgres(e))
    }
}

impl From<deadpool_postgres::PoolError> for EventsError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        EventsError::Db(DbError::Pool(e))
    }
}

/// Which table an event comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `tenant_events`.
    Tenant,
    /// `wave_events`.
    Wave,
    /// `control_events` (schedules, webhooks, tokens, migration sets).
    Control,
}

impl Source {
    /// Every table of the feed.
    pub const ALL: [Source; 3] = [Source::Tenant, Source::Wave, Source::Control];

    /// The table holding events of `family` (the part of a type before the dot).
    fn of_family(family: &str) -> Option<Source> {
        match family {
            "tenant" => Some(Source::Tenant),
            "wave" => Some(Source::Wave),
            f if crate::audit::families().contains(&f) => Some(Source::Control),
            _ => None,
        }
    }
}

/// The names after `family.` that the feed knows.
fn family_types(family: &str) -> Vec<&'static str> {
    match family {
        "tenant" => TENANT_TYPES.to_vec(),
        "wave" => WAVE_TYPES.to_vec(),
        f => crate::audit::TYPES
            .iter()
            .filter_map(|t| t.split_once('.').filter(|(tf, _)| *tf == f).map(|(_, n)| n))
            .collect(),
    }
}

/// A validated type pattern: `*`, a family (`tenant.*`, `schedule.*`) or one dotted type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypePattern {
    /// Every event.
    All,
    /// Every event of one family.
    Family(Source, &'static str),
    /// One type: its family and the name after the dot.
    Exact(Source, &'static str, &'static str),
}

impl TypePattern {
    /// Parses a pattern; an unknown type is an error naming the accepted ones.
    pub fn parse(field: &'static str, s: &str) -> Result<TypePattern, EventsError> {
        let s = s.trim();
        if s == "*" {
            return Ok(TypePattern::All);
        }
        let (prefix, rest) = s.split_once('.').ok_or_else(|| {
            EventsError::invalid(
                field,
                format!("{s:?} is not a dotted event type like tenant.migrated, wave.* or *"),
            )
        })?;
        let families: Vec<&'static str> = ["tenant", "wave"]
            .into_iter()
            .chain(crate::audit::families())
            .collect();
        let (Some(source), Some(family)) = (
            Source::of_family(prefix),
            families.iter().find(|f| **f == prefix),
        ) else {
            return Err(EventsError::invalid(
                field,
                format!(
                    "unknown event type {s:?}: types start with {}",
                    families
                        .iter()
                        .map(|f| format!("{f}."))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        if rest == "*" {
            return Ok(TypePattern::Family(source, family));
        }
        let types = family_types(family);
        match types.iter().find(|t| **t == rest) {
            Some(t) => Ok(TypePattern::Exact(source, family, t)),
            None => Err(EventsError::invalid(
                field,
                format!(
                    "unknown event type {s:?}; {family}.* types are {}",
                    types.join(", ")
                ),
            )),
        }
    }

    /// The canonical text (what is stored for a webhook).
    pub fn to_text(&self) -> String {
        match self {
            TypePattern::All => "*".into(),
            TypePattern::Family(_, f) => format!("{f}.*"),
            TypePattern::Exact(_, f, t) => format!("{f}.{t}"),
        }
    }

    /// Whether events of `source` can match at all.
    pub fn covers(&self, source: Source) -> bool {
        match self {
            TypePattern::All => true,
            TypePattern::Family(s, _) | TypePattern::Exact(s, _, _) => *s == source,
        }
    }
}

/// One entry of the feed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[schema(as = FeedEvent)]
pub struct Event {
    /// Unique over tenant and wave events.
    pub id: i64,
    /// Dotted type, e.g. `tenant.migrated`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The tenant's slug (tenant events).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tenant: Option<String>,
    /// The wave (wave events, and tenant events a wave caused).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub wave_id: Option<Uuid>,
    /// Who caused it.
    pub actor: String,
    /// Type-specific details; never a secret or a DSN.
    #[schema(value_type = Object)]
    pub payload: Value,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

impl Event {
    fn from_row(r: &tokio_postgres::Row) -> Result<Event, tokio_postgres::Error> {
        let source: String = r.try_get("source")?;
        let event_type: String = r.try_get("event_type")?;
        Ok(Event {
            id: r.try_get("id")?,
            // Control events are stored dotted.
            event_type: if source == "control" {
                event_type
            } else {
                format!("{source}.{event_type}")
            },
            tenant: r.try_get("slug")?,
            wave_id: r.try_get("wave_id")?,
            actor: r.try_get("actor")?,
            payload: r.try_get("payload")?,
            created_at: r.try_get("created_at")?,
        })
    }
}

/// Filters shared by the feed and the stream.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Event type or prefix.
    pub types: Option<TypePattern>,
    /// Tenant slug (every tenant that ever had it).
    pub tenant: Option<String>,
    /// Wave id.
    pub wave: Option<Uuid>,
    /// Exact actor.
    pub actor: Option<String>,
    /// Written at or after.
    pub since: Option<DateTime<Utc>>,
    /// Written before.
    pub until: Option<DateTime<Utc>>,
}

/// The raw query parameters of `/v1/events` and `/v1/events/stream`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FilterParams {
    /// A dotted event type (`tenant.migrated`, `wave.halted`, `schedule.updated`), a
    /// prefix (`tenant.*`, `wave.*`, `token.*`, ...) or `*`; 422 for an unknown type.
    #[serde(rename = "type")]
    #[param(
        pattern = r"^\s*(\*|(tenant|wave|schedule|webhook|token|migration_set)\.\S+)\s*$",
        example = "wave.*"
    )]
    pub event_type: Option<String>,
    /// Events of the tenant(s) that had this slug.
    pub tenant: Option<String>,
    /// Events of this wave, and tenant events it caused (`migrated`, `error`).
    #[param(value_type = Option<Uuid>)]
    pub wave: Option<String>,
    /// Exact actor, e.g. `drover` or `token:ci`.
    pub actor: Option<String>,
    /// Written at or after (RFC 3339).
    #[param(value_type = Option<DateTime<Utc>>)]
    pub since: Option<String>,
    /// Written before (RFC 3339).
    #[param(value_type = Option<DateTime<Utc>>)]
    pub until: Option<String>,
    /// Page size (the feed only; the stream refuses it).
    #[param(minimum = 1, maximum = 500, default = 50)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page, older events follow (the feed only; the
    /// stream resumes with `Last-Event-ID`).
    #[param(pattern = r"^[+-]?[0-9]+\.[+-]?[0-9]+$")]
    pub cursor: Option<String>,
}

impl FilterParams {
    /// Validates the filter part.
    pub fn filter(&self) -> Result<Filter, EventsError> {
        let time = |field: &'static str, v: &Option<String>| -> Result<_, EventsError> {
            v.as_deref()
                .map(|s| {
                    DateTime::parse_from_rfc3339(s)
                        .map(|t| t.with_timezone(&Utc))
                        .map_err(|e| {
                            EventsError::invalid(
                                field,
                                format!("expected an RFC 3339 time like 2025-01-31T12:00:00Z: {e}"),
                            )
                        })
                })
                .transpose()
        };
        Ok(Filter {
            types: self
                .event_type
                .as_deref()
                .map(|t| TypePattern::parse("type", t))
                .transpose()?,
            tenant: self.tenant.as_ref().map(|t| t.trim().to_lowercase()),
            wave: self
                .wave
                .as_deref()
                .map(|w| {
                    w.parse()
                        .map_err(|_| EventsError::invalid("wave", "expected a wave id (uuid)"))
                })
                .transpose()?,
            actor: self.actor.clone(),
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
        })
    }
}

/// Webhook deliveries and event streams of one replica.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// First retry delay of a failed delivery; doubles per attempt (capped at 1 h), jittered.
    pub retry_backoff: std::time::Duration,
    /// A delivery still failing this long after its event is `dead`.
    pub give_up_after: std::time::Duration,
    /// Longest a receiver may take to answer one delivery.
    pub timeout: std::time::Duration,
    /// Event stream clients one replica serves at once.
    pub stream_max_clients: usize,
    /// Event streams one token (its console sessions included) holds open at once.
    pub stream_max_per_token: usize,
    /// This replica's name, on the delivery claims it holds.
    pub instance_id: String,
    /// Which references a webhook's key may be read from (checked again before each read,
    /// so a reference planted in the control DB is refused).
    pub secret_scope: crate::secrets::RefScope,
    /// Networks webhooks may reach although they are not public (in-cluster receivers).
    pub allowed_networks: Vec<ipnet::IpNet>,
}

/// What the events module shares with handlers and tasks.
pub struct Events {
    /// The control pool.
    pub pool: deadpool_postgres::Pool,
    /// Wakes streams and the delivery worker when an event committed.
    pub wake: notify::Wake,
    /// Stream slots of this replica.
    pub streams: Arc<tokio::sync::Semaphore>,
    /// How many stream slots exist.
    pub max_streams: usize,
    /// Streams open per token on this replica.
    pub per_holder: stream::PerHolder,
    /// Sends webhook deliveries (the worker and `POST /v1/webhooks/{name}/test`).
    pub sender: Arc<webhooks::deliver::Sender>,
    /// Reads HMAC keys when a subscription is created.
    pub secrets: crate::secrets::SecretStore,
    /// Fires at shutdown so open streams end and the HTTP server can drain.
    pub stop: tokio_util::sync::CancellationToken,
}

impl Events {
    /// The module's state for a replica delivering as `ev` says.
    pub fn new(
        pool: deadpool_postgres::Pool,
        secrets: crate::secrets::SecretStore,
        ev: &DeliverySettings,
        control_db: Vec<std::net::SocketAddr>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<Events, reqwest::Error> {
        let policy = webhooks::target::Policy {
            allowed: ev.allowed_networks.clone(),
            control_db,
        };
        let sender = webhooks::deliver::Sender {
            pool: pool.clone(),
            secrets: secrets.clone(),
            http: webhooks::deliver::Clients::new(ev.timeout, policy)?,
            metrics,
            backoff: webhooks::outbox::Backoff {
                first: ev.retry_backoff,
                cap: std::time::Duration::from_secs(3600),
                give_up_after: ev.give_up_after,
            },
            timeout: ev.timeout,
            instance: ev.instance_id.clone(),
            scope: ev.secret_scope.clone(),
            limits: webhooks::deliver::Limits::default(),
        };
        Ok(Events {
            pool,
            wake: notify::Wake::default(),
            streams: Arc::new(tokio::sync::Semaphore::new(ev.stream_max_clients)),
            max_streams: ev.stream_max_clients,
            per_holder: stream::PerHolder::new(ev.stream_max_per_token),
            sender: Arc::new(sender),
            secrets,
            stop: tokio_util::sync::CancellationToken::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_patterns_accept_known_types_and_prefixes_only() {
        assert_eq!(TypePattern::parse("type", "*").unwrap(), TypePattern::All);
        assert_eq!(
            TypePattern::parse("type", "wave.*").unwrap(),
            TypePattern::Family(Source::Wave, "wave")
        );
        assert_eq!(
            TypePattern::parse("type", "tenant.provisioning_failed").unwrap(),
            TypePattern::Exact(Source::Tenant, "tenant", "provisioning_failed")
        );
        assert_eq!(
            TypePattern::parse("type", "schedule.*").unwrap(),
            TypePattern::Family(Source::Control, "schedule")
        );
        assert_eq!(
            TypePattern::parse("type", "token.revoked")
                .unwrap()
                .to_text(),
            "token.revoked"
        );
        for bad in [
            "wave.nope",
            "tenant",
            "job.*",
            "tenant.migrated.x",
            "",
            "token.migrated",
        ] {
            assert!(TypePattern::parse("type", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_database_and_stream_capacity_errors_are_retryable() {
        assert!(EventsError::TooManyStreams(1).is_retryable());
        assert!(EventsError::TooManyStreamsForToken(4).is_retryable());
        assert!(!EventsError::NotFound("x".into()).is_retryable());
        assert!(!EventsError::invalid("url", "bad").is_retryable());
    }
}
