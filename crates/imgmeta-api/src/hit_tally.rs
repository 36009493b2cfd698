//! Hits on URL cache entries, counted in memory and written in batches: a viral URL's entry is
//! one row, and a write per hit would queue every submission for that URL on the row's lock.

use imgmeta_store::{Store, UrlHits};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Hits counted since the last write, by entry (URL key, then model).
#[derive(Debug, Clone, Default)]
pub struct HitTally(Arc<Mutex<HashMap<String, HashMap<String, i64>>>>);

impl HitTally {
    /// Counts one answer from the entry of `url_key` made by `model`.
    pub fn add(&self, url_key: &str, model: &str) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let models = match map.get_mut(url_key) {
            Some(models) => models,
            None => map.entry(url_key.to_owned()).or_default(),
        };
        match models.get_mut(model) {
            Some(n) => *n += 1,
            None => {
                models.insert(model.to_owned(), 1);
            }
        }
    }

    /// Everything counted so far, leaving the tally empty.
    pub fn take(&self) -> Vec<UrlHits> {
        let map = std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner));
        map.into_iter()
            .flat_map(|(url_key, models)| {
                models.into_iter().map(move |(model, hits)| UrlHits {
                    url_key: url_key.clone(),
                    model,
                    hits,
                })
            })
            .collect()
    }

    /// Writes what was counted. Hits that could not be written are counted again, so a
    /// database outage delays them rather than losing them.
    pub async fn write(&self, store: &Store) {
        let hits = self.take();
        if let Err(e) = store.count_url_hits(&hits).await {
            tracing::warn!(kind = "error", error = %e, entries = hits.len(), "could not record URL cache hits");
            let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            for h in hits {
                *map.entry(h.url_key)
                    .or_default()
                    .entry(h.model)
                    .or_default() += h.hits;
            }
        }
    }
}

/// Writes `tally` every `period` until `shutdown`, then once more.
pub async fn write_hits(
    store: Store,
    tally: HitTally,
    period: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(period) => tally.write(&store).await,
            () = shutdown.cancelled() => {
                tally.write(&store).await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_are_counted_per_entry_and_taken_once() {
        let tally = HitTally::default();
        for _ in 0..3 {
            tally.add("http://a/x.jpg", "m1");
        }
        tally.add("http://a/x.jpg", "m2");
        tally.add("http://b/y.jpg", "m1");
        let mut hits = tally.take();
        hits.sort_by(|a, b| (&a.url_key, &a.model).cmp(&(&b.url_key, &b.model)));
        let counts: Vec<(&str, &str, i64)> = hits
            .iter()
            .map(|h| (h.url_key.as_str(), h.model.as_str(), h.hits))
            .collect();
        assert_eq!(
            counts,
            [
                ("http://a/x.jpg", "m1", 3),
                ("http://a/x.jpg", "m2", 1),
                ("http://b/y.jpg", "m1", 1)
            ]
        );
        assert!(tally.take().is_empty());
    }
}
