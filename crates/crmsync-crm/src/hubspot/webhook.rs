//! Checking HubSpot's webhook signatures (FACTS 2.11,
//! <https://developers.hubspot.com/docs/api/webhooks/validating-requests>).
//!
//! - **v3** (the default): `X-HubSpot-Signature-v3` is the base64 HMAC-SHA256, keyed by the app's
//!   client secret, of `method + uri + body + timestamp`, with the timestamp (epoch ms) in
//!   `X-HubSpot-Request-Timestamp`. A request older (or further ahead) than five minutes is
//!   refused, which stops replays. HubSpot decodes a few percent-escapes of the URI before
//!   signing; [`signed_uri`] does the same.
//! - **v1**: `X-HubSpot-Signature` (with `X-HubSpot-Signature-Version: v1`) is the lowercase hex
//!   SHA-256 of `client secret + body`. It signs neither a time nor the URL, so a captured request
//!   can be replayed at will: the receiver's only defence is storing events deduplicated by
//!   `eventId`, which turns a replay of an event already received into a no-op.
//!
//! Both comparisons are constant-time (`Mac::verify_slice` for v3, `CtOutput` for v1), so the
//! time taken does not tell an attacker how many leading bytes of a guess were right.

use base64::Engine;
use hmac::digest::{CtOutput, Output};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::borrow::Cow;

/// How old (or how far in the future) a signed request may be.
pub const MAX_AGE_MS: i64 = 5 * 60 * 1000;

/// Why a webhook request is refused. The messages never contain the secret or the signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// A header the configured signature version needs is absent (or not visible ASCII).
    #[error("the request has no {0} header")]
    Missing(&'static str),
    /// `X-HubSpot-Signature-Version` names another version than the one the receiver checks.
    #[error(
        "the request is signed with {got}, but this receiver checks {want} signatures (`[webhooks] signature`)"
    )]
    OtherVersion { got: String, want: &'static str },
    /// The v3 timestamp is not a number of milliseconds.
    #[error("X-HubSpot-Request-Timestamp is not epoch milliseconds")]
    BadTimestamp,
    /// The v3 timestamp is more than [`MAX_AGE_MS`] away from now.
    #[error("the request is more than 5 minutes old (or ahead): a replay or a skewed clock")]
    Stale,
    /// The signature is not the one the client secret gives for this request.
    #[error("the signature does not match: wrong client secret or a changed body or URL")]
    Mismatch,
}

/// The percent-escapes HubSpot decodes in the URI before computing a v3 signature (FACTS 2.11).
const DECODED_ESCAPES: [(&[u8; 2], char); 12] = [
    (b"3A", ':'),
    (b"2F", '/'),
    (b"3F", '?'),
    (b"40", '@'),
    (b"21", '!'),
    (b"24", '$'),
    (b"27", '\''),
    (b"28", '('),
    (b"29", ')'),
    (b"2A", '*'),
    (b"2C", ','),
    (b"3B", ';'),
];

/// The URI as HubSpot hashes it for v3: `%3A %2F %3F %40 %21 %24 %27 %28 %29 %2A %2C %3B`
/// decoded (in one pass, as HubSpot lists them, upper-case hex), every other escape kept as sent.
pub fn signed_uri(uri: &str) -> Cow<'_, str> {
    if !uri.contains('%') {
        return Cow::Borrowed(uri);
    }
    let bytes = uri.as_bytes();
    let mut out = String::with_capacity(uri.len());
    let mut i = 0;
    let mut plain = 0;
    while i < bytes.len() {
        let decoded = match bytes[i] {
            b'%' => bytes.get(i + 1..i + 3).and_then(|hex| {
                DECODED_ESCAPES
                    .iter()
                    .find(|(escape, _)| &escape[..] == hex)
                    .map(|(_, c)| *c)
            }),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push_str(&uri[plain..i]);
                out.push(c);
                i += 3;
                plain = i;
            }
            None => i += 1,
        }
    }
    out.push_str(&uri[plain..]);
    Cow::Owned(out)
}

/// Verifies a v3-signed request. `uri` is the full URL HubSpot posted to, as configured in the
/// app's webhook settings (percent-escapes as sent: [`signed_uri`] is applied here); `now_ms` is
/// the current time.
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
    mac.update(signed_uri(uri).as_bytes());
    mac.update(body);
    mac.update(timestamp.trim().as_bytes());
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// Verifies a v1-signed request: `signature` (`X-HubSpot-Signature`) must be the hex SHA-256 of
/// `client_secret + body`. v1 signs no timestamp, so a replayed request passes; only the
/// `eventId` deduplication of the stored events makes a replay harmless.
pub fn verify_v1(
    client_secret: &str,
    body: &[u8],
    signature: Option<&str>,
) -> Result<(), SignatureError> {
    let signature = signature.ok_or(SignatureError::Missing("X-HubSpot-Signature"))?;
    let given: [u8; 32] = hex::decode(signature.trim())
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(SignatureError::Mismatch)?;
    let expected = Sha256::new()
        .chain_update(client_secret.as_bytes())
        .chain_update(body)
        .finalize();
    if CtOutput::<Sha256>::new(expected) == CtOutput::new(Output::<Sha256>::from(given)) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
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

    /// FACTS 2.11's vectors, computed with HubSpot's official helper and its published example.
    const SECRET: &str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
    const FACTS_BODY: &[u8] = br#"[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]"#;
    const FACTS_V1: &str = "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de";

    #[test]
    fn v3_accepts_the_official_helpers_vector() {
        assert_eq!(
            verify_v3(
                SECRET,
                "POST",
                "https://example.com/webhook",
                FACTS_BODY,
                Some("1700000000000"),
                Some("12W0MpV3Rb+MJ+yA03C2CAnpxxClXwMGgGRCai2Vsr0="),
                1_700_000_000_000 + 1000,
            ),
            Ok(())
        );
    }

    #[test]
    fn v1_accepts_the_published_vector_in_either_hex_case() {
        assert_eq!(verify_v1(SECRET, FACTS_BODY, Some(FACTS_V1)), Ok(()));
        let upper = FACTS_V1.to_ascii_uppercase();
        assert_eq!(verify_v1(SECRET, FACTS_BODY, Some(&upper)), Ok(()));
    }

    #[test]
    fn v1_refuses_a_wrong_secret_a_changed_body_and_malformed_or_missing_signatures() {
        assert_eq!(
            verify_v1("other", FACTS_BODY, Some(FACTS_V1)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_v1(SECRET, b"[]", Some(FACTS_V1)),
            Err(SignatureError::Mismatch)
        );
        for bad in ["", "zz", &FACTS_V1[..62], &format!("{FACTS_V1}00")] {
            assert_eq!(
                verify_v1(SECRET, FACTS_BODY, Some(bad)),
                Err(SignatureError::Mismatch),
                "{bad:?}"
            );
        }
        assert_eq!(
            verify_v1(SECRET, FACTS_BODY, None),
            Err(SignatureError::Missing("X-HubSpot-Signature"))
        );
    }

    #[test]
    fn the_signed_uri_decodes_exactly_hubspots_escapes() {
        assert_eq!(
            signed_uri("https://example.com/hooks?x=%3A%2F%3F%40%21%24%27%28%29%2A%2C%3B"),
            "https://example.com/hooks?x=:/?@!$'()*,;"
        );
        // Other escapes, lower-case hex, a trailing or truncated `%` and multi-byte text stay.
        assert_eq!(
            signed_uri("https://example.com/a%20b?q=%3a%25%3A%2"),
            "https://example.com/a%20b?q=%3a%25:%2"
        );
        assert_eq!(signed_uri("https://例え.jp/%40x%"), "https://例え.jp/@x%");
        // One pass: `%253A` is the escape of `%3A`, not of `:`.
        assert_eq!(signed_uri("/p%253A"), "/p%253A");
        assert!(matches!(signed_uri("/plain"), Cow::Borrowed("/plain")));
    }

    #[test]
    fn v3_hashes_the_decoded_uri() {
        let ts = NOW - 1000;
        let sig = sign(
            "s3cret",
            "POST",
            "https://example.com/hooks?a=b:c",
            BODY,
            ts,
        );
        let t = ts.to_string();
        assert_eq!(
            verify_v3(
                "s3cret",
                "POST",
                "https://example.com/hooks?a=b%3Ac",
                BODY,
                Some(&t),
                Some(&sig),
                NOW
            ),
            Ok(())
        );
    }
}
