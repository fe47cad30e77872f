//! `control_plane.control_events`: the changes that belong to neither a tenant nor a wave
//! (schedules, webhooks, access tokens, migration sets), written by the module that makes
//! the change through [`record`], in the change's own transaction, so the event, its
//! webhook deliveries (the outbox trigger) and the change commit together or not at all.
//!
//! Payloads name what changed and never carry a secret: a token's name and role, never the
//! token; a webhook's URL as viewers see it.

use serde_json::{json, Value};
use tokio_postgres::GenericClient;

/// Every type this table holds, dotted. A new one is a line here (the feed's filters and
/// webhook subscriptions read this list).
pub const TYPES: &[&str] = &[
    "schedule.created",
    "schedule.updated",
    "schedule.deleted",
    "schedule.triggered",
    "webhook.created",
    "webhook.deleted",
    "token.created",
    "token.revoked",
    "migration_set.pushed",
    "migration_set.deleted",
];

/// The families (`schedule`, `webhook`, …), in the order of [`TYPES`].
pub fn families() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for t in TYPES {
        let family = t.split_once('.').map_or(*t, |(f, _)| f);
        if !out.contains(&family) {
            out.push(family);
        }
    }
    out
}

/// Writes one event of `event_type` (one of [`TYPES`]) by `actor`; `on_behalf_of` (what
/// the client's `X-Drover-Actor` said) is added to the payload, never replacing the actor.
pub async fn record(
    client: &impl GenericClient,
    event_type: &'static str,
    actor: &str,
    on_behalf_of: Option<&str>,
    payload: Value,
) -> Result<(), tokio_postgres::Error> {
    debug_assert!(TYPES.contains(&event_type), "{event_type} is not listed");
    const SQL: &str = "INSERT INTO control_plane.control_events (event_type, actor, payload) \
         VALUES ($1, $2, $3)";
    let payload = match (on_behalf_of, payload) {
        (Some(who), Value::Object(mut map)) => {
            map.insert("on_behalf_of".into(), json!(who));
            Value::Object(map)
        }
        (_, payload) => payload,
    };
    client
        .execute(SQL, &[&event_type, &actor, &payload])
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_is_family_dot_name() {
        for t in TYPES {
            let (f, n) = t.split_once('.').unwrap();
            assert!(!f.is_empty() && !n.is_empty() && !n.contains('.'), "{t}");
            assert!(!["tenant", "wave"].contains(&f), "{t}");
        }
        assert_eq!(
            families(),
            ["schedule", "webhook", "token", "migration_set"]
        );
    }
}
