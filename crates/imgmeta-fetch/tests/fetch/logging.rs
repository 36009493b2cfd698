//! Refusals are logged as structured security events; allowing private destinations is loud.

use crate::support::image_url;
use imgmeta_fetch::{FetchConfig, Fetcher};
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Collects formatted log output in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn a_refused_destination_is_logged_once_as_a_security_event_with_host_address_and_reason() {
    let logs = Captured::default();
    let _guard = logs.install();
    let fetcher = Fetcher::new(FetchConfig::default()).unwrap();

    let err = fetcher
        .fetch(&image_url("http://2130706433/a.png"))
        .await
        .unwrap_err();

    let text = logs.text();
    assert_eq!(text.matches("blocked_destination").count(), 1, "{text}");
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("kind=\"security\""), "{text}");
    assert!(text.contains("host=127.0.0.1"), "{text}");
    assert!(text.contains("address=127.0.0.1"), "{text}");
    assert!(text.contains("reason=is loopback (127.0.0.0/8)"), "{text}");
    assert!(text.contains(&err.to_string()), "{text}");
}

#[tokio::test]
async fn building_a_fetcher_that_allows_private_destinations_logs_a_warning() {
    let logs = Captured::default();
    let _guard = logs.install();

    Fetcher::new(FetchConfig::default()).unwrap();
    assert!(!logs.text().contains("allow_private_enabled"));
    Fetcher::new(FetchConfig {
        allow_private: true,
        ..FetchConfig::default()
    })
    .unwrap();

    let text = logs.text();
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("allow_private_enabled"), "{text}");
    assert!(text.contains("IMGMETA_FETCH_ALLOW_PRIVATE is on"), "{text}");
}
