//! `success_condition` of a Prometheus check: `result <op> <number>`, nothing else.
//!
//! Hand-written on purpose: an expression language would be one more thing an operator
//! must learn and one more way for a typo to pass silently. Anything that is not exactly
//! `result`, one of `<`, `<=`, `>`, `>=`, `==`, `!=`, and a finite number is refused when
//! the wave (or schedule) is created, with the expected form in the message.

use std::fmt;
use std::str::FromStr;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

/// A parsed `result <op> <number>`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Condition {
    pub op: Op,
    pub threshold: f64,
}

/// Why a condition was refused (the message says what is expected).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected `result <op> <number>` with <op> one of <, <=, >, >=, ==, != (e.g. `result < 0.01`): {why}")]
pub struct ConditionError {
    why: String,
}

fn refuse(why: impl Into<String>) -> ConditionError {
    ConditionError { why: why.into() }
}

impl FromStr for Condition {
    type Err = ConditionError;

    fn from_str(s: &str) -> Result<Condition, ConditionError> {
        let rest = s
            .trim_start()
            .strip_prefix("result")
            .ok_or_else(|| refuse(format!("{s:?} does not start with `result`")))?;
        let rest = rest.trim_start();
        // Two-character operators first, so `<=` is not read as `<` and `=…`.
        let (op, rest) = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
        ]
        .iter()
        .find_map(|(tok, op)| rest.strip_prefix(tok).map(|r| (*op, r)))
        .ok_or_else(|| refuse(format!("no comparison operator after `result` in {s:?}")))?;
        let number = rest.trim();
        // f64::from_str also takes "inf", "NaN" and "infinity": none is a threshold.
        let looks_numeric = !number.is_empty()
            && number
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
        let threshold = number
            .parse::<f64>()
            .ok()
            .filter(|n| looks_numeric && n.is_finite())
            .ok_or_else(|| refuse(format!("{number:?} is not a finite number")))?;
        Ok(Condition { op, threshold })
    }
}

impl Condition {
    /// Whether `value` satisfies the condition. NaN satisfies nothing (not even `!=`),
    /// so a NaN result can never pass a gate.
    pub fn holds(&self, value: f64) -> bool {
        if value.is_nan() {
            return false;
        }
        let t = self.threshold;
        match self.op {
            Op::Lt => value < t,
            Op::Le => value <= t,
            Op::Gt => value > t,
            Op::Ge => value >= t,
            Op::Eq => value == t,
            Op::Ne => value != t,
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "result {} {}", self.op.as_str(), self.threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Condition, ConditionError> {
        s.parse()
    }

    #[test]
    fn every_operator_parses_with_or_without_spaces() {
        assert_eq!(
            parse("result < 0.01").unwrap(),
            Condition {
                op: Op::Lt,
                threshold: 0.01
            }
        );
        assert_eq!(parse("result<=5").unwrap().op, Op::Le);
        assert_eq!(parse("  result >  -2 ").unwrap().threshold, -2.0);
        assert_eq!(parse("result>=1e3").unwrap().threshold, 1000.0);
        assert_eq!(parse("result == 0").unwrap().op, Op::Eq);
        assert_eq!(parse("result != 1").unwrap().op, Op::Ne);
    }

    #[test]
    fn anything_else_is_refused_with_the_expected_form() {
        for bad in [
            "",
            "result",
            "result < ",
            "value < 1",
            "result = 1",
            "result <> 1",
            "result < 1 and result > 0",
            "result < NaN",
            "result < inf",
            "result < 0x10",
            "1 > result",
            "result =< 1",
            "result < 1; drop",
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(err.to_string().contains("result <op> <number>"), "{err}");
        }
    }

    #[test]
    fn conditions_compare_and_nan_never_holds() {
        let lt = parse("result < 0.01").unwrap();
        assert!(lt.holds(0.001));
        assert!(!lt.holds(0.01));
        assert!(parse("result <= 0.01").unwrap().holds(0.01));
        assert!(parse("result == 0").unwrap().holds(0.0));
        assert!(parse("result != 0").unwrap().holds(1.0));
        assert!(!parse("result != 0").unwrap().holds(f64::NAN));
        assert!(!parse("result > 0").unwrap().holds(f64::NAN));
        assert_eq!(lt.to_string(), "result < 0.01");
    }
}
