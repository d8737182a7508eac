//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{ts}.{body}")>`,
//! where the key is the base64 after `whsec_` in the secret. Several secrets (a rotated one in
//! its grace period) give several signatures, space-separated.
//!
//! Beside them, AXME's own format, which AXME's http agents verify: `X-Axme-Signature:
//! sha256=<hex HMAC-SHA256(secret, body)>`, keyed with the secret exactly as shown to its owner
//! (the whole `whsec_...` text, as an agent holds it in `AXME_WEBHOOK_SECRET`). It has room for
//! one signature, so it is made with the current secret only.

use base64::Engine;
use ring::hmac;

/// The `webhook-signature` header value for a message signed with each of `secrets`.
/// Secrets that are not `whsec_` + base64 are skipped (the registry refuses them anyway).
pub fn signature(secrets: &[String], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .filter_map(|s| sign_one(s, msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

fn sign_one(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key_bytes = b64.decode(secret.strip_prefix("whsec_")?).ok()?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key_bytes);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(msg_id.as_bytes());
    ctx.update(b".");
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    Some(format!("v1,{}", b64.encode(ctx.sign().as_ref())))
}

/// The `X-Axme-Signature` header value of `body` signed with `secret`.
pub fn axme_signature(secret: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector published with the Standard Webhooks specification.
    #[test]
    fn matches_the_standard_webhooks_test_vector() {
        let sig = signature(
            &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string()],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    /// RFC 4231 test case 2 (key "Jefe"), as AXME's agents compute it with Python's `hmac`.
    #[test]
    fn the_axme_signature_is_the_hex_hmac_of_the_body() {
        assert_eq!(
            axme_signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn two_secrets_give_two_signatures_and_bad_secrets_none() {
        let a = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string();
        let sig = signature(&[a.clone(), "not-a-secret".into(), a], "m", 1, b"{}");
        let parts: Vec<&str> = sig.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
    }
}
