//! Reading definitions: files and directories (recursively, `*.yaml` and `*.yml`, sorted),
//! one or many documents per file, every problem located by file, document, field and
//! line, and duplicates across files. Nothing is returned unless everything is valid.
//!
//! Each file is read twice by the YAML parser: once for the documents' syntax (a syntax
//! error ends the file: libyaml cannot resynchronize after one), then once per document
//! into [`Definition`], so a wrong field in one document does not hide the next one's.
//! Validation problems found after parsing are pointed at with [`super::locate`].

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::locate::locate;
use super::model::{Definition, FieldProblem};
use super::ManifestError;

/// Where a definition came from.
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    /// The file as given on the command line (or found under a given directory).
    pub file: String,
    /// 1-based index of the YAML document in the file.
    pub document: usize,
    #[serde(skip)]
    text: Arc<str>,
}

impl Source {
    /// The line of the node at `path` in this document, when it is there.
    pub fn line_of(&self, path: &[&str]) -> Option<usize> {
        let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        locate(&self.text, self.document - 1, &path)
    }

    /// A problem in this document at `path`.
    pub fn problem(&self, path: &[&str], message: impl Into<String>) -> Problem {
        Problem {
            file: self.file.clone(),
            document: Some(self.document),
            field: Some(path.join(".")),
            line: self.line_of(path),
            message: message.into(),
        }
    }
}

/// A valid definition and where it is.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The definition, normalized.
    pub definition: Definition,
    /// Its file and document.
    pub source: Source,
}

/// One thing wrong with the definitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The file.
    pub file: String,
    /// 1-based document index, when the problem is inside one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<usize>,
    /// The field's path in the document, when the problem is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// 1-based line, where the parser gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    /// `dir/acme.yaml:7: document 1: spec.database.port: must be between 1 and 65535`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(d) = self.document {
            write!(f, ": document {d}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Loads every definition under `paths` (files, or directories read recursively). Every
/// problem in every file is reported; an empty result is refused (with `--prune` it would
/// delete every tenant).
pub fn load(paths: &[PathBuf]) -> Result<Vec<Loaded>, ManifestError> {
    let mut problems = Vec::new();
    let mut files = Vec::new();
    for path in paths {
        match definition_files(path) {
            Ok(mut found) => files.append(&mut found),
            Err(p) => problems.push(p),
        }
    }
    // A file named twice (`-f dir -f dir/a.yaml`) is read once, where first found.
    let mut seen = std::collections::HashSet::new();
    files.retain(|f| seen.insert(std::fs::canonicalize(f).unwrap_or_else(|_| f.clone())));
    let mut loaded = Vec::new();
    for file in &files {
        let name = file.display().to_string();
        match std::fs::read_to_string(file) {
            Ok(text) => {
                let mut parsed = parse_file(&name, text.into());
                loaded.append(&mut parsed.loaded);
                problems.append(&mut parsed.problems);
            }
            Err(e) => problems.push(Problem {
                file: name,
                document: None,
                field: None,
                line: None,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    problems.extend(duplicates(&loaded));
    if !problems.is_empty() {
        return Err(ManifestError::Invalid(problems));
    }
    if loaded.is_empty() {
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(ManifestError::Empty(shown.join(", ")));
    }
    Ok(loaded)
}

/// `path` itself when it is a file; otherwise the `*.yaml` and `*.yml` files under it,
/// recursively, sorted. Hidden entries (`.git`, `..data` of a mounted ConfigMap) are
/// skipped, and symlinked directories are not followed (no loops).
pub fn definition_files(path: &Path) -> Result<Vec<PathBuf>, Problem> {
    let problem = |p: &Path, e: std::io::Error| Problem {
        file: p.display().to_string(),
        document: None,
        field: None,
        line: None,
        message: format!("cannot read: {e}"),
    };
    let meta = std::fs::metadata(path).map_err(|e| problem(path, e))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| problem(&dir, e))? {
            let entry = entry.map_err(|e| problem(&dir, e))?;
            let p = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let ty = entry.file_type().map_err(|e| problem(&p, e))?;
            if ty.is_dir() {
                dirs.push(p);
            } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
                && std::fs::metadata(&p).map(|m| m.is_file()).unwrap_or(false)
            {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// What one file holds.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The valid definitions.
    pub loaded: Vec<Loaded>,
    /// Every problem, in document order.
    pub problems: Vec<Problem>,
    /// Whether the last problem is a YAML syntax error (the rest of the file was not read).
    pub syntax_error: bool,
}

/// Parses and validates every document of one file. Empty documents are skipped.
pub fn parse_file(file: &str, text: Arc<str>) -> Parsed {
    let mut loaded = Vec::new();
    let mut problems = Vec::new();
    let mut syntax_error = false;
    let problem = |document, field, line, message| Problem {
        file: file.to_string(),
        document,
        field,
        line,
        message,
    };

    // Pass 1: syntax. Stop at the first error: the parser cannot go on after one.
    let mut present = Vec::new();
    for (i, doc) in yaml_serde::Deserializer::from_str(&text).enumerate() {
        match yaml_serde::Value::deserialize(doc) {
            Ok(v) => present.push(!v.is_null()),
            Err(e) => {
                let (line, message) = split_location(&e);
                problems.push(problem(Some(i + 1), None, line, message));
                syntax_error = true;
                break;
            }
        }
    }

    // Pass 2: each well-formed document into a definition, then the registry's rules.
    let docs = yaml_serde::Deserializer::from_str(&text).zip(present);
    for (i, (doc, present)) in docs.enumerate() {
        if !present {
            continue;
        }
        let source = Source {
            file: file.to_string(),
            document: i + 1,
            text: Arc::clone(&text),
        };
        match Definition::deserialize(doc) {
            Ok(mut definition) => {
                definition.normalize();
                let found = definition.problems();
                if found.is_empty() {
                    loaded.push(Loaded { definition, source });
                }
                let mut located: Vec<Problem> = found
                    .into_iter()
                    .map(
                        |FieldProblem {
                             field,
                             locate: at,
                             message,
                         }| {
                            let line = locate(&text, i, &at);
                            problem(Some(i + 1), Some(field), line, message)
                        },
                    )
                    .collect();
                // Read top to bottom, like the file.
                located.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
                problems.append(&mut located);
            }
            Err(e) => {
                let (line, message) = split_location(&e);
                let (field, message) = split_field(&message);
                problems.push(problem(Some(i + 1), field, line, message));
            }
        }
    }
    Parsed {
        loaded,
        problems,
        syntax_error,
    }
}

/// Why a request body is not one valid definition.
#[derive(Debug)]
pub enum BodyError {
    /// Not YAML at all.
    Syntax(Problem),
    /// YAML, but not a valid definition: every problem, with field and line.
    Invalid(Vec<Problem>),
}

/// Parses one definition (the body of `PUT /v1/tenants/{slug}` as YAML).
pub fn parse_one(text: &str) -> Result<Definition, BodyError> {
    let mut parsed = parse_file("body", Arc::from(text));
    // The syntax error is the last problem recorded (reading stops there).
    if parsed.syntax_error {
        if let Some(p) = parsed.problems.pop() {
            return Err(BodyError::Syntax(p));
        }
    }
    if !parsed.problems.is_empty() {
        return Err(BodyError::Invalid(parsed.problems));
    }
    let only = |message: &str| {
        BodyError::Invalid(vec![Problem {
            file: "body".into(),
            document: None,
            field: None,
            line: None,
            message: message.into(),
        }])
    };
    let mut loaded = parsed.loaded.into_iter();
    match (loaded.next(), loaded.next()) {
        (Some(one), None) => Ok(one.definition),
        (None, _) => Err(only("empty body: expected one tenant definition")),
        (Some(_), Some(_)) => Err(only(
            "expected one tenant definition, found several documents",
        )),
    }
}

/// Two definitions of one tenant, or of one database, anywhere in the files.
fn duplicates(loaded: &[Loaded]) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut names: HashMap<String, &Source> = HashMap::new();
    let mut databases: HashMap<String, (&str, &Source)> = HashMap::new();
    for l in loaded {
        let d = &l.definition;
        let s = &l.source;
        match names.get(&d.name().to_lowercase()) {
            Some(first) => problems.push(s.problem(
                &["metadata", "name"],
                format!(
                    "tenant '{}' is also defined in {} (document {})",
                    d.name(),
                    first.file,
                    first.document
                ),
            )),
            None => {
                names.insert(d.name().to_lowercase(), s);
            }
        }
        let db = d.spec.database.name.to_lowercase();
        match databases.get(&db) {
            Some((other, first)) if *other != d.name() => problems.push(s.problem(
                &["spec", "database", "name"],
                format!(
                    "database '{}' is also declared for tenant '{other}' in {} (document {})",
                    d.spec.database.name, first.file, first.document
                ),
            )),
            Some(_) => {}
            None => {
                databases.insert(db, (d.name(), s));
            }
        }
    }
    problems
}

/// yaml_serde's message without the " at line L column C" it appends, and the line.
fn split_location(e: &yaml_serde::Error) -> (Option<usize>, String) {
    let text = e.to_string();
    match e.location() {
        Some(loc) => {
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            (Some(loc.line()), text.replacen(&suffix, "", 1))
        }
        None => (None, text),
    }
}

/// `spec.database: unknown field `hots`, expected ...` → the field (`spec.database.hots`)
/// and the message. A missing or unknown field is named itself, not its parent.
fn split_field(message: &str) -> (Option<String>, String) {
    let (path, rest) = match message.split_once(": ") {
        Some((p, rest)) if !p.is_empty() && !p.contains(char::is_whitespace) => {
            (Some(p.to_string()), rest.to_string())
        }
        _ => (None, message.to_string()),
    };
    let named = ["unknown field `", "missing field `", "duplicate field `"]
        .iter()
        .find_map(|prefix| rest.strip_prefix(prefix))
        .and_then(|r| r.split('`').next())
        .map(str::to_string);
    let field = match (path, named) {
        (Some(p), Some(n)) => Some(format!("{p}.{n}")),
        (None, Some(n)) => Some(n),
        (p, None) => p,
    };
    (field, rest)
}
