//! Splitting a no-transaction migration into statements, so each can run on its own (a
//! multi-statement simple query would be an implicit transaction, which `CREATE INDEX
//! CONCURRENTLY` refuses). Understands quotes, dollar quotes and both comment styles.

/// The statements of `sql`, trimmed, without empty ones and without the trailing `;`.
pub fn split_statements(sql: &str) -> Vec<String> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let (mut start, mut i) = (0, 0);
    let push = |out: &mut Vec<String>, s: &str| {
        let meaningful = s.lines().any(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with("--")
        });
        if meaningful {
            // Leading comment lines (the no-transaction marker) would only clutter errors.
            let body: Vec<&str> = s
                .trim()
                .lines()
                .skip_while(|l| l.trim_start().starts_with("--"))
                .collect();
            out.push(body.join("\n"));
        }
    };
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' => {
                let q = b[i];
                i += 1;
                while i < b.len() {
                    if b[i] == q {
                        // A doubled quote is an escaped quote, not the end.
                        if i + 1 < b.len() && b[i + 1] == q {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'$' => {
                // $tag$ ... $tag$ where tag is empty or an identifier.
                let tag_end = b[i + 1..]
                    .iter()
                    .position(|c| !(c.is_ascii_alphanumeric() || *c == b'_'));
                match tag_end.map(|n| i + 1 + n) {
                    Some(j)
                        if b[j] == b'$' && !b[i + 1..j].first().is_some_and(u8::is_ascii_digit) =>
                    {
                        let tag = &sql[i..=j];
                        match sql[j + 1..].find(tag) {
                            Some(end) => i = j + 1 + end + tag.len(),
                            None => i = b.len(),
                        }
                    }
                    _ => i += 1,
                }
            }
            b';' => {
                push(&mut out, &sql[start..i]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < b.len() {
        push(&mut out, &sql[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
