//! What every patch status of this replica reads and rarely changes.

use std::sync::{Arc, OnceLock, RwLock};

use hotpatch_domain::Release;
use hotpatch_store::status;
use hotpatch_store::PgPool;
use sha2::{Digest, Sha256};

use crate::error::AppError;

/// What every status of this replica reads and rarely changes: the release catalog, kept with
/// the version it was read at (`status_epoch.catalog_version`), and the fingerprint of the
/// settings the answers depend on. Every request still reads the current version from
/// PostgreSQL, so a change made through any replica is seen at once.
#[derive(Default)]
pub struct StatusCatalog {
    catalog: RwLock<Option<(i64, Arc<Vec<Release>>)>>,
    settings: OnceLock<[u8; 32]>,
}

impl StatusCatalog {
    /// The catalog at `version` or newer, with the version it was read at (one query, only
    /// when the cached copy is older).
    pub async fn catalog(&self, pool: &PgPool, version: i64) -> Result<(i64, Arc<Vec<Release>>), AppError> {
        if let Some((v, c)) = self.catalog.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
            if *v >= version {
                return Ok((*v, c.clone()));
            }
        }
        self.catalog_now(pool).await
    }

    /// The catalog as it is now (one query), kept for the statuses that follow.
    pub async fn catalog_now(&self, pool: &PgPool) -> Result<(i64, Arc<Vec<Release>>), AppError> {
        let (v, c) = status::catalog(pool).await?;
        let c = Arc::new(c);
        let mut slot = self.catalog.write().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_none_or(|(old, _)| *old < v) {
            *slot = Some((v, c.clone()));
        }
        Ok((v, c))
    }

    /// The fingerprint of the settings (and version) every answer depends on.
    pub fn settings(&self, settings: &crate::Settings) -> [u8; 32] {
        *self.settings.get_or_init(|| {
            Sha256::new()
                .chain_update(env!("CARGO_PKG_VERSION"))
                .chain_update(format!("{settings:?}"))
                .finalize()
                .into()
        })
    }
}
