//! `X-Fleet-Signature: t=<unix>,v1=<hex>`: HMAC-SHA256, keyed with the webhook's secret (its
//! text, as shown once at registration), of the text `<t>.<body>`. The timestamp inside the
//! signed text lets a receiver refuse a replayed delivery; the body is signed byte for byte as
//! sent.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The name of the header that carries the signature.
pub const HEADER: &str = "x-fleet-signature";
/// The name of the header that carries the delivery's id (the same on every retry).
pub const DELIVERY_HEADER: &str = "x-fleet-delivery";

fn mac(secret: &str, unix_s: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(unix_s.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header's value for `body` sent at `unix_s`.
pub fn sign(secret: &str, unix_s: i64, body: &[u8]) -> String {
    let digest = mac(secret, unix_s, body).finalize().into_bytes();
    format!("t={unix_s},v1={}", hex::encode(digest))
}

/// Whether `header` signs `body` with `secret` at a time within `tolerance_s` of `now_s`:
/// what a receiver checks (README shows the same in a few lines). The digests are compared in
/// constant time.
pub fn verify(secret: &str, header: &str, body: &[u8], now_s: i64, tolerance_s: i64) -> bool {
    let mut unix_s = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => unix_s = t.parse::<i64>().ok(),
            Some(("v1", hex)) => signatures.push(hex),
            _ => {}
        }
    }
    let Some(unix_s) = unix_s.filter(|t| (now_s - t).abs() <= tolerance_s) else {
        return false;
    };
    signatures.into_iter().any(|hex| {
        hex::decode(hex).is_ok_and(|digest| mac(secret, unix_s, body).verify_slice(&digest).is_ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_secret_body_and_time() {
        let body = br#"{"id":"1","evento":"auto_inspecao.criada"}"#;
        let header = sign("s3cret", 1_700_000_000, body);
        assert!(header.starts_with("t=1700000000,v1="));
        assert_eq!(header.len(), "t=1700000000,v1=".len() + 64);
        assert!(verify("s3cret", &header, body, 1_700_000_100, 300));
        assert!(!verify("other", &header, body, 1_700_000_100, 300));
        assert!(!verify("s3cret", &header, b"{}", 1_700_000_100, 300));
        assert!(
            !verify("s3cret", &header, body, 1_700_000_301, 300),
            "too old"
        );
        let forged = header.replace("t=1700000000", "t=1700000200");
        assert!(!verify("s3cret", &forged, body, 1_700_000_200, 300));
        assert!(!verify(
            "s3cret",
            "t=1700000000,v1=zz",
            body,
            1_700_000_000,
            300
        ));
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_timestamp_a_dot_and_the_body() {
        // RFC 4231 test case 2's key and data, framed as "t.body".
        let header = sign("Jefe", 0, b"what do ya want for nothing?");
        let expected = {
            let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
            mac.update(b"0.what do ya want for nothing?");
            hex::encode(mac.finalize().into_bytes())
        };
        assert_eq!(header, format!("t=0,v1={expected}"));
    }
}
