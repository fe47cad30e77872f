//! The plan: definitions against the live registry. Pure; the CLI prints it and applies it
//! through the API (`PUT /v1/tenants/{slug}`, `DELETE` for `--prune`).
//!
//! Each definition is a create (no live tenant), an update (a field-level diff), or
//! unchanged. Live tenants without a definition are deleted only with `prune`; otherwise
//! they are listed as untracked. A definition whose status the live tenant cannot reach
//! with one allowed transition, or whose database name belongs to a live tenant that stays,
//! is a problem: nothing is applied while there is one.
//!
//! Order of application: deletes that free a database name a definition needs, then
//! updates (which may free names too), then creates, then the other deletes.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::Serialize;

use super::load::{Loaded, Problem, Source};
use super::model::Definition;
use crate::registry::{declared_transition, Tenant, TenantStatus};

/// How to plan.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Delete live tenants that have no definition.
    pub prune: bool,
    /// New tenants are created by provisioning their database (`POST /v1/tenants` with
    /// `provision: true`); a tenant still `provisioning` is left to the daemon.
    pub provision: bool,
}

/// What happens to one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// No live tenant has this name.
    Create,
    /// The live tenant differs.
    Update,
    /// The live tenant matches its definition.
    Unchanged,
    /// A live tenant without a definition (`prune`).
    Delete,
}

/// One changed field: `labels.region: eu -> us`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Short path: `displayName`, `labels.region`, `database.port`, `status`, ...
    pub field: String,
    /// The live value; `None` when unset.
    pub from: Option<String>,
    /// The declared value; `None` when it is removed.
    pub to: Option<String>,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |v: &Option<String>| match v {
            None => "(unset)".to_string(),
            Some(s) if needs_quotes(s) => format!("{s:?}"),
            Some(s) => s.clone(),
        };
        write!(
            f,
            "{}: {} -> {}",
            self.field,
            shown(&self.from),
            shown(&self.to)
        )
    }
}

fn needs_quotes(s: &str) -> bool {
    s.is_empty()
        || s.contains(char::is_whitespace)
        || s.contains("->")
        || s.contains('"')
        || s == "(unset)"
}

/// One step of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// The tenant.
    pub slug: String,
    /// What happens to it.
    pub action: Action,
    /// For an update: every changed field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    /// The definition to send (create and update).
    #[serde(skip)]
    pub definition: Option<Definition>,
    /// Where the definition is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
}

/// The whole plan.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    /// Steps in the order they are applied; unchanged tenants last.
    pub items: Vec<Item>,
    /// Live tenants without a definition that stay (no `prune`), by slug.
    pub untracked: Vec<String>,
    /// Live tenants without a definition that are being deleted already (skipped).
    pub deleting: Vec<String>,
    /// Reasons the plan cannot be applied.
    pub problems: Vec<Problem>,
}

impl Plan {
    /// How many items have `action`.
    pub fn count(&self, action: Action) -> usize {
        self.items.iter().filter(|i| i.action == action).count()
    }

    /// Whether applying would change anything.
    pub fn has_changes(&self) -> bool {
        self.items.iter().any(|i| i.action != Action::Unchanged)
    }
}

/// Compares `definitions` with the `live` (not deleted) tenants.
pub fn plan(definitions: &[Loaded], live: &[Tenant], options: Options) -> Plan {
    let lookup = Lookup::new(definitions, live, options);
    let mut plan = Plan::default();
    let mut creates = Vec::new();
    let mut updates = Vec::new();
    let mut unchanged = Vec::new();
    let mut freeing: Vec<String> = Vec::new();
    let mut sorted: Vec<&Loaded> = definitions.iter().collect();
    sorted.sort_by(|a, b| a.definition.name().cmp(b.definition.name()));

    for l in sorted {
        let slug = l.definition.name().to_string();
        let current = lookup.live_by_slug.get(&slug.to_lowercase()).copied();
        let want = lookup.reachable_status(l, current, &mut plan.problems);
        freeing.extend(lookup.db_name_free(l, &want, &mut plan.problems));
        let item = |action, changes| Item {
            slug: slug.clone(),
            action,
            changes,
            definition: Some(want.clone()),
            source: Some(l.source.clone()),
        };
        match current {
            None => creates.push(item(Action::Create, Vec::new())),
            Some(t) => {
                let changes = diff(&Definition::from_tenant(t), &want);
                if changes.is_empty() {
                    unchanged.push(item(Action::Unchanged, changes));
                } else {
                    updates.push(item(Action::Update, changes));
                }
            }
        }
    }

    let (early, late) = lookup.deletes(live, &freeing, &mut plan);
    plan.items = early
        .into_iter()
        .chain(updates)
        .chain(creates)
        .chain(late)
        .chain(unchanged)
        .collect();
    plan
}

/// The definitions and live tenants by lower-case slug, and live tenants by database name.
struct Lookup<'a> {
    live_by_slug: HashMap<String, &'a Tenant>,
    defined: HashMap<String, &'a Loaded>,
    db_holder: HashMap<String, &'a Tenant>,
    options: Options,
}

impl<'a> Lookup<'a> {
    fn new(definitions: &'a [Loaded], live: &'a [Tenant], options: Options) -> Self {
        Lookup {
            live_by_slug: live.iter().map(|t| (t.slug.to_lowercase(), t)).collect(),
            defined: definitions
                .iter()
                .map(|l| (l.definition.name().to_lowercase(), l))
                .collect(),
            db_holder: live.iter().map(|t| (t.db_name.to_lowercase(), t)).collect(),
            options,
        }
    }

    /// The definition as it will be applied, and a problem when the live tenant cannot
    /// reach its status with one allowed transition.
    fn reachable_status(
        &self,
        l: &Loaded,
        current: Option<&Tenant>,
        problems: &mut Vec<Problem>,
    ) -> Definition {
        let mut want = l.definition.clone();
        let Some(t) = current else { return want };
        if self.options.provision
            && t.status == TenantStatus::Provisioning
            && want.spec.status == TenantStatus::Active
        {
            // The daemon activates it when provisioning succeeds.
            want.spec.status = TenantStatus::Provisioning;
        }
        if let Err(refused) = declared_transition(t.status, want.spec.status) {
            problems.push(l.source.problem(
                &["spec", "status"],
                format!(
                    "cannot {} tenant '{}': it is {}, the definition says {} ({})",
                    refused.verb,
                    l.definition.name(),
                    t.status,
                    want.spec.status,
                    refused.hint
                ),
            ));
        }
        want
    }

    /// The database name must not belong to a live tenant that keeps it: a problem when it
    /// does, or the slug of the live tenant whose deletion (`prune`) frees it first.
    fn db_name_free(
        &self,
        l: &Loaded,
        want: &Definition,
        problems: &mut Vec<Problem>,
    ) -> Option<String> {
        let slug = l.definition.name();
        let db = want.spec.database.name.to_lowercase();
        let holder = self
            .db_holder
            .get(&db)
            .filter(|h| !h.slug.eq_ignore_ascii_case(slug))?;
        let holder_keeps = match self.defined.get(&holder.slug.to_lowercase()) {
            Some(d) => d.definition.spec.database.name.eq_ignore_ascii_case(&db),
            None => !self.options.prune,
        };
        if holder_keeps {
            problems.push(l.source.problem(
                &["spec", "database", "name"],
                format!(
                    "database '{}' belongs to live tenant '{}', which is not in the files \
                     (delete it first, or apply with --prune)",
                    want.spec.database.name, holder.slug
                ),
            ));
            None
        } else if !self.defined.contains_key(&holder.slug.to_lowercase()) {
            Some(holder.slug.clone())
        } else {
            None
        }
    }

    /// Live tenants without a definition: untracked, or (`prune`) deletes, split into those
    /// that free a database name a definition needs (applied first) and the rest (late).
    fn deletes(
        &self,
        live: &[Tenant],
        freeing: &[String],
        plan: &mut Plan,
    ) -> (Vec<Item>, Vec<Item>) {
        let mut early = Vec::new();
        let mut late = Vec::new();
        let mut stray: Vec<&Tenant> = live
            .iter()
            .filter(|t| !self.defined.contains_key(&t.slug.to_lowercase()))
            .collect();
        stray.sort_by(|a, b| a.slug.cmp(&b.slug));
        for t in stray {
            if !self.options.prune {
                plan.untracked.push(t.slug.clone());
            } else if matches!(t.status, TenantStatus::Deleting | TenantStatus::Deleted) {
                plan.deleting.push(t.slug.clone());
            } else {
                let item = Item {
                    slug: t.slug.clone(),
                    action: Action::Delete,
                    changes: Vec::new(),
                    definition: None,
                    source: None,
                };
                if freeing.contains(&t.slug) {
                    early.push(item);
                } else {
                    late.push(item);
                }
            }
        }
        (early, late)
    }
}

/// Field-level differences from `live` to `want`.
pub fn diff(live: &Definition, want: &Definition) -> Vec<Change> {
    let (mut a, b) = (live.fields(), want.fields());
    // A definition without `limits` leaves them as they are: nothing to compare.
    if want.spec.limits.is_none() {
        a.retain(|k, _| !k.starts_with("limits."));
    }
    let keys: BTreeMap<&String, ()> = a.keys().chain(b.keys()).map(|k| (k, ())).collect();
    keys.into_keys()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| Change {
            field: k.clone(),
            from: a.get(k).cloned(),
            to: b.get(k).cloned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::manifest::load::parse_file;

    const DOCS: &str = r#"
apiVersion: drover.dev/v1
kind: Tenant
metadata: {name: acme, displayName: Acme, labels: {region: eu}}
spec:
  database: {host: db1, name: t_acme, user: u, secretRef: "file:pw"}
---
apiVersion: drover.dev/v1
kind: Tenant
metadata: {name: beta, displayName: Beta}
spec:
  database: {host: db1, name: t_beta, user: u, secretRef: "file:pw"}
  status: suspended
  suspendedReason: unpaid
"#;

    fn loaded(text: &str) -> Vec<Loaded> {
        let parsed = parse_file("t.yaml", Arc::from(text));
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        parsed.loaded
    }

    fn tenant(def: &Definition) -> Tenant {
        let d = def.declared();
        let port = d.tenant.port();
        Tenant {
            id: uuid::Uuid::nil(),
            slug: d.tenant.slug,
            display_name: d.tenant.display_name,
            db_name: d.tenant.db_name,
            db_host: d.tenant.db_host,
            db_port: port,
            db_user: d.tenant.db_user,
            db_secret_ref: d.tenant.db_secret_ref,
            db_options: d.tenant.db_options,
            schema_version: None,
            app_version: d.tenant.app_version,
            status: d.status,
            labels: d.tenant.labels,
            canary: d.tenant.canary,
            billing_plan: d.tenant.billing_plan,
            contact_email: d.tenant.contact_email,
            suspended_reason: d.suspended_reason,
            maintenance_flag: d.tenant.maintenance_flag,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            deleted_at: None,
            server: None,
            provisioned_at: None,
            provisioning_error: None,
            portal_url_explicit: d.tenant.portal_url.is_some(),
            portal_url: d.tenant.portal_url,
            trial_ends_at: d.tenant.trial_ends_at,
            limits: d.limits,
        }
    }

    fn actions(p: &Plan) -> Vec<(String, Action)> {
        p.items.iter().map(|i| (i.slug.clone(), i.action)).collect()
    }

    #[test]
    fn an_empty_registry_means_every_definition_is_created() {
        let p = plan(&loaded(DOCS), &[], Options::default());
        assert_eq!(
            actions(&p),
            [
                ("acme".into(), Action::Create),
                ("beta".into(), Action::Create)
            ]
        );
        assert!(p.problems.is_empty());
    }

    #[test]
    fn a_registry_made_from_the_definitions_is_unchanged() {
        let defs = loaded(DOCS);
        let live: Vec<Tenant> = defs.iter().map(|l| tenant(&l.definition)).collect();
        let p = plan(&defs, &live, Options::default());
        assert!(!p.has_changes(), "{:?}", p.items);
        assert_eq!(p.count(Action::Unchanged), 2);
    }

    #[test]
    fn an_edited_label_is_one_update_with_a_field_level_diff() {
        let defs = loaded(DOCS);
        let mut live: Vec<Tenant> = defs.iter().map(|l| tenant(&l.definition)).collect();
        live[0].labels.insert("region".into(), "us".into());
        live[0].labels.insert("old".into(), "x".into());
        let p = plan(&defs, &live, Options::default());
        assert_eq!(p.count(Action::Update), 1);
        let shown: Vec<String> = p.items[0].changes.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            shown,
            ["labels.old: x -> (unset)", "labels.region: us -> eu"]
        );
    }

    #[test]
    fn a_tenant_without_a_definition_is_deleted_only_when_pruning() {
        let defs = loaded(DOCS);
        let mut live: Vec<Tenant> = defs.iter().map(|l| tenant(&l.definition)).collect();
        let mut stray = live[0].clone();
        stray.slug = "gone".into();
        stray.db_name = "t_gone".into();
        live.push(stray);
        let kept = plan(&defs, &live, Options::default());
        let pruned = plan(
            &defs,
            &live,
            Options {
                prune: true,
                ..Options::default()
            },
        );
        assert_eq!(kept.untracked, ["gone"]);
        assert_eq!(kept.count(Action::Delete), 0);
        assert_eq!(pruned.items[0].slug, "gone");
        assert_eq!(pruned.items[0].action, Action::Delete);
    }

    #[test]
    fn a_status_the_live_tenant_cannot_reach_is_a_problem_at_the_status_line() {
        let defs = loaded(DOCS);
        let mut live: Vec<Tenant> = defs.iter().map(|l| tenant(&l.definition)).collect();
        live[1].status = TenantStatus::Provisioning;
        live[1].suspended_reason = None;
        let p = plan(&defs, &live, Options::default());
        assert_eq!(p.problems.len(), 1, "{:?}", p.problems);
        let problem = &p.problems[0];
        assert_eq!(problem.field.as_deref(), Some("spec.status"));
        assert_eq!(problem.line, Some(13));
        assert!(problem.message.contains("it is provisioning"), "{problem}");
    }

    #[test]
    fn a_database_name_held_by_a_tenant_outside_the_files_is_a_problem_unless_pruned() {
        let defs = loaded(DOCS);
        let mut holder = tenant(&defs[0].definition);
        holder.slug = "old-acme".into();
        let kept = plan(&defs, std::slice::from_ref(&holder), Options::default());
        let pruned = plan(
            &defs,
            &[holder],
            Options {
                prune: true,
                ..Options::default()
            },
        );
        assert_eq!(kept.problems.len(), 1);
        assert!(kept.problems[0].message.contains("old-acme"));
        assert!(pruned.problems.is_empty());
        assert_eq!(
            actions(&pruned)[0],
            ("old-acme".to_string(), Action::Delete),
            "the delete that frees t_acme runs before the create"
        );
    }

    #[test]
    fn with_provision_a_tenant_still_provisioning_is_left_to_the_daemon() {
        let defs = loaded(DOCS);
        let mut live: Vec<Tenant> = defs.iter().map(|l| tenant(&l.definition)).collect();
        live[0].status = TenantStatus::Provisioning;
        let p = plan(
            &defs,
            &live,
            Options {
                provision: true,
                ..Options::default()
            },
        );
        assert!(!p.has_changes(), "{:?}", p.items);
        let without = plan(&defs, &live, Options::default());
        assert_eq!(
            without.items[0].changes[0].to_string(),
            "status: provisioning -> active"
        );
    }
}
