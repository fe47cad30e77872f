//! The rules, one function per statement kind. Each rule's id, level and documentation
//! line are in [`RULES`]; a rule's message says what goes wrong on a busy tenant, its fix
//! how to write the statement instead.

use std::collections::HashSet;

use pg_query::protobuf::{
    a_const, AlterTableCmd, AlterTableStmt, AlterTableType, ConstrType, Constraint, DropStmt,
    IndexStmt, ObjectType, RangeVar, RenameStmt,
};
use pg_query::{NodeEnum, NodeRef};

use super::{Finding, Level};
use crate::migrate::split::{stmt_range, Scanned};
use crate::migrate::MigrationFile;

/// id, level, documentation.
pub const RULES: &[(&str, Level, &str)] = &[
    ("syntax-error", Level::Error, "the file does not parse as PostgreSQL"),
    ("require-concurrent-index-creation", Level::Error,
     "CREATE INDEX on an existing table blocks its writes for the whole build; use CREATE INDEX CONCURRENTLY in a `-- drover:no-transaction` file"),
    ("require-concurrent-index-deletion", Level::Error,
     "DROP INDEX takes an ACCESS EXCLUSIVE lock on the table; use DROP INDEX CONCURRENTLY in a `-- drover:no-transaction` file"),
    ("concurrent-in-transaction", Level::Error,
     "CONCURRENTLY cannot run inside a transaction: the file needs `-- drover:no-transaction` as its first line"),
    ("adding-not-nullable-field", Level::Error,
     "ADD COLUMN … NOT NULL without a DEFAULT fails on any tenant whose table has rows; add a DEFAULT, or add it nullable and backfill"),
    ("adding-field-with-volatile-default", Level::Error,
     "ADD COLUMN with a volatile DEFAULT (random(), gen_random_uuid(), clock_timestamp(), nextval()) rewrites the table under an exclusive lock"),
    ("setting-not-nullable-field", Level::Error,
     "SET NOT NULL scans the table under an ACCESS EXCLUSIVE lock unless a validated CHECK (col IS NOT NULL) exists"),
    ("changing-column-type", Level::Error,
     "ALTER COLUMN … TYPE usually rewrites the table and its indexes under an ACCESS EXCLUSIVE lock"),
    ("constraint-missing-not-valid", Level::Error,
     "ADD CONSTRAINT FOREIGN KEY / CHECK validates every row under lock; add it NOT VALID, then VALIDATE CONSTRAINT in a later statement"),
    ("disallowed-unique-constraint", Level::Error,
     "ADD UNIQUE / PRIMARY KEY builds its index under lock; build the index CONCURRENTLY, then ADD CONSTRAINT … USING INDEX"),
    ("renaming-table", Level::Error,
     "renaming a table breaks the running application's queries; add the new name (e.g. a view) first and rename when no code uses the old one"),
    ("renaming-column", Level::Error,
     "renaming a column breaks the running application's queries; add a new column, write both, backfill, then drop the old one"),
    ("ban-drop-table", Level::Error,
     "dropping a table loses its data on every tenant and breaks code still reading it"),
    ("ban-drop-column", Level::Warning,
     "dropping a column breaks code still reading it; deploy the code that stops using it first"),
    ("enum-value-used-in-same-transaction", Level::Error,
     "a value added by ALTER TYPE … ADD VALUE cannot be used in the same transaction; use it in a later file"),
    ("allow-without-reason", Level::Error,
     "`-- drover:allow <rule>` needs a reason after the rule id"),
];

/// Functions whose value differs per row: a DEFAULT calling one rewrites the table.
const VOLATILE: &[&str] = &[
    "random",
    "gen_random_uuid",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
    "clock_timestamp",
    "timeofday",
    "nextval",
    "txid_current",
];

/// What earlier statements of the scope did.
#[derive(Default)]
pub(super) struct Scope {
    /// Tables and indexes created in this scope (`schema.name`, or `name`).
    created: HashSet<String>,
    /// Tables with a CHECK constraint validated in this scope.
    validated: HashSet<String>,
}

fn relation(r: Option<&RangeVar>) -> String {
    match r {
        Some(r) if r.schemaname.is_empty() => r.relname.clone(),
        Some(r) => format!("{}.{}", r.schemaname, r.relname),
        None => String::new(),
    }
}

/// Where one statement is in its file, and what was allowed for it.
struct Stmt<'a> {
    file: &'a MigrationFile,
    text: &'a str,
    line: usize,
    allowed: Vec<String>,
}

impl Stmt<'_> {
    fn finding(&self, rule: &str, message: String, fix: &str) -> Option<Finding> {
        if self.allowed.iter().any(|a| a == rule) {
            return None;
        }
        let level = RULES
            .iter()
            .find(|(id, _, _)| *id == rule)
            .map_or(Level::Error, |(_, level, _)| *level);
        Some(Finding {
            rule: rule.to_string(),
            level,
            file: self.file.file_name(),
            version: self.file.version,
            line: self.line,
            statement: self.text.chars().take(300).collect(),
            message,
            fix: fix.to_string(),
        })
    }
}

/// `-- drover:allow <rule> <reason>` comments among `comments`: the rules allowed, and
/// the ones written without a reason.
fn allows(comments: &[&str]) -> (Vec<String>, Vec<String>) {
    let (mut ok, mut bare) = (Vec::new(), Vec::new());
    for c in comments {
        let Some(rest) = c.trim().strip_prefix("--") else {
            continue;
        };
        let Some(rest) = rest.trim().strip_prefix("drover:allow") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        if let Some(rule) = words.next() {
            if words.next().is_some() {
                ok.push(rule.to_string());
            } else {
                bare.push(rule.to_string());
            }
        }
    }
    (ok, bare)
}

/// Lints one file, in the scope of the files before it.
pub(super) fn lint_file(file: &MigrationFile, scope: &mut Scope) -> Vec<Finding> {
    // The scanner places each statement's comments; what parses also scans.
    let (parsed, scanned) = match (pg_query::parse(&file.sql), Scanned::new(&file.sql)) {
        (Ok(p), Ok(s)) => (p, s),
        (Err(e), _) | (_, Err(e)) => {
            let stmt = Stmt {
                file,
                text: "",
                line: 1,
                allowed: Vec::new(),
            };
            return stmt
                .finding("syntax-error", e.to_string(), "fix the SQL")
                .into_iter()
                .collect();
        }
    };
    let mut out = Vec::new();
    let mut added_enum_values: Vec<String> = Vec::new();
    for raw in &parsed.protobuf.stmts {
        let Some(node) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) else {
            continue;
        };
        let piece = scanned.piece(stmt_range(&file.sql, raw));
        let (allowed, bare) = allows(&piece.comments);
        let stmt = Stmt {
            file,
            text: piece.text,
            line: file.sql[..piece.offset].matches('\n').count() + 1,
            allowed,
        };
        for rule in bare {
            out.extend(stmt.finding(
                "allow-without-reason",
                format!("`-- drover:allow {rule}` has no reason"),
                "write why after the rule id: -- drover:allow <rule> <reason>",
            ));
        }
        if !added_enum_values.is_empty() && !file.no_transaction {
            if let Some(v) = uses_any_string(node, &added_enum_values) {
                out.extend(stmt.finding(
                    "enum-value-used-in-same-transaction",
                    format!("'{v}' is added to its enum by an earlier statement of this transactional file"),
                    "use the new value in a later migration file",
                ));
            }
        }
        match node {
            NodeEnum::CreateStmt(c) => {
                scope.created.insert(relation(c.relation.as_ref()));
            }
            NodeEnum::IndexStmt(i) => out.extend(index(&stmt, i, scope)),
            NodeEnum::DropStmt(d) => out.extend(drop(&stmt, d, scope)),
            NodeEnum::AlterTableStmt(a) => out.extend(alter_table(&stmt, a, scope)),
            NodeEnum::RenameStmt(r) => out.extend(rename(&stmt, r, scope)),
            // ADD VALUE has no old value; RENAME VALUE has one, and a renamed value may be
            // used in the same transaction (PostgreSQL restricts only added ones).
            NodeEnum::AlterEnumStmt(e) if e.old_val.is_empty() => {
                added_enum_values.push(e.new_val.clone());
            }
            _ => {}
        }
    }
    out
}

fn index(stmt: &Stmt, i: &IndexStmt, scope: &mut Scope) -> Vec<Finding> {
    let table = relation(i.relation.as_ref());
    let mut out = Vec::new();
    if i.concurrent && !stmt.file.no_transaction {
        out.extend(stmt.finding(
            "concurrent-in-transaction",
            "CREATE INDEX CONCURRENTLY cannot run inside a transaction block: every tenant would fail".into(),
            "make `-- drover:no-transaction` the file's first line (and keep the file to concurrent statements)",
        ));
    }
    if !i.concurrent && !scope.created.contains(&table) {
        out.extend(stmt.finding(
            "require-concurrent-index-creation",
            format!(
                "CREATE INDEX on existing table {table} blocks its writes until the index is built"
            ),
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS … in a `-- drover:no-transaction` file",
        ));
    }
    if !i.idxname.is_empty() {
        let name = match i.relation.as_ref() {
            Some(r) if !r.schemaname.is_empty() => format!("{}.{}", r.schemaname, i.idxname),
            _ => i.idxname.clone(),
        };
        scope.created.insert(name);
    }
    out
}

/// `schema.name` of each object a DROP names.
fn dropped_names(d: &DropStmt) -> Vec<String> {
    d.objects
        .iter()
        .filter_map(|o| match o.node.as_ref() {
            Some(NodeEnum::List(l)) => Some(
                l.items
                    .iter()
                    .filter_map(|n| match n.node.as_ref() {
                        Some(NodeEnum::String(s)) => Some(s.sval.clone()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join("."),
            ),
            _ => None,
        })
        .collect()
}

fn drop(stmt: &Stmt, d: &DropStmt, scope: &Scope) -> Vec<Finding> {
    let names = dropped_names(d);
    let existing: Vec<&String> = names
        .iter()
        .filter(|n| !scope.created.contains(*n))
        .collect();
    let mut out = Vec::new();
    if d.remove_type == ObjectType::ObjectIndex as i32 {
        if d.concurrent && !stmt.file.no_transaction {
            out.extend(stmt.finding(
                "concurrent-in-transaction",
                "DROP INDEX CONCURRENTLY cannot run inside a transaction block: every tenant would fail".into(),
                "make `-- drover:no-transaction` the file's first line",
            ));
        }
        if !d.concurrent && !existing.is_empty() {
            out.extend(stmt.finding(
                "require-concurrent-index-deletion",
                format!(
                    "DROP INDEX {} locks its table against reads and writes",
                    join(&existing)
                ),
                "DROP INDEX CONCURRENTLY IF EXISTS … in a `-- drover:no-transaction` file",
            ));
        }
    }
    if d.remove_type == ObjectType::ObjectTable as i32 && !existing.is_empty() {
        out.extend(stmt.finding(
            "ban-drop-table",
            format!("DROP TABLE {} loses its data on every tenant", join(&existing)),
            "stop using the table in a release first; acknowledge the rule in the wave when the data may go",
        ));
    }
    out
}

fn join(names: &[&String]) -> String {
    names
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn alter_table(stmt: &Stmt, a: &AlterTableStmt, scope: &mut Scope) -> Vec<Finding> {
    let table = relation(a.relation.as_ref());
    let new = scope.created.contains(&table);
    let mut out = Vec::new();
    for cmd in &a.cmds {
        let Some(NodeEnum::AlterTableCmd(c)) = cmd.node.as_ref() else {
            continue;
        };
        if c.subtype == AlterTableType::AtValidateConstraint as i32 {
            scope.validated.insert(table.clone());
        }
        if new {
            continue;
        }
        out.extend(alter_cmd(stmt, &table, c, scope));
    }
    out
}

fn alter_cmd(stmt: &Stmt, table: &str, c: &AlterTableCmd, scope: &Scope) -> Vec<Finding> {
    let sub = AlterTableType::try_from(c.subtype).unwrap_or(AlterTableType::Undefined);
    let column = &c.name;
    let mut out = Vec::new();
    match sub {
        AlterTableType::AtAddColumn => {
            let Some(NodeEnum::ColumnDef(col)) = c.def.as_ref().and_then(|d| d.node.as_ref())
            else {
                return out;
            };
            let constraints: Vec<&Constraint> = col
                .constraints
                .iter()
                .filter_map(|n| match n.node.as_ref() {
                    Some(NodeEnum::Constraint(k)) => Some(&**k),
                    _ => None,
                })
                .collect();
            let has = |t: ConstrType| constraints.iter().any(|k| k.contype == t as i32);
            let default = constraints
                .iter()
                .find(|k| k.contype == ConstrType::ConstrDefault as i32)
                .and_then(|k| k.raw_expr.as_deref())
                .or(col.raw_default.as_deref());
            if (col.is_not_null || has(ConstrType::ConstrNotnull))
                && default.is_none()
                && !has(ConstrType::ConstrIdentity)
                && !has(ConstrType::ConstrGenerated)
            {
                out.extend(stmt.finding(
                    "adding-not-nullable-field",
                    format!("{table}.{} is added NOT NULL without a DEFAULT: it fails on every tenant whose table has rows", col.colname),
                    "ADD COLUMN … NOT NULL DEFAULT <constant>, or add it nullable, backfill, then SET NOT NULL safely",
                ));
            }
            if let Some(f) = default
                .and_then(|d| d.node.as_ref())
                .and_then(volatile_call)
            {
                out.extend(stmt.finding(
                    "adding-field-with-volatile-default",
                    format!("{table}.{} defaults to {f}(), evaluated per row: the table is rewritten under an exclusive lock", col.colname),
                    "add the column without a default (or with a constant one), backfill in batches, then SET DEFAULT",
                ));
            }
            if has(ConstrType::ConstrUnique) || has(ConstrType::ConstrPrimary) {
                out.extend(stmt.finding(
                    "disallowed-unique-constraint",
                    format!("{table}.{} is added with a unique index built under lock", col.colname),
                    "add the column, CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT … UNIQUE USING INDEX",
                ));
            }
        }
        AlterTableType::AtSetNotNull if !scope.validated.contains(table) => {
            out.extend(stmt.finding(
                "setting-not-nullable-field",
                format!("SET NOT NULL on {table}.{column} scans the whole table under an ACCESS EXCLUSIVE lock"),
                "ADD CONSTRAINT … CHECK (col IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT …; then SET NOT NULL (it uses the validated check)",
            ));
        }
        AlterTableType::AtAlterColumnType => {
            out.extend(stmt.finding(
                "changing-column-type",
                format!("changing the type of {table}.{column} rewrites the table and its indexes under an ACCESS EXCLUSIVE lock"),
                "add a column of the new type, write both, backfill, switch readers, drop the old one",
            ));
        }
        AlterTableType::AtDropColumn => {
            out.extend(stmt.finding(
                "ban-drop-column",
                format!("{table}.{column} is dropped: code still reading it fails"),
                "release the code that stops using the column first",
            ));
        }
        AlterTableType::AtAddConstraint => {
            let Some(NodeEnum::Constraint(k)) = c.def.as_ref().and_then(|d| d.node.as_ref()) else {
                return out;
            };
            out.extend(constraint(stmt, table, k));
        }
        _ => {}
    }
    out
}

fn constraint(stmt: &Stmt, table: &str, k: &Constraint) -> Option<Finding> {
    let kind = ConstrType::try_from(k.contype).unwrap_or(ConstrType::Undefined);
    match kind {
        ConstrType::ConstrForeign | ConstrType::ConstrCheck if !k.skip_validation => stmt.finding(
            "constraint-missing-not-valid",
            format!("the constraint on {table} is validated against every row while the table is locked"),
            "ADD CONSTRAINT … NOT VALID, then ALTER TABLE … VALIDATE CONSTRAINT … in a later statement",
        ),
        ConstrType::ConstrUnique | ConstrType::ConstrPrimary if k.indexname.is_empty() => stmt.finding(
            "disallowed-unique-constraint",
            format!("the unique constraint on {table} builds its index under an exclusive lock"),
            "CREATE UNIQUE INDEX CONCURRENTLY …; then ADD CONSTRAINT … UNIQUE USING INDEX …",
        ),
        _ => None,
    }
}

fn rename(stmt: &Stmt, r: &RenameStmt, scope: &Scope) -> Option<Finding> {
    let table = relation(r.relation.as_ref());
    if scope.created.contains(&table) {
        return None;
    }
    if r.rename_type == ObjectType::ObjectTable as i32 {
        stmt.finding(
            "renaming-table",
            format!(
                "renaming {table} to {} breaks the running application's queries",
                r.newname
            ),
            "create the new name as a view (or keep both) until no code uses the old name",
        )
    } else if r.rename_type == ObjectType::ObjectColumn as i32 {
        stmt.finding(
            "renaming-column",
            format!(
                "renaming {table}.{} to {} breaks the running application's queries",
                r.subname, r.newname
            ),
            "add the new column, write both, backfill, switch readers, then drop the old column",
        )
    } else {
        None
    }
}

/// The name of a volatile function the expression calls, if any.
fn volatile_call(expr: &NodeEnum) -> Option<String> {
    let volatile = |f: &pg_query::protobuf::FuncCall| match f.funcname.last()?.node.as_ref() {
        Some(NodeEnum::String(s)) if VOLATILE.contains(&s.sval.as_str()) => Some(s.sval.clone()),
        _ => None,
    };
    if let NodeEnum::FuncCall(f) = expr {
        if let Some(name) = volatile(f) {
            return Some(name);
        }
    }
    expr.nodes().into_iter().find_map(|(n, _, _, _)| match n {
        NodeRef::FuncCall(f) => volatile(f),
        _ => None,
    })
}

/// The first of `values` that the statement uses as a string constant.
fn uses_any_string(stmt: &NodeEnum, values: &[String]) -> Option<String> {
    stmt.nodes().into_iter().find_map(|(n, _, _, _)| match n {
        NodeRef::AConst(c) => match &c.val {
            Some(a_const::Val::Sval(s)) if values.contains(&s.sval) => Some(s.sval.clone()),
            _ => None,
        },
        _ => None,
    })
}
