//! The bench's HTTP client: hyper's pooled HTTP/1.1 client over keep-alive connections, with the
//! bearer token on every request.

use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::BenchError;
use crate::http::middleware::READ_MODELS_LAG_HEADER;

/// A request that got no HTTP answer: refused or reset connection, malformed response.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct TransportError(String);

/// One HTTP answer, read to the end.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
    /// The service answered a write before its read models showed it (`X-Read-Models-Lag`).
    pub lagged: bool,
}

impl Answer {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    fn body_text(&self) -> String {
        const SHOWN_MAX: usize = 500;
        let text = String::from_utf8_lossy(&self.body);
        text.chars().take(SHOWN_MAX).collect()
    }
}

/// Cheap to clone: clones share the connection pool.
#[derive(Clone)]
pub(crate) struct Api {
    client: Client<HttpConnector, Full<Bytes>>,
    base_url: Arc<str>,
    authorization: Arc<str>,
}

impl Api {
    /// `connections` is how many idle connections the pool keeps: one per concurrent caller, so
    /// back-to-back requests reuse their connection instead of opening new ones.
    pub fn new(base_url: &str, token: &str, connections: usize) -> Self {
        let mut connector = HttpConnector::new();
        // Small request/response pairs on keep-alive connections: Nagle would add delay to each.
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(connections.max(1))
            .build(connector);
        Self {
            client,
            base_url: base_url.trim_end_matches('/').into(),
            authorization: format!("Bearer {token}").into(),
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Answer, TransportError> {
        let transport = |e: &dyn std::fmt::Display| TransportError(e.to_string());
        let uri: Uri = format!("{}{path}", self.base_url)
            .parse()
            .map_err(|e| transport(&e))?;
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(AUTHORIZATION, &*self.authorization);
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| transport(&e))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| transport(&e))?;
        let status = response.status();
        let lagged = response.headers().contains_key(READ_MODELS_LAG_HEADER);
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| transport(&e))?
            .to_bytes();
        Ok(Answer {
            status,
            body,
            lagged,
        })
    }

    /// A setup call that must answer `expected` with a JSON body; anything else is an error
    /// naming the request.
    pub async fn expect(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        expected: StatusCode,
    ) -> Result<Value, BenchError> {
        let request = format!("{method} {path}");
        let answer = self
            .send(method, path, body.map(Bytes::from))
            .await
            .map_err(|e| BenchError::Http {
                request: request.clone(),
                reason: e.to_string(),
            })?;
        if answer.status != expected {
            return Err(BenchError::Unexpected {
                request,
                status: answer.status.as_u16(),
                body: answer.body_text(),
            });
        }
        answer.json().ok_or_else(|| BenchError::Http {
            request,
            reason: format!("the body is not JSON: {}", answer.body_text()),
        })
    }

    /// The log's head as the service reports it (`ultima_posicion` of `GET /api/eventos`), asked
    /// past the end so no event is read.
    pub async fn head(&self) -> Result<i64, BenchError> {
        const PAST_THE_END: i64 = i64::MAX / 2;
        let path = format!("/api/eventos?desde_posicion={PAST_THE_END}&limite=1");
        let answer = self
            .expect(Method::GET, &path, None, StatusCode::OK)
            .await?;
        answer["ultima_posicion"]
            .as_i64()
            .ok_or_else(|| BenchError::Http {
                request: format!("GET {path}"),
                reason: "no ultima_posicion in the answer".to_string(),
            })
    }
}
