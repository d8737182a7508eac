//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{ts}.{body}")>`,
//! where the key is the base64 after `whsec_` in the secret. Several secrets (a rotated one in
//! its grace period) give several signatures, space-separated.

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

    #[test]
    fn two_secrets_give_two_signatures_and_bad_secrets_none() {
        let a = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string();
        let sig = signature(&[a.clone(), "not-a-secret".into(), a], "m", 1, b"{}");
        let parts: Vec<&str> = sig.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
    }
}
