//! `GET /v1/events`: one feed over `tenant_events`, `wave_events` and `control_events`,
//! newest first.
//!
//! The SQL is built per source table rather than over a view: a filter on a dotted type
//! (`type = 'tenant.migrated'`) or a prefix would hide the table's own columns from the
//! planner, and a source the filter excludes is not queried at all. Each branch is ordered
//! and limited on its own, so it is one backward index range scan (indexes of
//! control-migrations/V10, V18) that stops after a page, whatever the table's size; the
//! pages are merged and the tenant's slug joined to the final page only.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::ToSql;
use tokio_postgres::GenericClient;

use super::{Event, EventsError, Filter, FilterParams, Source};

/// The default and largest page.
pub const DEFAULT_LIMIT: i64 = 50;
/// The largest page.
pub const MAX_LIMIT: i64 = 500;

/// One page of the feed.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = FeedPage)]
pub struct Page {
    /// Newest first.
    pub items: Vec<Event>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    #[schema(required)]
    pub next_cursor: Option<String>,
}

/// Where a page starts: strictly older than this (created_at, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    at: DateTime<Utc>,
    id: i64,
}

impl Cursor {
    fn of(e: &Event) -> Cursor {
        Cursor {
            at: e.created_at,
            id: e.id,
        }
    }

    /// The opaque text given to clients.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.at.timestamp_micros(), self.id)
    }

    /// Reads a cursor this module handed out.
    pub fn decode(s: &str) -> Result<Cursor, EventsError> {
        let bad = || EventsError::Invalid {
            field: "cursor",
            message: "not a cursor from next_cursor".into(),
        };
        let (micros, id) = s.split_once('.').ok_or_else(bad)?;
        let at = Utc
            .timestamp_micros(micros.parse().map_err(|_| bad())?)
            .single()
            .ok_or_else(bad)?;
        Ok(Cursor {
            at,
            id: id.parse().map_err(|_| bad())?,
        })
    }
}

/// SQL text with its parameters, numbered as they are bound.
#[derive(Default)]
pub(super) struct Query {
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Query {
    /// Binds a value and returns its placeholder.
    pub fn bind<T: ToSql + Sync + Send + 'static>(&mut self, v: T) -> String {
        self.params.push(Box::new(v));
        format!("${}", self.params.len())
    }

    pub fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// The WHERE conditions of one source's branch for `filter`, or `None` when the filter
/// excludes the source. Column names are those of the branch alias `e`.
pub(super) fn conditions(q: &mut Query, source: Source, filter: &Filter) -> Option<Vec<String>> {
    let mut c = Vec::new();
    if let Some(t) = &filter.types {
        if !t.covers(source) {
            return None;
        }
        match t {
            super::TypePattern::Exact(_, family, name) => {
                // Control events are stored dotted, the others without their family.
                let stored = if source == Source::Control {
                    format!("{family}.{name}")
                } else {
                    name.to_string()
                };
                c.push(format!("e.event_type = {}", q.bind(stored)));
            }
            // One table holds several families: list the family's types (an index scan).
            super::TypePattern::Family(Source::Control, family) => {
                let types: Vec<String> = super::family_types(family)
                    .iter()
                    .map(|n| format!("{family}.{n}"))
                    .collect();
                c.push(format!("e.event_type = ANY({})", q.bind(types)));
            }
            _ => {}
        }
    }
    if let Some(slug) = &filter.tenant {
        if source != Source::Tenant {
            return None;
        }
        let slug = q.bind(slug.clone());
        c.push(format!(
            "e.tenant_id IN {}",
            crate::registry::queries::tenant_ids_with_slug(&slug)
        ));
    }
    if let Some(w) = filter.wave {
        match source {
            Source::Control => return None,
            Source::Wave => c.push(format!("e.wave_id = {}", q.bind(w))),
            Source::Tenant => c.push(format!(
                "e.payload ? 'wave_id' AND e.payload->>'wave_id' = {}",
                q.bind(w.to_string())
            )),
        }
    }
    if let Some(a) = &filter.actor {
        c.push(format!("e.actor = {}", q.bind(a.clone())));
    }
    if let Some(t) = filter.since {
        c.push(format!("e.created_at >= {}", q.bind(t)));
    }
    if let Some(t) = filter.until {
        c.push(format!("e.created_at < {}", q.bind(t)));
    }
    Some(c)
}

/// The columns every branch yields (see [`Event::from_row`]); the slug is joined later.
pub(super) fn branch_select(source: Source) -> &'static str {
    match source {
        Source::Tenant => {
            "SELECT 'tenant'::text AS source, e.id, e.event_type, e.tenant_id, \
             CASE WHEN e.payload->>'wave_id' ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' \
                  THEN (e.payload->>'wave_id')::uuid END AS wave_id, \
             e.actor, e.payload, e.created_at, e.xid::text AS xid FROM control_plane.tenant_events e"
        }
        Source::Wave => {
            "SELECT 'wave'::text AS source, e.id, e.event_type, NULL::uuid AS tenant_id, e.wave_id, \
             e.actor, e.payload, e.created_at, e.xid::text AS xid FROM control_plane.wave_events e"
        }
        Source::Control => {
            "SELECT 'control'::text AS source, e.id, e.event_type, NULL::uuid AS tenant_id, \
             NULL::uuid AS wave_id, e.actor, e.payload, e.created_at, e.xid::text AS xid \
             FROM control_plane.control_events e"
        }
    }
}

/// Wraps ordered, limited branches into one statement that merges them and adds slugs.
pub(super) fn merge(branches: &[String], order: &str, limit: &str) -> String {
    let union = branches
        .iter()
        .map(|b| format!("({b})"))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let slugs = crate::registry::queries::join_slug("t", "u.tenant_id");
    format!("SELECT u.*, t.slug FROM ({union}) u {slugs} ORDER BY {order} LIMIT {limit}")
}

/// One page of the feed.
pub async fn list(client: &impl GenericClient, params: &FilterParams) -> Result<Page, EventsError> {
    let filter = params.filter()?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(EventsError::Invalid {
            field: "limit",
            message: format!("expected 1 to {MAX_LIMIT}"),
        });
    }
    let cursor = params.cursor.as_deref().map(Cursor::decode).transpose()?;
    let mut q = Query::default();
    // One more than the page tells whether there is a next one.
    let fetch = q.bind(limit + 1);
    let cursor_params = cursor.map(|c| (q.bind(c.at), q.bind(c.id)));
    let mut branches = Vec::new();
    for source in Source::ALL {
        let Some(mut conds) = conditions(&mut q, source, &filter) else {
            continue;
        };
        if let Some((at, id)) = &cursor_params {
            conds.push(format!("(e.created_at, e.id) < ({at}, {id})"));
        }
        branches.push(format!(
            "{}{} ORDER BY e.created_at DESC, e.id DESC LIMIT {fetch}",
            branch_select(source),
            where_clause(&conds)
        ));
    }
    // A filter both sources exclude (a wave type and a tenant) matches nothing.
    let rows = if branches.is_empty() {
        Vec::new()
    } else {
        let sql = merge(&branches, "u.created_at DESC, u.id DESC", &fetch);
        client.query(sql.as_str(), &q.params()).await?
    };
    let mut items = rows
        .iter()
        .map(Event::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|e| Cursor::of(e).encode())
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

/// One event by id.
pub async fn get(client: &impl GenericClient, id: i64) -> Result<Option<Event>, EventsError> {
    let mut q = Query::default();
    let p = q.bind(id);
    let branches: Vec<String> = Source::ALL
        .iter()
        .map(|s| format!("{} WHERE e.id = {p}", branch_select(*s)))
        .collect();
    let sql = merge(&branches, "u.id", "1");
    let row = client.query_opt(sql.as_str(), &q.params()).await?;
    Ok(row.as_ref().map(Event::from_row).transpose()?)
}

/// ` WHERE a AND b`, or nothing.
pub(super) fn where_clause(conds: &[String]) -> String {
    if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_as_itself() {
        let c = Cursor {
            at: Utc
                .timestamp_micros(1_700_000_000_123_456)
                .single()
                .unwrap(),
            id: 42,
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert!(Cursor::decode("nope").is_err());
        assert!(Cursor::decode("1.x").is_err());
    }

    #[test]
    fn a_tenant_filter_leaves_the_wave_table_out() {
        let filter = Filter {
            tenant: Some("acme".into()),
            ..Filter::default()
        };
        let mut q = Query::default();
        assert!(conditions(&mut q, Source::Wave, &filter).is_none());
        assert_eq!(
            conditions(&mut q, Source::Tenant, &filter).unwrap().len(),
            1
        );
    }
}
