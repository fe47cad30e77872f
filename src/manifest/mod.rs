//! Tenants as code: YAML tenant definitions (see README.md#tenants-as-code), read from
//! files, validated all at once, and compared with the registry.
//!
//! ```text
//!  files/dirs ──load──► [Loaded] ──plan(live tenants)──► Plan ──CLI──► PUT / DELETE per tenant
//!   (*.yaml, *.yml,      (every problem: file,            create / update (field diff) /
//!    many docs each)      document, field, line)          unchanged / delete (--prune)
//!
//!  registry Tenant ──Definition::from_tenant──► YAML (drover export); apply of it is a no-op
//! ```
//!
//! Owns the document model ([`Definition`]), loading ([`load()`]) and the plan ([`plan()`]).
//! No loops, no state, no network: the CLI (`drover apply`, `drover export`) and the HTTP
//! layer (`PUT /v1/tenants/{slug}`) drive it, and the registry's `put` applies a
//! definition in one transaction.

mod diff;
mod load;
mod locate;
mod model;

pub use diff::{diff, plan, Action, Change, Item, Options, Plan};
pub use load::{
    definition_files, load, parse_file, parse_one, BodyError, Loaded, Parsed, Problem, Source,
};
pub use model::{Database, Definition, FieldProblem, Metadata, Spec, API_VERSION, KIND};

/// Why definitions cannot be used. Nothing was applied in either case.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Files failed to read, parse or validate: every problem found, in file order.
    #[error("{} problem(s) in the tenant definitions", .0.len())]
    Invalid(Vec<Problem>),
    /// No definition at all. Refused: with `--prune` it would delete every tenant.
    #[error("no tenant definitions in {0} (looked for *.yaml and *.yml files)")]
    Empty(String),
}

impl ManifestError {
    /// Whether trying again unchanged can help: never, the files must change.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            let p =
                std::env::temp_dir().join(format!("drover-manifest-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }

        fn put(&self, rel: &str, text: &str) {
            let p = self.0.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn tenant_yaml(name: &str) -> String {
        format!(
            "apiVersion: drover.dev/v1\nkind: Tenant\nmetadata:\n  name: {name}\n  displayName: {name}\n\
             spec:\n  database:\n    host: db1\n    name: t_{name}\n    user: u\n    secretRef: file:pw\n"
        )
    }

    fn problems(dir: &Dir) -> Vec<Problem> {
        match load(std::slice::from_ref(&dir.0)) {
            Err(ManifestError::Invalid(p)) => p,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn a_directory_is_read_recursively_in_sorted_order_with_many_documents_per_file() {
        let dir = Dir::new("tree");
        dir.put("b.yaml", &tenant_yaml("bravo"));
        dir.put(
            "a/nested.yml",
            &format!("{}---\n{}", tenant_yaml("alpha"), tenant_yaml("charlie")),
        );
        dir.put("notes.txt", "not yaml at all: [");
        dir.put(".hidden/x.yaml", "garbage: [");

        let loaded = load(std::slice::from_ref(&dir.0)).unwrap();

        let names: Vec<(&str, usize)> = loaded
            .iter()
            .map(|l| (l.definition.name(), l.source.document))
            .collect();
        assert_eq!(names, [("alpha", 1), ("charlie", 2), ("bravo", 1)]);
        let twice = load(&[dir.0.clone(), dir.0.join("b.yaml")]).unwrap();
        assert_eq!(twice.len(), 3, "a file named twice is read once");
    }

    #[test]
    fn every_problem_in_every_file_is_reported_with_file_document_field_and_line() {
        let dir = Dir::new("bad");
        dir.put("1-ok.yaml", &tenant_yaml("ok"));
        dir.put(
            "2-typo.yaml",
            &tenant_yaml("typo").replace("    host: db1\n", "    hots: db1\n"),
        );
        dir.put(
            "3-rules.yaml",
            &format!(
                "{}---\n{}",
                tenant_yaml("fine"),
                tenant_yaml("Bad_Name")
                    .replace("secretRef: file:pw", "secretRef: postgres://u:pw@h/db")
            ),
        );
        dir.put(
            "4-syntax.yaml",
            "apiVersion: drover.dev/v1\nkind: [Tenant\n",
        );
        dir.put("5-dup.yaml", &tenant_yaml("ok"));

        let found = problems(&dir);
        let shown: Vec<String> = found.iter().map(|p| p.to_string()).collect();
        let text = shown.join("\n");

        assert!(
            shown.iter().any(|s| s
                .contains("2-typo.yaml:8: document 1: spec.database.hots: unknown field `hots`")),
            "{text}"
        );
        assert!(
            shown
                .iter()
                .any(|s| s.contains("3-rules.yaml:16: document 2: metadata.name:")),
            "{text}"
        );
        assert!(
            shown
                .iter()
                .any(|s| s.contains("3-rules.yaml:23: document 2: spec.database.secretRef:")),
            "{text}"
        );
        assert!(shown.iter().any(|s| s.contains("4-syntax.yaml:")), "{text}");
        assert!(
            shown.iter().any(|s| s.contains(
                "5-dup.yaml:4: document 1: metadata.name: tenant 'ok' is also defined in"
            )),
            "{text}"
        );
        assert_eq!(found.len(), 5, "{text}");
    }

    #[test]
    fn a_file_without_definitions_is_refused_rather_than_read_as_delete_everything() {
        let dir = Dir::new("empty");
        dir.put("only-comments.yaml", "# nothing yet\n");
        assert!(matches!(
            load(std::slice::from_ref(&dir.0)),
            Err(ManifestError::Empty(_))
        ));
    }

    #[test]
    fn a_request_body_holds_exactly_one_definition() {
        assert!(parse_one(&tenant_yaml("acme")).is_ok());
        let two = format!("{}---\n{}", tenant_yaml("a"), tenant_yaml("b"));
        assert!(matches!(parse_one(&two), Err(BodyError::Invalid(_))));
        assert!(matches!(parse_one(""), Err(BodyError::Invalid(_))));
        assert!(matches!(parse_one("a: [b"), Err(BodyError::Syntax(_))));
        let two_problems = tenant_yaml("acme")
            .replace("host: db1", "host: 'db 1'")
            .replace("user: u", "user: '1u'");
        match parse_one(&two_problems) {
            Err(BodyError::Invalid(p)) => assert_eq!(p.len(), 2, "{p:?}"),
            other => panic!("expected two problems, got {other:?}"),
        }
        assert!(!ManifestError::Empty("x".into()).is_retryable());
    }
}
