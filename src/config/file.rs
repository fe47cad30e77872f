//! The TOML file: every top-level key must be one of [`KEYS`](super::keys::KEYS) that the
//! file may set; values are kept as typed (strings, integers as their text) with the key and
//! the file's name for error messages. Validation happens later, once, in the builder.

use std::collections::BTreeMap;
use std::path::Path;

use super::keys::{env_name, Source, KEYS};
use super::{ConfigError, ConfigProblem, Raw};

/// Reads the file's plain keys into `raw`; returns its `[[provision_servers]]`-style array
/// of tables, if any, with the file's name.
pub(super) fn read_file(
    path: &Path,
    raw: &mut BTreeMap<&'static str, Raw>,
) -> Result<Option<(toml::Value, String)>, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::one(&shown, format!("cannot read config file: {e}")))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e: toml::de::Error| {
        // The parser's own Display quotes the offending line, which may hold a
        // password (an unquoted database_url): report the position only.
        let line = e.span().map_or(0, |sp| {
            text[..sp.start.min(text.len())].matches('\n').count() + 1
        });
        ConfigError::one(
            &shown,
            format!("not valid TOML at line {line}: {}", e.message()),
        )
    })?;
    let mut problems = Vec::new();
    let mut servers = None;
    for (key, value) in table {
        let origin = format!("{key} ({shown})");
        let Some(known) = KEYS.iter().find(|k| k.name == key) else {
            problems.push(ConfigProblem {
                key: origin,
                message: format!("unknown key; known keys: {}", plain_keys().join(", ")),
            });
            continue;
        };
        match known.source {
            Source::FileOrEnv => {}
            Source::FileTables => {
                servers = Some((value, shown.clone()));
                continue;
            }
            Source::EnvOnly => {
                problems.push(ConfigProblem {
                    key: origin,
                    message: format!(
                        "tokens are not accepted in the file; use {}_REF or the environment",
                        env_name(&key)
                    ),
                });
                continue;
            }
        }
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            other => {
                problems.push(ConfigProblem {
                    key: origin,
                    message: format!("expected a string or integer, found {}", other.type_str()),
                });
                continue;
            }
        };
        raw.insert(known.name, Raw { value, origin });
    }
    if problems.is_empty() {
        Ok(servers)
    } else {
        Err(ConfigError { problems })
    }
}

/// The keys the file may set to a plain value, for the "unknown key" hint.
fn plain_keys() -> Vec<&'static str> {
    KEYS.iter()
        .filter(|k| k.source == Source::FileOrEnv)
        .map(|k| k.name)
        .collect()
}
