//! drover: tenant registry, slug → DSN resolution and fleet-wide schema migration waves
//! for SaaS platforms that give every tenant its own PostgreSQL database.
//!
//! Data flow:
//!
//! ```text
//!  CLI / HTTP ──► http (auth: access roles + tokens, JSON errors) ──► registry (all tenant SQL, events in the same tx)
//!                                                  │
//!  config (TOML + DROVER_* env) ──► app::run ──────┼──► db (control pool, control migrations
//!                                                  │       under an advisory lock)
//!  secrets (env:/file:/vault: refs, never values) ┘
//!
//!  provision ──► admin connection: role + database ──► secrets (write) ──► migrate (one tenant)
//!  waves ──► claims in the control DB ──► migrate (one tenant, advisory lock) per target
//!  waves, analysis, provision ──► resolve::Connector (tenant row → connection)
//!                             ──► sets::Catalog (the files a plan's source names)
//!  resolve ──► registry + secrets, cached; schedule ──► leader lease ──► waves
//!  events: tenant_events + wave_events ──► feed, SSE stream, webhook outbox (trigger) ──► worker
//!  manifest (YAML tenant definitions → plan) ──► CLI `apply`/`export`, `PUT /v1/tenants/{slug}`
//!  drift: catalog fingerprint per tenant (after each migration, by scans) ──► cohorts vs the
//!         expected schema (a replay on a scratch database, else the majority) ──► events, waves
//! ```
//!
//! One owner per control-DB table: only the owning module has SQL text for it, and the
//! others call it (a function taking their client when they need it inside their own
//! transaction, or a SQL fragment, as `registry::queries` offers for claims and selection).
//!
//! | tables | owner |
//! |---|---|
//! | `tenants`, `tenant_limits`, `tenant_events` (writes) | [`registry`] |
//! | `waves`, `wave_targets`, `wave_events` (writes), `wave_host_limits`, `wave_checks`, `wave_check_evaluations` | [`waves`] |
//! | `schedules`, `schedule_fires`, `leader`, `replicas` | [`schedule`] |
//! | `migration_sets`, `migration_set_files`, `migration_set_labels` | [`sets`] |
//! | `webhooks`, `webhook_deliveries`, `event_types`; reads of the merged feed over `tenant_events` and `wave_events` | [`events`] |
//! | `provision_requests` (external provisioners' requests and callback tokens) | [`provision`] |
//! | `access_tokens` | [`access`] |
//! | `drift_schemas`, `tenant_drift`, `drift_expected`, `drift_scans` | [`drift`] |
//! | `console_sessions` | [`console`] |
//! | `refinery_schema_history` (control migrations) | [`db`] |
//!
//! [`metrics`] and the console's pages have no SQL of their own for these tables.
//!
//! `main.rs` parses the command line and calls [`cli::run`]; everything else lives here so
//! the integration tests drive the same code paths as the binary.

pub mod access;
pub mod app;
pub mod audit;
pub mod cache;
pub mod cli;
pub mod config;
pub mod console;
pub mod db;
pub mod devcluster;
pub mod drift;
pub mod duration;
pub mod events;
pub mod http;
pub mod lint;
pub mod listen;
pub mod manifest;
pub mod metrics;
pub mod migrate;
pub mod origin;
pub mod preflight;
pub mod provision;
pub mod registry;
pub mod resolve;
pub mod retention;
pub mod schedule;
pub mod secrets;
pub mod sets;
pub mod state;
pub mod tasks;
pub mod tls;
pub mod waves;
