//! People who sign up and log in (the console's users): their id, their e-mail address and the
//! rules a password must follow. A user is a member of one account.

use crate::{ErrorCode, ValidationError};
use serde::{Deserialize, Serialize};

/// A user's identifier (a UUID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct UserId(uuid::Uuid);

impl UserId {
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }

    pub fn from_uuid(id: uuid::Uuid) -> Self {
        Self(id)
    }

    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }
}

impl Default for UserId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Longest e-mail address accepted (RFC 5321's limit on a path, less its angle brackets).
pub const MAX_EMAIL_CHARS: usize = 254;

/// An e-mail address of plausible shape, trimmed and lower-cased, so that two spellings that
/// differ only in case are one address. Whether anyone reads it is not known: nothing is ever
/// sent to it (verification is out of scope, see `users.email_verified_at`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let invalid = |message: &str| ValidationError::new(ErrorCode::InvalidSignup, message);
        let email = raw.trim().to_lowercase();
        if email.is_empty() || email.chars().count() > MAX_EMAIL_CHARS {
            return Err(invalid("email must be 3 to 254 characters"));
        }
        if email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | ','))
        {
            return Err(invalid("email must not contain spaces, quotes or brackets"));
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err(invalid("email must look like name@example.com"));
        };
        let labels_ok = domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && !label.contains('@')
            });
        if local.is_empty() || local.chars().count() > 64 || !labels_ok {
            return Err(invalid("email must look like name@example.com"));
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the `@`, which names a new account when the sign-up names none.
    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map_or(&self.0, |(local, _)| local)
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password accepted, in characters (hashing cost grows with length).
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// A new password that follows the rules: 10 to 1024 characters, any characters at all (no
/// composition rules, as NIST SP 800-63B advises). Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let chars = raw.chars().count();
        if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
            return Err(ValidationError::new(
                ErrorCode::InvalidSignup,
                format!("password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        let email = Email::parse("  Ada.Lovelace@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "ada.lovelace@example.com");
        assert_eq!(email.local_part(), "ada.lovelace");
    }

    #[test]
    fn misshapen_emails_are_refused() {
        for raw in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada@example.",
            "ada@.example.com",
            "ada@exa..mple.com",
            "ada lovelace@example.com",
            "ada@-example.com",
            "<ada@example.com>",
            &format!("{}@example.com", "a".repeat(65)),
            &format!("ada@{}.com", "a".repeat(250)),
        ] {
            let err = Email::parse(raw).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidSignup, "{raw:?}");
        }
    }

    #[test]
    fn passwords_must_be_ten_to_1024_characters() {
        assert!(Password::parse("123456789").is_err());
        assert!(Password::parse("1234567890").is_ok());
        // Characters, not bytes: ten two-byte characters are enough.
        assert!(Password::parse(&"é".repeat(10)).is_ok());
        assert!(Password::parse(&"x".repeat(1024)).is_ok());
        assert!(Password::parse(&"x".repeat(1025)).is_err());
    }

    #[test]
    fn a_password_never_shows_in_debug_output() {
        let password = Password::parse("correct horse battery").unwrap();
        assert_eq!(format!("{password:?}"), "Password(***)");
    }
}
