//! The `slack` format: a Slack incoming-webhook body, `{"text": "<one-line summary>"}`.

use serde_json::{json, Value};
use uuid::Uuid;

use super::Format;
use crate::events::Event;

/// The `slack` format.
pub const FORMAT: Format = Format {
    name: "slack",
    label: "Slack",
    body,
};

fn body(event: &Event, _delivery_id: Uuid) -> Value {
    json!({ "text": summary(event) })
}

/// One line for people: `drover: wave 1f2e3d4c halted: canary failed (by drover)`.
pub fn summary(e: &Event) -> String {
    let subject = match (&e.tenant, e.wave_id) {
        (Some(t), _) => format!("tenant {t}"),
        (None, Some(w)) => format!("wave {}", &w.to_string()[..8]),
        (None, None) => "drover".to_string(),
    };
    let what = e
        .event_type
        .split_once('.')
        .map_or(e.event_type.as_str(), |p| p.1);
    let detail = ["reason", "error", "step", "batch", "to"]
        .iter()
        .find_map(|k| match e.payload.get(*k) {
            Some(Value::String(s)) => Some(format!(": {k} {s}")),
            Some(Value::Number(n)) => Some(format!(": {k} {n}")),
            _ => None,
        })
        .unwrap_or_default();
    let line = format!("drover: {subject} {what}{detail} (by {})", e.actor);
    line.chars().take(500).collect()
}
