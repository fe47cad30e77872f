//! Reading migration SQL the way PostgreSQL reads it, never by hand: where its statements
//! begin and end (a no-transaction file runs them one at a time; lint reports each) and
//! whether any of them ends or starts a transaction (a dry run must never execute such a
//! file: it would commit the work it exists to roll back).
//!
//! Both come from PostgreSQL's own parser and scanner (`pg_query`, libpg_query), so nested
//! comments, dollar quotes with tags, `E''` strings, identifiers containing `$` and
//! `BEGIN ATOMIC` bodies are read exactly as the server reads them. That holds for a
//! session that reads text with the server's defaults, `standard_conforming_strings` on
//! and client encoding UTF-8; the dry run checks both before each file.
//!
//! A file the parser refuses (a syntax error, or syntax newer than the linked grammar) is
//! still read by the scanner: its statements end at `;` tokens outside parentheses, and a
//! transaction keyword anywhere in it counts as transaction control.

use std::ops::Range;

use pg_query::protobuf::{RawStmt, ScanToken, Token, TransactionStmtKind};
use pg_query::NodeEnum;

/// A file's tokens, as PostgreSQL's scanner reads them.
pub struct Scanned<'a> {
    sql: &'a str,
    tokens: Vec<ScanToken>,
}

/// One statement of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece<'a> {
    /// The `--` comments before it (where `-- drover:…` markers live).
    pub comments: Vec<&'a str>,
    /// From its first token that is not a `--` comment to its end, trimmed, without `;`.
    pub text: &'a str,
    /// Byte offset of `text` in the file.
    pub offset: usize,
}

impl<'a> Scanned<'a> {
    /// Scans `sql`; fails where the server's scanner would (an unterminated quote or
    /// comment, a NUL byte).
    pub fn new(sql: &'a str) -> Result<Scanned<'a>, pg_query::Error> {
        Ok(Scanned {
            sql,
            tokens: pg_query::scan(sql)?.tokens,
        })
    }

    fn text(&self, t: &ScanToken) -> &'a str {
        self.sql.get(t.start as usize..t.end as usize).unwrap_or("")
    }

    fn within(&self, range: &Range<usize>) -> impl Iterator<Item = &ScanToken> {
        let range = range.clone();
        self.tokens
            .iter()
            .filter(move |t| range.contains(&(t.start as usize)))
    }

    /// The statement occupying `range` of the file: its leading `--` comments apart.
    pub fn piece(&self, range: Range<usize>) -> Piece<'a> {
        let end = range.end.min(self.sql.len());
        let mut comments = Vec::new();
        let mut offset = end;
        for t in self.within(&range) {
            if t.token == Token::SqlComment as i32 {
                comments.push(self.text(t));
            } else {
                offset = t.start as usize;
                break;
            }
        }
        let text = self.sql.get(offset..end).unwrap_or("").trim();
        Piece {
            comments,
            text,
            offset,
        }
    }

    /// Statement ranges by the scanner alone: up to each `;` outside parentheses.
    fn ranges(&self) -> Vec<Range<usize>> {
        let (mut out, mut start, mut depth) = (Vec::new(), 0, 0i32);
        for t in &self.tokens {
            match Token::try_from(t.token) {
                Ok(Token::Ascii40) => depth += 1,
                Ok(Token::Ascii41) => depth -= 1,
                Ok(Token::Ascii59) if depth <= 0 => {
                    out.push(start..t.start as usize);
                    start = t.end as usize;
                }
                _ => {}
            }
        }
        out.push(start..self.sql.len());
        out
    }
}

/// The byte range of a parsed statement in `sql` (without its `;`).
pub fn stmt_range(sql: &str, raw: &RawStmt) -> Range<usize> {
    let start = raw.stmt_location.max(0) as usize;
    // A length of 0 means "to the end of the input" (the last statement).
    let end = match raw.stmt_len.max(0) as usize {
        0 => sql.len(),
        len => (start + len).min(sql.len()),
    };
    start..end
}

/// The statements of `sql`, trimmed, without empty ones, without the trailing `;` and
/// without the `--` comment lines before each (the no-transaction marker would only
/// clutter errors). A file even the scanner cannot read is one statement: the server
/// says what is wrong with it.
pub fn split_statements(sql: &str) -> Vec<&str> {
    let Ok(scanned) = Scanned::new(sql) else {
        return Some(sql.trim())
            .filter(|s| !s.is_empty())
            .into_iter()
            .collect();
    };
    let ranges = match pg_query::parse(sql) {
        Ok(parsed) => parsed
            .protobuf
            .stmts
            .iter()
            .map(|raw| stmt_range(sql, raw))
            .collect(),
        Err(_) => scanned.ranges(),
    };
    ranges
        .into_iter()
        .map(|r| scanned.piece(r).text)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Why a dry run must not execute a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionControl<'a> {
    /// This statement ends or starts a transaction (the parser's `TransactionStmt`; for a
    /// file it refuses, the scanner's text from a transaction keyword to the next `;`).
    Statement(&'a str),
    /// Not even the scanner can read the file, so nothing can be said about it.
    Unreadable(String),
}

/// Whether a transaction statement of this kind ends the transaction it runs in (or starts
/// one). Savepoints stay inside it.
fn ends_transaction(kind: i32) -> bool {
    use TransactionStmtKind::*;
    match TransactionStmtKind::try_from(kind) {
        Ok(TransStmtSavepoint | TransStmtRelease | TransStmtRollbackTo) => false,
        // BEGIN, START, COMMIT/END (AND CHAIN too), ROLLBACK/ABORT, PREPARE TRANSACTION,
        // COMMIT/ROLLBACK PREPARED, and any kind this build does not know.
        _ => true,
    }
}

/// The first statement of `sql` that would end or start a transaction itself, if any.
pub fn transaction_control(sql: &str) -> Option<TransactionControl<'_>> {
    let scanned = match Scanned::new(sql) {
        Ok(s) => s,
        Err(e) => return Some(TransactionControl::Unreadable(e.to_string())),
    };
    match pg_query::parse(sql) {
        Ok(parsed) => parsed.protobuf.stmts.iter().find_map(|raw| {
            match raw.stmt.as_ref().and_then(|n| n.node.as_ref()) {
                Some(NodeEnum::TransactionStmt(t)) if ends_transaction(t.kind) => Some(
                    TransactionControl::Statement(scanned.piece(stmt_range(sql, raw)).text),
                ),
                _ => None,
            }
        }),
        Err(_) => scanned.keyword_control(),
    }
}

impl<'a> Scanned<'a> {
    /// For a file the parser refuses: the first transaction keyword anywhere (`PREPARE`
    /// only before `TRANSACTION`), with the text up to the next `;`. Cautious on purpose:
    /// an `END` closing a `CASE` counts too, since the statement around it is unknown.
    fn keyword_control(&self) -> Option<TransactionControl<'a>> {
        let significant: Vec<&ScanToken> = self
            .tokens
            .iter()
            .filter(|t| t.token != Token::SqlComment as i32 && t.token != Token::CComment as i32)
            .collect();
        let at =
            significant
                .iter()
                .enumerate()
                .position(|(i, t)| match Token::try_from(t.token) {
                    Ok(
                        Token::BeginP
                        | Token::Start
                        | Token::Commit
                        | Token::EndP
                        | Token::Rollback
                        | Token::AbortP,
                    ) => true,
                    Ok(Token::Prepare) => significant
                        .get(i + 1)
                        .is_some_and(|n| n.token == Token::Transaction as i32),
                    _ => false,
                })?;
        let start = significant[at].start as usize;
        let end = significant[at..]
            .iter()
            .find(|t| t.token == Token::Ascii59 as i32)
            .map_or(self.sql.len(), |t| t.start as usize);
        Some(TransactionControl::Statement(self.sql[start..end].trim()))
    }
}

#[cfg(test)]
mod tests;
