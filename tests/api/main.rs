//! Integration tests: the real daemon, the real CLI binary, a real PostgreSQL.

mod helpers;

mod access;
mod analysis;
mod apply;
mod auth;
mod bad_input;
mod browser;
mod cli;
mod console;
mod control_schema;
mod deploy;
mod dry_run;
mod events;
mod lifecycle;
mod lint;
mod migration_sets;
mod observability;
mod openapi;
mod openbao;
mod pins_misc;
mod preflight;
mod provision;
mod readme;
mod registry_check;
mod replicas;
mod resolve;
mod safety;
mod schedules;
mod security;
mod supervisor;
mod tenants;
mod timeline;
mod tls;
mod wave_pins;
mod waves;
