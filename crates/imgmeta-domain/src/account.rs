//! Accounts, the unit of ownership (every job and key belongs to one), and the scopes a key
//! may carry.

use crate::{ErrorCode, ValidationError};
use serde::{Deserialize, Serialize};

/// An account's identifier (a UUID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct AccountId(uuid::Uuid);

impl AccountId {
    /// The account everything belongs to when authentication is disabled (created by the
    /// accounts migration, so it always exists).
    pub const BUILT_IN: AccountId = AccountId(uuid::Uuid::nil());

    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }

    /// Parses a UUID; `None` for anything else (which callers may then treat as a name).
    pub fn parse(raw: &str) -> Option<Self> {
        uuid::Uuid::try_parse(raw.trim()).ok().map(Self)
    }

    pub fn from_uuid(id: uuid::Uuid) -> Self {
        Self(id)
    }

    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }
}

impl Default for AccountId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for AccountId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Longest account (and key) name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// A display name for an account or a key: trimmed, 1 to 100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let name = raw.trim();
        let invalid = |message: String| ValidationError::new(ErrorCode::InvalidName, message);
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(invalid(format!(
                "name must be 1 to {MAX_NAME_CHARS} characters"
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(invalid("name must not contain control characters".into()));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a key may do.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum Scope {
    /// Submit and cancel (and purge) jobs.
    #[serde(rename = "jobs:write")]
    JobsWrite,
    /// Read jobs and their results.
    #[serde(rename = "jobs:read")]
    JobsRead,
    /// Create, list and revoke the account's own keys.
    #[serde(rename = "keys:manage")]
    KeysManage,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::JobsWrite, Scope::JobsRead, Scope::KeysManage];

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw.trim())
            .ok_or_else(|| {
                ValidationError::new(
                    ErrorCode::InvalidScope,
                    format!(
                        "unknown scope {raw:?}; known scopes are \"jobs:write\", \"jobs:read\" and \"keys:manage\""
                    ),
                )
            })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::JobsWrite => "jobs:write",
            Self::JobsRead => "jobs:read",
            Self::KeysManage => "keys:manage",
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A non-empty, duplicate-free, ordered set of scopes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct ScopeSet(Vec<Scope>);

impl ScopeSet {
    /// What a new key gets unless asked otherwise: submit, cancel and read jobs.
    pub fn default_for_keys() -> Self {
        Self(vec![Scope::JobsWrite, Scope::JobsRead])
    }

    /// Every scope (the built-in account's caller when authentication is disabled).
    pub fn all() -> Self {
        Self(Scope::ALL.to_vec())
    }

    /// Parses a list of scope names; at least one, duplicates merged.
    pub fn parse<S: AsRef<str>>(raw: &[S]) -> Result<Self, ValidationError> {
        let mut scopes = raw
            .iter()
            .map(|s| Scope::parse(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        scopes.sort();
        scopes.dedup();
        if scopes.is_empty() {
            return Err(ValidationError::new(
                ErrorCode::InvalidScope,
                "a key needs at least one scope",
            ));
        }
        Ok(Self(scopes))
    }

    /// Parses a space- or comma-separated list, as the CLI takes it.
    pub fn parse_list(raw: &str) -> Result<Self, ValidationError> {
        let parts: Vec<&str> = raw
            .split([' ', ','])
            .filter(|p| !p.trim().is_empty())
            .collect();
        Self::parse(&parts)
    }

    pub fn contains(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }

    /// Whether every scope of `other` is in this set.
    pub fn covers(&self, other: &ScopeSet) -> bool {
        other.0.iter().all(|s| self.contains(*s))
    }

    pub fn as_strs(&self) -> Vec<&'static str> {
        self.0.iter().map(|s| s.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_sort_and_merge_duplicates() {
        let set = ScopeSet::parse(&["jobs:read", "keys:manage", "jobs:read"]).unwrap();
        assert_eq!(set.as_strs(), ["jobs:read", "keys:manage"]);
        assert!(set.contains(Scope::KeysManage));
        assert!(!set.contains(Scope::JobsWrite));
        assert_eq!(
            ScopeSet::parse_list("jobs:write, jobs:read").unwrap(),
            ScopeSet::default_for_keys()
        );
    }

    #[test]
    fn unknown_and_empty_scope_lists_are_refused() {
        assert_eq!(
            ScopeSet::parse(&["jobs:delete"]).unwrap_err().code,
            ErrorCode::InvalidScope
        );
        assert!(ScopeSet::parse::<&str>(&[]).is_err());
        assert!(ScopeSet::parse_list(" , ").is_err());
    }

    #[test]
    fn a_set_covers_its_subsets_only() {
        let all = ScopeSet::all();
        let default = ScopeSet::default_for_keys();
        assert!(all.covers(&default));
        assert!(!default.covers(&all));
    }

    #[test]
    fn names_are_trimmed_bounded_and_free_of_control_characters() {
        assert_eq!(Name::parse("  ci  ").unwrap().as_str(), "ci");
        assert!(Name::parse("").is_err());
        assert!(Name::parse(&"n".repeat(101)).is_err());
        assert_eq!(
            Name::parse("evil\nname").unwrap_err().code,
            ErrorCode::InvalidName
        );
    }

    #[test]
    fn account_ids_are_uuids_and_anything_else_is_not_one() {
        assert_eq!(
            AccountId::parse("00000000-0000-0000-0000-000000000000"),
            Some(AccountId::BUILT_IN)
        );
        assert_eq!(AccountId::parse("team"), None);
    }
}
