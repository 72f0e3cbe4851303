//! Bearer JWTs, verified by `jsonwebtoken`, and the roles they carry.
//!
//! One algorithm is accepted at a time, and it is pinned: HS256 with the service's secret (the
//! default) or RS256 with a configured public key. A token whose header names anything else
//! (`none` included) is refused before its signature is even looked at, so no "algorithm
//! confusion" is possible. A token is never logged: refusals log only an [`AuthError`].

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Utc;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

pub const SECRET_ENV: &str = "FLEET_LEDGER_JWT_SECRET";
/// An HS256 secret is as strong as its length: RFC 7518 §3.2 asks for at least the hash's
/// 256 bits, so a shorter one given by an operator stops the service at startup.
pub const SECRET_LEN_MIN: usize = 32;
/// Clock skew tolerated on `exp` and `nbf` between the issuer and this service.
pub const LEEWAY_S: i64 = 30;
const SECRET_FILE: &str = "jwt_secret";
/// Longest `alg` name repeated in a log line: the header is the caller's text.
const ALG_LOGGED_LEN_MAX: usize = 16;

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

    /// The audit endpoints: history, past states and what each user did.
    pub fn can_audit(&self) -> bool {
        self.roles
            .iter()
            .any(|r| matches!(r, Role::Admin | Role::Auditor))
    }

    pub fn is_admin(&self) -> bool {
        self.roles.contains(&Role::Admin)
    }
}

/// The claims this service reads. `exp` and `nbf` are read here rather than by jsonwebtoken:
/// with serde_json's `arbitrary_precision` (money must never pass through f64) its numeric
/// claim parser sees every number as a map and would refuse every token.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    /// Written into issued tokens; jsonwebtoken checks a received one (string or list).
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
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

/// Why a token was refused. Every variant is safe to log: none carries the token.
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
    #[error("token has no exp claim")]
    MissingExpiry,
    #[error("token not valid yet (nbf)")]
    NotYetValid,
    #[error("token issuer is not accepted")]
    Issuer,
    #[error("token audience is not accepted")]
    Audience,
    #[error("these keys only verify tokens (RS256); tokens come from the identity provider")]
    CannotSign,
}

impl From<jsonwebtoken::errors::Error> for AuthError {
    fn from(error: jsonwebtoken::errors::Error) -> Self {
        match error.kind() {
            ErrorKind::InvalidSignature => Self::Signature,
            ErrorKind::ExpiredSignature => Self::Expired,
            ErrorKind::ImmatureSignature => Self::NotYetValid,
            ErrorKind::InvalidIssuer => Self::Issuer,
            ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => Self::Issuer,
            ErrorKind::InvalidAudience => Self::Audience,
            ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => Self::Audience,
            _ => Self::Malformed,
        }
    }
}

/// Why the configured keys cannot be used: the service does not start.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "{SECRET_ENV} is {len_bytes} bytes long; an HS256 secret needs at least {SECRET_LEN_MIN} \
         (e.g. `openssl rand -hex 32`)"
    )]
    SecretTooShort { len_bytes: usize },
    #[error("JWT public key {path}: {reason}")]
    PublicKey { path: PathBuf, reason: String },
    #[error("JWT secret in {path}: {source}")]
    SecretFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("jsonwebtoken was built with no single crypto backend")]
    NoCryptoBackend,
}

/// How tokens are checked, from flags and environment (`serve` and `token` share it).
#[derive(Debug, Clone, Default)]
pub struct JwtSettings {
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud`, when set.
    pub audience: Option<String>,
    /// PEM file of an RSA public key: switches verification from HS256 to RS256.
    pub public_key: Option<PathBuf>,
}

#[derive(Clone)]
pub struct JwtKeys {
    algorithm: Algorithm,
    decoding: DecodingKey,
    /// Only an HS256 secret signs; an RS256 public key only verifies.
    encoding: Option<EncodingKey>,
    issuer: Option<String>,
    audience: Option<String>,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JwtKeys({:?}, …)", self.algorithm)
    }
}

impl JwtKeys {
    /// HS256 keys for `secret`, of any length: tests and the bench sign with short ones. An
    /// operator's secret goes through [`JwtKeys::load`], which refuses short ones.
    ///
    /// # Panics
    /// On an empty secret, which no caller passes ([`JwtKeys::load`] never yields one).
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        let secret = secret.into();
        Self {
            algorithm: Algorithm::HS256,
            decoding: DecodingKey::from_secret(&secret).expect("a non-empty HS256 secret"),
            encoding: Some(EncodingKey::from_secret(&secret).expect("a non-empty HS256 secret")),
            issuer: None,
            audience: None,
        }
    }

    /// RS256 keys that verify tokens signed by the holder of this public key's private half.
    pub fn rs256(public_key_pem: &[u8]) -> Result<Self, jsonwebtoken::errors::Error> {
        Ok(Self {
            algorithm: Algorithm::RS256,
            decoding: DecodingKey::from_rsa_pem(public_key_pem)?,
            encoding: None,
            issuer: None,
            audience: None,
        })
    }

    /// Tokens must carry this `iss` (and issued ones do).
    pub fn with_issuer(mut self, issuer: Option<String>) -> Self {
        self.issuer = issuer;
        self
    }

    /// Tokens must carry this `aud` (and issued ones do).
    pub fn with_audience(mut self, audience: Option<String>) -> Self {
        self.audience = audience;
        self
    }

    /// The keys `settings` describe: RS256 with the configured public key, or else HS256 with
    /// the secret from `FLEET_LEDGER_JWT_SECRET` (at least [`SECRET_LEN_MIN`] bytes), or else the
    /// one kept in `data_dir`, generated (mode 0600) the first time.
    pub fn load(settings: &JwtSettings, data_dir: &Path) -> Result<Self, KeyError> {
        // jsonwebtoken panics at the first token when its features name no single backend;
        // better to stop here with a message.
        if jsonwebtoken::crypto::CryptoProvider::try_get_default().is_none() {
            return Err(KeyError::NoCryptoBackend);
        }
        let keys = match &settings.public_key {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| KeyError::PublicKey {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                Self::rs256(&pem).map_err(|e| KeyError::PublicKey {
                    path: path.clone(),
                    reason: format!("not an RSA public key in PEM: {e}"),
                })?
            }
            None => Self::new(load_secret(data_dir)?),
        };
        Ok(keys
            .with_issuer(settings.issuer.clone())
            .with_audience(settings.audience.clone()))
    }

    /// A token for `sub` with `roles`, valid for `ttl`; the configured `iss` and `aud` included.
    pub fn try_issue(&self, sub: &str, roles: &[Role], ttl: Duration) -> Result<String, AuthError> {
        let encoding = self.encoding.as_ref().ok_or(AuthError::CannotSign)?;
        let exp = Utc::now().timestamp() + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims {
            sub: sub.to_string(),
            exp: Some(exp),
            nbf: None,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            roles: (!roles.is_empty())
                .then(|| Roles::Many(roles.iter().map(|r| r.as_str().to_string()).collect())),
        };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, encoding)
            .map_err(|_| AuthError::CannotSign)
    }

    /// [`JwtKeys::try_issue`] for HS256 keys, which always sign.
    ///
    /// # Panics
    /// On RS256 keys, which hold no private key.
    pub fn issue(&self, sub: &str, roles: &[Role], ttl: Duration) -> String {
        self.try_issue(sub, roles, ttl)
            .expect("HS256 keys sign; RS256 keys only verify")
    }

    fn validation(&self) -> Validation {
        let mut validation = Validation::new(self.algorithm);
        // `exp` and `nbf` are checked in `verify` (see `Claims`).
        validation.required_spec_claims = HashSet::new();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            validation.required_spec_claims.insert("iss".to_string());
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                validation.required_spec_claims.insert("aud".to_string());
            }
            // Without a configured audience, a token's `aud` is not this service's concern.
            None => validation.validate_aud = false,
        }
        validation
    }

    pub fn verify(&self, token: &str) -> Result<Actor, AuthError> {
        // Pinned before anything else, and named even when jsonwebtoken does not know the name.
        let alg = header_alg(token)?;
        if alg != format!("{:?}", self.algorithm) {
            return Err(AuthError::Algorithm(
                alg.chars().take(ALG_LOGGED_LEN_MAX).collect(),
            ));
        }
        let claims =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation())?.claims;
        let now = Utc::now().timestamp();
        match claims.exp {
            None => return Err(AuthError::MissingExpiry),
            Some(exp) if exp.saturating_add(LEEWAY_S) <= now => return Err(AuthError::Expired),
            Some(_) => {}
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(LEEWAY_S))
        {
            return Err(AuthError::NotYetValid);
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

/// The `alg` a token's header names, whatever it is.
fn header_alg(token: &str) -> Result<String, AuthError> {
    #[derive(Deserialize)]
    struct RawHeader {
        alg: String,
    }
    let header = token.split('.').next().ok_or(AuthError::Malformed)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| AuthError::Malformed)?;
    serde_json::from_slice::<RawHeader>(&bytes)
        .map(|h| h.alg)
        .map_err(|_| AuthError::Malformed)
}

/// The HS256 secret: `FLEET_LEDGER_JWT_SECRET`, or the one kept in `data_dir`.
fn load_secret(data_dir: &Path) -> Result<String, KeyError> {
    if let Ok(secret) = std::env::var(SECRET_ENV) {
        if !secret.is_empty() {
            if secret.len() < SECRET_LEN_MIN {
                return Err(KeyError::SecretTooShort {
                    len_bytes: secret.len(),
                });
            }
            return Ok(secret);
        }
    }
    let path = data_dir.join(SECRET_FILE);
    crate::secret_file::read_or_create(&path)
        .map_err(|source| KeyError::SecretFile { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    type HmacSha256 = Hmac<Sha256>;

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

    const RS256_PRIVATE: &[u8] = include_bytes!("../tests/fixtures/jwt_rs256_test_private.pem");
    const RS256_PUBLIC: &[u8] = include_bytes!("../tests/fixtures/jwt_rs256_test_public.pem");

    fn hs256(claims: &str) -> String {
        forge(r#"{"alg":"HS256","typ":"JWT"}"#, claims, b"test-secret")
    }

    #[test]
    fn a_token_without_exp_is_refused() {
        assert_eq!(
            keys().verify(&hs256(r#"{"sub":"a"}"#)),
            Err(AuthError::MissingExpiry)
        );
    }

    #[test]
    fn exp_and_nbf_allow_thirty_seconds_of_clock_skew() {
        let now = Utc::now().timestamp();
        let just_expired = hs256(&format!(r#"{{"sub":"a","exp":{}}}"#, now - 20));
        assert!(keys().verify(&just_expired).is_ok());
        let long_expired = hs256(&format!(r#"{{"sub":"a","exp":{}}}"#, now - 40));
        assert_eq!(keys().verify(&long_expired), Err(AuthError::Expired));
        let exp = now + 600;
        let soon = hs256(&format!(r#"{{"sub":"a","exp":{exp},"nbf":{}}}"#, now + 20));
        assert!(keys().verify(&soon).is_ok());
        let later = hs256(&format!(r#"{{"sub":"a","exp":{exp},"nbf":{}}}"#, now + 60));
        assert_eq!(keys().verify(&later), Err(AuthError::NotYetValid));
    }

    #[test]
    fn a_configured_issuer_and_audience_are_required() {
        let strict = keys()
            .with_issuer(Some("https://id.flota.co".into()))
            .with_audience(Some("fleet-ledger".into()));
        let exp = Utc::now().timestamp() + 60;
        let no_issuer = hs256(&format!(
            r#"{{"sub":"a","exp":{exp},"aud":"fleet-ledger"}}"#
        ));
        assert_eq!(strict.verify(&no_issuer), Err(AuthError::Issuer));
        let no_audience = hs256(&format!(
            r#"{{"sub":"a","exp":{exp},"iss":"https://id.flota.co"}}"#
        ));
        assert_eq!(strict.verify(&no_audience), Err(AuthError::Audience));
        let other_issuer = hs256(&format!(
            r#"{{"sub":"a","exp":{exp},"iss":"https://evil","aud":"fleet-ledger"}}"#
        ));
        assert_eq!(strict.verify(&other_issuer), Err(AuthError::Issuer));
        let other_audience = hs256(&format!(
            r#"{{"sub":"a","exp":{exp},"iss":"https://id.flota.co","aud":["billing"]}}"#
        ));
        assert_eq!(strict.verify(&other_audience), Err(AuthError::Audience));
        let issued = strict.issue("ana", &[Role::Admin], Duration::from_secs(60));
        assert_eq!(strict.verify(&issued).unwrap().roles, vec![Role::Admin]);
        // Without a configured audience a token's `aud` is not refused.
        assert!(keys().verify(&other_audience).is_ok());
    }

    #[test]
    fn rs256_keys_verify_their_issuer_and_refuse_hs256_signed_with_the_public_key() {
        let keys = JwtKeys::rs256(RS256_PUBLIC).unwrap();
        let claims = serde_json::json!({"sub": "ana", "exp": Utc::now().timestamp() + 60, "roles": "auditor"});
        let private = EncodingKey::from_rsa_pem(RS256_PRIVATE).unwrap();
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &private).unwrap();
        assert_eq!(keys.verify(&token).unwrap().roles, vec![Role::Auditor]);
        // The classic confusion: an HS256 token keyed with the (public) PEM text.
        let confused = forge(r#"{"alg":"HS256"}"#, &claims.to_string(), RS256_PUBLIC);
        assert_eq!(
            keys.verify(&confused),
            Err(AuthError::Algorithm("HS256".into()))
        );
        assert_eq!(
            keys.try_issue("ana", &[], Duration::from_secs(60)),
            Err(AuthError::CannotSign)
        );
    }

    #[test]
    fn a_short_secret_file_or_env_is_told_apart_from_a_good_one() {
        let dir = tempfile::tempdir().unwrap();
        let generated = load_secret(dir.path()).unwrap();
        assert!(generated.len() >= SECRET_LEN_MIN);
        assert_eq!(
            load_secret(dir.path()).unwrap(),
            generated,
            "kept, not regenerated"
        );
        let message = KeyError::SecretTooShort { len_bytes: 22 }.to_string();
        assert!(
            message.starts_with("FLEET_LEDGER_JWT_SECRET is 22 bytes long"),
            "{message}"
        );
    }
}
