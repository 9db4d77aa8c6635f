//! The single-writer lease. A writer holds it for as long as it may write the table; a second
//! writer fails fast with [`Error::WriterLeaseHeld`].
//!
//! - Local disk: an exclusive OS lock on `.hoodie/.heartbeat/inlet.lock`, released by the OS
//!   when the process dies, so a crashed writer never blocks the next one.
//! - Object stores: a lease object `.hoodie/.heartbeat/inlet.lease` created with put-if-absent and
//!   renewed by a heartbeat with compare-and-swap (`If-Match`); a writer whose lease expired
//!   (crashed, or stalled past the TTL) is fenced: its next renewal fails and it cannot complete.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::error::{Error, Result};
use crate::storage::Storage;

/// Which lease: the table's single writer, or the table services (compaction runs, cleaning,
/// archival), which may work beside the writer but not beside each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseKind {
    Writer,
    Services,
}

impl LeaseKind {
    fn lock_file(self) -> &'static str {
        match self {
            LeaseKind::Writer => ".hoodie/.heartbeat/inlet.lock",
            LeaseKind::Services => ".hoodie/.heartbeat/inlet-services.lock",
        }
    }

    fn object(self) -> &'static str {
        match self {
            LeaseKind::Writer => ".hoodie/.heartbeat/inlet.lease",
            LeaseKind::Services => ".hoodie/.heartbeat/inlet-services.lease",
        }
    }

    fn holder(self, table: &str) -> String {
        match self {
            LeaseKind::Writer => table.to_string(),
            LeaseKind::Services => format!("{table} (table services)"),
        }
    }
}

/// How long an object-store lease lasts without renewal.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(60);

#[derive(Debug, Serialize, Deserialize)]
struct LeaseRecord {
    owner: String,
    expires_at_ms: i64,
}

fn owner_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".to_string());
    format!(
        "{host}:{}:{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    )
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A held writer lease.
#[derive(Debug)]
pub struct Lease {
    inner: Inner,
    table: String,
}

#[derive(Debug)]
enum Inner {
    Local(#[allow(dead_code)] std::fs::File),
    Object(Arc<ObjectLease>),
}

#[derive(Debug)]
struct ObjectLease {
    storage: Storage,
    object: &'static str,
    owner: String,
    ttl: Duration,
    e_tag: Mutex<String>,
    lost: AtomicBool,
    heartbeat: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Lease {
    /// The writer lease.
    pub async fn acquire(storage: &Storage, ttl: Duration) -> Result<Lease> {
        Lease::acquire_kind(storage, LeaseKind::Writer, ttl).await
    }

    pub async fn acquire_kind(storage: &Storage, kind: LeaseKind, ttl: Duration) -> Result<Lease> {
        let table = kind.holder(storage.uri());
        match storage.local_root() {
            Some(root) => {
                let path = root.join(kind.lock_file());
                let table2 = table.clone();
                let file = tokio::task::spawn_blocking(move || lock_local(&path, &table2))
                    .await
                    .map_err(|e| Error::Task(e.to_string()))??;
                Ok(Lease {
                    inner: Inner::Local(file),
                    table,
                })
            }
            None => {
                let lease = Arc::new(acquire_object(storage, kind, ttl).await?);
                let heartbeat = tokio::spawn(heartbeat(Arc::downgrade(&lease)));
                if let Ok(mut slot) = lease.heartbeat.lock() {
                    *slot = Some(heartbeat);
                }
                Ok(Lease {
                    inner: Inner::Object(lease),
                    table,
                })
            }
        }
    }

    /// Fails unless the lease is still held; renews an object-store lease on the way.
    pub async fn check(&self) -> Result<()> {
        match &self.inner {
            Inner::Local(_) => Ok(()),
            Inner::Object(lease) => {
                if lease.lost.load(Ordering::SeqCst) || !lease.renew().await? {
                    return Err(Error::WriterLeaseLost {
                        table: self.table.clone(),
                        reason: "the lease expired and another writer took it over".to_string(),
                    });
                }
                Ok(())
            }
        }
    }

    /// Gives the lease up.
    pub async fn release(self) -> Result<()> {
        crate::fail_with_error!("lease.release");
        if let Inner::Object(lease) = &self.inner {
            if let Ok(mut slot) = lease.heartbeat.lock()
                && let Some(handle) = slot.take()
            {
                handle.abort();
            }
            if !lease.lost.load(Ordering::SeqCst) {
                lease.storage.delete(lease.object).await?;
            }
        }
        Ok(())
    }
}

fn lock_local(path: &std::path::Path, table: &str) -> Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(io)?;
    // A lock released a moment ago can still be held through a forked child that has not
    // exec'd yet (the descriptor is shared until then): wait briefly before giving up.
    let mut attempt = 0;
    let locked = loop {
        match file.try_lock() {
            Err(std::fs::TryLockError::WouldBlock) if attempt < 20 => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            other => break other,
        }
    };
    match locked {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut owner = String::new();
            let _ = file.read_to_string(&mut owner);
            return Err(Error::WriterLeaseHeld {
                table: table.to_string(),
                owner: owner.trim().to_string(),
                expires: "when that process exits".to_string(),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).and_then(|_| file.rewind()).map_err(io)?;
    writeln!(file, "{}", owner_id()).map_err(io)?;
    Ok(file)
}

async fn acquire_object(storage: &Storage, kind: LeaseKind, ttl: Duration) -> Result<ObjectLease> {
    let owner = owner_id();
    let record = |owner: &str| {
        let record = LeaseRecord {
            owner: owner.to_string(),
            expires_at_ms: now_ms() + ttl.as_millis() as i64,
        };
        Bytes::from(serde_json::to_vec(&record).unwrap_or_default())
    };
    let store = storage.object_store();
    let path = storage.path(kind.object())?;
    let create = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    let e_tag = match store
        .put_opts(&path, PutPayload::from(record(&owner)), create)
        .await
    {
        Ok(put) => put.e_tag,
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => {
            let current = store
                .get(&path)
                .await
                .map_err(|e| Error::storage(&path, e))?;
            let current_tag = current.meta.e_tag.clone();
            let bytes = current
                .bytes()
                .await
                .map_err(|e| Error::storage(&path, e))?;
            let held: LeaseRecord = serde_json::from_slice(&bytes).unwrap_or(LeaseRecord {
                owner: "unknown".to_string(),
                expires_at_ms: 0,
            });
            if held.expires_at_ms > now_ms() {
                return Err(Error::WriterLeaseHeld {
                    table: kind.holder(storage.uri()),
                    owner: held.owner,
                    expires: chrono::DateTime::from_timestamp_millis(held.expires_at_ms)
                        .map_or_else(|| held.expires_at_ms.to_string(), |t| t.to_rfc3339()),
                });
            }
            // Expired: take it over, unless somebody else does first.
            let version = UpdateVersion {
                e_tag: current_tag,
                version: None,
            };
            let update = PutOptions {
                mode: PutMode::Update(version),
                ..Default::default()
            };
            match store
                .put_opts(&path, PutPayload::from(record(&owner)), update)
                .await
            {
                Ok(put) => put.e_tag,
                Err(
                    object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. },
                ) => {
                    return Err(Error::WriterLeaseHeld {
                        table: kind.holder(storage.uri()),
                        owner: "another writer".to_string(),
                        expires: "unknown (it just took the lease over)".to_string(),
                    });
                }
                Err(e) => return Err(Error::storage(&path, e)),
            }
        }
        Err(e) => return Err(Error::storage(&path, e)),
    };
    let e_tag = e_tag.ok_or_else(|| {
        Error::Unsupported("the object store returns no ETag; leases need one".to_string())
    })?;
    Ok(ObjectLease {
        storage: storage.clone(),
        object: kind.object(),
        owner,
        ttl,
        e_tag: Mutex::new(e_tag),
        lost: AtomicBool::new(false),
        heartbeat: std::sync::Mutex::new(None),
    })
}

impl ObjectLease {
    /// Extends the lease; `false` when another writer has replaced it.
    async fn renew(&self) -> Result<bool> {
        let mut e_tag = self.e_tag.lock().await;
        let record = LeaseRecord {
            owner: self.owner.clone(),
            expires_at_ms: now_ms() + self.ttl.as_millis() as i64,
        };
        let path = self.storage.path(self.object)?;
        let version = UpdateVersion {
            e_tag: Some(e_tag.clone()),
            version: None,
        };
        let update = PutOptions {
            mode: PutMode::Update(version),
            ..Default::default()
        };
        let body = PutPayload::from(serde_json::to_vec(&record).unwrap_or_default());
        match self
            .storage
            .object_store()
            .put_opts(&path, body, update)
            .await
        {
            Ok(put) => {
                if let Some(tag) = put.e_tag {
                    *e_tag = tag;
                }
                Ok(true)
            }
            Err(
                object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. },
            ) => {
                self.lost.store(true, Ordering::SeqCst);
                Ok(false)
            }
            Err(e) => Err(Error::storage(&path, e)),
        }
    }
}

async fn heartbeat(lease: std::sync::Weak<ObjectLease>) {
    loop {
        let Some(ttl) = lease.upgrade().map(|l| l.ttl) else {
            return;
        };
        tokio::time::sleep(ttl / 3).await;
        let Some(lease) = lease.upgrade() else { return };
        match lease.renew().await {
            Ok(true) => {}
            Ok(false) => {
                tracing::error!(owner = %lease.owner, "Writer lease lost to another writer; this writer cannot commit.");
                return;
            }
            Err(e) => tracing::warn!(error = %e, "Writer lease renewal failed; retrying."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_writer_is_refused_until_the_first_releases() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::Io {
            path: "tmp".into(),
            source: e,
        })?;
        let local = Storage::open(&dir.path().display().to_string(), &[])?;
        let memory = Storage::open("memory://lease-test", &[])?;
        for storage in [local, memory] {
            let first = Lease::acquire(&storage, DEFAULT_LEASE_TTL).await?;
            let second = Lease::acquire(&storage, DEFAULT_LEASE_TTL).await;
            assert!(
                matches!(second, Err(Error::WriterLeaseHeld { .. })),
                "{second:?}"
            );
            first.check().await?;
            first.release().await?;
            let third = Lease::acquire(&storage, DEFAULT_LEASE_TTL).await?;
            third.release().await?;
        }
        Ok(())
    }

    #[tokio::test]
    async fn an_expired_lease_is_taken_over_and_the_old_holder_fenced() -> Result<()> {
        let storage = Storage::open("memory://lease-expiry-test", &[])?;
        let stale = Lease::acquire(&storage, Duration::from_millis(1)).await?;
        if let Inner::Object(l) = &stale.inner
            && let Ok(mut h) = l.heartbeat.lock()
            && let Some(h) = h.take()
        {
            h.abort();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let fresh = Lease::acquire(&storage, DEFAULT_LEASE_TTL).await?;
        assert!(matches!(
            stale.check().await,
            Err(Error::WriterLeaseLost { .. })
        ));
        fresh.check().await?;
        Ok(())
    }
}
