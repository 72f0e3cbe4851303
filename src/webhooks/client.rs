//! The outbound side of a delivery: one signed POST with a deadline, over HTTPS or HTTP, to an
//! address the policy allows ([`super::target`]).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, CONTENT_TYPE, USER_AGENT};
use hyper::{Method, Request};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::signature;
use super::target::{check, GuardedResolver, TargetRefusal, WebhookUrl};

/// Most of a receiver's answer read (and then dropped): reading it lets the connection be used
/// again; nobody needs more of it.
const ANSWER_BYTES_MAX: usize = 64 * 1024;
const AGENT: &str = concat!("fleet-ledger-webhooks/", env!("CARGO_PKG_VERSION"));

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver answered with this status (2xx is success).
    Answered(u16),
    /// No answer: refused by the policy, unreachable, or too slow. The reason is stored with the
    /// attempt and shown to the company's admin.
    NoAnswer(String),
}

impl Outcome {
    pub fn delivered(&self) -> bool {
        matches!(self, Self::Answered(status) if (200..300).contains(status))
    }
}

/// One delivery as it goes out.
pub struct Outgoing<'a> {
    pub url: &'a WebhookUrl,
    pub secret: &'a str,
    pub delivery_id: &'a str,
    pub body: Bytes,
}

#[derive(Clone)]
pub struct Outbound {
    client: Client<HttpsConnector<HttpConnector<GuardedResolver>>, Full<Bytes>>,
    allow_private: bool,
    timeout: Duration,
}

impl Outbound {
    pub fn new(allow_private: bool, timeout: Duration) -> Self {
        // One provider named here, not a process-wide default: nothing else in the process
        // installs or relies on one. rustls 0.23.48 deprecated ring's provider only because it
        // has no post-quantum key exchange; ring keeps aws-lc (a C and assembly build) out of
        // the tree, and a webhook's body is not a secret that must outlive a quantum computer.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports rustls's default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new_with_resolver(GuardedResolver { allow_private });
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Self {
            client,
            allow_private,
            timeout,
        }
    }

    /// POSTs `outgoing`, signed now, and waits at most the timeout for the answer's head.
    pub async fn post(&self, outgoing: Outgoing<'_>, unix_s: i64) -> Outcome {
        if let Some(ip) = outgoing.url.literal_address() {
            // A literal address never reaches the resolver: check it here.
            if let Err(refusal) = check(ip, self.allow_private) {
                return Outcome::NoAnswer(refusal.to_string());
            }
        }
        let request = match request(&outgoing, unix_s) {
            Ok(request) => request,
            Err(reason) => return Outcome::NoAnswer(reason),
        };
        let exchange = async {
            let answer = self.client.request(request).await.map_err(|e| why(&e))?;
            let status = answer.status().as_u16();
            // The body only so the connection can be used again; its errors do not matter.
            let _ = Limited::new(answer.into_body(), ANSWER_BYTES_MAX)
                .collect()
                .await;
            Ok::<_, String>(status)
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(status)) => Outcome::Answered(status),
            Ok(Err(reason)) => Outcome::NoAnswer(reason),
            Err(_) => {
                Outcome::NoAnswer(format!("sin respuesta en {} s", self.timeout.as_secs_f64()))
            }
        }
    }
}

fn request(outgoing: &Outgoing<'_>, unix_s: i64) -> Result<Request<Full<Bytes>>, String> {
    let signature = signature::sign(outgoing.secret, unix_s, &outgoing.body);
    Request::builder()
        .method(Method::POST)
        .uri(outgoing.url.as_str())
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header(USER_AGENT, HeaderValue::from_static(AGENT))
        .header(signature::DELIVERY_HEADER, outgoing.delivery_id)
        .header(signature::HEADER, signature)
        .body(Full::new(outgoing.body.clone()))
        .map_err(|e| format!("URL no utilizable: {e}"))
}

/// The reason a request got no answer, in words: the policy's refusal when the resolver refused
/// the name, else the innermost cause (connection refused, TLS, …).
fn why(error: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = error.to_string();
    let mut cause = Some(error);
    while let Some(current) = cause {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            if let Some(refusal) = io.get_ref().and_then(|e| e.downcast_ref::<TargetRefusal>()) {
                return refusal.to_string();
            }
        }
        innermost = current.to_string();
        cause = current.source();
    }
    format!("conexión fallida: {innermost}")
}
