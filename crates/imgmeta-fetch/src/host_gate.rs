//! The per-host fetch rate limit as the fetcher sees it: before each hop (the submitted URL and
//! every redirect target) connects, its host reserves a turn, so a fan-in of redirects from many
//! hosts to one victim is paced at the victim's rate rather than at the workers' speed.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::time::Duration;

/// The future a gate returns; boxed so the trait stays object-safe (`Arc<dyn HostGate>`).
pub type GateFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The next free turn for a host is further away than the caller was willing to wait; nothing
/// was reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostBusy {
    /// How long until the host's schedule is free again, as far as the gate knows.
    pub retry_after: Duration,
}

/// How long [`HostGate::wait_turn`] is prepared to wait: in practice, for ever.
const UNBOUNDED: Duration = Duration::from_secs(365 * 24 * 3600);

/// Decides when a fetch from a host may start. The implementation (shared through PostgreSQL
/// by every worker) lives with the binary, so the fetcher knows nothing of databases.
pub trait HostGate: Send + Sync {
    /// Reserves the next turn for `host` (a [`host_key`]) if it starts within `max_wait`, and
    /// returns how long until it starts (zero when the host is idle). When the turn is further
    /// away, nothing is reserved, so a refused caller takes no turn from those that wait.
    fn reserve<'a>(
        &'a self,
        host: &'a str,
        max_wait: Duration,
    ) -> GateFuture<'a, Result<Duration, HostBusy>>;

    /// Waits for `host`'s turn however long that takes. For tools and tests; the fetcher uses
    /// [`HostGate::reserve`] with a bound, so a busy host never holds a worker for long.
    fn wait_turn<'a>(&'a self, host: &'a str) -> GateFuture<'a, ()> {
        Box::pin(async move {
            let wait = match self.reserve(host, UNBOUNDED).await {
                Ok(wait) => wait,
                Err(busy) => busy.retry_after,
            };
            tokio::time::sleep(wait).await;
        })
    }
}

/// The name a host's schedule is kept under: lower case, IDN in punycode, no trailing dot, and
/// IP literals in their canonical form (an IPv4-mapped IPv6 address as the IPv4 address), so
/// that `Victim.example.`, `victim.example` and `VICTIM.EXAMPLE` share one schedule.
pub fn host_key(host: &str) -> String {
    let normalised = crate::domain::normalise_host(host)
        // Hosts reach the gate only after the URL parser accepted them, so this is a fallback
        // for direct callers; it still keeps case and the trailing dot from splitting a host.
        .unwrap_or_else(|_| host.trim_end_matches('.').to_ascii_lowercase());
    let bare = normalised
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'));
    match bare.and_then(|ip| ip.parse::<IpAddr>().ok()) {
        Some(ip) => match ip.to_canonical() {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        },
        None => normalised,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn spellings_of_one_host_share_one_key() {
        for spelling in [
            "victim.example",
            "Victim.example.",
            "VICTIM.EXAMPLE",
            "victim.EXAMPLE.",
        ] {
            assert_eq!(host_key(spelling), "victim.example", "{spelling}");
        }
        // Internationalised names are kept in punycode, whichever form they arrive in.
        assert_eq!(host_key("Bücher.example."), "xn--bcher-kva.example");
        assert_eq!(host_key("xn--bcher-kva.example"), "xn--bcher-kva.example");
        // Full-width letters are mapped to ASCII by IDNA.
        assert_eq!(host_key("ｖｉｃｔｉｍ.example"), "victim.example");
    }

    #[test]
    fn ip_literals_are_keyed_canonically() {
        assert_eq!(host_key("127.0.0.1"), "127.0.0.1");
        assert_eq!(host_key("[::ffff:127.0.0.1]"), "127.0.0.1");
        assert_eq!(host_key("[0:0:0:0:0:0:0:1]"), "[::1]");
        assert_eq!(host_key("0x7f.1"), "127.0.0.1");
    }

    /// A gate that records what it was asked and answers as told.
    struct Recording {
        asked: Mutex<Vec<(String, Duration)>>,
        answer: Result<Duration, HostBusy>,
    }

    impl HostGate for Recording {
        fn reserve<'a>(
            &'a self,
            host: &'a str,
            max_wait: Duration,
        ) -> GateFuture<'a, Result<Duration, HostBusy>> {
            self.asked.lock().unwrap().push((host.to_owned(), max_wait));
            Box::pin(std::future::ready(self.answer))
        }
    }

    #[tokio::test]
    async fn waiting_a_turn_without_a_bound_waits_for_the_slot() {
        let gate = Recording {
            asked: Mutex::new(Vec::new()),
            answer: Ok(Duration::from_millis(200)),
        };
        let started = tokio::time::Instant::now();
        gate.wait_turn("victim.example").await;
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(
            gate.asked.lock().unwrap().as_slice(),
            [("victim.example".to_owned(), UNBOUNDED)]
        );
    }
}
