//! Reading definitions: files and directories (recursively, `*.yaml` and `*.yml`, sorted),
//! one or many documents per file, every problem located by file, document, field and
//! line, and duplicates across files. Nothing is returned unless everything is valid.
//!
//! Each file is read twice by the YAML parser: once for the documents' syntax (a syntax
//! error ends the file: libyaml cannot resynchronize after one), then once per document
//! into [`Definition`], so a wrong field in one document does not hide the next one's.
//! Validation problems found after parsing are pointed at by parsing their document once
//! more with a probe that fails on purpose at the field's node, which is how the line of
//! any node is learnt from `yaml_serde` (it exposes positions only on errors).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

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
    let parsed = parse_file("body", Arc::from(text));
    if parsed.syntax_error {
        if let Some(p) = parsed.problems.into_iter().next() {
            return Err(BodyError::Syntax(p));
        }
        unreachable!("a syntax error is recorded as a problem");
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

const PROBE_HIT: &str = "drover: probe reached its node";

/// The line of the node at `path` in document `index` (0-based) of `text`.
fn locate(text: &str, index: usize, path: &[String]) -> Option<usize> {
    let doc = yaml_serde::Deserializer::from_str(text).nth(index)?;
    match Probe(path).deserialize(doc) {
        Err(e) if e.to_string().contains(PROBE_HIT) => e.location().map(|l| l.line()),
        _ => None,
    }
}

/// Walks a document along `path` and fails at the node it names, so the parser attaches
/// that node's position to the error.
struct Probe<'a>(&'a [String]);

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Probe<'_> {
    fn scalar<E: de::Error>(self) -> Result<(), E> {
        if self.0.is_empty() {
            Err(E::custom(PROBE_HIT))
        } else {
            Ok(())
        }
    }
}

impl<'de> Visitor<'de> for Probe<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((head, rest)) = self.0.split_first() else {
            return Err(de::Error::custom(PROBE_HIT));
        };
        while let Some(key) = map.next_key::<Key>()? {
            if key.0.as_deref() == Some(head.as_str()) {
                return map.next_value_seed(Probe(rest));
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.0.is_empty() {
            return Err(de::Error::custom(PROBE_HIT));
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.scalar()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
}

/// A mapping key as text when it is a string (other keys never match a path).
struct Key(Option<String>);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key(Some(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Key, E> {
                Ok(Key(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Key, E> {
                Ok(Key(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Key, E> {
                Ok(Key(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Key, E> {
                Ok(Key(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Key, E> {
                Ok(Key(None))
            }
        }
        d.deserialize_any(V)
    }
}
