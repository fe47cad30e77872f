//! What a sql check may run, decided at wave (or schedule) creation by PostgreSQL's own
//! parser (`pg_query`): exactly one plain `SELECT` that calls none of the functions below.
//!
//! A check runs on every canary in a read-only transaction under a statement timeout, so
//! it cannot write and cannot run long. What that leaves is reaching *past* its own
//! transaction: other sessions, the server, its files, other databases, and SQL hidden in
//! a string where this walk cannot see it. Those are refused by name (the last part of a
//! qualified name, so `pg_catalog.pg_terminate_backend` is caught too):
//!
//! - other sessions and the server: `pg_terminate_backend`, `pg_cancel_backend`,
//!   `pg_reload_conf`, `pg_rotate_logfile`, `pg_promote`, `pg_switch_wal`, backups,
//!   replication slots and origins, statistics resets, `pg_log_backend_memory_contexts`;
//! - locks that outlive the statement or block other sessions: advisory locks;
//! - the server's files: `pg_read_file`, `pg_read_binary_file`, `pg_ls_*dir`,
//!   `pg_stat_file`, `pg_current_logfile`, large objects (`lo_*`, `loread`, `lowrite`);
//! - other databases and hosts: `dblink*`;
//! - settings and messages seen by others: `set_config`, `pg_notify`;
//! - SQL in a string: `query_to_xml` and its siblings run their text argument, unchecked.
//!
//! `pg_sleep` is allowed: the check's statement timeout ends it like any slow query.
//! What a read-only transaction already refuses (a data-modifying `WITH`, `FOR UPDATE`,
//! `nextval`, `setval`, `txid_current`) needs no entry: it fails at run time with `25006
//! read_only_sql_transaction`, an inconclusive measurement.

use pg_query::{NodeEnum, NodeRef};

/// Functions refused by exact name.
const DENIED: &[&str] = &[
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_promote",
    "pg_switch_wal",
    "pg_create_restore_point",
    "pg_log_backend_memory_contexts",
    "pg_read_file",
    "pg_read_binary_file",
    "pg_stat_file",
    "pg_current_logfile",
    "set_config",
    "pg_notify",
    "loread",
    "lowrite",
    "query_to_xml",
    "query_to_xml_and_xmlschema",
    "query_to_xmlschema",
    "cursor_to_xml",
    "cursor_to_xmlschema",
];

/// Functions refused by prefix (families).
const DENIED_PREFIXES: &[&str] = &[
    "pg_advisory_",
    "pg_try_advisory_",
    "dblink",
    "lo_",
    "pg_ls_",
    "pg_backup_",
    "pg_stat_reset",
    "pg_replication_",
    "pg_create_",
    "pg_drop_replication_slot",
    "pg_copy_",
    "pg_logical_",
    "pg_file_",
];

/// Whether a check may call the function named `name` (lower case, unqualified).
fn denied(name: &str) -> bool {
    DENIED.contains(&name) || DENIED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Why `query` may not be a sql check, if it may not.
pub fn refuse(query: &str) -> Option<String> {
    let parsed = match pg_query::parse(query) {
        Ok(p) => p,
        Err(e) => return Some(format!("query does not parse: {e}")),
    };
    let stmts = &parsed.protobuf.stmts;
    if stmts.len() != 1 {
        return Some(format!(
            "query must be exactly one SELECT statement, found {}",
            stmts.len()
        ));
    }
    match stmts[0].stmt.as_ref().and_then(|s| s.node.as_ref()) {
        Some(NodeEnum::SelectStmt(s)) if s.into_clause.is_none() => {}
        Some(NodeEnum::SelectStmt(_)) => {
            return Some("query must be a plain SELECT, not SELECT … INTO".into())
        }
        _ => return Some("query must be a SELECT statement".into()),
    }
    for (node, _, _, _) in parsed.protobuf.nodes() {
        let NodeRef::FuncCall(f) = node else {
            continue;
        };
        let name = f.funcname.last().and_then(|n| match n.node.as_ref() {
            Some(NodeEnum::String(s)) => Some(s.sval.to_ascii_lowercase()),
            _ => None,
        });
        if let Some(name) = name.filter(|n| denied(n)) {
            return Some(format!(
                "query calls {name}(), which reaches beyond the check's own read-only transaction"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::refuse;

    #[test]
    fn plain_selects_pass() {
        for ok in [
            "SELECT count(*) = 0 FROM orders WHERE total < 0",
            "SELECT (SELECT string_agg(email, ',') FROM users)::int = 1",
            "WITH x AS (SELECT 1 AS n) SELECT n = 1 FROM x",
            "SELECT pg_sleep(0.1) IS NOT NULL",
        ] {
            assert_eq!(refuse(ok), None, "{ok}");
        }
    }

    #[test]
    fn other_statements_and_reaching_functions_are_refused_by_name() {
        let cases = [
            ("SELECT 1; SELECT 2", "exactly one"),
            ("DELETE FROM users", "SELECT statement"),
            ("SELECT 1 INTO t", "SELECT … INTO"),
            (
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
                "pg_terminate_backend",
            ),
            (
                "SELECT pg_catalog.PG_CANCEL_BACKEND(1)",
                "pg_cancel_backend",
            ),
            (
                "SELECT true FROM (SELECT pg_advisory_lock(1)) x",
                "pg_advisory_lock",
            ),
            (
                "SELECT count(*) > 0 FROM dblink('h', 'q') AS t(a int)",
                "dblink",
            ),
            (
                "SELECT length(pg_read_file('/etc/passwd')) > 0",
                "pg_read_file",
            ),
            ("SELECT lo_import('/etc/passwd') > 0", "lo_import"),
            ("SELECT set_config('a.b', 'c', false) = 'c'", "set_config"),
            (
                "SELECT query_to_xml('DELETE FROM t', true, true, '') IS NULL",
                "query_to_xml",
            ),
            ("SELEC 1", "does not parse"),
        ];
        for (q, why) in cases {
            let got = refuse(q).unwrap_or_else(|| panic!("{q} passed"));
            assert!(got.contains(why), "{q}: {got}");
        }
    }
}
