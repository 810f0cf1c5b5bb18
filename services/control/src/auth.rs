//! The admin bearer check; playback tokens live in `stream-auth`.

pub use stream_auth::{PlaybackClaims, TokenSigner};
use tonic::{Request, Status};

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
