//! Playback tokens and the admin bearer check.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tonic::{Request, Status};

/// Claims of a playback token (RFC 7519 JWT, HS256).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlaybackClaims {
    /// Session id.
    pub sub: String,
    /// Video id the token grants.
    pub vid: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expiry, Unix seconds.
    pub exp: i64,
}

/// Signs and checks playback tokens with a shared secret.
#[derive(Clone)]
pub struct TokenSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Token lifetime, seconds.
    pub ttl_s: i64,
}

impl TokenSigner {
    pub fn new(secret: &[u8], ttl_s: i64) -> Self {
        TokenSigner {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            ttl_s,
        }
    }

    /// A token for `session` on `video`, issued at `now_s`; returns it and
    /// its expiry (Unix s).
    pub fn sign(&self, session: &str, video: &str, now_s: i64) -> Result<(String, i64), Status> {
        let claims = PlaybackClaims {
            sub: session.to_string(),
            vid: video.to_string(),
            iat: now_s,
            exp: now_s + self.ttl_s,
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Status::internal(format!("token signing failed: {e}")))?;
        Ok((token, claims.exp))
    }

    /// Check signature and expiry.
    pub fn verify(&self, token: &str) -> Result<PlaybackClaims, jsonwebtoken::errors::Error> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        decode::<PlaybackClaims>(token, &self.decoding, &validation).map(|d| d.claims)
    }
}

/// Require `authorization: Bearer <admin token>` (constant-time compare).
///
/// Errors: UNAUTHENTICATED without a matching token, or when no admin token
/// is configured (admin calls are then off).
pub fn require_admin<T>(request: &Request<T>, admin_token: Option<&str>) -> Result<(), Status> {
    let Some(expected) = admin_token else {
        return Err(Status::unauthenticated(
            "admin calls are disabled (no CONTROL_ADMIN_TOKEN)",
        ));
    };
    let given = request
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| Status::unauthenticated("missing bearer token"))?;
    if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(Status::unauthenticated("invalid bearer token"))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_expire() {
        let s = TokenSigner::new(b"secret", 60);
        let now = 1_900_000_000;
        let (t, exp) = s.sign("S1", "V1", now).unwrap();
        assert_eq!(exp, now + 60);
        // Validation uses the real clock: a token issued "now" verifies, one
        // that expired an hour ago does not.
        let real_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let (fresh, _) = s.sign("S1", "V1", real_now).unwrap();
        assert_eq!(s.verify(&fresh).unwrap().vid, "V1");
        let (old, _) = s.sign("S1", "V1", real_now - 3600).unwrap();
        assert!(s.verify(&old).is_err());
        assert!(TokenSigner::new(b"other", 60).verify(&fresh).is_err());
        let _ = t;
    }

    #[test]
    fn admin_bearer() {
        let mut r = Request::new(());
        assert!(require_admin(&r, Some("tok")).is_err());
        r.metadata_mut()
            .insert("authorization", "Bearer nope".parse().unwrap());
        assert!(require_admin(&r, Some("tok")).is_err());
        r.metadata_mut()
            .insert("authorization", "Bearer tok".parse().unwrap());
        assert!(require_admin(&r, Some("tok")).is_ok());
        assert!(require_admin(&r, None).is_err());
    }
}
