//! The one table of which role each route needs. The router's middleware looks every
//! request up here; `tests/api/access.rs` checks that every route of the router (read from
//! its generated OpenAPI document, built from the same list) is listed, and nothing else,
//! so a new route cannot be added without deciding who may use it.

use super::Role;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needed {
    /// No token (health, metrics, the OpenAPI document).
    Public,
    /// No API token: the route takes its own credential (an external provisioner's
    /// single-use callback token) and answers 401 to anything else, API tokens included.
    Callback,
    /// A token whose role grants this one ([`Role::grants`]).
    Role(Role),
    /// A token whose role grants any of these (the first is the one error messages name
    /// first); for routes two otherwise unrelated roles share.
    Any(&'static [Role]),
}

impl Needed {
    /// The roles any of which is enough; empty for a public route.
    pub fn roles(&self) -> Vec<Role> {
        match self {
            Needed::Public | Needed::Callback => Vec::new(),
            Needed::Role(r) => vec![*r],
            Needed::Any(rs) => rs.to_vec(),
        }
    }
}

use Needed::Public;
const VIEWER: Needed = Needed::Role(Role::Viewer);
const RESOLVER: Needed = Needed::Role(Role::Resolver);
const OPERATOR: Needed = Needed::Role(Role::Operator);
const ADMIN: Needed = Needed::Role(Role::Admin);
const PUBLISHER: Needed = Needed::Role(Role::Publisher);
/// Reading migration sets: every reader, and the CI token that pushed them.
const SET_READER: Needed = Needed::Any(&[Role::Viewer, Role::Publisher]);

/// (method, route template as the router matched it, what it needs).
pub const ROUTE_ROLES: &[(&str, &str, Needed)] = &[
    ("GET", "/healthz", Public),
    ("GET", "/readyz", Public),
    ("GET", "/metrics", Public),
    ("GET", "/openapi.json", Public),
    // Tenants: reading is for viewers, suspend/resume for operators, the rest for admins.
    ("GET", "/v1/tenants", VIEWER),
    ("POST", "/v1/tenants", ADMIN),
    ("GET", "/v1/tenants/{slug}", VIEWER),
    ("PUT", "/v1/tenants/{slug}", ADMIN),
    ("PATCH", "/v1/tenants/{slug}", ADMIN),
    ("DELETE", "/v1/tenants/{slug}", ADMIN),
    ("POST", "/v1/tenants/{slug}/suspend", OPERATOR),
    ("POST", "/v1/tenants/{slug}/resume", OPERATOR),
    ("POST", "/v1/tenants/{slug}/provision", ADMIN),
    ("POST", "/v1/tenants/{slug}/rename", ADMIN),
    // An external provisioner's report: its callback token, never an API token.
    ("POST", "/v1/tenants/{slug}/provisioning", Needed::Callback),
    ("GET", "/v1/tenants/{slug}/events", VIEWER),
    // Limits are commercial settings: reading them is viewing, setting them is admin's.
    ("GET", "/v1/tenants/{slug}/limits", VIEWER),
    ("PUT", "/v1/tenants/{slug}/limits", ADMIN),
    // Servers: names, hosts, labels and counts; never the admin URL.
    ("GET", "/v1/servers", VIEWER),
    ("GET", "/v1/registry/health", VIEWER),
    // Waves (real and dry-run) and schedules: operators act, viewers read.
    ("GET", "/v1/waves", VIEWER),
    ("POST", "/v1/waves", OPERATOR),
    ("GET", "/v1/waves/{id}", VIEWER),
    ("GET", "/v1/waves/{id}/targets", VIEWER),
    ("GET", "/v1/waves/{id}/events", VIEWER),
    ("POST", "/v1/waves/{id}/pause", OPERATOR),
    ("POST", "/v1/waves/{id}/resume", OPERATOR),
    ("POST", "/v1/waves/{id}/abort", OPERATOR),
    ("POST", "/v1/waves/{id}/promote", OPERATOR),
    ("GET", "/v1/fleet", VIEWER),
    // Schema drift: viewers read it, operators start scans.
    ("GET", "/v1/drift", VIEWER),
    ("GET", "/v1/tenants/{slug}/drift", VIEWER),
    ("POST", "/v1/drift/scans", OPERATOR),
    ("GET", "/v1/drift/scans/{id}", VIEWER),
    ("GET", "/v1/schedules", VIEWER),
    ("POST", "/v1/schedules", OPERATOR),
    ("GET", "/v1/schedules/{name}", VIEWER),
    ("PATCH", "/v1/schedules/{name}", OPERATOR),
    ("DELETE", "/v1/schedules/{name}", OPERATOR),
    ("POST", "/v1/schedules/{name}/trigger", OPERATOR),
    ("GET", "/v1/cluster", VIEWER),
    // Migration sets: CI publishes with a publisher token (admins may too); deleting is
    // for admins.
    ("GET", "/v1/migration-sets", SET_READER),
    ("POST", "/v1/migration-sets", PUBLISHER),
    ("GET", "/v1/migration-sets/{id}", SET_READER),
    ("DELETE", "/v1/migration-sets/{id}", ADMIN),
    // Tokens: names, roles and dates are not secrets, so viewers may list them.
    ("GET", "/v1/tokens", VIEWER),
    ("POST", "/v1/tokens", ADMIN),
    ("DELETE", "/v1/tokens/{name}", ADMIN),
    ("GET", "/v1/events", VIEWER),
    ("GET", "/v1/events/stream", VIEWER),
    ("GET", "/v1/webhooks", VIEWER),
    ("POST", "/v1/webhooks", ADMIN),
    ("GET", "/v1/webhooks/{name}", VIEWER),
    ("DELETE", "/v1/webhooks/{name}", ADMIN),
    ("POST", "/v1/webhooks/{name}/test", ADMIN),
    ("GET", "/v1/resolve/{slug}", RESOLVER),
];

/// What `method route` needs. A matched route missing from the table (a method the path
/// does not serve, which then answers 405) needs admin: fail closed.
pub fn needed_role(method: &str, route: &str) -> Needed {
    ROUTE_ROLES
        .iter()
        .find(|(m, r, _)| *m == method && *r == route)
        .map_or(ADMIN, |(_, _, n)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_needs_what_its_own_method_and_path_are_listed_with() {
        // Same path, other methods: a lookup matching on the path alone, or on the method
        // alone, or with either comparison inverted, answers another row's role.
        assert_eq!(needed_role("GET", "/v1/tokens"), VIEWER);
        assert_eq!(needed_role("POST", "/v1/tokens"), ADMIN);
        assert_eq!(needed_role("GET", "/v1/resolve/{slug}"), RESOLVER);
        assert_eq!(needed_role("POST", "/v1/waves"), OPERATOR);
        assert_eq!(needed_role("POST", "/v1/migration-sets"), PUBLISHER);
        assert_eq!(needed_role("GET", "/v1/migration-sets"), SET_READER);
        assert_eq!(needed_role("GET", "/healthz"), Public);
    }

    #[test]
    fn a_method_the_table_does_not_list_needs_admin() {
        assert_eq!(needed_role("PUT", "/v1/waves"), ADMIN);
        assert_eq!(needed_role("GET", "/no/such/route"), ADMIN);
    }

    #[test]
    fn needed_lists_the_roles_any_of_which_is_enough() {
        assert_eq!(Public.roles(), Vec::<Role>::new());
        assert_eq!(OPERATOR.roles(), [Role::Operator]);
        assert_eq!(SET_READER.roles(), [Role::Viewer, Role::Publisher]);
    }
}
