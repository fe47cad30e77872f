//! Tests that pin what the wave engine and access control must keep while they are
//! rewritten (batched claims and records): each speaks the API from outside and checks
//! effects (tenant histories, `schema_version`, events, what the tenant server saw), and
//! its comment names the bug it catches.
//!
//! - `access_matrix`: every role × every route, expected answers written from the README;
//! - `concurrency`: `max_concurrency`, `max_per_host` and the adaptive host limit measured
//!   on the tenant server across two replicas;
//! - `budget`: a tolerant percentage budget lets a wave finish; a burst of failures stops
//!   one past `max_failures`; no batch tenant is claimed before the canaries pass;
//! - `operator_actions`: pause and abort stop new work; resume leaves succeeded tenants;
//! - `coverage`: which tenants a wave covers, by status, also after the plan froze;
//! - `crash_windows`: "committed but not recorded" and "lease lost", forced;
//! - `sets`: `latest` after a re-push; set rows immutable.

mod access_matrix;
mod budget;
mod concurrency;
mod coverage;
mod crash_windows;
mod operator_actions;
mod sets;
mod support;
