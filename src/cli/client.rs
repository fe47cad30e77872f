//! A small HTTP client for the daemon's API, used by the client commands.

use anyhow::{bail, Context};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Talks to one daemon with the token from `DROVER_TOKEN` (a named token) or
/// `DROVER_ADMIN_TOKEN` (the root token).
pub struct ApiClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl ApiClient {
    /// A client for `server` with `DROVER_TOKEN` or else the admin token; fails when
    /// neither is set.
    pub fn new(server: &str) -> anyhow::Result<ApiClient> {
        Self::with_token_from(server, &["DROVER_TOKEN", "DROVER_ADMIN_TOKEN"])
    }

    /// A client with an explicit token (the quickstart made it itself).
    pub fn with_token(server: &str, token: &str) -> anyhow::Result<ApiClient> {
        let http = http_client(reqwest::header::HeaderMap::new())?;
        Ok(ApiClient {
            base: server.trim_end_matches('/').to_string(),
            token: token.to_string(),
            http,
        })
    }

    /// A client whose token is the first of `vars` that is set.
    pub fn with_token_from(server: &str, vars: &[&str]) -> anyhow::Result<ApiClient> {
        let token = vars
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|t| !t.is_empty()))
            .with_context(|| {
                format!(
                    "{} is not set (the CLI never takes tokens as arguments)",
                    vars.join(" or ")
                )
            })?;
        let actor = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        let mut headers = reqwest::header::HeaderMap::new();
        if let Ok(v) = reqwest::header::HeaderValue::from_str(&format!("cli:{actor}")) {
            headers.insert("x-drover-actor", v);
        }
        let http = http_client(headers)?;
        Ok(ApiClient {
            base: server.trim_end_matches('/').to_string(),
            token,
            http,
        })
    }

    /// Sends a request and decodes the JSON answer; an API error becomes one clear line.
    pub async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> anyhow::Result<T> {
        self.send(method, path, body, None).await
    }

    /// [`ApiClient::call`] for a request the server answers only when a job is done
    /// (`?wait=true`): no 30-second limit, an hour instead.
    pub async fn call_waiting<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> anyhow::Result<T> {
        let limit = std::time::Duration::from_secs(3600);
        self.send(method, path, body, Some(limit)).await
    }

    /// Opens a Server-Sent Events stream (no overall time limit), resuming after
    /// `last_event_id` when given.
    pub async fn stream(
        &self,
        path: &str,
        last_event_id: Option<&str>,
    ) -> anyhow::Result<reqwest::Response> {
        let url = format!("{}{}", self.base, path);
        // The client's 30 s limit would cut the stream; this one only bounds the connect.
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()?;
        let mut req = http
            .get(&url)
            .bearer_auth(&self.token)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach drover at {}", self.base))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            let msg = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                .unwrap_or(text);
            bail!("{} {}", status.as_u16(), msg);
        }
        Ok(resp)
    }

    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        timeout: Option<std::time::Duration>,
    ) -> anyhow::Result<T> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach drover at {} (is `drover serve` running? set --server or DROVER_SERVER)", self.base))?;
        let status = resp.status();
        let text = resp.text().await.context("reading the response")?;
        if !status.is_success() {
            let parsed: Option<Value> = serde_json::from_str(&text).ok();
            let msg = parsed
                .as_ref()
                .and_then(|v| v["error"]["message"].as_str())
                .map(str::to_string)
                .unwrap_or_else(|| text.chars().take(200).collect());
            bail!("{} {}", status.as_u16(), msg);
        }
        // 204 No Content decodes as JSON null.
        let text = if text.trim().is_empty() {
            "null".to_string()
        } else {
            text
        };
        serde_json::from_str(&text).with_context(|| format!("unexpected response from {url}"))
    }
}

/// The HTTP client of every command: a 30 s timeout, and the CA of `DROVER_SERVER_CA_FILE`
/// trusted too (a daemon serving HTTPS with a private CA: `tls_cert_file`).
fn http_client(headers: reqwest::header::HeaderMap) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .default_headers(headers)
        .timeout(std::time::Duration::from_secs(30));
    if let Some(path) = std::env::var_os("DROVER_SERVER_CA_FILE").filter(|p| !p.is_empty()) {
        let shown = path.to_string_lossy().into_owned();
        let pem = std::fs::read(&path)
            .with_context(|| format!("reading DROVER_SERVER_CA_FILE {shown}"))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("DROVER_SERVER_CA_FILE {shown}: not a PEM bundle"))?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder.build()?)
}
