//! OpenAPI schemas of request fields whose rules live in lists the validation reads
//! (`#[schema(schema_with = ..)]` in [`super::model`]): the libpq options, the label
//! rules and the statuses a request may set. Built from those same lists, so the document
//! cannot promise what the validation refuses, or the reverse.

use serde_json::Value;
use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaType, Type};

use super::model::{
    OptionValue, TenantStatus, DB_OPTIONS, LABEL_KEY_PUNCTUATION, MAX_LABELS, MAX_LABEL_KEY,
    MAX_LABEL_VALUE, NEW_TENANT_STATUSES, PATCH_STATUSES,
};

/// Printable text: no control characters (what `char::is_control` refuses).
const PRINTABLE: &str = "^[^\\x00-\\x1f\\x7f-\\x9f]*$";

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// The same schema, also allowing `null` (serde reads `null` as an absent field).
fn nullable(mut o: Object) -> Object {
    if let SchemaType::Type(t) = o.schema_type {
        o.schema_type = SchemaType::from_iter([t, Type::Null]);
    }
    if let Some(values) = o.enum_values.as_mut() {
        values.push(Value::Null);
    }
    o
}

/// `db_options`: a closed object of the libpq options in `DB_OPTIONS`, each with the
/// values it accepts.
pub fn db_options() -> Object {
    let mut o = ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(utoipa::openapi::schema::AdditionalProperties::<
            utoipa::openapi::schema::Schema,
        >::FreeForm(false)))
        .description(Some(
            "libpq options added to the resolved DSN; only these keys are accepted.",
        ));
    for (key, value) in DB_OPTIONS {
        let schema = match value {
            OptionValue::OneOf(words) => string().enum_values(Some(words.iter().copied())),
            OptionValue::Seconds => string()
                .pattern(Some("^\\+?[0-9]+$"))
                .description(Some("Whole seconds, as text."))
                .examples(["10"]),
            OptionValue::Text => string()
                .min_length(Some(1))
                .max_length(Some(255))
                .pattern(Some(PRINTABLE))
                .description(Some("1-255 bytes of printable text.")),
        };
        o = o.property(*key, schema);
    }
    o.examples([serde_json::json!({ "sslmode": "require" })])
        .build()
}

/// `db_options` of a PATCH: the same, or `null` (left as it is).
pub fn nullable_db_options() -> Object {
    nullable(db_options())
}

/// `labels`: at most `MAX_LABELS` keys like Kubernetes label keys, short printable values.
pub fn labels() -> Object {
    let mut punctuation: String = LABEL_KEY_PUNCTUATION
        .chars()
        .filter(|c| *c != '-')
        .collect();
    if LABEL_KEY_PUNCTUATION.contains('-') {
        // Last in the class, where it is literal.
        punctuation.push('-');
    }
    let key = string()
        .min_length(Some(1))
        .max_length(Some(MAX_LABEL_KEY))
        .pattern(Some(format!("^[A-Za-z0-9{punctuation}]+$")));
    let value = string()
        .max_length(Some(MAX_LABEL_VALUE))
        .pattern(Some(PRINTABLE));
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .max_properties(Some(MAX_LABELS))
        .property_names(Some(key))
        .additional_properties(Some(value))
        .examples([serde_json::json!({ "plan": "pro", "region": "eu" })])
        .build()
}

/// `labels` of a PATCH: the same, or `null` (left as it is).
pub fn nullable_labels() -> Object {
    nullable(labels())
}

/// `db_secret_ref` of a PATCH: a reference, or `null` (left as it is).
pub fn nullable_secret_ref() -> Object {
    nullable(crate::secrets::secret_ref_schema())
}

fn statuses(allowed: &[TenantStatus], description: &str) -> Object {
    nullable(
        string()
            .enum_values(Some(allowed.iter().map(|s| s.as_str())))
            .description(Some(description))
            .build(),
    )
}

/// `NewTenant.status`.
pub fn new_tenant_status() -> Object {
    statuses(
        NEW_TENANT_STATUSES,
        "Initial status: `provisioning` (the default) or `active`.",
    )
}

/// `TenantPatch.status`.
pub fn patch_status() -> Object {
    statuses(
        PATCH_STATUSES,
        "Only `active`, from `provisioning`; suspend, resume and DELETE have endpoints of their own.",
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::model::validate_db_options;
    use super::*;

    #[test]
    fn every_value_the_db_options_schema_offers_is_accepted_and_other_keys_are_not() {
        let schema = serde_json::to_value(db_options()).unwrap();
        let props = schema["properties"].as_object().unwrap();

        for (key, prop) in props {
            for value in prop["enum"].as_array().into_iter().flatten() {
                let one = BTreeMap::from([(key.clone(), value.as_str().unwrap().to_string())]);
                assert!(validate_db_options(&one).is_ok(), "{key}={value}");
            }
        }
        assert_eq!(schema["additionalProperties"], false);
        let unknown = BTreeMap::from([("host".to_string(), "x".to_string())]);
        assert!(validate_db_options(&unknown).is_err());
    }
}
