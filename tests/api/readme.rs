//! The READMEs' commands against the real command line: every `drover …` line in a shell
//! block must parse with drover's own CLI definition, and every `cargo …` line must name
//! something that exists. The commands that change state are run end to end elsewhere
//! (quickstart: `cli::quickstart_*`; `tenants create --provision --wait` and
//! `delete --drop-database`: `provision::cli_*`; waves, schedules and fleet: `waves`,
//! `schedules`; `cargo test`: `.ci/run`).

use clap::Parser;

const READMES: &[(&str, &str)] = &[
    ("README.md", include_str!("../../README.md")),
    ("deploy/README.md", include_str!("../../deploy/README.md")),
];

/// The command lines of the ```sh / ```bash blocks, continuation lines joined and
/// trailing comments dropped.
fn shell_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_block = !in_block && (line.contains("sh") || line.contains("bash"));
            continue;
        }
        if !in_block {
            continue;
        }
        let line = strip_comment(line);
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(&line);
        let full = pending.trim().to_string();
        pending.clear();
        if !full.is_empty() {
            out.push(full);
        }
    }
    out
}

/// Drops a `# comment` that is not inside quotes.
fn strip_comment(line: &str) -> String {
    let (mut single, mut double) = (false, false);
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && (i == 0 || line[..i].ends_with(' ')) => {
                return line[..i].trim_end().to_string();
            }
            _ => {}
        }
    }
    line.trim_end().to_string()
}

/// Splits like a POSIX shell does for the quoting the READMEs use ('…', "…", bare words).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut started = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                started = true;
            }
            (None, c) if c.is_whitespace() => {
                if started {
                    out.push(std::mem::take(&mut cur));
                    started = false;
                }
            }
            (None, c) => {
                cur.push(c);
                started = true;
            }
        }
    }
    if started {
        out.push(cur);
    }
    out
}

#[test]
fn every_drover_command_in_the_readmes_parses_with_the_real_cli() {
    let mut checked = 0;
    let mut failures = Vec::new();

    for (file, text) in READMES {
        for line in shell_lines(text) {
            let argv = words(&line);
            // `drover …`, or a path to the binary (`/usr/local/bin/drover …`) being run.
            let at = if argv.first().is_some_and(|w| w == "drover") {
                Some(0)
            } else {
                argv.iter()
                    .position(|w| w.ends_with("bin/drover"))
                    .filter(|_| !line.starts_with("install"))
            };
            let Some(at) = at else { continue };
            // Placeholders like WAVE_ID stand for a real id.
            let args: Vec<String> = argv[at..]
                .iter()
                .map(|w| {
                    let placeholder =
                        w.ends_with("_ID") && w.chars().all(|c| c.is_ascii_uppercase() || c == '_');
                    if placeholder {
                        "00000000-0000-0000-0000-000000000000".to_string()
                    } else {
                        w.clone()
                    }
                })
                .collect();
            checked += 1;
            if let Err(e) = drover::cli::Cli::try_parse_from(&args) {
                failures.push(format!("{file}: {line}\n  {}", e.kind()));
            }
        }
    }

    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 8, "only {checked} drover commands found");
}

#[test]
fn every_cargo_command_in_the_readme_names_a_real_target() {
    let manifest = include_str!("../../Cargo.toml");
    let mut seen = Vec::new();

    for line in shell_lines(READMES[0].1) {
        let argv = words(&line);
        if argv.first().map(String::as_str) != Some("cargo") {
            continue;
        }
        seen.push(line.clone());
        match argv.get(1).map(String::as_str) {
            Some("bench") => {
                let bench = &argv[argv.iter().position(|w| w == "--bench").unwrap() + 1];
                assert!(
                    manifest.contains(&format!("name = \"{bench}\"")),
                    "{line}: no bench {bench}"
                );
            }
            Some("run") => {
                let sub = &argv[argv.iter().position(|w| w == "--").unwrap() + 1..];
                let mut full = vec!["drover".to_string()];
                full.extend(sub.iter().cloned());
                drover::cli::Cli::try_parse_from(&full)
                    .unwrap_or_else(|e| panic!("{line}: {}", e.kind()));
            }
            Some("test") => {}
            other => panic!("{line}: no check for cargo {other:?}"),
        }
    }

    assert!(seen
        .iter()
        .any(|l| l.starts_with("cargo run --release -- quickstart")));
    assert!(seen.iter().any(|l| l == "cargo test"));
}

#[test]
fn the_shell_splitter_handles_the_quoting_the_readmes_use() {
    assert_eq!(
        words(r#"drover schedules create nightly "0 3 * * 1-5" --template '{"a": 1}'"#),
        [
            "drover",
            "schedules",
            "create",
            "nightly",
            "0 3 * * 1-5",
            "--template",
            r#"{"a": 1}"#
        ]
    );
    assert_eq!(strip_comment("drover fleet   # versions"), "drover fleet");
}
