use super::*;

fn control(sql: &str) -> Option<String> {
    match transaction_control(sql)? {
        TransactionControl::Statement(s) => Some(s.to_string()),
        TransactionControl::Unreadable(why) => Some(format!("unreadable: {why}")),
    }
}

#[test]
fn splits_on_semicolons_outside_quotes_comments_and_dollar_quotes() {
    let sql = "-- drover:no-transaction\n\
               CREATE INDEX CONCURRENTLY a ON t (x);\n\
               INSERT INTO t VALUES ('a;b', \"c;d\"); /* ; */\n\
               DO $body$ BEGIN PERFORM 1; END $body$;\n\
               ALTER TYPE mood ADD VALUE 'it''s;ok'\n";

    let parts = split_statements(sql);

    assert_eq!(parts.len(), 4, "{parts:#?}");
    assert_eq!(parts[0], "CREATE INDEX CONCURRENTLY a ON t (x)");
    assert_eq!(parts[1], "INSERT INTO t VALUES ('a;b', \"c;d\")");
    assert_eq!(parts[2], "/* ; */\nDO $body$ BEGIN PERFORM 1; END $body$");
    assert_eq!(parts[3], "ALTER TYPE mood ADD VALUE 'it''s;ok'");
}

#[test]
fn comment_only_tails_are_dropped() {
    assert_eq!(split_statements("SELECT 1;\n-- done\n"), vec!["SELECT 1"]);
    assert!(split_statements("  \n-- nothing\n").is_empty());
}

#[test]
fn positional_parameters_are_not_dollar_quotes() {
    assert_eq!(
        split_statements("SELECT $1; SELECT 2"),
        vec!["SELECT $1", "SELECT 2"]
    );
}

#[test]
fn nested_comments_are_one_comment_as_postgresql_reads_them() {
    assert_eq!(
        split_statements("/* a /* b; */ c; */ SELECT 1; SELECT 2"),
        vec!["/* a /* b; */ c; */ SELECT 1", "SELECT 2"]
    );
    assert_eq!(
        control("/* /* */ */ COMMIT;\nCREATE TABLE leaked (id int);").as_deref(),
        Some("/* /* */ */ COMMIT")
    );
    assert_eq!(control("/* /* COMMIT; */ */ SELECT 1"), None);
}

#[test]
fn dollar_quotes_with_tags_hide_what_they_quote_and_nothing_more() {
    let body = "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $fn$\n\
                BEGIN COMMIT; ROLLBACK; PERFORM $x$ $fn $x$; END\n$fn$;\n\
                CREATE TABLE t (a int);";
    assert_eq!(split_statements(body).len(), 2);
    assert_eq!(control(body), None);
    assert_eq!(
        control("DO $a$ BEGIN NULL; END $a$; COMMIT").as_deref(),
        Some("COMMIT")
    );
}

#[test]
fn escape_strings_keep_their_escaped_quotes() {
    assert_eq!(control("SELECT E'it\\'s; COMMIT; --'"), None);
    assert_eq!(split_statements("SELECT E'it\\'s; x'; SELECT 2").len(), 2);
    // A doubled backslash ends in a real quote: the COMMIT after it is a statement.
    assert_eq!(control("SELECT E'\\\\'; COMMIT").as_deref(), Some("COMMIT"));
}

#[test]
fn identifiers_containing_dollar_signs_open_no_dollar_quote() {
    assert_eq!(
        control("SELECT 1 AS x$y$; COMMIT; SELECT 2 AS z$y$").as_deref(),
        Some("COMMIT")
    );
    assert_eq!(
        split_statements("CREATE TABLE a$b$ (c$ int); SELECT 1 AS d$b$"),
        vec!["CREATE TABLE a$b$ (c$ int)", "SELECT 1 AS d$b$"]
    );
}

#[test]
fn begin_atomic_bodies_are_one_statement_and_no_transaction_control() {
    let sql = "CREATE FUNCTION f() RETURNS int LANGUAGE sql\n\
               BEGIN ATOMIC\n  SELECT 1;\n  SELECT 2;\nEND;\n\
               CREATE TABLE t (a int);";
    let parts = split_statements(sql);
    assert_eq!(parts.len(), 2, "{parts:#?}");
    assert!(parts[0].ends_with("END"), "{}", parts[0]);
    assert_eq!(control(sql), None);
}

#[test]
fn every_statement_that_ends_or_starts_a_transaction_is_found() {
    for sql in [
        "COMMIT",
        "commit and chain",
        "END",
        "END TRANSACTION",
        "ROLLBACK",
        "ROLLBACK AND CHAIN",
        "ABORT",
        "BEGIN",
        "BEGIN ISOLATION LEVEL SERIALIZABLE",
        "START TRANSACTION READ WRITE",
        "PREPARE TRANSACTION 'x'",
        "COMMIT PREPARED 'x'",
        "ROLLBACK PREPARED 'x'",
    ] {
        let found = control(&format!("ALTER TABLE t ADD c int;\n{sql};\nSELECT 1"));
        assert_eq!(found.as_deref(), Some(sql), "{sql}");
    }
}

#[test]
fn statements_that_end_the_transaction_are_found_and_others_are_not() {
    assert!(control("ALTER TABLE t ADD c int;\nCOMMIT;").is_some());
    assert!(control("begin;\ncreate table t (a int);").is_some());
    assert!(control("START TRANSACTION; SELECT 1").is_some());
    assert!(control("ROLLBACK;").is_some());
    assert!(control("/* done */ COMMIT").is_some());
    assert!(control("PREPARE TRANSACTION 'x'").is_some());

    assert!(control("SAVEPOINT a; ROLLBACK TO SAVEPOINT a;").is_none());
    assert!(control("SAVEPOINT a; RELEASE SAVEPOINT a; ROLLBACK TO a").is_none());
    assert!(control("PREPARE q AS SELECT 1").is_none());
    assert!(control(
        "DO $$ BEGIN PERFORM 1; END $$;\nCREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';"
    )
    .is_none());
    assert!(control("-- COMMIT later\nALTER TABLE t ADD c int;").is_none());
    assert!(control("SELECT CASE WHEN true THEN 1 END; SELECT 'commit'").is_none());
}

#[test]
fn a_file_the_parser_refuses_is_read_by_the_scanner_cautiously() {
    assert_eq!(
        control("ALTR TABLE t ADD c int; /* x */ COMMIT; SELECT 1").as_deref(),
        Some("COMMIT")
    );
    assert_eq!(
        control("ALTR TABLE t; PREPARE TRANSACTION 'x'").as_deref(),
        Some("PREPARE TRANSACTION 'x'")
    );
    assert_eq!(control("ALTR TABLE t; SELECT '; COMMIT'"), None);
    assert_eq!(
        split_statements(
            "SELECT 1; ALTR x; CREATE RULE r AS ON INSERT TO t DO ALSO (SELECT 1; SELECT 2)"
        ),
        vec![
            "SELECT 1",
            "ALTR x",
            "CREATE RULE r AS ON INSERT TO t DO ALSO (SELECT 1; SELECT 2)"
        ]
    );
}

#[test]
fn a_file_not_even_the_scanner_reads_is_never_called_harmless() {
    assert!(control("SELECT 'unterminated; COMMIT")
        .unwrap()
        .starts_with("unreadable: "));
    assert_eq!(
        split_statements("SELECT 'unterminated; COMMIT"),
        vec!["SELECT 'unterminated; COMMIT"]
    );
}

#[test]
fn a_piece_keeps_its_line_comments_apart_and_its_block_comments_in_its_text() {
    let sql = "SELECT 1; -- drover:allow x why\n-- second\n/* c */ DROP TABLE t";
    let scanned = Scanned::new(sql).unwrap();
    let piece = scanned.piece(9..sql.len());
    assert_eq!(piece.comments, vec!["-- drover:allow x why", "-- second"]);
    assert_eq!(piece.text, "/* c */ DROP TABLE t");
    assert_eq!(&sql[piece.offset..], "/* c */ DROP TABLE t");
}
