//! The shared token, carried as `authorization: Bearer <token>` metadata on
//! every call, and checked in constant time.

use tonic::metadata::MetadataValue;
use tonic::{Request, Status};

pub const HEADER: &str = "authorization";

/// Adds the token to an outgoing request.
pub fn attach<T>(req: &mut Request<T>, token: Option<&str>) -> Result<(), Status> {
    if let Some(token) = token {
        let value: MetadataValue<_> = format!("Bearer {token}").parse().map_err(|_| {
            Status::invalid_argument("the token contains characters metadata cannot carry")
        })?;
        req.metadata_mut().insert(HEADER, value);
    }
    Ok(())
}

/// Checks an incoming request against the expected token (None: no auth).
pub fn check<T>(req: &Request<T>, expected: Option<&str>) -> Result<(), Status> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let given = req
        .metadata()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(given) if constant_time_eq(given.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(Status::unauthenticated("wrong token")),
        None => Err(Status::unauthenticated(
            "a token is required (--token or VOLLEY_TOKEN)",
        )),
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
    fn token_round_trip() {
        let mut req = Request::new(());
        attach(&mut req, Some("s3cret")).unwrap();
        assert!(check(&req, Some("s3cret")).is_ok());
        assert_eq!(
            check(&req, Some("other")).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        assert!(check(&Request::new(()), Some("x")).is_err());
        assert!(check(&Request::new(()), None).is_ok());
    }
}
