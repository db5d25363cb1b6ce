//! Webhook request signatures, v1 and v3 (FACTS 2.11), checked against the published test
//! vectors below.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// v1: lowercase hex SHA-256 of `client_secret + body` (header `X-HubSpot-Signature`).
pub(crate) fn v1(client_secret: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(client_secret.as_bytes());
    hasher.update(body);
    hex::encode(hasher.finalize())
}

/// v3: base64 HMAC-SHA256 keyed by the client secret over
/// `method + uri + body + timestamp` (header `X-HubSpot-Signature-v3`, timestamp in epoch
/// milliseconds in `X-HubSpot-Request-Timestamp`).
pub(crate) fn v3(
    client_secret: &str,
    method: &str,
    uri: &str,
    body: &[u8],
    timestamp_ms: i64,
) -> String {
    // HMAC accepts keys of any length, so this cannot fail; an empty key is still a key.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(client_secret.as_bytes()) else {
        return String::new();
    };
    mac.update(method.as_bytes());
    mac.update(uri.as_bytes());
    mac.update(body);
    mac.update(timestamp_ms.to_string().as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
    const BODY: &str = r#"[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]"#;

    #[test]
    fn v1_matches_the_published_vector() {
        assert_eq!(
            v1(SECRET, BODY.as_bytes()),
            "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"
        );
    }

    #[test]
    fn v3_matches_the_official_helper() {
        assert_eq!(
            v3(
                SECRET,
                "POST",
                "https://example.com/webhook",
                BODY.as_bytes(),
                1_700_000_000_000
            ),
            "12W0MpV3Rb+MJ+yA03C2CAnpxxClXwMGgGRCai2Vsr0="
        );
    }
}
