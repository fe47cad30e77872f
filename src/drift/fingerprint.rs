//! Reading a tenant's schema from `pg_catalog` in one statement (`fingerprint.sql`), the
//! names PostgreSQL made up put in a form every tenant shares, and the hashes: one per
//! object, and the root over them all.
//!
//! An object's key is `kind qualified-name` (`column public.orders.legacy_id`,
//! `index public.orders_customer_idx`); its body is the catalog's own text for it
//! (`pg_get_indexdef`, `pg_get_functiondef`, the column's type, nullability, default and
//! collation). Hashes are SHA-256: an object's is the first 16 hex digits over its key and
//! body; the root is the full digest over the sorted `key hash` lines, so two tenants
//! share a root exactly when they share every object.

use std::collections::BTreeMap;

use ring::digest::{digest, SHA256};
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use super::DriftError;

const CATALOG_SQL: &str = include_str!("fingerprint.sql");

/// How much of an object's body is kept to explain a difference (function bodies can be
/// long; the hash covers all of it).
const DETAIL_CHARS: usize = 240;

/// Suffixes PostgreSQL gives the names it makes up (`CREATE INDEX ON t (c)`, unnamed
/// constraints, `serial` sequences); a clash gets a number after them (`t_c_idx1`).
const GENERATED_SUFFIXES: &[&str] = &[
    "_idx",
    "_key",
    "_fkey",
    "_pkey",
    "_check",
    "_excl",
    "_seq",
    "_not_null",
];

/// One schema object as stored: its hash and a short text saying what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaObject {
    /// First 16 hex digits of SHA-256 over the key and the full body.
    #[serde(rename = "h")]
    pub hash: String,
    /// The body, cut to a few hundred characters.
    #[serde(rename = "d")]
    pub detail: String,
}

/// A tenant's schema: the root hash and every object by key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// SHA-256 (hex) over the sorted `key hash` lines.
    pub root: String,
    pub objects: BTreeMap<String, SchemaObject>,
}

/// One catalog row before normalisation.
#[derive(Debug, Clone)]
pub struct RawObject {
    pub kind: String,
    /// The owning table (`schema.table`) for columns, indexes, constraints and triggers.
    pub parent: String,
    pub name: String,
    pub body: String,
}

/// Reads the tenant's schema on `client` (one round trip) and fingerprints it.
pub async fn take(client: &Client) -> Result<Fingerprint, DriftError> {
    let rows = client
        .query(CATALOG_SQL, &[])
        .await
        .map_err(|e| DriftError::Tenant(crate::db::describe(&e)))?;
    let mut raw = Vec::with_capacity(rows.len());
    for row in rows {
        let text = |c: &str| -> Result<String, DriftError> {
            let v: Option<String> = row
                .try_get(c)
                .map_err(|e| DriftError::Tenant(format!("catalog row column {c}: {e}")))?;
            Ok(v.unwrap_or_default())
        };
        raw.push(RawObject {
            kind: text("kind")?,
            parent: text("parent")?,
            name: text("name")?,
            body: text("body")?,
        });
    }
    Ok(build(raw))
}

/// A name PostgreSQL may have made up, without the number it adds on a clash:
/// `orders_customer_id_idx1` → `orders_customer_id_idx`; other names are left alone.
pub fn normalise_name(name: &str) -> &str {
    let trimmed = name.trim_end_matches(|c: char| c.is_ascii_digit());
    if trimmed.len() != name.len() && GENERATED_SUFFIXES.iter().any(|s| trimmed.ends_with(s)) {
        trimmed
    } else {
        name
    }
}

/// The key of a catalog row, its generated name normalised.
fn key_of(o: &RawObject) -> String {
    match o.kind.as_str() {
        // The names of these are PostgreSQL's to make up; the rest are the user's.
        "index" | "constraint" | "sequence" => {
            let name = match o.name.rsplit_once('.') {
                Some((schema, n)) => format!("{schema}.{}", normalise_name(n)),
                None => normalise_name(&o.name).to_string(),
            };
            if o.kind == "index" {
                // Index names are unique per schema: qualify with the table's schema.
                let schema = o.parent.split_once('.').map_or("", |(s, _)| s);
                format!("index {schema}.{name}")
            } else if o.parent.is_empty() {
                format!("{} {name}", o.kind)
            } else {
                format!("{} {}.{name}", o.kind, o.parent)
            }
        }
        _ if o.parent.is_empty() => format!("{} {}", o.kind, o.name),
        _ => format!("{} {}.{}", o.kind, o.parent, o.name),
    }
}

/// Normalises, hashes and sums up catalog rows (pure; the unit tests drive it).
pub fn build(raw: Vec<RawObject>) -> Fingerprint {
    // Generated names also appear in bodies (an index's definition, a serial column's
    // `nextval('orders_id_seq1'::regclass)`): rewrite them there too, longest first so
    // a name is never rewritten inside a longer one.
    let mut renames: Vec<(String, String)> = raw
        .iter()
        .filter(|o| matches!(o.kind.as_str(), "index" | "constraint" | "sequence"))
        .filter_map(|o| {
            let bare = o.name.rsplit('.').next().unwrap_or(&o.name);
            let n = normalise_name(bare);
            (n != bare).then(|| (bare.to_string(), n.to_string()))
        })
        .collect();
    renames.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
    renames.dedup();
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for o in &raw {
        let mut body = o.body.clone();
        for (from, to) in &renames {
            if body.contains(from.as_str()) {
                body = body.replace(from.as_str(), to);
            }
        }
        by_key.entry(key_of(o)).or_default().push(body);
    }
    let mut objects = BTreeMap::new();
    for (key, mut bodies) in by_key {
        if bodies.len() == 1 {
            let body = bodies.remove(0);
            objects.insert(key.clone(), object(&key, &body));
            continue;
        }
        // Two generated names that differ only by their number (`t_c_idx`, `t_c_idx1`):
        // which got which number is an accident of history, so they are told apart by
        // their definitions, in order.
        bodies.sort();
        for (n, body) in bodies.iter().enumerate() {
            let k = format!("{key}#{}", n + 1);
            objects.insert(k.clone(), object(&k, body));
        }
    }
    let mut lines = String::new();
    for (key, o) in &objects {
        lines.push_str(key);
        lines.push(' ');
        lines.push_str(&o.hash);
        lines.push('\n');
    }
    Fingerprint {
        root: hex(digest(&SHA256, lines.as_bytes()).as_ref()),
        objects,
    }
}

fn object(key: &str, body: &str) -> SchemaObject {
    let mut input = Vec::with_capacity(key.len() + body.len() + 1);
    input.extend_from_slice(key.as_bytes());
    input.push(0);
    input.extend_from_slice(body.as_bytes());
    let full = hex(digest(&SHA256, &input).as_ref());
    SchemaObject {
        hash: full[..16].to_string(),
        detail: shorten(body),
    }
}

/// The body on one line, cut to [`DETAIL_CHARS`].
fn shorten(body: &str) -> String {
    let one_line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= DETAIL_CHARS {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(DETAIL_CHARS).collect();
    cut.push('…');
    cut
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(kind: &str, parent: &str, name: &str, body: &str) -> RawObject {
        RawObject {
            kind: kind.into(),
            parent: parent.into(),
            name: name.into(),
            body: body.into(),
        }
    }

    #[test]
    fn a_clash_number_after_a_generated_suffix_is_dropped() {
        assert_eq!(
            normalise_name("orders_customer_id_idx1"),
            "orders_customer_id_idx"
        );
        assert_eq!(
            normalise_name("orders_amount_check12"),
            "orders_amount_check"
        );
        assert_eq!(normalise_name("orders_id_seq1"), "orders_id_seq");
        assert_eq!(normalise_name("orders_pkey"), "orders_pkey");
    }

    #[test]
    fn names_the_user_chose_are_left_alone() {
        assert_eq!(normalise_name("orders_v2"), "orders_v2");
        assert_eq!(normalise_name("idx2024"), "idx2024");
        assert_eq!(normalise_name("by_customer"), "by_customer");
    }

    #[test]
    fn an_index_numbered_by_a_clash_fingerprints_like_the_unnumbered_one() {
        let a = build(vec![raw(
            "index",
            "public.orders",
            "orders_customer_id_idx1",
            "CREATE INDEX orders_customer_id_idx1 ON public.orders USING btree (customer_id)",
        )]);
        let b = build(vec![raw(
            "index",
            "public.orders",
            "orders_customer_id_idx",
            "CREATE INDEX orders_customer_id_idx ON public.orders USING btree (customer_id)",
        )]);
        assert_eq!(a, b);
        assert!(a
            .objects
            .contains_key("index public.orders_customer_id_idx"));
    }

    #[test]
    fn a_serial_default_names_its_normalised_sequence() {
        let a = build(vec![
            raw("sequence", "", "public.orders_id_seq1", "bigint start 1"),
            raw(
                "column",
                "public.orders",
                "id",
                "integer not null default nextval('orders_id_seq1'::regclass)",
            ),
        ]);
        let b = build(vec![
            raw("sequence", "", "public.orders_id_seq", "bigint start 1"),
            raw(
                "column",
                "public.orders",
                "id",
                "integer not null default nextval('orders_id_seq'::regclass)",
            ),
        ]);
        assert_eq!(a.root, b.root);
    }

    #[test]
    fn two_generated_names_that_normalise_alike_stay_two_objects_ordered_by_definition() {
        let one = |n1: &str, n2: &str| {
            build(vec![
                raw(
                    "index",
                    "public.t",
                    n1,
                    &format!("CREATE INDEX {n1} ON public.t USING btree (c)"),
                ),
                raw(
                    "index",
                    "public.t",
                    n2,
                    &format!("CREATE INDEX {n2} ON public.t USING hash (c)"),
                ),
            ])
        };
        let a = one("t_c_idx", "t_c_idx1");
        let b = one("t_c_idx1", "t_c_idx");
        assert_eq!(a.objects.len(), 2);
        assert_eq!(a.root, b.root);
    }

    #[test]
    fn any_changed_body_changes_the_root_and_only_that_object() {
        let base = vec![
            raw(
                "column",
                "public.orders",
                "status",
                "text default 'new'::text",
            ),
            raw("table", "", "public.orders", "table"),
        ];
        let mut changed = base.clone();
        changed[0].body = "text default 'open'::text".into();
        let (a, b) = (build(base), build(changed));
        assert_ne!(a.root, b.root);
        let differing: Vec<_> = a
            .objects
            .iter()
            .filter(|(k, o)| b.objects[*k].hash != o.hash)
            .map(|(k, _)| k.clone())
            .collect();
        assert_eq!(differing, vec!["column public.orders.status".to_string()]);
    }

    #[test]
    fn row_order_does_not_matter() {
        let rows = vec![
            raw("table", "", "public.a", "table"),
            raw("table", "", "public.b", "table"),
        ];
        let mut reversed = rows.clone();
        reversed.reverse();
        assert_eq!(build(rows).root, build(reversed).root);
    }

    #[test]
    fn a_long_body_is_kept_short_on_one_line() {
        let body = format!("CREATE FUNCTION f()\n  RETURNS int\n{}", "x".repeat(1000));
        let o = object("function public.f()", &body);
        assert!(o.detail.chars().count() <= DETAIL_CHARS + 1);
        assert!(!o.detail.contains('\n'));
        assert_eq!(o.hash.len(), 16);
    }
}
