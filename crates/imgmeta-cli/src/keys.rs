//! `imgmeta keys create | list | revoke` and `imgmeta accounts create | list | set`: managing
//! API keys and the accounts that own them from the command line.

use imgmeta_api::{KeyRequest, KeyView, issue_key, log_key_event};
use imgmeta_auth::KeyPrefix;
use imgmeta_config::Settings;
use imgmeta_domain::{Name, ScopeSet};
use imgmeta_store::{AccountChanges, AccountLookup, AccountRecord, KeyAccount, NewAccount, Store};

/// What `imgmeta keys create` was asked for.
#[derive(Debug, Clone, Default)]
pub struct CreateKey {
    pub name: String,
    pub rate_per_minute: Option<u32>,
    pub daily_quota: Option<u32>,
    /// An account id or name; `None`: a new account named after the key.
    pub account: Option<String>,
    /// Space- or comma-separated scopes; `None`: `jobs:write jobs:read`.
    pub scopes: Option<String>,
}

fn positive(what: &str, n: Option<u32>, default: u32) -> anyhow::Result<u32> {
    match n {
        Some(0) => Err(anyhow::anyhow!("{what} must be at least 1")),
        Some(n) => Ok(n.min(i32::MAX as u32)),
        None => Ok(default),
    }
}

/// Creates a key and prints it (once) with its record, as one JSON object.
pub async fn create(settings: &Settings, args: &CreateKey) -> anyhow::Result<()> {
    let name = Name::parse(&args.name).map_err(|e| anyhow::anyhow!("--name: {e}"))?;
    let mut request = KeyRequest::in_new_account(
        name,
        positive(
            "--rate-per-minute",
            args.rate_per_minute,
            settings.security.default_rate_per_minute,
        )?,
        positive(
            "--daily-quota",
            args.daily_quota,
            settings.security.default_daily_quota,
        )?,
        settings.security.default_retention_days,
    );
    if let Some(scopes) = &args.scopes {
        request.scopes =
            ScopeSet::parse_list(scopes).map_err(|e| anyhow::anyhow!("--scopes: {e}"))?;
    }
    let store = crate::serve::migrate(settings).await?;
    if let Some(account) = &args.account {
        request.account = KeyAccount::Existing(find(&store, account).await?.id);
    }
    let issued = issue_key(&store, &request, "cli").await?;
    println!("{}", serde_json::to_string(&issued)?);
    eprintln!("imgmeta: store this key now; it cannot be shown again.");
    Ok(())
}

/// Lists every key (prefix, name, account, scopes, limits, dates), one JSON object per line.
pub async fn list(settings: &Settings) -> anyhow::Result<()> {
    let store = crate::serve::migrate(settings).await?;
    for key in store.list_api_keys().await? {
        println!("{}", serde_json::to_string(&KeyView::from(key))?);
    }
    Ok(())
}

/// Revokes the key with this prefix; requests with it get 401 from then on.
pub async fn revoke(settings: &Settings, prefix: &str) -> anyhow::Result<()> {
    let prefix = KeyPrefix::parse(prefix.trim())
        .map_err(|_| anyhow::anyhow!("expected a key prefix such as imk_AbCd1234"))?;
    let store = crate::serve::migrate(settings).await?;
    match store.revoke_api_key(prefix.as_str()).await? {
        Some(record) => {
            log_key_event("key_revoked", &record, "cli");
            println!("revoked {} ({})", record.prefix, record.name);
            Ok(())
        }
        None => anyhow::bail!("no key with prefix {prefix}"),
    }
}

/// `imgmeta accounts create --name N`: prints the new account as JSON (with its `id`).
pub async fn create_account(
    settings: &Settings,
    name: &str,
    daily_quota: Option<u32>,
    retention_days: Option<u32>,
    redact_gps: bool,
) -> anyhow::Result<()> {
    let account = NewAccount {
        name: Name::parse(name).map_err(|e| anyhow::anyhow!("--name: {e}"))?,
        daily_quota: positive(
            "--daily-quota",
            daily_quota,
            settings.security.default_daily_quota,
        )?,
        retention_days: retention(retention_days)?
            .unwrap_or(settings.security.default_retention_days),
        redact_gps,
    };
    let store = crate::serve::migrate(settings).await?;
    let created = store.create_account(&account).await?;
    tracing::info!(
        kind = "security",
        event = "account_created",
        account.id = %created.id,
        via = "cli",
        "account created"
    );
    println!("{}", account_json(&created));
    Ok(())
}

/// `imgmeta accounts list`: one JSON object per line, oldest first.
pub async fn list_accounts(settings: &Settings) -> anyhow::Result<()> {
    let store = crate::serve::migrate(settings).await?;
    for account in store.list_accounts().await? {
        println!("{}", account_json(&account));
    }
    Ok(())
}

/// `imgmeta accounts set ACCOUNT [--name] [--daily-quota] [--retention-days] [--redact-gps]`.
pub async fn set_account(
    settings: &Settings,
    account: &str,
    changes: AccountChangesArgs,
) -> anyhow::Result<()> {
    let changes = AccountChanges {
        name: changes
            .name
            .as_deref()
            .map(Name::parse)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--name: {e}"))?,
        daily_quota: changes
            .daily_quota
            .map(|q| positive("--daily-quota", Some(q), q))
            .transpose()?,
        retention_days: retention(changes.retention_days)?,
        redact_gps: changes.redact_gps,
    };
    let store = crate::serve::migrate(settings).await?;
    let id = find(&store, account).await?.id;
    let updated = store
        .update_account(id, &changes)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no account {account}"))?;
    tracing::info!(
        kind = "security",
        event = "account_changed",
        account.id = %updated.id,
        daily_quota = updated.daily_quota,
        retention_days = updated.retention_days,
        redact_gps = updated.redact_gps,
        via = "cli",
        "account settings changed"
    );
    println!("{}", account_json(&updated));
    Ok(())
}

/// The settings `imgmeta accounts set` may change.
#[derive(Debug, Clone, Default)]
pub struct AccountChangesArgs {
    pub name: Option<String>,
    pub daily_quota: Option<u32>,
    pub retention_days: Option<u32>,
    pub redact_gps: Option<bool>,
}

fn retention(days: Option<u32>) -> anyhow::Result<Option<u32>> {
    match days {
        Some(d) if !(1..=imgmeta_store::MAX_RETENTION_DAYS).contains(&d) => Err(anyhow::anyhow!(
            "--retention-days must be 1 to {}",
            imgmeta_store::MAX_RETENTION_DAYS
        )),
        other => Ok(other),
    }
}

async fn find(store: &Store, id_or_name: &str) -> anyhow::Result<AccountRecord> {
    match store.find_account(id_or_name).await? {
        AccountLookup::Found(account) => Ok(account),
        AccountLookup::NotFound => anyhow::bail!("no account with id or name {id_or_name:?}"),
        AccountLookup::Ambiguous(ids) => anyhow::bail!(
            "{} accounts are named {id_or_name:?}; use an id: {}",
            ids.len(),
            ids.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn account_json(account: &AccountRecord) -> serde_json::Value {
    serde_json::json!({
        "id": account.id,
        "name": account.name,
        "daily_quota": account.daily_quota,
        "retention_days": account.retention_days,
        "redact_gps": account.redact_gps,
        "used_today": account.used_today,
        "created_at": account.created_at,
    })
}

/// What `imgmeta admin-token --file F` did.
#[derive(Debug, PartialEq, Eq)]
pub enum AdminTokenOutcome {
    /// The file already held a token: nothing changed, nothing printed.
    Kept,
    /// The token from `IMGMETA_ADMIN_TOKEN` was written to the file.
    WroteConfigured,
    /// A new token was generated, written and printed once.
    Generated,
}

/// Makes sure `path` holds an admin token, for deployments that share it as a file (the
/// Compose one-shot service `admin-token`, a Kubernetes init step): an existing token is
/// kept and not shown again; otherwise the configured `IMGMETA_ADMIN_TOKEN` is written, or a
/// new token is generated, written (mode 0600, never over an existing file) and printed once.
pub fn ensure_admin_token(
    settings: &Settings,
    path: &std::path::Path,
) -> anyhow::Result<AdminTokenOutcome> {
    use secrecy::ExposeSecret;
    use std::io::Write;
    if let Ok(existing) = std::fs::read_to_string(path)
        && existing.trim().len() >= 16
    {
        eprintln!(
            "imgmeta: {} already holds an admin token; it is not shown again",
            path.display()
        );
        return Ok(AdminTokenOutcome::Kept);
    }
    let (token, outcome) = match &settings.security.admin_token {
        Some(token) => (
            token.expose_secret().to_owned(),
            AdminTokenOutcome::WroteConfigured,
        ),
        None => (
            imgmeta_auth::generate_admin_token(),
            AdminTokenOutcome::Generated,
        ),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    // An empty or short file left by an interrupted run is replaced.
    let _ = std::fs::remove_file(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    writeln!(file, "{token}")?;
    file.sync_all()?;
    if outcome == AdminTokenOutcome::Generated {
        println!("{token}");
        eprintln!(
            "imgmeta: generated the admin token above and stored it in {}; it is not shown again. \
             Mint an API key with `imgmeta keys create --name me`, or over HTTP with \
             POST /v1/keys and `Authorization: Bearer <admin token>`.",
            path.display()
        );
    } else {
        eprintln!("imgmeta: wrote IMGMETA_ADMIN_TOKEN to {}", path.display());
    }
    Ok(outcome)
}
