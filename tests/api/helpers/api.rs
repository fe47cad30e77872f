//! `ApiClient`: drover's HTTP API as one function per endpoint, so a test reads as the
//! scenario it checks. [`super::TestApp`] and [`super::Daemon`] both deref to one, so
//! `app.start_wave(..)` and `daemon.start_wave(..)` are the same code.
//!
//! Helpers whose status a test asserts return the raw `reqwest::Response`
//! (`create_tenant`, `get_tenant`, `push_set`, ...); typed ones (`start_wave`,
//! `issue_token`, `pushed_set`) assert the happy path and return what a scenario needs next.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};

use super::{fresh_database, server_host_port, SecretsDir, TenantDb};

/// The admin token every test daemon uses.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

/// Wave states a wave does not leave by itself.
pub const WAVE_DONE: &[&str] = &["completed", "halted", "aborted"];

/// The API of one daemon, spoken with one bearer token.
#[derive(Clone)]
pub struct ApiClient {
    pub base_url: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl ApiClient {
    /// A client for `base_url` (`http://host:port`) with the admin token.
    pub fn new(base_url: String) -> ApiClient {
        ApiClient {
            base_url,
            token: ADMIN_TOKEN.to_string(),
            http: reqwest::Client::new(),
        }
    }

    /// The same daemon, spoken to with `token` (a resolver, a publisher, a viewer).
    pub fn with_token(&self, token: &str) -> ApiClient {
        ApiClient {
            token: token.to_string(),
            ..self.clone()
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        self.base_url.clone()
    }

    /// A request with this client's token.
    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.req_as(&self.token, method, path)
    }

    /// A request with `token` instead of this client's.
    pub fn req_as(&self, token: &str, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base_url))
            .bearer_auth(token)
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Response {
        self.req(Method::GET, path).send().await.unwrap()
    }

    /// `GET path` with no `Authorization` header at all.
    pub async fn get_without_token(&self, path: &str) -> Response {
        let url = format!("{}{path}", self.base_url);
        self.http.get(url).send().await.unwrap()
    }

    /// `GET path`, decoded from JSON.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        self.get(path).await.json().await.unwrap()
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.req(Method::POST, path)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `PATCH path` with a JSON body.
    pub async fn patch_json(&self, path: &str, body: &Value) -> Response {
        self.req(Method::PATCH, path)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `POST path` without a body.
    pub async fn post(&self, path: &str) -> Response {
        self.req(Method::POST, path).send().await.unwrap()
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Response {
        self.req(Method::DELETE, path).send().await.unwrap()
    }

    /// Any call: its status and JSON body (`null` when the body is not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.req(method, path);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `GET /metrics` without a token, as Prometheus asks: the exposition text.
    pub async fn metrics_text(&self) -> String {
        let resp = self.get_without_token("/metrics").await;
        resp.text().await.unwrap()
    }

    /// The value of one sample of `/metrics` (`name{labels}` exactly as exposed), 0 if absent.
    pub async fn metric(&self, sample: &str) -> f64 {
        self.metrics_text()
            .await
            .lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }

    /// `GET /v1/resolve/{slug}`.
    pub async fn resolve(&self, slug: &str) -> Response {
        self.get(&format!("/v1/resolve/{slug}")).await
    }

    /// `GET /v1/cluster`.
    pub async fn cluster(&self) -> Value {
        self.get_json("/v1/cluster").await
    }

    /// `POST /v1/schedules`.
    pub async fn create_schedule(&self, body: &Value) -> Response {
        self.post_json("/v1/schedules", body).await
    }
}

/// Tenants and their servers.
impl ApiClient {
    /// `POST /v1/tenants`.
    pub async fn create_tenant(&self, body: &Value) -> Response {
        self.post_json("/v1/tenants", body).await
    }

    /// `POST /v1/tenants?wait=true`: the answer once provisioning has finished.
    pub async fn create_tenant_waiting(&self, body: &Value) -> Response {
        self.post_json("/v1/tenants?wait=true", body).await
    }

    /// `POST /v1/tenants/{slug}/provision?wait=true`.
    pub async fn provision_waiting(&self, slug: &str) -> Response {
        self.req(
            Method::POST,
            &format!("/v1/tenants/{slug}/provision?wait=true"),
        )
        .send()
        .await
        .unwrap()
    }

    /// `GET /v1/tenants/{slug}`.
    pub async fn get_tenant(&self, slug: &str) -> Response {
        self.get(&format!("/v1/tenants/{slug}")).await
    }

    /// `PATCH /v1/tenants/{slug}`.
    pub async fn patch_tenant(&self, slug: &str, body: &Value) -> Response {
        self.patch_json(&format!("/v1/tenants/{slug}"), body).await
    }

    /// `DELETE /v1/tenants/{slug}`: the registry row only.
    pub async fn delete_tenant(&self, slug: &str) -> Response {
        self.delete(&format!("/v1/tenants/{slug}")).await
    }

    /// `DELETE /v1/tenants/{slug}?drop_database=true`: the row, the database and its role.
    pub async fn delete_tenant_and_database(&self, slug: &str) -> Response {
        self.delete(&format!("/v1/tenants/{slug}?drop_database=true"))
            .await
    }

    /// `POST /v1/tenants/{slug}/{action}` with an optional body.
    pub async fn act(&self, slug: &str, action: &str, body: Option<Value>) -> Response {
        let mut r = self.req(Method::POST, &format!("/v1/tenants/{slug}/{action}"));
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap()
    }

    /// `GET /v1/tenants?email=` → the slugs found.
    pub async fn slugs_by_email(&self, email: &str) -> Vec<String> {
        let page: Value = self
            .req(Method::GET, "/v1/tenants")
            .query(&[("email", email)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        page["items"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|t| t["slug"].as_str().map(str::to_string))
            .collect()
    }

    /// `GET /v1/tenants/{slug}/limits`.
    pub async fn limits(&self, slug: &str) -> Response {
        self.get(&format!("/v1/tenants/{slug}/limits")).await
    }

    /// `PUT /v1/tenants/{slug}/limits`.
    pub async fn put_limits(&self, slug: &str, body: &Value) -> Response {
        self.req(Method::PUT, &format!("/v1/tenants/{slug}/limits"))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Event types of a tenant, newest first.
    pub async fn event_types(&self, slug: &str) -> Vec<String> {
        let page: Value = self
            .get_json(&format!("/v1/tenants/{slug}/events?limit=1000"))
            .await;
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_type"].as_str().unwrap().to_string())
            .collect()
    }

    /// `GET /v1/servers` → its items.
    pub async fn servers(&self) -> Vec<Value> {
        let list: Value = self.get_json("/v1/servers").await;
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// Creates `n` tenant databases on the test server named `{prefix}-{i}` and registers
    /// them (active; the first `canaries` flagged canary). All share the `file:tenants/pw`
    /// secret.
    pub async fn register_tenants(
        &self,
        secrets: &SecretsDir,
        prefix: &str,
        n: usize,
        canaries: usize,
    ) -> Vec<TenantDb> {
        secrets.put("tenants/pw", "unused-with-trust-auth");
        let (host, port) = server_host_port();
        let mut out = Vec::new();
        for i in 0..n {
            let url = fresh_database("tenant").await;
            let db = url.rsplit('/').next().unwrap().to_string();
            let slug = format!("{prefix}-{i:03}");
            let mut body = tenant_body(&slug);
            body["db_host"] = json!(host);
            body["db_port"] = json!(port);
            body["db_name"] = json!(db);
            body["db_user"] = json!("postgres");
            body["db_secret_ref"] = json!("file:tenants/pw");
            body["canary"] = json!(i < canaries);
            let resp = self.create_tenant(&body).await;
            assert_eq!(
                resp.status(),
                StatusCode::CREATED,
                "{}",
                resp.text().await.unwrap()
            );
            out.push(TenantDb { slug, url });
        }
        out
    }
}

/// Tokens.
impl ApiClient {
    /// `POST /v1/tokens`.
    pub async fn create_token(&self, name: &str, role: &str, expires_in: Option<&str>) -> Response {
        let mut body = json!({ "name": name, "role": role });
        if let Some(e) = expires_in {
            body["expires_in"] = json!(e);
        }
        self.post_json("/v1/tokens", &body).await
    }

    /// A new named token with `role` (asserts the 201); returns the token.
    pub async fn issue_token(&self, name: &str, role: &str) -> String {
        let resp = self.create_token(name, role, None).await;
        assert_eq!(resp.status(), StatusCode::CREATED, "create token {name}");
        let body: Value = resp.json().await.unwrap();
        body["token"].as_str().unwrap().to_string()
    }

    /// `GET /v1/tokens` as text (to look for leaked values).
    pub async fn list_tokens_text(&self) -> String {
        self.get("/v1/tokens").await.text().await.unwrap()
    }

    /// `DELETE /v1/tokens/{name}`.
    pub async fn revoke_token(&self, name: &str) -> Response {
        self.delete(&format!("/v1/tokens/{name}")).await
    }
}

/// Migration sets.
impl ApiClient {
    /// `POST /v1/migration-sets`.
    pub async fn push_set(&self, body: &Value) -> Response {
        self.post_json("/v1/migration-sets", body).await
    }

    /// Pushes `files` (with `label`), expecting 201 or 200; the set's id.
    pub async fn pushed_set(&self, files: &[(&str, &str)], label: Option<&str>) -> String {
        let resp = self.push_set(&set_body(files, label)).await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert!(status.is_success(), "push: {status} {body}");
        body["id"].as_str().unwrap().to_string()
    }

    /// `GET /v1/migration-sets/{id}` (an id, a label or `latest`).
    pub async fn get_set(&self, id: &str) -> Response {
        self.get(&format!("/v1/migration-sets/{id}")).await
    }

    /// `GET /v1/migration-sets` → the items.
    pub async fn list_sets(&self) -> Vec<Value> {
        let page: Value = self.get_json("/v1/migration-sets").await;
        page["items"].as_array().unwrap().clone()
    }

    /// `DELETE /v1/migration-sets/{id}`.
    pub async fn delete_set(&self, id: &str) -> Response {
        self.delete(&format!("/v1/migration-sets/{id}")).await
    }
}

/// Waves.
impl ApiClient {
    /// `POST /v1/waves` (asserts the 201) → the wave id.
    pub async fn start_wave(&self, body: Value) -> String {
        let resp = self.create_wave(&body).await;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v["id"].as_str().unwrap().to_string()
    }

    /// `POST /v1/waves`, for a test that checks the answer itself.
    pub async fn create_wave(&self, body: &Value) -> Response {
        self.post_json("/v1/waves", body).await
    }

    /// `POST /v1/waves/{id}/pause`.
    pub async fn pause_wave(&self, id: &str) -> Response {
        self.post(&format!("/v1/waves/{id}/pause")).await
    }

    /// `POST /v1/waves/{id}/resume`.
    pub async fn resume_wave(&self, id: &str) -> Response {
        self.post(&format!("/v1/waves/{id}/resume")).await
    }

    /// `POST /v1/waves/{id}/abort`.
    pub async fn abort_wave(&self, id: &str) -> Response {
        self.post(&format!("/v1/waves/{id}/abort")).await
    }

    /// `POST /v1/waves/{id}/promote`.
    pub async fn promote_wave(&self, id: &str) -> Response {
        self.post(&format!("/v1/waves/{id}/promote")).await
    }

    /// `GET /v1/waves/{id}`.
    pub async fn get_wave(&self, id: &str) -> Value {
        self.get_json(&format!("/v1/waves/{id}")).await
    }

    /// `GET /v1/waves/{id}/events`: (type, actor, payload) of the wave's timeline, oldest
    /// first.
    pub async fn wave_events(&self, id: &str) -> Vec<(String, String, Value)> {
        let page: Value = self.get_json(&format!("/v1/waves/{id}/events")).await;
        page["items"]
            .as_array()
            .unwrap_or_else(|| panic!("no items: {page:#}"))
            .iter()
            .map(|e| {
                (
                    e["type"].as_str().unwrap().to_string(),
                    e["actor"].as_str().unwrap().to_string(),
                    e["payload"].clone(),
                )
            })
            .collect()
    }

    /// `POST /v1/waves/{id}/{action}` (pause, resume, abort, promote) as `actor` (asserts
    /// the 200) → the wave after it.
    pub async fn wave_action(&self, id: &str, action: &str, actor: &str) -> Value {
        let resp = self
            .req(Method::POST, &format!("/v1/waves/{id}/{action}"))
            .header("X-Drover-Actor", actor)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{action} {id}");
        resp.json().await.unwrap()
    }

    /// Waits up to a minute until the wave reaches a state in `states` → the wave; panics
    /// with the wave if it does not.
    pub async fn wait_for_wave_state(&self, id: &str, states: &[&str]) -> Value {
        self.wait_for_wave_state_within(id, states, Duration::from_secs(60))
            .await
    }

    /// [`Self::wait_for_wave_state`] with another deadline than a minute.
    pub async fn wait_for_wave_state_within(
        &self,
        id: &str,
        states: &[&str],
        timeout: Duration,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let w = self.get_wave(id).await;
            if states.contains(&w["state"].as_str().unwrap_or("")) {
                return w;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "wave never reached {states:?}: {w:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A valid create body for `slug`.
pub fn tenant_body(slug: &str) -> Value {
    json!({
        "slug": slug,
        "display_name": format!("{slug} Inc."),
        "db_name": format!("t_{}", slug.replace('-', "_")),
        "db_host": "db1.internal",
        "db_port": 5432,
        "db_user": format!("u_{}", slug.replace('-', "_")),
        "db_secret_ref": format!("file:tenants/{slug}"),
        "labels": {"plan": "pro", "region": "eu"},
        "status": "active"
    })
}

/// The body of `POST /v1/migration-sets`.
pub fn set_body(files: &[(&str, &str)], label: Option<&str>) -> Value {
    let files: Vec<Value> = files
        .iter()
        .map(|(name, sql)| json!({ "name": name, "sql": sql }))
        .collect();
    match label {
        Some(l) => json!({ "label": l, "files": files }),
        None => json!({ "files": files }),
    }
}
