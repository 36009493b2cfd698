//! The domain policy: a blocklist, and an optional allowlist, of domains and domain suffixes.
//!
//! The API checks it when a job is submitted and the fetcher checks it again on every redirect
//! hop. Entries and hosts are normalised the same way (lowercase, IDN to punycode via the `url`
//! crate, trailing dot dropped), so `Example.COM.` and `example.com` are one entry.

use std::fmt;

/// A parsed list of domain entries. `example.com` matches itself and every subdomain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainList(Vec<String>);

/// An entry in a domain list that is not a domain (or IP address).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("domain list entry {index} ({entry:?}) is not a domain name: {problem}")]
pub struct InvalidDomainEntry {
    /// 1-based position of the entry in the list.
    pub index: usize,
    pub entry: String,
    pub problem: String,
}

impl DomainList {
    /// Parses entries separated by newlines or commas; `#` starts a comment that runs to the end
    /// of the line; blank entries are skipped. A leading `*.` or `.` is accepted and ignored,
    /// since every entry already matches its subdomains.
    pub fn parse(text: &str) -> Result<Self, InvalidDomainEntry> {
        let mut entries = Vec::new();
        let raw_entries = text
            .lines()
            .map(|line| line.split('#').next().unwrap_or_default())
            .flat_map(|line| line.split(','))
            .map(str::trim)
            .filter(|entry| !entry.is_empty());
        for (i, raw) in raw_entries.enumerate() {
            let stripped = raw
                .strip_prefix("*.")
                .or_else(|| raw.strip_prefix('.'))
                .unwrap_or(raw);
            let normalised = normalise_host(stripped).map_err(|problem| InvalidDomainEntry {
                index: i + 1,
                entry: raw.to_owned(),
                problem,
            })?;
            if !entries.contains(&normalised) {
                entries.push(normalised);
            }
        }
        Ok(Self(entries))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The entry matching an already normalised host, if any.
    fn matching(&self, host: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|entry| {
                host == entry.as_str()
                    || host
                        .strip_suffix(entry.as_str())
                        .is_some_and(|rest| rest.ends_with('.'))
            })
            .map(String::as_str)
    }
}

/// Which domains may be fetched: never one on the blocklist, and, when an allowlist is set,
/// only those on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainPolicy {
    blocked: DomainList,
    allowed: Option<DomainList>,
}

/// Why a host was refused by the domain policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainRefusal {
    #[error("host {host} is blocked by the domain blocklist (entry {entry})")]
    Blocked { host: String, entry: String },
    #[error("host {host} is not on the domain allowlist")]
    NotAllowed { host: String },
    #[error("host {host:?} is not a valid host name: {problem}")]
    InvalidHost { host: String, problem: String },
}

impl DomainRefusal {
    pub fn code(&self) -> imgmeta_domain::ErrorCode {
        match self {
            Self::Blocked { .. } | Self::NotAllowed { .. } => {
                imgmeta_domain::ErrorCode::BlockedDomain
            }
            Self::InvalidHost { .. } => imgmeta_domain::ErrorCode::InvalidUrl,
        }
    }
}

impl DomainPolicy {
    /// A policy with a blocklist and, if `allowed` is `Some`, an allowlist. An empty allowlist
    /// allows nothing: `None` is how to say "no allowlist".
    pub fn new(blocked: DomainList, allowed: Option<DomainList>) -> Self {
        Self { blocked, allowed }
    }

    /// Parses a blocklist and an optional allowlist in the `DomainList::parse` format, as read
    /// from a file or an environment variable.
    pub fn parse(blocked: &str, allowed: Option<&str>) -> Result<Self, InvalidDomainEntry> {
        Ok(Self::new(
            DomainList::parse(blocked)?,
            allowed.map(DomainList::parse).transpose()?,
        ))
    }

    /// The policy that refuses nothing (the default).
    pub fn allow_all() -> Self {
        Self::default()
    }

    /// Checks a host as it appears in a URL (`url::Url::host_str`, or raw user input).
    /// The blocklist wins over the allowlist.
    pub fn check(&self, host: &str) -> Result<(), DomainRefusal> {
        if self.blocked.is_empty() && self.allowed.is_none() {
            return Ok(());
        }
        let normalised = normalise_host(host).map_err(|problem| DomainRefusal::InvalidHost {
            host: host.to_owned(),
            problem,
        })?;
        if let Some(entry) = self.blocked.matching(&normalised) {
            return Err(DomainRefusal::Blocked {
                host: normalised.clone(),
                entry: entry.to_owned(),
            });
        }
        match &self.allowed {
            Some(allowed) if allowed.matching(&normalised).is_none() => {
                Err(DomainRefusal::NotAllowed { host: normalised })
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for DomainPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} blocked domain entries", self.blocked.len())?;
        match &self.allowed {
            Some(allowed) => write!(f, ", allowlist of {} entries", allowed.len()),
            None => write!(f, ", no allowlist"),
        }
    }
}

/// Lowercases, converts IDN to punycode and drops a trailing dot, using the URL parser's own
/// host rules so that the policy sees hosts exactly as the fetcher will.
pub(crate) fn normalise_host(raw: &str) -> Result<String, String> {
    let trimmed = raw.strip_suffix('.').unwrap_or(raw);
    if trimmed.is_empty() || trimmed.ends_with('.') {
        return Err("empty label".to_owned());
    }
    let host = url::Host::parse(trimmed).map_err(|e| e.to_string())?;
    Ok(match host {
        url::Host::Domain(domain) => domain,
        url::Host::Ipv4(ip) => ip.to_string(),
        url::Host::Ipv6(ip) => format!("[{ip}]"),
    })
}

#[cfg(test)]
#[path = "domain_tests.rs"]
mod tests;
