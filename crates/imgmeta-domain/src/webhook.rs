//! Webhooks: the URL a job or batch is reported to, the events sent there, and where each
//! delivery stands.

use crate::{ErrorCode, ImageUrl, ValidationError};
use serde::{Deserialize, Serialize};

/// A webhook's destination: an absolute http(s) URL with a host and no credentials, at most
/// [`crate::MAX_URL_LEN`] bytes (the rules of an image URL, under its own error code). Whether
/// it may be reached (address and domain policy) is decided as for an image, at submission and
/// again before every attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct WebhookUrl(ImageUrl);

impl WebhookUrl {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let url = ImageUrl::parse(raw).map_err(|e| {
            ValidationError::new(
                ErrorCode::InvalidWebhookUrl,
                e.message.replacen("url", "webhook_url", 1),
            )
        })?;
        // Percent-encoding can lengthen a URL threefold: the stored form is held to the limit.
        if url.as_str().len() > crate::MAX_URL_LEN {
            return Err(ValidationError::new(
                ErrorCode::InvalidWebhookUrl,
                format!(
                    "webhook_url is {} characters long once encoded; at most {} are accepted",
                    url.as_str().len(),
                    crate::MAX_URL_LEN
                ),
            ));
        }
        Ok(Self(url))
    }

    /// The same URL, as the fetcher's policy checks it.
    pub fn as_image_url(&self) -> &ImageUrl {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl<'de> Deserialize<'de> for WebhookUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a webhook tells: a job ended, or a batch's last item did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum WebhookEvent {
    #[serde(rename = "job.succeeded")]
    JobSucceeded,
    #[serde(rename = "job.failed")]
    JobFailed,
    #[serde(rename = "batch.completed")]
    BatchCompleted,
}

impl WebhookEvent {
    pub const ALL: [WebhookEvent; 3] = [
        WebhookEvent::JobSucceeded,
        WebhookEvent::JobFailed,
        WebhookEvent::BatchCompleted,
    ];

    /// The event's `type`, as sent and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::JobSucceeded => "job.succeeded",
            Self::JobFailed => "job.failed",
            Self::BatchCompleted => "batch.completed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == raw)
    }
}

/// Where a delivery stands: `pending` until the receiver answers 2xx (`delivered`), answers
/// `410 Gone` (`gone`: never tried again), or every retry is spent or the destination is refused
/// by policy (`failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
    Gone,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 4] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Delivered,
        DeliveryStatus::Failed,
        DeliveryStatus::Gone,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Gone => "gone",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_follow_the_image_url_rules_under_their_own_code() {
        assert!(WebhookUrl::parse("https://hooks.example.com/imgmeta?x=1").is_ok());
        for bad in [
            "",
            "ftp://example.com/hook",
            "https://user:pw@example.com/",
            "not a url",
            "mailto:a@example.com",
        ] {
            let err = WebhookUrl::parse(bad).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidWebhookUrl, "{bad}");
            assert!(err.message.contains("webhook_url"), "{}", err.message);
        }
        let long = format!("https://example.com/{}", "a".repeat(crate::MAX_URL_LEN));
        assert_eq!(
            WebhookUrl::parse(&long).unwrap_err().code,
            ErrorCode::InvalidWebhookUrl
        );
        // 1,400 bytes as sent, about 4,200 once percent-encoded.
        let encoded = format!("https://example.com/{}", "é".repeat(700));
        assert!(encoded.len() < crate::MAX_URL_LEN);
        assert_eq!(
            WebhookUrl::parse(&encoded).unwrap_err().code,
            ErrorCode::InvalidWebhookUrl
        );
    }

    #[test]
    fn events_and_statuses_round_trip_through_their_strings() {
        for event in WebhookEvent::ALL {
            assert_eq!(WebhookEvent::parse(event.as_str()), Some(event));
            assert_eq!(
                serde_json::to_value(event).unwrap(),
                serde_json::Value::String(event.as_str().to_owned())
            );
        }
        for status in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(WebhookEvent::parse("job.cancelled"), None);
    }
}
