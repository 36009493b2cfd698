//! What the login throttle counts failures against: the e-mail address tried (known or not,
//! so the throttle does not tell which addresses have accounts) and the client's address (an
//! IPv6 /64 counts as one, as for the in-flight shares). Both are hashed before the store sees
//! them, and the security log names an address tried only by a prefix of that hash.

use crate::ApiError;
use axum::http::StatusCode;
use imgmeta_domain::ErrorCode;
use imgmeta_store::ThrottleSubject;
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::time::Duration;

/// The failed-login limits.
#[derive(Debug, Clone, Copy)]
pub struct Throttle {
    pub window: Duration,
    pub per_account: u32,
    pub per_address: u32,
}

impl Throttle {
    /// The subjects one login attempt counts against: `[account, address]`.
    pub(crate) fn subjects(&self, email: &str, client: IpAddr) -> [ThrottleSubject; 2] {
        [
            email_subject(email, self.per_account),
            address_subject(client, self.per_address),
        ]
    }
}

/// The subject for a (lower-cased) e-mail address.
pub(crate) fn email_subject(email: &str, max_failures: u32) -> ThrottleSubject {
    ThrottleSubject {
        hash: digest("account:", email),
        max_failures,
    }
}

/// The subject for a client address.
pub(crate) fn address_subject(client: IpAddr, max_failures: u32) -> ThrottleSubject {
    let crate::shares::Holder::Address(holder) = crate::shares::Holder::of_address(client) else {
        unreachable!("of_address makes an address holder")
    };
    ThrottleSubject {
        hash: digest("address:", &holder.to_string()),
        max_failures,
    }
}

fn digest(kind: &str, value: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(kind.as_bytes());
    hasher.update(value.as_bytes());
    hasher.finalize().into()
}

/// How the security log names an e-mail address: the first 16 hex digits of its subject hash.
pub(crate) fn email_log_id(email: &str) -> String {
    hex::encode(&digest("account:", email)[..8])
}

/// `429 login_throttled` with `Retry-After`, and its security event.
pub(crate) fn throttled(email: &str, by: &'static str, retry_after_secs: u64) -> ApiError {
    tracing::warn!(
        kind = "security",
        event = "login_throttled",
        by,
        email.hash = %email_log_id(email),
        retry_after_secs,
        "login refused: too many recent failures"
    );
    let whose = if by == "account" {
        "this account"
    } else {
        "this client address"
    };
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::LoginThrottled,
        format!("too many failed logins for {whose}; retry after {retry_after_secs} s"),
    )
    .with_retry_after(retry_after_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v6_slash_64_is_one_subject_and_kinds_never_collide() {
        let a = address_subject("2001:db8::1".parse().unwrap(), 20);
        let b = address_subject("2001:db8::ffff".parse().unwrap(), 20);
        let c = address_subject("2001:db8:0:1::1".parse().unwrap(), 20);
        assert_eq!(a.hash, b.hash);
        assert_ne!(a.hash, c.hash);
        let mapped = address_subject("::ffff:192.0.2.1".parse().unwrap(), 20);
        assert_eq!(
            mapped.hash,
            address_subject("192.0.2.1".parse().unwrap(), 20).hash
        );
        // An e-mail address that spells an IP address is still another subject.
        assert_ne!(email_subject("192.0.2.1", 5).hash, mapped.hash);
    }
}
