//! Every configuration key, declared once in [`KEYS`]: its TOML name, its `DROVER_*`
//! variable, what happens when it is unset, and what it means. The file reader accepts
//! exactly these names, the environment reader reads exactly these variables, the builder
//! can only ask for a name listed here, and the tables below and in the README are checked
//! equal to the list by tests that print the lines to paste when they drift.
//!
//! | file key | env var | default | meaning |
//! |---|---|---|---|
//! | `database_url` | `DROVER_DATABASE_URL` | required | control-plane database |
//! | `listen` | `DROVER_LISTEN` | `127.0.0.1:8080` | HTTP listen address |
//! | — | `DROVER_ADMIN_TOKEN` | required by `serve` | root bearer token (role admin, actor `root`; ≥ 16 characters) |
//! | `admin_token_ref` | `DROVER_ADMIN_TOKEN_REF` | | admin token from a secret ref, e.g. `file:admin-token` |
//! | — | `DROVER_RESOLVER_TOKEN` | | resolver bearer token |
//! | `resolver_token_ref` | `DROVER_RESOLVER_TOKEN_REF` | | resolver token from a secret ref |
//! | `migrations_dir` | `DROVER_MIGRATIONS_DIR` | `./tenant-migrations` | tenant migrations used while no set was pushed (see [Migration sets](#migration-sets-published-by-ci)) |
//! | `secrets_dir` | `DROVER_SECRETS_DIR` | | directory `file:` refs are read under |
//! | `provision_url` | `DROVER_PROVISION_URL` | | admin connection for creating tenant databases: one provisioning server named `default` |
//! | `[[provision_servers]]` | — | | several provisioning servers, each `kind = "admin"` (the default: drover logs in and creates the role and database) or `kind = "external"` (a job of yours does, when asked; see [External provisioners](#external-provisioners)); not together with `provision_url` |
//! | `provision_db_name` | `DROVER_PROVISION_DB_NAME` | `t_{ident}` | `db_name` of a tenant created from its slug (`{slug}`; `{ident}` = slug with `-` → `_`) |
//! | `provision_db_user` | `DROVER_PROVISION_DB_USER` | `t_{ident}` | its `db_user` |
//! | `provision_secret_ref` | `DROVER_PROVISION_SECRET_REF` | `file:tenants/{slug}` | its `db_secret_ref` (must pass the secret-ref scope) |
//! | `provision_retries` | `DROVER_PROVISION_RETRIES` | `5` | automatic retries of a retryable provisioning failure |
//! | `provision_retry_backoff` | `DROVER_PROVISION_RETRY_BACKOFF` | `2s` | first provisioning retry delay (doubles, capped at 5 min) |
//! | `instance_id` | `DROVER_INSTANCE_ID` | hostname-pid | replica name |
//! | `log_format` | `DROVER_LOG_FORMAT` | `pretty` | `pretty` or `json` |
//! | `log` | `DROVER_LOG` | `info` | tracing filter, e.g. `info,drover=debug` (`tokio_postgres` is capped at `info`: at debug it would log statement texts and parameters) |
//! | `pool_size` | `DROVER_POOL_SIZE` | `16` | control-DB connections |
//! | `provisioning_stuck_after` | `DROVER_PROVISIONING_STUCK_AFTER` | `15m` | health report window |
//! | `shutdown_grace` | `DROVER_SHUTDOWN_GRACE` | `30s` | drain deadline on SIGTERM |
//! | `max_body_bytes` | `DROVER_MAX_BODY_BYTES` | `262144` | largest request body |
//! | `max_set_bytes` | `DROVER_MAX_SET_BYTES` | `16777216` | largest body of `POST /v1/migration-sets` (a whole set; other routes keep `max_body_bytes`) |
//! | `http_header_timeout` | `DROVER_HTTP_HEADER_TIMEOUT` | `10s` | a client must send a request's headers within this (also ends idle keep-alive connections); 1s to 5m |
//! | `http_max_connections` | `DROVER_HTTP_MAX_CONNECTIONS` | `1024` | connections the listener serves at once; more wait in the kernel's queue until one closes |
//! | `secret_ttl` | `DROVER_SECRET_TTL` | `60s` | resolved secrets reused this long |
//! | `secret_stale_for` | `DROVER_SECRET_STALE_FOR` | `5m` | past the TTL, serve the old value this long while the backend fails |
//! | `secret_negative_ttl` | `DROVER_SECRET_NEGATIVE_TTL` | `2s` | remember a failed read this long (don't hammer a broken backend) |
//! | `resolve_fresh_min_interval` | `DROVER_RESOLVE_FRESH_MIN_INTERVAL` | `10s` | a tenant's `?fresh=true` resolution bypasses the secret cache at most once this often; inside it the cached value (what the last fresh fetch found) is the answer |
//! | `secret_warm_limit` | `DROVER_SECRET_WARM_LIMIT` | `10000` | at most this many active tenants' secrets are fetched ahead when a replica starts (0: no warm-up) |
//! | `tenant_cache_ttl` | `DROVER_TENANT_CACHE_TTL` | `30s` | tenant rows cached for resolution; changes arrive by LISTEN/NOTIFY, the TTL is the fallback |
//! | `vault_addr` | `DROVER_VAULT_ADDR` | | Vault / OpenBao address for `vault:` refs |
//! | — | `DROVER_VAULT_TOKEN` | | Vault token (or `vault_token_file` / `DROVER_VAULT_TOKEN_FILE`) |
//! | `vault_token_file` | `DROVER_VAULT_TOKEN_FILE` | | file holding the Vault token (instead of `DROVER_VAULT_TOKEN`) |
//! | `vault_namespace` | `DROVER_VAULT_NAMESPACE` | | Vault namespace |
//! | `vault_timeout` | `DROVER_VAULT_TIMEOUT` | `5s` | per-request timeout |
//! | `ca_file` | `DROVER_CA_FILE` | webpki roots | CA bundle for `sslmode=verify-ca/verify-full` |
//! | `tls_cert_file` | `DROVER_TLS_CERT_FILE` | | serve HTTPS (rustls) with this certificate chain (PEM; with `tls_key_file`, both or neither); plain HTTP otherwise. The CLI trusts a private CA with `DROVER_SERVER_CA_FILE` |
//! | `tls_key_file` | `DROVER_TLS_KEY_FILE` | | the private key (PEM) of `tls_cert_file` |
//! | `wave_lease` | `DROVER_WAVE_LEASE` | `30s` | a claimed tenant is this replica's for this long (renewed every third) |
//! | `worker_slots` | `DROVER_WORKER_SLOTS` | `16` | tenants this replica migrates at once |
//! | `lock_wait` | `DROVER_LOCK_WAIT` | `10s` | how long to poll for a tenant's migration lock |
//! | `retry_backoff` | `DROVER_RETRY_BACKOFF` | `1s` | first retry delay (doubles, capped at 60 s) |
//! | `record_batch_age` | `DROVER_RECORD_BATCH_AGE` | `25ms` | how long a finished tenant's outcome waits to be recorded with others (64 make a batch at once; a final failure is recorded at once) |
//! | `leader_ttl` | `DROVER_LEADER_TTL` | `15s` | leader lease length (renewed every third) |
//! | `prometheus_url` | `DROVER_PROMETHEUS_URL` | | Prometheus base URL for `prometheus` analysis checks (no credentials in it) |
//! | `env_secret_prefix` | `DROVER_ENV_SECRET_PREFIX` | `TENANT_` | `env:` tenant refs may only name variables starting with this (never one matching `DROVER_`) |
//! | `vault_allowed_prefixes` | `DROVER_VAULT_ALLOWED_PREFIXES` | `secret/tenants` | comma-separated `mount/path` prefixes `vault:` tenant refs must be under; `*` allows any path (an explicit opt-in) |
//! | `file_secret_prefix` | `DROVER_FILE_SECRET_PREFIX` | `tenants/` | directory under `secrets_dir` that `file:` tenant refs must be under (provisioning writes there); none of drover's own files may lie in it |
//! | `webhook_secret_prefix` | `DROVER_WEBHOOK_SECRET_PREFIX` | `webhooks/` | directory under `secrets_dir` that `file:` webhook key refs must be under; none of drover's own files may lie in it |
//! | `aws_sm_allowed_prefixes` | `DROVER_AWS_SM_ALLOWED_PREFIXES` | `tenants/` | comma-separated secret name prefixes `aws-sm:` refs must start with (taken literally; an ARN's name part is checked); `*` allows any secret (an explicit opt-in) |
//! | `aws_sm_recovery_window_days` | `DROVER_AWS_SM_RECOVERY_WINDOW_DAYS` | `7` | days a secret drover deletes from AWS Secrets Manager (deprovisioning) can still be restored, 7 to 30; `0` deletes it without recovery |
//! | `aws_sm_timeout` | `DROVER_AWS_SM_TIMEOUT` | `5s` | longest one AWS Secrets Manager call may take, the SDK's retries included |
//! | `webhook_retry_backoff` | `DROVER_WEBHOOK_RETRY_BACKOFF` | `5s` | first retry delay of a failed webhook delivery (doubles, at most 1 h apart, jittered) |
//! | `webhook_give_up_after` | `DROVER_WEBHOOK_GIVE_UP_AFTER` | `24h` | a delivery still failing this long after its event is `dead` |
//! | `webhook_timeout` | `DROVER_WEBHOOK_TIMEOUT` | `10s` | longest a receiver may take to answer one delivery |
//! | `stream_max_clients` | `DROVER_STREAM_MAX_CLIENTS` | `256` | event stream clients per replica (more get 503 `too_many_streams`) |
//! | `stream_max_per_token` | `DROVER_STREAM_MAX_PER_TOKEN` | `4` | event streams one token (with its console sessions) may hold open on a replica (more get 429 `too_many_streams_for_token`) |
//! | `webhook_allowed_networks` | `DROVER_WEBHOOK_ALLOWED_NETWORKS` | | comma-separated networks (CIDR, e.g. `10.0.0.0/8`) webhooks may reach although they are not public (in-cluster receivers); loopback, link-local, private, CGNAT and unique-local addresses are refused otherwise, the control database always |
//! | `console_session_ttl` | `DROVER_CONSOLE_SESSION_TTL` | `8h` | web console session lifetime after login (the cookie's Max-Age too), 1m to 30d |
//! | `public_url` | `DROVER_PUBLIC_URL` | | the origin browsers reach drover at through a proxy, e.g. `https://drover.example.com` (no path): the only origin the console accepts logins and forms from; its session cookie is Secure when it is https |
//! | `trusted_proxies` | `DROVER_TRUSTED_PROXIES` | | comma-separated networks (CIDR, e.g. `10.0.0.0/8`) of proxies whose `X-Forwarded-Proto`, `-Host` and `-For` are believed; from any other peer they are ignored |
//! | `event_retention` | `DROVER_EVENT_RETENTION` | `180d` | tenant, wave and control events are kept this long (the feed, the timelines, the stream's history); a month whose events are all older is dropped whole; at least 1s |
//! | `webhook_delivered_retention` | `DROVER_WEBHOOK_DELIVERED_RETENTION` | `14d` | a delivered webhook delivery is kept this long after it succeeded; at least 1s |
//! | `webhook_dead_retention` | `DROVER_WEBHOOK_DEAD_RETENTION` | `90d` | a `dead` webhook delivery is kept this long after it gave up; at least 1s |
//! | `evaluation_retention` | `DROVER_EVALUATION_RETENTION` | `30d` | analysis check measurements are kept this long; at least 1s |
//! | `console_session_retention` | `DROVER_CONSOLE_SESSION_RETENTION` | `1d` | an expired console session row is kept this long after it expired; at least 1s |
//! | `schedule_fire_retention` | `DROVER_SCHEDULE_FIRE_RETENTION` | `90d` | a handled schedule tick is kept this long (each schedule's newest always); at least 1s |
//! | `prune_interval` | `DROVER_PRUNE_INTERVAL` | `10m` | how often the leader removes rows past their retention (in batches of 1,000); at least 1s |
//! | `reserved_slugs` | `DROVER_RESERVED_SLUGS` | `www, api, admin, app, mail, smtp, imap, ftp, status, drover, blog, docs, help, support, dashboard, console, portal, login, signup, auth, sso, account, billing, static, assets, cdn, dev, staging, test, demo` | comma-separated slugs no tenant may be created with or renamed to (422 `slug_reserved`); drover's own route and system names (`healthz`, `v1`, `template0`, …) are reserved besides |
//! | `portal_url_template` | `DROVER_PORTAL_URL_TEMPLATE` | | a tenant's `portal_url` unless one is set explicitly: an http(s) URL with `{slug}`, e.g. `https://{slug}.example.com` |
//! | `trial_warning_before` | `DROVER_TRIAL_WARNING_BEFORE` | `3d` | how long before a trial ends (`trial_ends_at`) the `tenant.trial_ending` event is sent |
//! | `rename_alias_ttl` | `DROVER_RENAME_ALIAS_TTL` | `7d` | how long a renamed tenant's old slug resolves to it (answering with the new slug) and stays reserved |
//! | `drift_scan_interval` | `DROVER_DRIFT_SCAN_INTERVAL` | | how often the leader fingerprints every live tenant's schema (a schema drift scan, e.g. `6h`); unset: only on request (`POST /v1/drift/scans`, `drover drift scan`) and after each migration |
//! | `drift_after_migration` | `DROVER_DRIFT_AFTER_MIGRATION` | `true` | take a tenant's schema fingerprint on its connection after each migration run that applied something (`false`: only scans do; saves a catalog read per migrated tenant) |
//! | `drift_scan_concurrency` | `DROVER_DRIFT_SCAN_CONCURRENCY` | `8` | tenants a schema drift scan reads at once, 1 to 256 |
//! | `drift_scan_max_per_host` | `DROVER_DRIFT_SCAN_MAX_PER_HOST` | `4` | tenants of one database host a schema drift scan reads at once, 1 to 256 |
//! | `drift_scratch_url` | `DROVER_DRIFT_SCRATCH_URL` | | admin connection (PostgreSQL URL, may create databases) where drover creates and drops a scratch database to replay each migration set: the expected schema of each version; unset: the schema most tenants at a version share is the reference |
//! | `gcp_projects` | `DROVER_GCP_PROJECTS` | | comma-separated Google Cloud project ids `gcp-sm:` tenant refs may name; unset: the `gcp-sm:` backend is off (credentials: Application Default Credentials) |
//! | `gcp_sm_allowed_prefixes` | `DROVER_GCP_SM_ALLOWED_PREFIXES` | `tenants-` | comma-separated prefixes a `gcp-sm:` tenant ref's secret name must start with |
//! | `gcp_sm_endpoint` | `DROVER_GCP_SM_ENDPOINT` | | Secret Manager endpoint instead of `https://secretmanager.googleapis.com` (a private endpoint; the tests' fake) |
//! | `azure_vaults` | `DROVER_AZURE_VAULTS` | | comma-separated Key Vault names `azure-kv:` tenant refs may name; unset: the `azure-kv:` backend is off (credentials: workload identity, else managed identity) |
//! | `azure_kv_allowed_prefixes` | `DROVER_AZURE_KV_ALLOWED_PREFIXES` | `tenants-` | comma-separated prefixes an `azure-kv:` tenant ref's secret name must start with |
//! | `azure_kv_endpoint` | `DROVER_AZURE_KV_ENDPOINT` | | URL replacing `https://VAULT.vault.azure.net` for every vault (a private endpoint under another name; the tests' fake); must be https for tokens to be sent |
//! | `azure_kv_ca_file` | `DROVER_AZURE_KV_CA_FILE` | | PEM certificates trusted besides the public roots for Key Vault's TLS (a private CA or TLS-inspecting proxy) |
//!
//! Why the parse functions are not in the list: each returns its own type (`SocketAddr`,
//! `Duration`, `LogFormat`, …) and several keys are validated together (a token and its
//! `_ref`, the TLS pair, Vault's address and token), so they live in `build.rs` where the
//! typed [`super::Config`] is assembled. The builder asks for keys by name; a name missing
//! here panics in every test that loads a configuration, and a key listed here that the
//! builder never reads fails `every_declared_key_is_read_by_the_builder`.

use crate::registry::DEFAULT_RESERVED_SLUGS;
use crate::secrets::{
    DEFAULT_AWS_SM_PREFIXES, DEFAULT_CLOUD_PREFIXES, DEFAULT_ENV_PREFIX, DEFAULT_FILE_PREFIX,
    DEFAULT_RECOVERY_WINDOW_DAYS, DEFAULT_VAULT_PREFIXES, DEFAULT_WEBHOOK_PREFIX,
};
use crate::waves::executor::RECORD_BATCH_AGE;
use IfUnset::{Note, Nothing, Value};

/// Where a key may be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A plain value in the file, or `DROVER_` + upper-case name in the environment.
    FileOrEnv,
    /// Only the environment (plain tokens: files get copied around).
    EnvOnly,
    /// Only the file, as an array of tables (`[[name]]`).
    FileTables,
}

/// What a key is when unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfUnset {
    /// This value, parsed like one that was set.
    Value(&'static str),
    /// No value; the note says what happens instead (required, computed, built in).
    Note(&'static str),
    /// No value and nothing to say.
    Nothing,
}

/// One configuration key.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The TOML key; its variable is `DROVER_` + the name in upper case.
    pub name: &'static str,
    /// Where it may be set.
    pub source: Source,
    /// What it is when unset.
    pub unset: IfUnset,
    /// What it means, as shown in the README's table.
    pub doc: &'static str,
}

const fn key(name: &'static str, unset: IfUnset, doc: &'static str) -> Key {
    Key {
        name,
        source: Source::FileOrEnv,
        unset,
        doc,
    }
}

const fn env_only(name: &'static str, unset: IfUnset, doc: &'static str) -> Key {
    Key {
        name,
        source: Source::EnvOnly,
        unset,
        doc,
    }
}

/// Every key, in the order the tables show them.
pub const KEYS: &[Key] = &[
    key("database_url", Note("required"), "control-plane database"),
    key("listen", Value("127.0.0.1:8080"), "HTTP listen address"),
    env_only("admin_token", Note("required by `serve`"), "root bearer token (role admin, actor `root`; ≥ 16 characters)"),
    key("admin_token_ref", Nothing, "admin token from a secret ref, e.g. `file:admin-token`"),
    env_only("resolver_token", Nothing, "resolver bearer token"),
    key("resolver_token_ref", Nothing, "resolver token from a secret ref"),
    key("migrations_dir", Value("./tenant-migrations"), "tenant migrations used while no set was pushed (see [Migration sets](#migration-sets-published-by-ci))"),
    key("secrets_dir", Nothing, "directory `file:` refs are read under"),
    key("provision_url", Nothing, "admin connection for creating tenant databases: one provisioning server named `default`"),
    Key {
        name: "provision_servers",
        source: Source::FileTables,
        unset: Nothing,
        doc: "several provisioning servers, each `kind = \"admin\"` (the default: drover logs in and creates the role and database) or `kind = \"external\"` (a job of yours does, when asked; see [External provisioners](#external-provisioners)); not together with `provision_url`",
    },
    key("provision_db_name", Value("t_{ident}"), "`db_name` of a tenant created from its slug (`{slug}`; `{ident}` = slug with `-` → `_`)"),
    key("provision_db_user", Value("t_{ident}"), "its `db_user`"),
    key("provision_secret_ref", Value("file:tenants/{slug}"), "its `db_secret_ref` (must pass the secret-ref scope)"),
    key("provision_retries", Value("5"), "automatic retries of a retryable provisioning failure"),
    key("provision_retry_backoff", Value("2s"), "first provisioning retry delay (doubles, capped at 5 min)"),
    key("instance_id", Note("hostname-pid"), "replica name"),
    key("log_format", Value("pretty"), "`pretty` or `json`"),
    key("log", Value("info"), "tracing filter, e.g. `info,drover=debug` (`tokio_postgres` is capped at `info`: at debug it would log statement texts and parameters)"),
    key("pool_size", Value("16"), "control-DB connections"),
    key("provisioning_stuck_after", Value("15m"), "health report window"),
    key("shutdown_grace", Value("30s"), "drain deadline on SIGTERM"),
    key("max_body_bytes", Value("262144"), "largest request body"),
    key("max_set_bytes", Value("16777216"), "largest body of `POST /v1/migration-sets` (a whole set; other routes keep `max_body_bytes`)"),
    key("http_header_timeout", Value("10s"), "a client must send a request's headers within this (also ends idle keep-alive connections); 1s to 5m"),
    key("http_max_connections", Value("1024"), "connections the listener serves at once; more wait in the kernel's queue until one closes"),
    key("secret_ttl", Value("60s"), "resolved secrets reused this long"),
    key("secret_stale_for", Value("5m"), "past the TTL, serve the old value this long while the backend fails"),
    key("secret_negative_ttl", Value("2s"), "remember a failed read this long (don't hammer a broken backend)"),
    key("resolve_fresh_min_interval", Value("10s"), "a tenant's `?fresh=true` resolution bypasses the secret cache at most once this often; inside it the cached value (what the last fresh fetch found) is the answer"),
    key("secret_warm_limit", Value("10000"), "at most this many active tenants' secrets are fetched ahead when a replica starts (0: no warm-up)"),
    key("tenant_cache_ttl", Value("30s"), "tenant rows cached for resolution; changes arrive by LISTEN/NOTIFY, the TTL is the fallback"),
    key("vault_addr", Nothing, "Vault / OpenBao address for `vault:` refs"),
    env_only("vault_token", Nothing, "Vault token (or `vault_token_file` / `DROVER_VAULT_TOKEN_FILE`)"),
    key("vault_token_file", Nothing, "file holding the Vault token (instead of `DROVER_VAULT_TOKEN`)"),
    key("vault_namespace", Nothing, "Vault namespace"),
    key("vault_timeout", Value("5s"), "per-request timeout"),
    key("ca_file", Note("webpki roots"), "CA bundle for `sslmode=verify-ca/verify-full`"),
    key("tls_cert_file", Nothing, "serve HTTPS (rustls) with this certificate chain (PEM; with `tls_key_file`, both or neither); plain HTTP otherwise. The CLI trusts a private CA with `DROVER_SERVER_CA_FILE`"),
    key("tls_key_file", Nothing, "the private key (PEM) of `tls_cert_file`"),
    key("wave_lease", Value("30s"), "a claimed tenant is this replica's for this long (renewed every third)"),
    key("worker_slots", Value("16"), "tenants this replica migrates at once"),
    key("lock_wait", Value("10s"), "how long to poll for a tenant's migration lock"),
    key("retry_backoff", Value("1s"), "first retry delay (doubles, capped at 60 s)"),
    key("record_batch_age", Value(RECORD_BATCH_AGE), "how long a finished tenant's outcome waits to be recorded with others (64 make a batch at once; a final failure is recorded at once)"),
    key("leader_ttl", Value("15s"), "leader lease length (renewed every third)"),
    key("prometheus_url", Nothing, "Prometheus base URL for `prometheus` analysis checks (no credentials in it)"),
    key("env_secret_prefix", Value(DEFAULT_ENV_PREFIX), "`env:` tenant refs may only name variables starting with this (never one matching `DROVER_`)"),
    key("vault_allowed_prefixes", Value(DEFAULT_VAULT_PREFIXES), "comma-separated `mount/path` prefixes `vault:` tenant refs must be under; `*` allows any path (an explicit opt-in)"),
    key("file_secret_prefix", Value(DEFAULT_FILE_PREFIX), "directory under `secrets_dir` that `file:` tenant refs must be under (provisioning writes there); none of drover's own files may lie in it"),
    key("webhook_secret_prefix", Value(DEFAULT_WEBHOOK_PREFIX), "directory under `secrets_dir` that `file:` webhook key refs must be under; none of drover's own files may lie in it"),
    key("aws_sm_allowed_prefixes", Value(DEFAULT_AWS_SM_PREFIXES), "comma-separated secret name prefixes `aws-sm:` refs must start with (taken literally; an ARN's name part is checked); `*` allows any secret (an explicit opt-in)"),
    key("aws_sm_recovery_window_days", Value(DEFAULT_RECOVERY_WINDOW_DAYS), "days a secret drover deletes from AWS Secrets Manager (deprovisioning) can still be restored, 7 to 30; `0` deletes it without recovery"),
    key("aws_sm_timeout", Value("5s"), "longest one AWS Secrets Manager call may take, the SDK's retries included"),
    key("webhook_retry_backoff", Value("5s"), "first retry delay of a failed webhook delivery (doubles, at most 1 h apart, jittered)"),
    key("webhook_give_up_after", Value("24h"), "a delivery still failing this long after its event is `dead`"),
    key("webhook_timeout", Value("10s"), "longest a receiver may take to answer one delivery"),
    key("stream_max_clients", Value("256"), "event stream clients per replica (more get 503 `too_many_streams`)"),
    key("stream_max_per_token", Value("4"), "event streams one token (with its console sessions) may hold open on a replica (more get 429 `too_many_streams_for_token`)"),
    key("webhook_allowed_networks", Nothing, "comma-separated networks (CIDR, e.g. `10.0.0.0/8`) webhooks may reach although they are not public (in-cluster receivers); loopback, link-local, private, CGNAT and unique-local addresses are refused otherwise, the control database always"),
    key("console_session_ttl", Value("8h"), "web console session lifetime after login (the cookie's Max-Age too), 1m to 30d"),
    key("public_url", Nothing, "the origin browsers reach drover at through a proxy, e.g. `https://drover.example.com` (no path): the only origin the console accepts logins and forms from; its session cookie is Secure when it is https"),
    key("trusted_proxies", Nothing, "comma-separated networks (CIDR, e.g. `10.0.0.0/8`) of proxies whose `X-Forwarded-Proto`, `-Host` and `-For` are believed; from any other peer they are ignored"),
    key("event_retention", Value("180d"), "tenant, wave and control events are kept this long (the feed, the timelines, the stream's history); a month whose events are all older is dropped whole; at least 1s"),
    key("webhook_delivered_retention", Value("14d"), "a delivered webhook delivery is kept this long after it succeeded; at least 1s"),
    key("webhook_dead_retention", Value("90d"), "a `dead` webhook delivery is kept this long after it gave up; at least 1s"),
    key("evaluation_retention", Value("30d"), "analysis check measurements are kept this long; at least 1s"),
    key("console_session_retention", Value("1d"), "an expired console session row is kept this long after it expired; at least 1s"),
    key("schedule_fire_retention", Value("90d"), "a handled schedule tick is kept this long (each schedule's newest always); at least 1s"),
    key("prune_interval", Value("10m"), "how often the leader removes rows past their retention (in batches of 1,000); at least 1s"),
    key("reserved_slugs", Value(DEFAULT_RESERVED_SLUGS), "comma-separated slugs no tenant may be created with or renamed to (422 `slug_reserved`); drover's own route and system names (`healthz`, `v1`, `template0`, …) are reserved besides"),
    key("portal_url_template", Nothing, "a tenant's `portal_url` unless one is set explicitly: an http(s) URL with `{slug}`, e.g. `https://{slug}.example.com`"),
    key("trial_warning_before", Value("3d"), "how long before a trial ends (`trial_ends_at`) the `tenant.trial_ending` event is sent"),
    key("rename_alias_ttl", Value("7d"), "how long a renamed tenant's old slug resolves to it (answering with the new slug) and stays reserved"),
    key("drift_scan_interval", Nothing, "how often the leader fingerprints every live tenant's schema (a schema drift scan, e.g. `6h`); unset: only on request (`POST /v1/drift/scans`, `drover drift scan`) and after each migration"),
    key("drift_after_migration", Value("true"), "take a tenant's schema fingerprint on its connection after each migration run that applied something (`false`: only scans do; saves a catalog read per migrated tenant)"),
    key("drift_scan_concurrency", Value("8"), "tenants a schema drift scan reads at once, 1 to 256"),
    key("drift_scan_max_per_host", Value("4"), "tenants of one database host a schema drift scan reads at once, 1 to 256"),
    key("drift_scratch_url", Nothing, "admin connection (PostgreSQL URL, may create databases) where drover creates and drops a scratch database to replay each migration set: the expected schema of each version; unset: the schema most tenants at a version share is the reference"),
    key("gcp_projects", Nothing, "comma-separated Google Cloud project ids `gcp-sm:` tenant refs may name; unset: the `gcp-sm:` backend is off (credentials: Application Default Credentials)"),
    key("gcp_sm_allowed_prefixes", Value(DEFAULT_CLOUD_PREFIXES), "comma-separated prefixes a `gcp-sm:` tenant ref's secret name must start with"),
    key("gcp_sm_endpoint", Nothing, "Secret Manager endpoint instead of `https://secretmanager.googleapis.com` (a private endpoint; the tests' fake)"),
    key("azure_vaults", Nothing, "comma-separated Key Vault names `azure-kv:` tenant refs may name; unset: the `azure-kv:` backend is off (credentials: workload identity, else managed identity)"),
    key("azure_kv_allowed_prefixes", Value(DEFAULT_CLOUD_PREFIXES), "comma-separated prefixes an `azure-kv:` tenant ref's secret name must start with"),
    key("azure_kv_endpoint", Nothing, "URL replacing `https://VAULT.vault.azure.net` for every vault (a private endpoint under another name; the tests' fake); must be https for tokens to be sent"),
    key("azure_kv_ca_file", Nothing, "PEM certificates trusted besides the public roots for Key Vault's TLS (a private CA or TLS-inspecting proxy)"),
];

/// `DROVER_` + the name in upper case.
pub fn env_name(name: &str) -> String {
    format!("DROVER_{}", name.to_ascii_uppercase())
}

/// The key called `name`. Asking for one that is not declared is a bug in the builder,
/// caught by every test that loads a configuration.
pub fn get(name: &str) -> &'static Key {
    KEYS.iter()
        .find(|k| k.name == name)
        .unwrap_or_else(|| unreachable!("config key {name} is not declared in config::keys::KEYS"))
}

impl Key {
    /// The key's row of the configuration table (README and this module's header).
    pub fn table_row(&self) -> String {
        let (file, env) = match self.source {
            Source::FileOrEnv => (
                format!("`{}`", self.name),
                format!("`{}`", env_name(self.name)),
            ),
            Source::EnvOnly => ("—".to_string(), format!("`{}`", env_name(self.name))),
            Source::FileTables => (format!("`[[{}]]`", self.name), "—".to_string()),
        };
        let unset = match self.unset {
            Value(v) => format!("`{v}`"),
            Note(n) => n.to_string(),
            Nothing => String::new(),
        };
        let unset = if unset.is_empty() {
            " ".to_string()
        } else {
            format!(" {unset} ")
        };
        format!("| {file} | {env} |{unset}| {} |", self.doc)
    }
}

/// The whole table, header included, as the README and this module's header show it.
pub fn table() -> String {
    let mut out = String::from("| file key | env var | default | meaning |\n|---|---|---|---|\n");
    for k in KEYS {
        out.push_str(&k.table_row());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table rows of `text` that start at the configuration table's header.
    fn table_in(text: &str, prefix: &str) -> String {
        let mut out = String::new();
        let mut inside = false;
        for line in text.lines() {
            let Some(line) = line.strip_prefix(prefix) else {
                if inside {
                    break;
                }
                continue;
            };
            if line.starts_with("| file key | env var |") {
                inside = true;
            }
            if inside {
                if !line.starts_with('|') {
                    break;
                }
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    fn assert_table(what: &str, found: &str, prefix: &str) {
        let want = table();
        if found != want {
            let missing: Vec<_> = want.lines().filter(|l| !found.contains(l)).collect();
            let extra: Vec<_> = found.lines().filter(|l| !want.contains(l)).collect();
            let first = format!(
                "rows missing or changed:\n  {}\nrows to remove:\n  {}\n",
                missing.join("\n  "),
                extra.join("\n  ")
            );
            let paste: String = want.lines().map(|l| format!("{prefix}{l}\n")).collect();
            panic!("{what}'s configuration table differs from config::keys::KEYS; {first}paste this:\n{paste}");
        }
    }

    #[test]
    fn the_module_header_table_is_the_key_list() {
        assert_table(
            "src/config/keys.rs",
            &table_in(include_str!("keys.rs"), "//! "),
            "//! ",
        );
    }

    #[test]
    fn the_readme_table_is_the_key_list() {
        assert_table(
            "README.md",
            &table_in(include_str!("../../README.md"), ""),
            "",
        );
    }

    #[test]
    fn every_key_has_a_unique_name_and_a_meaning() {
        for (i, k) in KEYS.iter().enumerate() {
            assert!(!k.doc.is_empty(), "{} has no meaning", k.name);
            assert!(
                !k.doc.contains('|'),
                "{}'s meaning would break the table",
                k.name
            );
            assert!(
                KEYS[..i].iter().all(|o| o.name != k.name),
                "{} is declared twice",
                k.name
            );
        }
    }
}
