//! Each rule both ways: the risky form is flagged, the safe form passes.

use super::*;

fn file(version: i32, sql: &str) -> MigrationFile {
    MigrationFile {
        version,
        name: format!("step_{version}"),
        checksum: 0,
        sql: sql.to_string(),
        no_transaction: sql.starts_with("-- drover:no-transaction"),
    }
}

/// Lints `sql` as V2, after a V1 that creates the existing tables `accounts` and `users`
/// (linted in an earlier scope, so they are not new).
fn rules_of(sql: &str) -> Vec<String> {
    let f = file(2, sql);
    lint_files(&[&f])
        .findings
        .into_iter()
        .map(|f| f.rule)
        .collect()
}

fn flags(sql: &str, rule: &str) {
    let got = rules_of(sql);
    assert!(
        got.iter().any(|r| r == rule),
        "{rule} not in {got:?} for {sql}"
    );
}

fn passes(sql: &str) {
    let got = rules_of(sql);
    assert!(got.is_empty(), "{got:?} for {sql}");
}

#[test]
fn a_plain_index_on_an_existing_table_is_flagged_and_a_concurrent_one_passes() {
    flags(
        "CREATE INDEX accounts_email ON accounts (email);",
        "require-concurrent-index-creation",
    );
    passes("-- drover:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS accounts_email ON accounts (email);");
}

#[test]
fn an_index_on_a_table_created_earlier_in_the_wave_passes() {
    let (a, b) = (
        file(
            3,
            "CREATE TABLE widgets (id bigint PRIMARY KEY, name text);",
        ),
        file(
            4,
            "CREATE INDEX widgets_name ON widgets (name);\nDROP INDEX widgets_name;",
        ),
    );
    let report = lint_files(&[&a, &b]);
    assert_eq!(report.findings, vec![], "{report:#?}");
    assert_eq!(report.files, 2);
}

#[test]
fn concurrently_in_a_transactional_file_is_flagged() {
    flags(
        "CREATE INDEX CONCURRENTLY accounts_email ON accounts (email);",
        "concurrent-in-transaction",
    );
    flags(
        "DROP INDEX CONCURRENTLY accounts_email;",
        "concurrent-in-transaction",
    );
}

#[test]
fn a_plain_index_drop_is_flagged_and_a_concurrent_one_passes() {
    flags(
        "DROP INDEX accounts_email;",
        "require-concurrent-index-deletion",
    );
    passes("-- drover:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS accounts_email;");
}

#[test]
fn a_not_null_column_without_default_is_flagged_and_one_with_a_constant_default_passes() {
    flags(
        "ALTER TABLE accounts ADD COLUMN tier text NOT NULL;",
        "adding-not-nullable-field",
    );
    passes("ALTER TABLE accounts ADD COLUMN tier text NOT NULL DEFAULT 'free';");
    passes("ALTER TABLE accounts ADD COLUMN tier text;");
}

#[test]
fn a_volatile_default_is_flagged_and_a_stable_one_passes() {
    flags(
        "ALTER TABLE accounts ADD COLUMN token uuid DEFAULT gen_random_uuid();",
        "adding-field-with-volatile-default",
    );
    flags(
        "ALTER TABLE accounts ADD COLUMN r float8 DEFAULT random() * 10;",
        "adding-field-with-volatile-default",
    );
    passes("ALTER TABLE accounts ADD COLUMN seen_at timestamptz DEFAULT now();");
}

#[test]
fn set_not_null_is_flagged_unless_a_check_was_validated_first() {
    flags(
        "ALTER TABLE accounts ALTER COLUMN email SET NOT NULL;",
        "setting-not-nullable-field",
    );
    passes(
        "ALTER TABLE accounts ADD CONSTRAINT email_nn CHECK (email IS NOT NULL) NOT VALID;\n\
         ALTER TABLE accounts VALIDATE CONSTRAINT email_nn;\n\
         ALTER TABLE accounts ALTER COLUMN email SET NOT NULL;",
    );
}

#[test]
fn a_column_type_change_is_flagged() {
    flags(
        "ALTER TABLE accounts ALTER COLUMN id TYPE bigint;",
        "changing-column-type",
    );
    passes("ALTER TABLE accounts ALTER COLUMN email SET DEFAULT '';");
}

#[test]
fn foreign_keys_and_checks_without_not_valid_are_flagged() {
    flags(
        "ALTER TABLE accounts ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id);",
        "constraint-missing-not-valid",
    );
    flags(
        "ALTER TABLE accounts ADD CONSTRAINT pos CHECK (balance >= 0);",
        "constraint-missing-not-valid",
    );
    passes("ALTER TABLE accounts ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;");
    passes("ALTER TABLE accounts ADD CONSTRAINT pos CHECK (balance >= 0) NOT VALID;");
}

#[test]
fn a_unique_constraint_is_flagged_unless_built_from_an_index() {
    flags(
        "ALTER TABLE accounts ADD CONSTRAINT email_uq UNIQUE (email);",
        "disallowed-unique-constraint",
    );
    flags(
        "ALTER TABLE accounts ADD COLUMN code text UNIQUE;",
        "disallowed-unique-constraint",
    );
    passes("ALTER TABLE accounts ADD CONSTRAINT email_uq UNIQUE USING INDEX accounts_email_uq;");
}

#[test]
fn renames_are_flagged_on_existing_tables_only() {
    flags(
        "ALTER TABLE accounts RENAME TO customers;",
        "renaming-table",
    );
    flags(
        "ALTER TABLE accounts RENAME COLUMN email TO mail;",
        "renaming-column",
    );
    let (a, b) = (
        file(3, "CREATE TABLE drafts (id int, body text);"),
        file(
            4,
            "ALTER TABLE drafts RENAME COLUMN body TO text;\nALTER TABLE drafts RENAME TO notes;",
        ),
    );
    assert_eq!(lint_files(&[&a, &b]).findings, vec![]);
}

#[test]
fn drops_of_existing_tables_and_columns_are_flagged() {
    flags("DROP TABLE accounts;", "ban-drop-table");
    flags("ALTER TABLE accounts DROP COLUMN email;", "ban-drop-column");
    let report = lint_files(&[&file(2, "ALTER TABLE accounts DROP COLUMN email;")]);
    assert_eq!(
        report.findings[0].level,
        Level::Warning,
        "dropping a column is a warning"
    );
    assert_eq!(report.errors().count(), 0);
}

#[test]
fn a_new_enum_value_used_in_the_same_file_is_flagged_and_in_a_later_file_passes() {
    flags(
        "ALTER TYPE plan ADD VALUE 'team';\nUPDATE accounts SET plan = 'team' WHERE seats > 5;",
        "enum-value-used-in-same-transaction",
    );
    passes("ALTER TYPE plan ADD VALUE 'team';");
    passes("UPDATE accounts SET plan = 'team' WHERE seats > 5;");
}

#[test]
fn a_renamed_enum_value_used_in_the_same_file_passes() {
    // Pins the rule to ADD VALUE: PostgreSQL refuses an added value inside its own
    // transaction, not a renamed one; the rule once flagged renames too.
    passes("ALTER TYPE plan RENAME VALUE 'pro' TO 'team';\nUPDATE accounts SET plan = 'team' WHERE seats > 5;");
}

#[test]
fn an_allow_comment_with_a_reason_silences_the_next_statement_only() {
    let sql = "-- drover:allow require-concurrent-index-creation accounts has 10 rows per tenant\n\
               CREATE INDEX a1 ON accounts (email);\n\
               CREATE INDEX a2 ON accounts (name);";
    let report = lint_files(&[&file(2, sql)]);
    assert_eq!(report.findings.len(), 1, "{report:#?}");
    assert_eq!(report.findings[0].line, 3);
    assert!(report.findings[0].statement.starts_with("CREATE INDEX a2"));
}

#[test]
fn an_allow_comment_counts_only_where_postgresql_reads_a_comment_before_the_statement() {
    // Inside a nested block comment, or a dollar-quoted body, the line is no comment.
    flags(
        "/* outer /* inner */\n-- drover:allow ban-drop-table not a comment\n*/\nDROP TABLE accounts;",
        "ban-drop-table",
    );
    flags(
        "DO $x$ BEGIN NULL; END $x$;\nSELECT $y$\n-- drover:allow ban-drop-table in a string\n$y$;\nDROP TABLE accounts;",
        "ban-drop-table",
    );
    let sql = "SELECT 1; -- drover:allow ban-drop-table the table is empty everywhere\n\
               /* why */ DROP TABLE accounts;";
    let report = lint_files(&[&file(2, sql)]);
    assert!(report.findings.is_empty(), "{report:#?}");
}

#[test]
fn an_allow_comment_without_a_reason_is_itself_an_error() {
    flags(
        "-- drover:allow require-concurrent-index-creation\nCREATE INDEX a1 ON accounts (email);",
        "allow-without-reason",
    );
}

#[test]
fn a_file_that_does_not_parse_is_a_syntax_error() {
    flags("CREATE TABLEX nope (id int);", "syntax-error");
}

#[test]
fn findings_name_the_file_line_statement_and_fix() {
    let f = file(
        7,
        "CREATE TABLE t (id int);\n\nCREATE INDEX e ON accounts (email);\n",
    );
    let report = lint_files(&[&f]);
    let found = &report.findings[0];
    assert_eq!(found.file, "V7__step_7.sql");
    assert_eq!(found.version, 7);
    assert_eq!(found.line, 3);
    assert_eq!(found.statement, "CREATE INDEX e ON accounts (email)");
    assert!(found.fix.contains("CONCURRENTLY"));
    assert_eq!(found.level, Level::Error);
}

#[test]
fn every_rule_has_a_unique_kebab_case_id_and_documentation() {
    let mut seen = std::collections::HashSet::new();
    for (id, _, doc) in RULES {
        assert!(seen.insert(*id), "{id} twice");
        assert!(
            id.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
            "{id}"
        );
        assert!(!doc.is_empty());
    }
}

#[test]
fn the_example_tenant_migrations_lint_clean() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tenant-migrations");
    let set = MigrationSet::load(&dir).unwrap();
    let report = lint_set(&set, None, set.latest().unwrap());
    assert_eq!(report.errors().count(), 0, "{report:#?}");
}

#[test]
fn the_readme_documents_every_rule_with_its_level() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for (id, level, _) in RULES {
        let level = match level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        let row = format!("| `{id}` | {level} |");
        assert!(readme.contains(&row), "README lacks the row {row}");
    }
}

/// `(rule, message)` of every finding of `sql`, linted as [`rules_of`] does.
fn findings(sql: &str) -> Vec<(String, String)> {
    lint_files(&[&file(2, sql)])
        .findings
        .into_iter()
        .map(|f| (f.rule, f.message))
        .collect()
}

#[test]
fn each_risky_statement_raises_its_own_rule_and_no_other() {
    for (sql, rule) in [
        (
            "CREATE INDEX e ON accounts (email);",
            "require-concurrent-index-creation",
        ),
        (
            "DROP INDEX accounts_email;",
            "require-concurrent-index-deletion",
        ),
        (
            "CREATE INDEX CONCURRENTLY e ON accounts (email);",
            "concurrent-in-transaction",
        ),
        (
            "DROP INDEX CONCURRENTLY accounts_email;",
            "concurrent-in-transaction",
        ),
        ("DROP TABLE accounts;", "ban-drop-table"),
        (
            "ALTER TABLE accounts RENAME TO customers;",
            "renaming-table",
        ),
        (
            "ALTER TABLE accounts RENAME COLUMN email TO mail;",
            "renaming-column",
        ),
        (
            "ALTER TABLE accounts ADD COLUMN n int NOT NULL;",
            "adding-not-nullable-field",
        ),
        (
            "ALTER TABLE accounts ADD COLUMN ref bigint PRIMARY KEY;",
            "disallowed-unique-constraint",
        ),
        (
            "ALTER TABLE accounts ADD COLUMN code text UNIQUE;",
            "disallowed-unique-constraint",
        ),
    ] {
        assert_eq!(rules_of(sql), [rule], "{sql}");
    }
}

#[test]
fn a_nullable_column_and_generated_or_identity_not_null_columns_pass() {
    passes("ALTER TABLE accounts ADD COLUMN note text;");
    passes("ALTER TABLE accounts ADD COLUMN n bigint NOT NULL GENERATED ALWAYS AS IDENTITY;");
    passes(
        "ALTER TABLE accounts ADD COLUMN twice numeric NOT NULL GENERATED ALWAYS AS (balance * 2) STORED;",
    );
    // Renaming an index breaks no query.
    passes("ALTER INDEX accounts_email RENAME TO accounts_mail;");
}

#[test]
fn messages_name_the_table_with_its_schema_only_when_one_is_written() {
    assert_eq!(
        findings("CREATE INDEX e ON accounts (email);"),
        [(
            "require-concurrent-index-creation".to_string(),
            "CREATE INDEX on existing table accounts blocks its writes until the index is built"
                .to_string()
        )]
    );
    // A schema-qualified table and index created in the file are new; another table of the
    // schema is not.
    let sql = "CREATE TABLE app.widgets (id int);\n\
               CREATE INDEX w_id ON app.widgets (id);\n\
               DROP INDEX app.w_id;\n\
               CREATE INDEX a_email ON app.accounts (email);";
    assert_eq!(
        findings(sql),
        [(
            "require-concurrent-index-creation".to_string(),
            "CREATE INDEX on existing table app.accounts blocks its writes until the index is built"
                .to_string()
        )]
    );
}

#[test]
fn a_drop_names_only_the_objects_that_existed_before_the_file() {
    assert_eq!(
        findings("CREATE TABLE scratch (id int);\nDROP TABLE accounts, scratch;"),
        [(
            "ban-drop-table".to_string(),
            "DROP TABLE accounts loses its data on every tenant".to_string()
        )]
    );
    assert_eq!(
        findings("CREATE INDEX CONCURRENTLY s ON accounts (id);\nDROP INDEX accounts_email, s;")
            .into_iter()
            .filter(|(rule, _)| rule == "require-concurrent-index-deletion")
            .collect::<Vec<_>>(),
        [(
            "require-concurrent-index-deletion".to_string(),
            "DROP INDEX accounts_email locks its table against reads and writes".to_string()
        )]
    );
    passes("CREATE TABLE scratch (id int);\nDROP TABLE scratch;");
}

#[test]
fn a_new_enum_value_is_only_a_problem_in_a_transaction_and_only_where_it_is_used() {
    passes(
        "-- drover:no-transaction\nALTER TYPE plan ADD VALUE 'team';\nUPDATE accounts SET plan = 'team' WHERE seats > 5;",
    );
    passes("ALTER TYPE plan ADD VALUE 'team';\nUPDATE accounts SET note = 'solo';");
}
