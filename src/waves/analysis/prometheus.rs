//! PromQL instant queries for `prometheus` checks (`GET {prometheus_url}/api/v1/query`).
//!
//! Anything short of one finite-or-infinite number is an [`Inconclusive`]: an empty vector
//! (no data), several series (the query must aggregate to one), NaN, a Prometheus error,
//! a timeout, a refused connection. The check's `success_condition` then never sees it.

use std::time::Duration;

use serde_json::Value;

/// Why a query gave no usable number (for people; never contains the URL).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Inconclusive(pub String);

/// Why `prometheus_url` cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("prometheus_url (DROVER_PROMETHEUS_URL): {0}")]
pub struct PrometheusUrlError(String);

/// A client for one Prometheus (or anything speaking its HTTP API: Thanos, Mimir, VictoriaMetrics).
#[derive(Debug, Clone)]
pub struct PrometheusClient {
    query_url: String,
    http: reqwest::Client,
}

/// Checks a configured URL: http(s), a host, no credentials (they would end up in logs).
pub fn check_url(url: &str) -> Result<String, PrometheusUrlError> {
    let base = url.trim().trim_end_matches('/').to_string();
    let parsed =
        reqwest::Url::parse(&base).map_err(|e| PrometheusUrlError(format!("not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(PrometheusUrlError(
            "expected an http:// or https:// URL with a host, e.g. http://prometheus:9090".into(),
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(PrometheusUrlError(
            "credentials in the URL are not supported".into(),
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(PrometheusUrlError(
            "give the base URL without ?query or #fragment".into(),
        ));
    }
    Ok(base)
}

impl PrometheusClient {
    /// A client for the Prometheus at `base` (checked with [`check_url`]).
    pub fn new(base: &str) -> Result<PrometheusClient, PrometheusUrlError> {
        let base = check_url(base)?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("drover/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PrometheusUrlError(format!("HTTP client: {e}")))?;
        Ok(PrometheusClient {
            query_url: format!("{base}/api/v1/query"),
            http,
        })
    }

    /// Evaluates `query` now and returns its single value.
    pub async fn scalar(&self, query: &str, timeout: Duration) -> Result<f64, Inconclusive> {
        // Prometheus durations are integers with a unit ("5.000s" is refused).
        let millis = timeout.as_millis().max(1);
        let response = self
            .http
            .get(&self.query_url)
            // Prometheus stops evaluating at its own timeout too, so a slow query does
            // not keep running there after drover gave up on it.
            .query(&[("query", query), ("timeout", &format!("{millis}ms"))])
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| Inconclusive(transport(&e, timeout)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| Inconclusive(transport(&e, timeout)))?;
        let v: Value = serde_json::from_slice(&body).map_err(|_| {
            Inconclusive(format!(
                "Prometheus answered HTTP {} without a JSON body",
                status.as_u16()
            ))
        })?;
        single_value(&v)
    }
}

fn transport(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!(
            "Prometheus did not answer within {} ms",
            timeout.as_millis()
        );
    }
    // reqwest's own message names the URL; the innermost cause is what matters.
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    if e.is_connect() {
        format!("cannot connect to Prometheus: {cause}")
    } else {
        format!("the request to Prometheus failed: {cause}")
    }
}

fn sample(pair: &Value) -> Result<f64, Inconclusive> {
    let text = pair[1]
        .as_str()
        .ok_or_else(|| Inconclusive("a sample without a value".into()))?;
    let v: f64 = text
        .parse()
        .map_err(|_| Inconclusive(format!("the value {text:?} is not a number")))?;
    if v.is_nan() {
        return Err(Inconclusive("the query returned NaN".into()));
    }
    Ok(v)
}

/// The one number in an API answer, from a scalar or a one-series vector.
pub fn single_value(v: &Value) -> Result<f64, Inconclusive> {
    if v["status"] != "success" {
        return Err(Inconclusive(format!(
            "Prometheus refused the query: {}: {}",
            v["errorType"].as_str().unwrap_or("error"),
            v["error"].as_str().unwrap_or("no message")
        )));
    }
    let data = &v["data"];
    match data["resultType"].as_str() {
        Some("scalar") => sample(&data["result"]),
        Some("vector") => match data["result"].as_array().map(Vec::as_slice) {
            Some([one]) => sample(&one["value"]),
            Some([]) | None => Err(Inconclusive("no data (empty result)".into())),
            Some(many) => Err(Inconclusive(format!(
                "{} series returned; aggregate the query to one (e.g. sum(...) or max(...))",
                many.len()
            ))),
        },
        other => Err(Inconclusive(format!(
            "a {} result; use a query that returns a scalar or a single series",
            other.unwrap_or("missing")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_scalar_or_a_single_series_gives_its_value() {
        let scalar = json!({"status": "success", "data": {"resultType": "scalar", "result": [1.7e9, "0.5"]}});
        let vector = json!({"status": "success", "data": {"resultType": "vector",
            "result": [{"metric": {}, "value": [1.7e9, "3"]}]}});

        assert_eq!(single_value(&scalar), Ok(0.5));
        assert_eq!(single_value(&vector), Ok(3.0));
    }

    #[test]
    fn no_data_several_series_nan_and_errors_are_inconclusive() {
        let empty = json!({"status": "success", "data": {"resultType": "vector", "result": []}});
        let two = json!({"status": "success", "data": {"resultType": "vector",
            "result": [{"value": [1, "1"]}, {"value": [1, "2"]}]}});
        let nan =
            json!({"status": "success", "data": {"resultType": "scalar", "result": [1, "NaN"]}});
        let error = json!({"status": "error", "errorType": "bad_data", "error": "parse error"});
        let matrix = json!({"status": "success", "data": {"resultType": "matrix", "result": []}});

        assert!(single_value(&empty).unwrap_err().0.contains("no data"));
        assert!(single_value(&two).unwrap_err().0.contains("2 series"));
        assert!(single_value(&nan).unwrap_err().0.contains("NaN"));
        assert!(single_value(&error).unwrap_err().0.contains("parse error"));
        assert!(single_value(&matrix).unwrap_err().0.contains("matrix"));
    }

    #[test]
    fn urls_with_credentials_or_other_schemes_are_refused() {
        assert_eq!(check_url("http://prom:9090/").unwrap(), "http://prom:9090");
        assert!(check_url("https://u:p@prom:9090").is_err());
        assert!(check_url("ftp://prom").is_err());
        assert!(check_url("prom:9090").is_err());
    }
}
