//! The `json` format (the default): the event as the feed shows it, plus `delivery_id`.

use serde_json::{json, Value};
use uuid::Uuid;

use super::Format;
use crate::events::Event;

/// The `json` format.
pub const FORMAT: Format = Format {
    name: "json",
    label: "JSON",
    body,
};

fn body(event: &Event, delivery_id: Uuid) -> Value {
    let mut v = serde_json::to_value(event).unwrap_or_else(|_| json!({}));
    v["delivery_id"] = json!(delivery_id);
    v
}
