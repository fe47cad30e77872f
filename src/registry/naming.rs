//! A tenant's name beyond its syntax: which slugs no new tenant may be given, and the
//! settings of the lifecycle rules the registry applies ([`LifecycleSettings`]).
//!
//! A slug is refused for a new tenant (or as a rename's target) when it is one of drover's
//! own route and system names ([`RESERVED_SLUGS`], also a constraint in the control
//! schema), listed in `reserved_slugs`, or the old slug of a renamed tenant while its
//! alias lasts. Lookups never check this: an existing tenant whose slug became reserved
//! later keeps working.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio_postgres::GenericClient;

use super::model::RESERVED_SLUGS;
use super::{NewTenant, Registry, RegistryError, Slug, Tenant};

/// Names a SaaS never gives a tenant (its own hosts and pages), the default of
/// `reserved_slugs`.
pub const DEFAULT_RESERVED_SLUGS: &str = "www, api, admin, app, mail, smtp, imap, ftp, \
     status, drover, blog, docs, help, support, dashboard, console, portal, login, signup, \
     auth, sso, account, billing, static, assets, cdn, dev, staging, test, demo";

/// The registry's lifecycle rules: reserved names, portal URLs, rename aliases, trials.
#[derive(Debug, Clone)]
pub struct LifecycleSettings {
    /// `reserved_slugs`: never given to a new tenant (besides [`RESERVED_SLUGS`]).
    pub reserved_slugs: BTreeSet<String>,
    /// `portal_url_template`: a tenant's portal URL unless one is set explicitly.
    pub portal_url_template: Option<PortalTemplate>,
    /// `trial_warning_before`: `trial_ending` is sent this long before a trial ends.
    pub trial_warning_before: Duration,
    /// `rename_alias_ttl`: how long a renamed tenant's old slug stays its alias.
    pub rename_alias_ttl: Duration,
}

/// `portal_url_template`: an `http(s)://` URL with `{slug}` where the slug goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalTemplate(String);

impl PortalTemplate {
    /// Parses the setting: a URL that names the slug (else every tenant would share one).
    pub fn parse(v: &str) -> Result<PortalTemplate, String> {
        if !v.contains("{slug}") {
            return Err("must contain {slug}, e.g. https://{slug}.example.com".into());
        }
        super::model::validate_portal_url("portal_url_template", v).map_err(|_| {
            "must be an http:// or https:// URL without spaces, e.g. https://{slug}.example.com"
                .to_string()
        })?;
        Ok(PortalTemplate(v.to_string()))
    }

    /// The URL of the tenant called `slug`.
    pub fn render(&self, slug: &str) -> String {
        self.0.replace("{slug}", slug)
    }
}

impl Default for LifecycleSettings {
    fn default() -> Self {
        LifecycleSettings {
            reserved_slugs: parse_reserved_slugs(DEFAULT_RESERVED_SLUGS).unwrap_or_default(),
            portal_url_template: None,
            trial_warning_before: Duration::from_secs(3 * 86_400),
            rename_alias_ttl: Duration::from_secs(7 * 86_400),
        }
    }
}

/// `reserved_slugs`: comma-separated slugs (case folded). Each must be a slug, or it could
/// never match one.
pub fn parse_reserved_slugs(v: &str) -> Result<BTreeSet<String>, String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            Slug::for_lookup(s)
                .map(|slug| slug.as_str().to_string())
                .map_err(|_| format!("{s:?} is not a slug (a-z, 0-9 and '-', 1-63 characters)"))
        })
        .collect()
}

impl Registry {
    /// A tenant as the registry hands it out: without an explicit portal URL, the one the
    /// template gives its current slug. Rows are read with the explicit value only, so a
    /// template changed later applies to every tenant that did not set its own.
    /// The portal URL a tenant registered from `new` would have.
    pub fn portal_url_of(&self, new: &NewTenant) -> Option<String> {
        new.portal_url.clone().or_else(|| {
            let slug = new.slug.to_ascii_lowercase();
            self.lifecycle
                .portal_url_template
                .as_ref()
                .map(|t| t.render(&slug))
        })
    }

    pub(super) fn present(&self, mut t: Tenant) -> Tenant {
        if !t.portal_url_explicit {
            t.portal_url = self
                .lifecycle
                .portal_url_template
                .as_ref()
                .map(|tpl| tpl.render(&t.slug));
        }
        t
    }

    /// [`Registry::check_reserved`] on its own, before a caller does work of its own for
    /// a new tenant (provisioning checks its server and secret first).
    pub async fn check_slug_free(&self, slug: &Slug) -> Result<(), RegistryError> {
        let client = self.pool.get().await?;
        self.check_reserved(&**client, slug).await
    }

    /// Refuses `slug` for a new tenant or a rename's target when it is reserved: one of
    /// drover's own names, listed in `reserved_slugs`, or a renamed tenant's live alias.
    /// Runs in the caller's transaction, so a rename committing meanwhile is seen.
    pub(super) async fn check_reserved(
        &self,
        client: &impl GenericClient,
        slug: &Slug,
    ) -> Result<(), RegistryError> {
        self.check_reserved_for(client, slug, None).await
    }

    /// [`Registry::check_reserved`], where an alias of `renaming` (the tenant being
    /// renamed) does not count: a tenant may take its old slug back.
    pub(super) async fn check_reserved_for(
        &self,
        client: &impl GenericClient,
        slug: &Slug,
        renaming: Option<uuid::Uuid>,
    ) -> Result<(), RegistryError> {
        const ALIAS: &str = "SELECT t.slug, a.expires_at FROM control_plane.tenant_aliases a \
             JOIN control_plane.tenants t ON t.id = a.tenant_id \
             WHERE a.slug = $1 AND a.expires_at > now() AND t.deleted_at IS NULL \
               AND a.tenant_id IS DISTINCT FROM $2";
        let s = slug.as_str();
        if RESERVED_SLUGS.contains(&s) {
            return Err(RegistryError::SlugReserved {
                slug: s.to_string(),
                why: "it is one of drover's own route or system names".into(),
            });
        }
        if self.lifecycle.reserved_slugs.contains(s) {
            return Err(RegistryError::SlugReserved {
                slug: s.to_string(),
                why: "it is listed in reserved_slugs".into(),
            });
        }
        if let Some(row) = client.query_opt(ALIAS, &[&s, &renaming]).await? {
            let (to, until): (String, chrono::DateTime<chrono::Utc>) =
                (row.try_get("slug")?, row.try_get("expires_at")?);
            return Err(RegistryError::SlugReserved {
                slug: s.to_string(),
                why: format!(
                    "tenant '{to}' was renamed from it, and it resolves to that tenant until {}",
                    until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_slugs_are_folded_and_every_entry_must_be_a_slug() {
        let set = parse_reserved_slugs(" WWW , api,,").unwrap();
        assert_eq!(set.into_iter().collect::<Vec<_>>(), ["api", "www"]);
        assert!(parse_reserved_slugs("www, not a slug").is_err());
    }

    #[test]
    fn a_portal_template_must_name_the_slug_and_be_a_web_url() {
        let t = PortalTemplate::parse("https://{slug}.example.com").unwrap();
        assert_eq!(t.render("acme"), "https://acme.example.com");
        assert!(PortalTemplate::parse("https://example.com").is_err());
        assert!(PortalTemplate::parse("ftp://{slug}.example.com").is_err());
        assert!(PortalTemplate::parse("https://{slug}.example.com/a b").is_err());
    }

    #[test]
    fn the_default_list_parses_and_holds_the_usual_names() {
        let set = parse_reserved_slugs(DEFAULT_RESERVED_SLUGS).unwrap();
        for name in ["www", "api", "admin", "app", "mail", "status", "drover"] {
            assert!(set.contains(name), "{name}");
        }
    }
}
