//! The resolver of last resort for a pinned client: it refuses every name, so the only names a
//! client can reach are those pinned to already checked addresses.

use reqwest::dns::{Name, Resolve, Resolving};

/// A name reached reqwest's resolver although it was not pinned: a bug on our side, refused
/// rather than looked up, because an unchecked lookup is exactly what DNS rebinding exploits.
#[derive(Debug, thiserror::Error)]
#[error("refusing to resolve {0}: it was not resolved and checked by the address policy")]
pub(crate) struct Unpinned(String);

pub(crate) struct RefuseUnpinned;

impl Resolve for RefuseUnpinned {
    fn resolve(&self, name: Name) -> Resolving {
        let err = Unpinned(crate::log::clean(name.as_str()));
        Box::pin(async move { Err(Box::new(err) as Box<dyn std::error::Error + Send + Sync>) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_that_were_not_pinned_are_refused_instead_of_looked_up() {
        let name: Name = "localhost".parse().unwrap();

        let err = RefuseUnpinned.resolve(name).await.err().unwrap();

        assert!(
            err.to_string().contains("refusing to resolve localhost"),
            "{err}"
        );
    }
}
