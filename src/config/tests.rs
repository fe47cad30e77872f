//! The loader's behaviour: precedence, error reporting, refusals, and that the builder and
//! the key list agree.

use super::*;
use secrecy::ExposeSecret;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[test]
fn env_wins_over_the_file() {
    let dir = std::env::temp_dir().join(format!("drover-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("drover.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:9000\"\npool_size = 4\n").unwrap();

    let cfg = Config::load_with(Some(&file), &env(&[("DROVER_LISTEN", "0.0.0.0:7000")])).unwrap();

    assert_eq!(cfg.listen.port(), 7000);
    assert_eq!(cfg.pool_size, 4);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_problem_is_reported_with_its_key() {
    let err = Config::load_with(
        None,
        &env(&[
            ("DROVER_LISTEN", "nope"),
            ("DROVER_POOL_SIZE", "0"),
            ("DROVER_ADMIN_TOKEN", "short"),
        ]),
    )
    .unwrap_err();

    let keys: Vec<_> = err.problems.iter().map(|p| p.key.as_str()).collect();
    assert!(keys.contains(&"DROVER_LISTEN (environment)"), "{keys:?}");
    assert!(keys.contains(&"DROVER_POOL_SIZE (environment)"), "{keys:?}");
    assert!(
        keys.contains(&"DROVER_ADMIN_TOKEN (environment)"),
        "{keys:?}"
    );
    assert!(
        !err.to_string().contains("short"),
        "token value must not be echoed"
    );
}

#[test]
fn unknown_file_keys_and_plain_tokens_in_the_file_are_refused() {
    let dir = std::env::temp_dir().join(format!("drover-cfg2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("drover.toml");
    std::fs::write(
        &file,
        "lisen = \"x\"\nadmin_token = \"0123456789abcdef0\"\n",
    )
    .unwrap();

    let err = Config::load_with(Some(&file), &env(&[])).unwrap_err();

    assert_eq!(err.problems.len(), 2);
    assert!(err.to_string().contains("lisen"));
    assert!(err.to_string().contains("DROVER_ADMIN_TOKEN_REF"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn token_can_come_from_a_file_reference() {
    let dir = std::env::temp_dir().join(format!("drover-cfg3-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("admin-token"), "0123456789abcdef-token\n").unwrap();

    let cfg = Config::load_with(
        None,
        &env(&[
            ("DROVER_SECRETS_DIR", dir.to_str().unwrap()),
            ("DROVER_ADMIN_TOKEN_REF", "file:admin-token"),
        ]),
    )
    .unwrap();

    assert_eq!(
        cfg.admin_token.unwrap().expose_secret(),
        "0123456789abcdef-token"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_toml_syntax_error_reports_the_line_but_not_its_text() {
    let dir = std::env::temp_dir().join(format!("drover-cfg4-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("drover.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:1\"\ndatabase_url = postgres://u:hunter2@h/db\n",
    )
    .unwrap();

    let err = Config::load_with(Some(&file), &env(&[]))
        .unwrap_err()
        .to_string();

    assert!(err.contains("line 2"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn secret_ref_scope_comes_from_config_and_covers_drovers_own_token_file() {
    let dir = std::env::temp_dir().join(format!("drover-cfg5-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("admin-token"), "0123456789abcdef-token\n").unwrap();

    let cfg = Config::load_with(
        None,
        &env(&[
            ("DROVER_SECRETS_DIR", dir.to_str().unwrap()),
            ("DROVER_ADMIN_TOKEN_REF", "file:admin-token"),
            ("DROVER_ENV_SECRET_PREFIX", "APP_DB_"),
            ("DROVER_VAULT_ALLOWED_PREFIXES", "kv/apps"),
        ]),
    )
    .unwrap();

    let check = |s: &str| cfg.ref_scope.check(&s.parse().unwrap());
    assert!(check("env:APP_DB_ACME").is_ok());
    assert!(check("env:TENANT_ACME").is_err());
    assert!(check("vault:kv/apps/acme#pw").is_ok());
    assert!(check("vault:secret/tenants/acme#pw").is_err());
    assert!(check("file:admin-token").is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_certificate_without_its_key_is_a_config_error_naming_both_settings() {
    let err = Config::load_with(
        None,
        &env(&[("DROVER_TLS_CERT_FILE", "/etc/drover/cert.pem")]),
    )
    .unwrap_err();

    assert!(err.to_string().contains("tls_key_file"), "{err}");
    assert!(err.to_string().contains("DROVER_TLS_CERT_FILE"), "{err}");
}

#[test]
fn an_env_prefix_matching_drover_variables_is_a_config_error() {
    let err =
        Config::load_with(None, &env(&[("DROVER_ENV_SECRET_PREFIX", "DROVER_")])).unwrap_err();

    assert!(
        err.to_string().contains("DROVER_ENV_SECRET_PREFIX"),
        "{err}"
    );
}

#[test]
fn a_public_url_with_a_path_or_a_bad_proxy_network_is_a_config_error_naming_the_key() {
    let err = Config::load_with(
        None,
        &env(&[
            ("DROVER_PUBLIC_URL", "https://drover.example.com/console"),
            ("DROVER_TRUSTED_PROXIES", "10.0.0.0/8, 10.0.0.0/33"),
        ]),
    )
    .unwrap_err();
    let shown = err.to_string();

    assert!(shown.contains("DROVER_PUBLIC_URL"), "{shown}");
    assert!(shown.contains("without a path"), "{shown}");
    assert!(shown.contains("DROVER_TRUSTED_PROXIES"), "{shown}");
    assert!(
        shown.contains("\"10.0.0.0/33\" is not a network"),
        "{shown}"
    );
    let relative =
        Config::load_with(None, &env(&[("DROVER_PUBLIC_URL", "drover.example.com")])).unwrap_err();
    assert!(relative.to_string().contains("absolute URL"), "{relative}");
}

#[test]
fn the_console_settings_come_from_public_url_and_trusted_proxies() {
    let cfg = Config::load_with(
        None,
        &env(&[
            ("DROVER_PUBLIC_URL", "https://Drover.Example.com:443"),
            ("DROVER_TRUSTED_PROXIES", "10.0.0.0/8,fd00::/8"),
            ("DROVER_CONSOLE_SESSION_TTL", "1h"),
        ]),
    )
    .unwrap();

    let console = &cfg.console;
    assert_eq!(
        console.public_url.as_ref().map(|u| u.origin()),
        Some("https://drover.example.com")
    );
    assert_eq!(console.trusted_proxies.list(), "10.0.0.0/8, fd00::/8");
    assert_eq!(console.session_ttl, Duration::from_secs(3600));
    assert!(!console.https_listener);
    let defaults = Config::load_with(None, &env(&[])).unwrap().console;
    assert_eq!(defaults.public_url, None);
    assert_eq!(defaults.trusted_proxies.list(), "");
}

#[test]
fn durations_accept_units() {
    assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
    assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
    assert!(parse_duration("5 weeks").is_err());
}

#[test]
fn every_declared_key_is_read_by_the_builder() {
    let mut b = super::build::Builder {
        raw: BTreeMap::new(),
        servers: None,
        problems: Vec::new(),
        read: std::collections::BTreeSet::new(),
        config_file: None,
    };

    b.build();

    let unread: Vec<_> = KEYS
        .iter()
        .filter(|k| k.source != keys::Source::FileTables && !b.read.contains(k.name))
        .map(|k| k.name)
        .collect();
    assert!(
        unread.is_empty(),
        "declared in config::keys::KEYS but never read by the builder: {unread:?}"
    );
    assert!(b.problems.is_empty(), "{:?}", b.problems);
}

#[test]
fn an_empty_configuration_takes_the_declared_defaults() {
    let cfg = Config::load_with(None, &env(&[])).unwrap();

    assert_eq!(cfg.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(cfg.migrations_dir, PathBuf::from("./tenant-migrations"));
    assert_eq!(cfg.log_filter, "info");
    assert_eq!(cfg.provision.db_name, "t_{ident}");
    assert_eq!(cfg.provision.secret_ref, "file:tenants/{slug}");
    assert_eq!(cfg.events.stream_max_clients, 256);
    assert_eq!(cfg.events.stream_max_per_token, 4);
    assert_eq!(cfg.listener.header_timeout, Duration::from_secs(10));
    assert_eq!(cfg.listener.max_connections, 1024);
    assert_eq!(cfg.ref_scope.env_prefix(), "TENANT_");
}

#[test]
fn an_own_file_inside_a_reference_prefix_is_refused_naming_its_key_and_the_prefix() {
    let dir = std::env::temp_dir().join(format!("drover-cfg-own-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("tenants")).unwrap();
    std::fs::write(dir.join("tenants/admin-token"), "0123456789abcdef-token\n").unwrap();
    std::fs::write(dir.join("vault-token"), "v\n").unwrap();

    let err = Config::load_with(
        None,
        &env(&[
            ("DROVER_SECRETS_DIR", dir.to_str().unwrap()),
            ("DROVER_ADMIN_TOKEN_REF", "file:tenants/admin-token"),
        ]),
    )
    .unwrap_err();
    let moved = Config::load_with(
        None,
        &env(&[
            ("DROVER_SECRETS_DIR", dir.to_str().unwrap()),
            ("DROVER_ADMIN_TOKEN_REF", "file:tenants/admin-token"),
            ("DROVER_FILE_SECRET_PREFIX", "tenant-secrets"),
        ]),
    );

    let p = &err.problems[0];
    assert_eq!(p.key, "DROVER_ADMIN_TOKEN_REF (environment)", "{err}");
    assert!(
        p.message.contains("tenants/")
            && p.message
                .contains("file_secret_prefix, DROVER_FILE_SECRET_PREFIX"),
        "{err}"
    );
    assert!(moved.is_ok(), "{moved:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn overlapping_reference_prefixes_and_env_prefixes_of_known_families_are_refused() {
    let err = Config::load_with(
        None,
        &env(&[
            ("DROVER_WEBHOOK_SECRET_PREFIX", "tenants/hooks"),
            ("DROVER_ENV_SECRET_PREFIX", "AWS_"),
        ]),
    )
    .unwrap_err()
    .to_string();

    assert!(
        err.contains("DROVER_ENV_SECRET_PREFIX (environment): must not match the AWS_* variables"),
        "{err}"
    );
    assert!(err.contains("tenants/ and tenants/hooks/ overlap"), "{err}");
}

#[test]
fn unset_retention_keys_give_the_retention_module_its_documented_defaults() {
    let cfg = Config::load_with(None, &env(&[])).unwrap();

    assert_eq!(
        cfg.retention,
        crate::retention::RetentionSettings::default()
    );
    assert_eq!(cfg.retention.events, Duration::from_secs(180 * 86_400));
    assert_eq!(cfg.retention.prune_interval, Duration::from_secs(600));
}

#[test]
fn a_retention_setting_set_in_the_environment_reaches_the_retention_settings() {
    let cfg = Config::load_with(
        None,
        &env(&[
            ("DROVER_EVENT_RETENTION", "7d"),
            ("DROVER_PRUNE_INTERVAL", "1s"),
        ]),
    )
    .unwrap();

    assert_eq!(cfg.retention.events, Duration::from_secs(7 * 86_400));
    assert_eq!(cfg.retention.prune_interval, Duration::from_secs(1));
}

#[test]
fn an_external_server_calls_back_to_public_url_else_to_listen_and_never_to_a_wildcard() {
    let dir = std::env::temp_dir().join(format!("drover-cfg-ext-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("drover.toml");
    std::fs::write(
        &file,
        "[[provision_servers]]\nname = \"k8s\"\nkind = \"external\"\n\
         url = \"https://prov.example.com/\"\nsecret_ref = \"file:webhooks/prov\"\n",
    )
    .unwrap();
    let base = |cfg: &Config| {
        cfg.provision.servers[0]
            .external()
            .unwrap()
            .callback_base
            .clone()
    };

    let listen =
        Config::load_with(Some(&file), &env(&[("DROVER_LISTEN", "127.0.0.1:7000")])).unwrap();
    let public = Config::load_with(
        Some(&file),
        &env(&[
            ("DROVER_LISTEN", "0.0.0.0:7000"),
            ("DROVER_PUBLIC_URL", "https://drover.example.com"),
        ]),
    )
    .unwrap();
    let wildcard =
        Config::load_with(Some(&file), &env(&[("DROVER_LISTEN", "0.0.0.0:7000")])).unwrap_err();

    assert_eq!(base(&listen), "http://127.0.0.1:7000");
    assert_eq!(base(&public), "https://drover.example.com");
    assert!(
        wildcard
            .problems
            .iter()
            .any(|p| p.key.contains("callback_url")),
        "{wildcard}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
