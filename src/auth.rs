//! Bearer JWTs, HS256 only, and the roles they carry.
//!
//! The algorithm is pinned: a token whose header names anything but HS256 (`none` included) is
//! refused before its signature is even looked at, so no "algorithm confusion" is possible.

use std::path::Path;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Utc;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub const SECRET_ENV: &str = "FLEET_LEDGER_JWT_SECRET";
const SECRET_FILE: &str = "jwt_secret";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Does everything, including managing catalogues.
    Admin,
    /// Records and reads.
    Operador,
    /// Only reads.
    Auditor,
}

impl Role {
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "admin" => Some(Self::Admin),
            "operador" => Some(Self::Operador),
            "auditor" => Some(Self::Auditor),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Operador => "operador",
            Self::Auditor => "auditor",
        }
    }
}

/// The caller a valid token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub sub: String,
    pub roles: Vec<Role>,
}

impl Actor {
    pub fn can_read(&self) -> bool {
        !self.roles.is_empty()
    }

    pub fn can_write(&self) -> bool {
        self.roles
            .iter()
            .any(|r| matches!(r, Role::Admin | Role::Operador))
    }

    pub fn is_admin(&self) -> bool {
        self.roles.contains(&Role::Admin)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    roles: Option<Roles>,
}

/// `roles` as a list, or as a single string, which some token issuers write.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Roles {
    Many(Vec<String>),
    One(String),
}

#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("malformed token")]
    Malformed,
    #[error("algorithm {0} is not accepted")]
    Algorithm(String),
    #[error("bad signature")]
    Signature,
    #[error("token expired")]
    Expired,
}

#[derive(Clone)]
pub struct JwtKeys {
    secret: Vec<u8>,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(…)")
    }
}

type HmacSha256 = Hmac<Sha256>;

impl JwtKeys {
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self {
            secret: secret.into(),
        }
    }

    /// The secret from `FLEET_LEDGER_JWT_SECRET`, or else the one kept in `data_dir`, generated
    /// (mode 0600) the first time.
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<Self> {
        if let Ok(secret) = std::env::var(SECRET_ENV) {
            if !secret.is_empty() {
                return Ok(Self::new(secret));
            }
        }
        let path = data_dir.join(SECRET_FILE);
        match std::fs::read_to_string(&path) {
            Ok(secret) if !secret.trim().is_empty() => return Ok(Self::new(secret.trim())),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::create_dir_all(data_dir)?;
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        write_private(&path, &secret)?;
        Ok(Self::new(secret))
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.secret).expect("HMAC accepts keys of any length")
    }

    pub fn issue(&self, sub: &str, roles: &[Role], ttl: Duration) -> String {
        let exp = Utc::now().timestamp() + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims {
            sub: sub.to_string(),
            exp,
            roles: (!roles.is_empty())
                .then(|| Roles::Many(roles.iter().map(|r| r.as_str().to_string()).collect())),
        };
        self.sign(&claims)
    }

    fn sign(&self, claims: &Claims) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
        let signing_input = format!("{header}.{body}");
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{signature}")
    }

    pub fn verify(&self, token: &str) -> Result<Actor, AuthError> {
        let mut parts = token.split('.');
        let (Some(header_part), Some(body_part), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed);
        };
        let header: Header = decode_part(header_part)?;
        if header.alg != "HS256" {
            return Err(AuthError::Algorithm(header.alg));
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| AuthError::Signature)?;
        let mut mac = self.mac();
        mac.update(header_part.as_bytes());
        mac.update(b".");
        mac.update(body_part.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| AuthError::Signature)?;
        let claims: Claims = decode_part(body_part)?;
        if claims.exp <= Utc::now().timestamp() {
            return Err(AuthError::Expired);
        }
        if claims.sub.trim().is_empty() {
            return Err(AuthError::Malformed);
        }
        let roles = match claims.roles {
            None => vec![Role::Operador],
            Some(Roles::One(name)) => Role::parse(&name).into_iter().collect(),
            Some(Roles::Many(names)) if names.is_empty() => vec![Role::Operador],
            Some(Roles::Many(names)) => names.iter().filter_map(|n| Role::parse(n)).collect(),
        };
        Ok(Actor {
            sub: claims.sub,
            roles,
        })
    }
}

fn decode_part<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// Parses a lifetime such as `8h`, `30m`, `45s`, `7d`, or a number of seconds.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (digits, unit_s) = match text.char_indices().last() {
        Some((i, 'd')) => (&text[..i], 86_400),
        Some((i, 'h')) => (&text[..i], 3_600),
        Some((i, 'm')) => (&text[..i], 60),
        Some((i, 's')) => (&text[..i], 1),
        _ => (text, 1),
    };
    let count: u64 = digits
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: use e.g. 8h, 30m, 45s or 7d"))?;
    if count == 0 {
        return Err("the duration must be positive".to_string());
    }
    Ok(Duration::from_secs(count.saturating_mul(unit_s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> JwtKeys {
        JwtKeys::new("test-secret")
    }

    fn forge(header: &str, claims: &str, key: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let mut mac = HmacSha256::new_from_slice(key).unwrap();
        mac.update(input.as_bytes());
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    #[test]
    fn an_issued_token_verifies_with_its_roles() {
        let token = keys().issue("ana@flota.co", &[Role::Auditor], Duration::from_secs(60));
        let actor = keys().verify(&token).unwrap();
        assert_eq!(
            actor,
            Actor {
                sub: "ana@flota.co".into(),
                roles: vec![Role::Auditor]
            }
        );
        assert!(actor.can_read() && !actor.can_write());
    }

    #[test]
    fn a_token_without_roles_is_an_operador() {
        let token = keys().issue("ana", &[], Duration::from_secs(60));
        assert_eq!(keys().verify(&token).unwrap().roles, vec![Role::Operador]);
    }

    #[test]
    fn alg_none_is_refused_even_unsigned() {
        let exp = Utc::now().timestamp() + 60;
        let body = URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"x","exp":{exp}}}"#));
        let token = format!("{}.{body}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#));
        assert_eq!(
            keys().verify(&token),
            Err(AuthError::Algorithm("none".into()))
        );
    }

    #[test]
    fn hs512_signed_with_the_right_secret_is_still_refused() {
        let exp = Utc::now().timestamp() + 60;
        let token = forge(
            r#"{"alg":"HS512"}"#,
            &format!(r#"{{"sub":"x","exp":{exp}}}"#),
            b"test-secret",
        );
        assert_eq!(
            keys().verify(&token),
            Err(AuthError::Algorithm("HS512".into()))
        );
    }

    #[test]
    fn another_secret_or_an_edited_body_fails_the_signature() {
        let token = JwtKeys::new("other").issue("ana", &[], Duration::from_secs(60));
        assert_eq!(keys().verify(&token), Err(AuthError::Signature));
        let exp = Utc::now().timestamp() + 60;
        let genuine = forge(
            r#"{"alg":"HS256"}"#,
            &format!(r#"{{"sub":"a","exp":{exp}}}"#),
            b"test-secret",
        );
        let mut parts: Vec<&str> = genuine.split('.').collect();
        let edited =
            URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"a","exp":{exp},"roles":["admin"]}}"#));
        parts[1] = &edited;
        assert_eq!(keys().verify(&parts.join(".")), Err(AuthError::Signature));
    }

    #[test]
    fn an_expired_token_is_refused() {
        let token = forge(
            r#"{"alg":"HS256"}"#,
            r#"{"sub":"a","exp":1000}"#,
            b"test-secret",
        );
        assert_eq!(keys().verify(&token), Err(AuthError::Expired));
    }

    #[test]
    fn ttls_read_as_people_write_them() {
        assert_eq!(parse_ttl("8h"), Ok(Duration::from_secs(8 * 3600)));
        assert_eq!(parse_ttl("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_ttl("90"), Ok(Duration::from_secs(90)));
        assert!(parse_ttl("soon").is_err());
        assert!(parse_ttl("0h").is_err());
    }
}
