//! Tests that pin a behaviour a plausible bug would break while every other test stays
//! green. Each test's comment names the bug it pins; each was seen failing with that bug
//! put in by hand.
//!
//! - [`schedules`]: the missed-tick policy, `on_overlap: queue`, disabled schedules, and
//!   only the lease holder firing;
//! - [`webhooks`]: a delivery given up (`dead`) after `webhook_give_up_after`, and no
//!   duplicate over a whole retry period;
//! - [`provisioning`]: retries that log in with the stored password, and the retry cap;
//! - [`lint_range`]: the lint gate over a mixed fleet and on schedule ticks;
//! - [`resolve`]: a slug re-created after a soft delete;
//! - [`console`]: another session's CSRF token, a foreign `Origin` on the login form;
//! - [`drain`]: a request held across a stop completes.

mod console;
mod drain;
mod lint_range;
mod provisioning;
mod resolve;
mod schedules;
mod webhooks;
