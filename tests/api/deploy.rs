//! The deployment examples in `deploy/`: every manifest parses, probes and ports agree with
//! the daemon, the example configurations pass `drover check-config`, and the stop timeouts
//! of systemd and Kubernetes outlast the shutdown grace. No database needed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use drover::config::parse_duration;
use serde::Deserialize;
use yaml_serde::Value;

use crate::helpers::{drover_cmd, tool, SecretsDir};

/// drover's own default for `shutdown_grace`.
const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn deploy() -> PathBuf {
    repo().join("deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `.yaml`/`.yml` file under `dir`, recursively, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Every YAML document of a file (`---` separated), failing with the file's name.
fn yaml_documents(path: &Path) -> Result<Vec<Value>, String> {
    let text = read(path);
    yaml_serde::Deserializer::from_str(&text)
        .enumerate()
        .map(|(i, doc)| {
            Value::deserialize(doc)
                .map_err(|e| format!("{}: document {}: {e}", path.display(), i + 1))
        })
        .filter(|doc| !matches!(doc, Ok(Value::Null)))
        .collect()
}

/// The one Kubernetes resource of `kind` under deploy/kubernetes.
fn k8s(kind: &str) -> Value {
    let mut matching: Vec<Value> = yaml_files(&deploy().join("kubernetes"))
        .iter()
        .flat_map(|f| yaml_documents(f).unwrap_or_else(|e| panic!("{e}")))
        .filter(|doc| doc.get("kind").and_then(Value::as_str) == Some(kind))
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "expected exactly one {kind} in deploy/kubernetes"
    );
    matching.remove(0)
}

/// `v` at a dotted path (`spec.ports.0.name`), failing with the path.
fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |cur, step| {
        let next = match step.parse::<usize>() {
            Ok(i) => cur.get(i),
            Err(_) => cur.get(step),
        };
        next.unwrap_or_else(|| panic!("missing {path} (at {step:?}) in {cur:?}"))
    })
}

fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string: {:?}", at(v, path)))
}

fn u64_at(v: &Value, path: &str) -> u64 {
    at(v, path)
        .as_u64()
        .unwrap_or_else(|| panic!("{path} is not an unsigned integer: {:?}", at(v, path)))
}

/// The literal `value` of an environment variable of a container.
fn container_env(container: &Value, name: &str) -> Option<String> {
    at(container, "env")
        .as_sequence()
        .expect("env is a list")
        .iter()
        .find(|e| e.get("name").and_then(Value::as_str) == Some(name))
        .and_then(|e| e.get("value"))
        .map(|v| match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => panic!("{name}: unexpected value {other:?}"),
        })
}

/// A string key of a TOML document, if set.
fn toml_key(text: &str, key: &str) -> Option<String> {
    let table: toml::Table = toml::from_str(text).expect("valid TOML");
    table.get(key).map(|v| match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        other => panic!("{key}: unexpected value {other:?}"),
    })
}

/// The `drover.toml` shipped in the ConfigMap.
fn configmap_toml() -> String {
    at(&k8s("ConfigMap"), "data")
        .get("drover.toml")
        .and_then(Value::as_str)
        .expect("the ConfigMap holds drover.toml")
        .to_owned()
}

/// The keys the file accepts as plain values (`[[provision_servers]]` tables aside).
fn file_keys() -> Vec<String> {
    drover::config::KEYS
        .iter()
        .filter(|k| k.source == drover::config::keys::Source::FileOrEnv)
        .map(|k| k.name.to_owned())
        .collect()
}

/// systemd time spans as used in units: `90`, `90s`, `1min 30s`, `2h`, `500ms`.
fn systemd_timespan(v: &str) -> Duration {
    if v.trim() == "infinity" {
        return Duration::MAX;
    }
    let mut total = Duration::ZERO;
    let mut rest = v.trim();
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: u64 = rest[..digits]
            .parse()
            .unwrap_or_else(|_| panic!("bad time span {v:?}"));
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c.is_whitespace())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = rest[unit_len..].trim_start();
        total += match unit {
            "ms" | "msec" => Duration::from_millis(n),
            "" | "s" | "sec" | "second" | "seconds" => Duration::from_secs(n),
            "m" | "min" | "minute" | "minutes" => Duration::from_secs(n * 60),
            "h" | "hr" | "hour" | "hours" => Duration::from_secs(n * 3600),
            other => panic!("unknown unit {other:?} in time span {v:?}"),
        };
    }
    total
}

/// The settings of one `[section]` of a unit file as (key, value), in order.
fn unit_settings(unit: &str, section: &str) -> Vec<(String, String)> {
    let mut current = String::new();
    let mut settings = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            current = line.to_owned();
            continue;
        }
        if current == format!("[{section}]") {
            let (k, v) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("not KEY=value: {line}"));
            settings.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    settings
}

/// A check-config run on `config` with `env`, a secrets dir holding the token files the
/// config refers to, and a dummy control-DB URL (check-config does not connect).
fn check_config(config: &Path, env: &[(String, String)], secrets: &SecretsDir) -> String {
    let mut cmd = drover_cmd();
    cmd.arg("check-config")
        .arg("--config")
        .arg(config)
        .env(
            "DROVER_DATABASE_URL",
            "postgres://drover@127.0.0.1:5432/drover",
        )
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("DROVER_SECRETS_DIR", secrets.path());
    let out = cmd.output().expect("run drover check-config");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "check-config of {} failed:\nstdout: {stdout}\nstderr: {}",
        config.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("configuration ok"), "{stdout}");
    stdout
}

/// Puts a token into `secrets` for every `file:` token reference in `refs`.
fn provide_token_files<'a>(secrets: &SecretsDir, refs: impl IntoIterator<Item = &'a str>) {
    for r in refs {
        if let Some(name) = r.strip_prefix("file:") {
            secrets.put(name, "0123456789abcdef0123456789abcdef");
        }
    }
}

fn printed(stdout: &str, key: &str) -> String {
    stdout
        .lines()
        .find_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some(key)).then(|| words.collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_else(|| panic!("{key} not printed: {stdout}"))
}

#[test]
fn every_deploy_yaml_file_parses() {
    let files = yaml_files(&deploy());
    assert!(
        files.len() >= 6,
        "expected prometheus.yml and the Kubernetes manifests, found {files:?}"
    );
    let mut problems = Vec::new();
    for file in &files {
        match yaml_documents(file) {
            Ok(docs) if docs.is_empty() => problems.push(format!("{}: empty", file.display())),
            Ok(docs) => {
                // Kubernetes manifests: every document is a resource.
                if file.starts_with(deploy().join("kubernetes")) {
                    for doc in &docs {
                        if doc.get("apiVersion").and_then(Value::as_str).is_none()
                            || doc.get("kind").and_then(Value::as_str).is_none()
                        {
                            problems.push(format!(
                                "{}: a document without apiVersion/kind",
                                file.display()
                            ));
                        }
                    }
                }
            }
            Err(e) => problems.push(e),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn kubernetes_probes_and_ports_match_the_daemon() {
    let routes = crate::openapi::documented_routes();
    for route in ["/healthz", "/readyz", "/metrics"] {
        let get = ("GET".to_string(), route.to_string());
        assert!(routes.contains(&get), "the router has no route {route}");
    }

    let deployment = k8s("Deployment");
    let pod = at(&deployment, "spec.template.spec");
    let containers = at(pod, "containers").as_sequence().unwrap();
    assert_eq!(containers.len(), 1, "one container expected");
    let c = &containers[0];

    let port_name = str_at(c, "ports.0.name");
    let port = u64_at(c, "ports.0.containerPort");
    assert_eq!(port_name, "http");
    let listen = container_env(c, "DROVER_LISTEN").expect("DROVER_LISTEN set");
    let listen_port: u64 = listen.rsplit_once(':').unwrap().1.parse().unwrap();
    assert_eq!(listen_port, port, "DROVER_LISTEN {listen} vs containerPort");
    assert!(
        listen.starts_with("0.0.0.0:") || listen.starts_with("[::]:"),
        "probes need a non-loopback listen address, got {listen}"
    );

    let refers_to_port = |v: &Value| v.as_str() == Some(port_name) || v.as_u64() == Some(port);
    assert_eq!(str_at(c, "livenessProbe.httpGet.path"), "/healthz");
    assert!(refers_to_port(at(c, "livenessProbe.httpGet.port")));
    assert_eq!(str_at(c, "readinessProbe.httpGet.path"), "/readyz");
    assert!(refers_to_port(at(c, "readinessProbe.httpGet.port")));
    if let Some(startup) = c.get("startupProbe") {
        assert!(refers_to_port(at(startup, "httpGet.port")));
    }
    assert_eq!(
        at(c, "env")
            .as_sequence()
            .unwrap()
            .iter()
            .find(|e| str_at(e, "name") == "DROVER_INSTANCE_ID")
            .map(|e| str_at(e, "valueFrom.fieldRef.fieldPath")),
        Some("metadata.name"),
        "DROVER_INSTANCE_ID comes from the pod name"
    );

    // The Service selects the pods and forwards to the container port.
    let service = k8s("Service");
    let pod_labels = at(&deployment, "spec.template.metadata.labels");
    for (k, v) in at(&service, "spec.selector").as_mapping().unwrap() {
        assert_eq!(
            pod_labels.get(k.as_str().unwrap()),
            Some(v),
            "selector {k:?}"
        );
    }
    let svc_port = at(&service, "spec.ports.0");
    assert!(
        refers_to_port(at(svc_port, "targetPort")),
        "Service targetPort must be {port_name} or {port}"
    );
    assert_eq!(u64_at(svc_port, "port"), port);
    let svc_port_name = str_at(svc_port, "name");
    assert_eq!(svc_port_name, port_name);

    // The ServiceMonitor selects the Service and scrapes /metrics on its named port.
    let monitor = k8s("ServiceMonitor");
    let svc_labels = at(&service, "metadata.labels");
    for (k, v) in at(&monitor, "spec.selector.matchLabels")
        .as_mapping()
        .unwrap()
    {
        assert_eq!(
            svc_labels.get(k.as_str().unwrap()),
            Some(v),
            "matchLabels {k:?}"
        );
    }
    let endpoint = at(&monitor, "spec.endpoints.0");
    assert_eq!(str_at(endpoint, "path"), "/metrics");
    assert_eq!(str_at(endpoint, "port"), svc_port_name);

    // Pods get longer to stop than drover takes to drain (plus any preStop pause).
    let grace = container_env(c, "DROVER_SHUTDOWN_GRACE")
        .or_else(|| toml_key(&configmap_toml(), "shutdown_grace"))
        .map_or(DEFAULT_SHUTDOWN_GRACE, |g| parse_duration(&g).unwrap());
    let pre_stop = c
        .get("lifecycle")
        .and_then(|l| l.get("preStop"))
        .and_then(|p| p.get("sleep"))
        .map_or(0, |s| u64_at(s, "seconds"));
    let termination = u64_at(pod, "terminationGracePeriodSeconds");
    assert!(
        Duration::from_secs(termination) > grace + Duration::from_secs(pre_stop),
        "terminationGracePeriodSeconds {termination} must exceed shutdown grace {grace:?} + preStop {pre_stop}s"
    );

    // Non-root, read-only root file system.
    assert_eq!(
        at(c, "securityContext.readOnlyRootFilesystem").as_bool(),
        Some(true)
    );
    assert_eq!(
        at(c, "securityContext.allowPrivilegeEscalation").as_bool(),
        Some(false)
    );
    assert_eq!(
        at(pod, "securityContext.runAsNonRoot").as_bool(),
        Some(true)
    );
    assert_eq!(u64_at(&deployment, "spec.replicas"), 2);
}

#[test]
fn the_example_config_is_accepted_by_check_config() {
    let path = deploy().join("drover.toml");
    let text = read(&path);

    // Every key the file accepts is documented, set or commented out.
    let missing: Vec<String> = file_keys()
        .into_iter()
        .filter(|key| {
            !text.lines().any(|line| {
                let line = line.trim_start().trim_start_matches('#').trim_start();
                line.strip_prefix(key.as_str())
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            })
        })
        .collect();
    assert!(
        missing.is_empty(),
        "deploy/drover.toml does not show {missing:?}"
    );

    // With the environment supplying the control-DB URL and the secrets dir holding the
    // referenced token files, check-config accepts it as is.
    let secrets = SecretsDir::new();
    let refs: Vec<String> = ["admin_token_ref", "resolver_token_ref"]
        .iter()
        .filter_map(|k| toml_key(&text, k))
        .collect();
    provide_token_files(&secrets, refs.iter().map(String::as_str));
    let mut env = Vec::new();
    if toml_key(&text, "admin_token_ref").is_none() {
        env.push((
            "DROVER_ADMIN_TOKEN".to_owned(),
            "0123456789abcdef0123456789abcdef".to_owned(),
        ));
    }
    let stdout = check_config(&path, &env, &secrets);
    assert_eq!(printed(&stdout, "admin_token"), "set");
    if let Some(listen) = toml_key(&text, "listen") {
        assert_eq!(printed(&stdout, "listen"), listen);
    }

    // The ConfigMap's drover.toml with the Deployment's literal environment, too.
    let deployment = k8s("Deployment");
    let c = at(&deployment, "spec.template.spec.containers.0");
    let env: Vec<(String, String)> = at(c, "env")
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|e| {
            let name = str_at(e, "name").to_owned();
            container_env(c, &name).map(|v| (name, v))
        })
        .filter(|(name, _)| name != "DROVER_SECRETS_DIR")
        .collect();
    let secrets = SecretsDir::new();
    provide_token_files(
        &secrets,
        env.iter()
            .filter(|(k, _)| k.ends_with("_TOKEN_REF"))
            .map(|(_, v)| v.as_str()),
    );
    let config = secrets.0.join("configmap-drover.toml");
    std::fs::write(&config, configmap_toml()).unwrap();
    let stdout = check_config(&config, &env, &secrets);
    assert_eq!(printed(&stdout, "admin_token"), "set");
    assert_eq!(printed(&stdout, "resolver_token"), "set");
    assert_eq!(
        Some(printed(&stdout, "listen")),
        container_env(c, "DROVER_LISTEN")
    );
}

#[test]
fn the_systemd_unit_waits_longer_than_the_shutdown_grace() {
    let unit = read(&deploy().join("drover.service"));
    let service = unit_settings(&unit, "Service");
    let get = |key: &str| {
        service
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };

    assert_eq!(
        get("ExecStart"),
        Some("/usr/local/bin/drover serve --config /etc/drover/drover.toml")
    );
    assert_eq!(get("EnvironmentFile"), Some("-/etc/drover/drover.env"));
    assert_eq!(get("Restart"), Some("on-failure"));
    assert_eq!(get("KillSignal"), Some("SIGTERM"));
    assert!(get("User").is_some_and(|u| u != "root"), "a dedicated user");
    assert_eq!(get("NoNewPrivileges"), Some("yes"));
    assert_eq!(get("ProtectSystem"), Some("strict"));

    let from_unit = service
        .iter()
        .filter(|(k, _)| k == "Environment")
        .find_map(|(_, v)| v.trim_matches('"').strip_prefix("DROVER_SHUTDOWN_GRACE="))
        .map(str::to_owned);
    let grace = from_unit
        .or_else(|| toml_key(&read(&deploy().join("drover.toml")), "shutdown_grace"))
        .map_or(DEFAULT_SHUTDOWN_GRACE, |g| parse_duration(&g).unwrap());
    let stop = systemd_timespan(get("TimeoutStopSec").expect("TimeoutStopSec set"));
    assert!(
        stop > grace,
        "TimeoutStopSec {stop:?} must exceed the shutdown grace {grace:?}"
    );
}

#[test]
fn the_prometheus_config_parses_and_scrapes_metrics() {
    let path = deploy().join("prometheus.yml");
    let docs = yaml_documents(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(docs.len(), 1);
    let prom = &docs[0];

    let rule_file = "/etc/prometheus/drover-alerts.yml";
    let rules = at(prom, "rule_files").as_sequence().unwrap();
    assert!(
        rules.iter().any(|r| r.as_str() == Some(rule_file)),
        "rule_files should load {rule_file}"
    );

    let job = at(prom, "scrape_configs")
        .as_sequence()
        .unwrap()
        .iter()
        .find(|j| j.get("job_name").and_then(Value::as_str) == Some("drover"))
        .expect("a scrape job named drover (the alert rules select job=\"drover\")");
    let metrics_path = job
        .get("metrics_path")
        .and_then(Value::as_str)
        .unwrap_or("/metrics");
    assert_eq!(metrics_path, "/metrics");
    assert_eq!(str_at(job, "scrape_interval"), "15s");
    let targets = at(job, "static_configs.0.targets").as_sequence().unwrap();
    assert_eq!(targets.len(), 2, "two replicas");

    let Some(promtool) = tool("promtool") else {
        return;
    };
    // promtool also loads the rule files: point them at the repository's copy.
    let alerts = repo().join("dashboards/alerts.yml");
    let text = read(&path);
    assert!(text.contains(rule_file));
    let dir = SecretsDir::new();
    let copy = dir.0.join("prometheus.yml");
    std::fs::write(&copy, text.replace(rule_file, alerts.to_str().unwrap())).unwrap();
    let out = Command::new(&promtool)
        .args(["check", "config"])
        .arg(&copy)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool check config deploy/prometheus.yml:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
