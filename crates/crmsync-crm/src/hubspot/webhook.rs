//! Checking HubSpot's v3 webhook signatures (FACTS 2.11): `X-HubSpot-Signature-v3` is the base64
//! HMAC-SHA256, keyed by the app's client secret, of `method + uri + body + timestamp`, with the
//! timestamp (epoch ms) in `X-HubSpot-Request-Timestamp`. A request older than five minutes is
//! refused (replays), and the comparison is constant-time (`Mac::verify_slice`).

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How old (or how far in the future) a signed request may be.
pub const MAX_AGE_MS: i64 = 5 * 60 * 1000;

/// Why a webhook request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the request has no {0} header")]
    Missing(&'static str),
    #[error("X-HubSpot-Request-Timestamp is not epoch milliseconds")]
    BadTimestamp,
    #[error("the request is more than 5 minutes old (or ahead): a replay or a skewed clock")]
    Stale,
    #[error("the signature does not match: wrong client secret or a changed body or URL")]
    Mismatch,
}

/// Verifies a v3-signed request. `uri` is the full URL HubSpot posted to, as configured in the
/// app's webhook settings; `now_ms` is the current time.
pub fn verify_v3(
    client_secret: &str,
    method: &str,
    uri: &str,
    body: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    now_ms: i64,
) -> Result<(), SignatureError> {
    let timestamp = timestamp.ok_or(SignatureError::Missing("X-HubSpot-Request-Timestamp"))?;
    let signature = signature.ok_or(SignatureError::Missing("X-HubSpot-Signature-v3"))?;
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    if now_ms.abs_diff(ts) > MAX_AGE_MS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    let expected = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|_| SignatureError::Mismatch)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(client_secret.as_bytes())
        .map_err(|_| SignatureError::Mismatch)?;
    mac.update(method.as_bytes());
    mac.update(uri.as_bytes());
    mac.update(body);
    mac.update(timestamp.trim().as_bytes());
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, method: &str, uri: &str, body: &[u8], ts: i64) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
        mac.update(format!("{method}{uri}").as_bytes());
        mac.update(body);
        mac.update(ts.to_string().as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }

    const URI: &str = "https://example.com/hubspot/webhooks";
    const BODY: &[u8] = br#"[{"eventId":1,"subscriptionType":"company.propertyChange"}]"#;
    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn a_correct_signature_within_five_minutes_passes() {
        let ts = NOW - 60_000;
        let sig = sign("s3cret", "POST", URI, BODY, ts);
        let ts = ts.to_string();
        assert_eq!(
            verify_v3("s3cret", "POST", URI, BODY, Some(&ts), Some(&sig), NOW),
            Ok(())
        );
    }

    #[test]
    fn tampering_a_wrong_secret_and_old_requests_are_refused() {
        let ts = NOW - 1000;
        let sig = sign("s3cret", "POST", URI, BODY, ts);
        let t = ts.to_string();
        let check =
            |secret: &str, uri: &str, body: &[u8], t: Option<&str>, s: Option<&str>, now| {
                verify_v3(secret, "POST", uri, body, t, s, now)
            };
        assert_eq!(
            check("other", URI, BODY, Some(&t), Some(&sig), NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check("s3cret", URI, b"[]", Some(&t), Some(&sig), NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(
                "s3cret",
                "https://evil.example/",
                BODY,
                Some(&t),
                Some(&sig),
                NOW
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check("s3cret", URI, BODY, Some(&t), Some("not base64!"), NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(
                "s3cret",
                URI,
                BODY,
                Some(&t),
                Some(&sig),
                ts + MAX_AGE_MS + 1
            ),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            check("s3cret", URI, BODY, Some("soon"), Some(&sig), NOW),
            Err(SignatureError::BadTimestamp)
        );
        assert!(matches!(
            check("s3cret", URI, BODY, None, Some(&sig), NOW),
            Err(SignatureError::Missing(_))
        ));
        assert!(matches!(
            check("s3cret", URI, BODY, Some(&t), None, NOW),
            Err(SignatureError::Missing(_))
        ));
    }
}
