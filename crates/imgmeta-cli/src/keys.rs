//! `imgmeta keys create | list | revoke`: managing API keys from the command line.

use imgmeta_api::{KeyRequest, issue_key, log_key_event, validate_key_name};
use imgmeta_auth::KeyPrefix;
use imgmeta_config::Settings;

/// Creates a key and prints it (once) with its record, as one JSON object.
pub async fn create(
    settings: &Settings,
    name: &str,
    rate_per_minute: Option<u32>,
    daily_quota: Option<u32>,
) -> anyhow::Result<()> {
    let name = validate_key_name(name).map_err(anyhow::Error::msg)?;
    let positive = |what: &str, n: Option<u32>, default: u32| match n {
        Some(0) => Err(anyhow::anyhow!("{what} must be at least 1")),
        Some(n) => Ok(n.min(i32::MAX as u32)),
        None => Ok(default),
    };
    let request = KeyRequest {
        name,
        rate_per_minute: positive(
            "--rate-per-minute",
            rate_per_minute,
            settings.security.default_rate_per_minute,
        )?,
        daily_quota: positive(
            "--daily-quota",
            daily_quota,
            settings.security.default_daily_quota,
        )?,
    };
    let store = crate::serve::migrate(settings).await?;
    let issued = issue_key(&store, &request, "cli").await?;
    println!("{}", serde_json::to_string(&issued)?);
    eprintln!("imgmeta: store this key now; it cannot be shown again.");
    Ok(())
}

/// Lists every key (prefix, name, limits, dates), one JSON object per line.
pub async fn list(settings: &Settings) -> anyhow::Result<()> {
    let store = crate::serve::migrate(settings).await?;
    for key in store.list_api_keys().await? {
        println!(
            "{}",
            serde_json::json!({
                "prefix": key.prefix,
                "name": key.name,
                "rate_per_minute": key.rate_per_minute,
                "daily_quota": key.daily_quota,
                "created_at": key.created_at,
                "revoked_at": key.revoked_at,
            })
        );
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
