//! The acknowledgement record: the highest source position a pipeline ever acknowledged,
//! written to the lake (`<base_uri>/_inlet/…`) before the source is told. A source position
//! beyond it cannot come from this pipeline: a replication slot found there was dropped and
//! recreated (or advanced by someone else), and the changes in between are lost to every table
//! (see `on_gap`).

use bytes::Bytes;
use inlet_table::storage::Storage;
use serde_json::json;

use crate::error::{Error, Result};

/// Where a pipeline records what it acknowledged.
#[derive(Debug, Clone)]
pub struct AckRecord {
    storage: Storage,
    path: String,
}

impl AckRecord {
    /// The record at `path` under the sink's base URI.
    pub fn new(storage: Storage, path: String) -> Self {
        AckRecord { storage, path }
    }

    /// The recorded position, `None` when nothing was recorded yet.
    pub async fn read(&self) -> Result<Option<u64>> {
        let Some(bytes) = self
            .storage
            .get_opt(&self.path)
            .await
            .map_err(|e| self.error(e))?
        else {
            return Ok(None);
        };
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| Error::Config {
                field: self.location(),
                reason: format!("not an acknowledgement record: {e}"),
            })?;
        Ok(value.get("acknowledged").and_then(|v| v.as_u64()))
    }

    /// Records `position` (durably: a whole-object put).
    pub async fn write(&self, position: u64, display: &str) -> Result<()> {
        let body = json!({
            "acknowledged": position,
            "position": display,
            "at": chrono::Utc::now().to_rfc3339(),
        });
        self.storage
            .put(&self.path, Bytes::from(body.to_string()))
            .await
            .map_err(|e| self.error(e))
    }

    fn location(&self) -> String {
        format!("{}/{}", self.storage.uri().trim_end_matches('/'), self.path)
    }

    fn error(&self, source: inlet_table::Error) -> Error {
        Error::Lake {
            table: self.location(),
            source,
        }
    }
}
