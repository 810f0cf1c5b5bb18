//! Playback tokens: HS256 JWTs (RFC 7519) that the control plane's
//! `OpenSession` signs for one session on one video, and that the edge
//! checks (the native stream's handshake) with the same shared secret
//! (`CONTROL_TOKEN_SECRET`).

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

pub use jsonwebtoken::errors::Error as TokenError;

/// Claims of a playback token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlaybackClaims {
    /// Session id (ULID).
    pub sub: String,
    /// Video id the token grants (ULID).
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
    /// A signer with `secret` (≥ 16 bytes is what the services require)
    /// whose tokens live `ttl_s` seconds.
    pub fn new(secret: &[u8], ttl_s: i64) -> Self {
        TokenSigner {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            ttl_s,
        }
    }

    /// A token for `session` on `video`, issued at `now_s` (Unix s);
    /// returns it and its expiry (Unix s).
    ///
    /// Errors: only if the JWT library cannot encode (not expected).
    pub fn sign(
        &self,
        session: &str,
        video: &str,
        now_s: i64,
    ) -> Result<(String, i64), TokenError> {
        let claims = PlaybackClaims {
            sub: session.to_string(),
            vid: video.to_string(),
            iat: now_s,
            exp: now_s + self.ttl_s,
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, claims.exp))
    }

    /// Check the signature and expiry (5 s leeway) against the real clock.
    ///
    /// Errors: a bad signature, a malformed token, or an expired one.
    pub fn verify(&self, token: &str) -> Result<PlaybackClaims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        decode::<PlaybackClaims>(token, &self.decoding, &validation).map(|d| d.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_expire() {
        let s = TokenSigner::new(b"secret", 60);
        let now = 1_900_000_000;
        let (_, exp) = s.sign("S1", "V1", now).unwrap();
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
        assert!(s.verify("not.a.token").is_err());
    }
}
