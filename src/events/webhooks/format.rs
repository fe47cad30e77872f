//! What a webhook body format declares, and the helpers that read the registered list
//! ([`FORMATS`], in `webhooks/mod.rs`).
//!
//! Why descriptors in a list and not an enum: with an enum every `match` on it (parsing a
//! request, the stored spelling, the body, the console's label) grows an arm, and a stored
//! value no arm knew was silently sent as JSON. A descriptor keeps a format's facts in the
//! format's own file; everything else reads the list, and a stored name missing from it
//! fails its delivery with an error naming it ([`UnknownFormat`]).
//!
//! Adding a format (say `teams`):
//! - a new file `webhooks/teams.rs` with its `FORMAT` (name, label, body);
//! - its `mod` line and its entry in [`FORMATS`] (both in `webhooks/mod.rs`);
//! - the README's "Events, the live stream and webhooks", which describes each body.
//!
//! Nothing else: the API's validation and its document's `WebhookFormat` enum, the
//! console and the delivery read the list, the CLI passes the name through, and the
//! control schema stores any name (its copy of the list was dropped in V16).

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use serde::de::{self, DeserializeSeed, EnumAccess, VariantAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use uuid::Uuid;

use super::FORMATS;
use crate::events::Event;

/// One body format's constants. Compared by name.
pub struct Format {
    /// How the API, the CLI and `webhooks.format` spell it.
    pub name: &'static str,
    /// How the console shows it.
    pub label: &'static str,
    /// The delivery's JSON body for `event`, sent as delivery `delivery_id`.
    pub body: fn(&Event, Uuid) -> Value,
}

/// A stored format this drover does not know (a newer replica's, or a hand edit): the
/// delivery fails with this, naming it, rather than going out in another format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown webhook format {0:?}: this drover sends {list}; the delivery is not sent", list = listed())]
pub struct UnknownFormat(pub String);

impl Format {
    /// The registered format called `name`.
    pub fn named(name: &str) -> Option<&'static Format> {
        FORMATS.iter().copied().find(|f| f.name == name)
    }

    /// The format a stored subscription names, or the error its deliveries fail with.
    pub fn stored(name: &str) -> Result<&'static Format, UnknownFormat> {
        Format::named(name).ok_or_else(|| UnknownFormat(name.to_string()))
    }

    /// The delivery's body in this format, as bytes.
    pub fn render(&self, event: &Event, delivery_id: Uuid) -> Vec<u8> {
        serde_json::to_vec(&(self.body)(event, delivery_id)).unwrap_or_default()
    }
}

/// Every registered name, in list order (what a request may say).
fn names() -> &'static [&'static str] {
    static NAMES: LazyLock<Vec<&'static str>> =
        LazyLock::new(|| FORMATS.iter().map(|f| f.name).collect());
    &NAMES
}

/// `json or slack`: the registered names for messages.
pub fn listed() -> String {
    match names().split_last() {
        Some((last, [])) => (*last).to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

impl PartialEq for Format {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Format {}

impl fmt::Debug for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl Serialize for Format {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name)
    }
}

/// Read as serde reads a string enum (a unit variant named by a string), so a request
/// naming no registered format is refused with serde's own words: ``unknown variant `x`,
/// expected `json` or `slack` ``.
impl<'de> Deserialize<'de> for &'static Format {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_enum("Format", names(), FormatVisitor)
    }
}

struct FormatVisitor;

impl<'de> Visitor<'de> for FormatVisitor {
    type Value = &'static Format;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("enum Format")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        let (format, variant) = data.variant_seed(NameSeed)?;
        variant.unit_variant()?;
        Ok(format)
    }
}

/// The variant's name, looked up in [`FORMATS`] as it is read.
struct NameSeed;

impl<'de> DeserializeSeed<'de> for NameSeed {
    type Value = &'static Format;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for NameSeed {
    type Value = &'static Format;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("variant identifier")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Format::named(v).ok_or_else(|| E::unknown_variant(v, names()))
    }
}

/// `WebhookFormat` in the API document: a string enum of the registered names.
impl utoipa::PartialSchema for Format {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("Body format."))
            .enum_values(Some(names().iter().copied()))
            .into()
    }
}

impl utoipa::ToSchema for Format {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("WebhookFormat")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_is_registered_once_under_a_name_the_api_accepts() {
        for (i, f) in FORMATS.iter().enumerate() {
            assert!(FORMATS[..i].iter().all(|o| o.name != f.name), "{f:?} twice");
            assert_eq!(Format::named(f.name), Some(*f));
            let read: &Format = serde_json::from_value(serde_json::json!(f.name)).unwrap();
            assert_eq!(read, *f);
            assert_eq!(serde_json::to_value(f).unwrap(), serde_json::json!(f.name));
        }
        assert_eq!(listed(), "json or slack");
    }

    #[test]
    fn an_unknown_name_is_refused_in_serdes_words_and_fails_a_delivery_naming_it() {
        let err = serde_json::from_str::<&Format>("\"xml\"").unwrap_err();
        let stored = Format::stored("xml").unwrap_err();

        assert_eq!(
            err.to_string(),
            "unknown variant `xml`, expected `json` or `slack` at line 1 column 5"
        );
        assert!(stored.to_string().contains("\"xml\""), "{stored}");
        assert!(stored.to_string().contains("json or slack"), "{stored}");
    }

    #[test]
    fn requests_are_read_exactly_as_the_former_enum_read_them() {
        // The derived enum the list replaced, with the same variants: every answer, the
        // error messages included, must stay the same.
        #[derive(Debug, Deserialize)]
        #[serde(rename_all = "lowercase")]
        enum Format {
            Json,
            Slack,
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Before {
            #[serde(default)]
            #[allow(dead_code)]
            format: Option<Format>,
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct After {
            #[serde(default)]
            #[allow(dead_code)]
            format: Option<&'static super::Format>,
        }
        for body in [
            r#"{"format": "json"}"#,
            r#"{"format": "slack"}"#,
            r#"{"format": "xml"}"#,
            r#"{"format": "JSON"}"#,
            r#"{"format": null}"#,
            r#"{}"#,
            r#"{"format": 1}"#,
            r#"{"format": ["json"]}"#,
            r#"{"format": {"json": null}}"#,
            r#"{"format": {"json": 1}}"#,
            r#"{"format": {"xml": null}}"#,
        ] {
            let before = serde_json::from_str::<Before>(body).map(|b| format!("{:?}", b.format));
            let after = serde_json::from_str::<After>(body).map(|a| format!("{:?}", a.format));
            let value: Value = serde_json::from_str(body).unwrap();
            let before_v =
                serde_json::from_value::<Before>(value.clone()).map(|b| format!("{:?}", b.format));
            let after_v = serde_json::from_value::<After>(value).map(|a| format!("{:?}", a.format));

            assert_eq!(
                before.map_err(|e| e.to_string()).map(|s| s.to_lowercase()),
                after.map_err(|e| e.to_string()).map(|s| s.to_lowercase()),
                "{body}"
            );
            assert_eq!(
                before_v
                    .map_err(|e| e.to_string())
                    .map(|s| s.to_lowercase()),
                after_v.map_err(|e| e.to_string()).map(|s| s.to_lowercase()),
                "{body} as a value"
            );
        }
    }
}
