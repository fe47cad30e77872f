//! Attacks on a running daemon, each a test named for what it tried, black box over HTTP.

mod actors;
mod dry_run;
mod leaks;
mod load;
mod proxy;
mod refs;
mod streams;
mod webhooks;
