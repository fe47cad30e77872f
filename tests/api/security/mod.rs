//! Attacks on a running daemon, each a test named for what it tries.

mod dry_run;
