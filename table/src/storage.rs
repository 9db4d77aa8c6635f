//! Storage of a table: one object store (local disk, S3 or memory) and the table's base path in
//! it. All paths handed to [`Storage`] are relative to the table's base path, `/`-separated.
//!
//! Local writes are made durable here (temp file, fsync, rename or link, fsync of the directory)
//! because `object_store`'s local store never fsyncs; a completed instant must survive power loss.

use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion,
};

use crate::error::{Error, Result};

/// The base path of a table in an object store, plus how to make writes durable there.
#[derive(Debug, Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    base: Path,
    /// The table's directory when the store is the local file system.
    local_root: Option<PathBuf>,
    uri: String,
}

/// A listed object, with its path relative to the table's base path.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: String,
    pub size: u64,
    pub e_tag: Option<String>,
}

/// Outcome of a put-if-absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    Yes,
    AlreadyExists,
}

/// In-memory stores by name, so that `memory://name` opened twice is the same table (tests).
fn memory_stores() -> &'static Mutex<HashMap<String, Arc<InMemory>>> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<InMemory>>>> = OnceLock::new();
    STORES.get_or_init(Default::default)
}

impl Storage {
    /// Opens storage for a table URI: `s3://bucket/prefix`, `file:///abs/dir`, a plain path or
    /// `memory://name`. S3 options use `object_store`'s keys (`aws_endpoint`, `aws_region`,
    /// `aws_access_key_id`, …); missing ones come from the usual AWS environment variables.
    pub fn open(uri: &str, options: &[(String, String)]) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidUri {
            uri: uri.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = uri
            .strip_prefix("s3://")
            .or_else(|| uri.strip_prefix("s3a://"))
        {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(invalid("no bucket name"));
            }
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            let mut region_set =
                std::env::var("AWS_REGION").is_ok() || std::env::var("AWS_DEFAULT_REGION").is_ok();
            for (key, value) in options {
                let key: AmazonS3ConfigKey = key
                    .parse()
                    .map_err(|_| invalid(&format!("unknown S3 storage option {key:?}")))?;
                region_set |= matches!(key, AmazonS3ConfigKey::Region);
                builder = builder.with_config(key, value);
            }
            if !region_set {
                builder = builder.with_region("us-east-1");
            }
            let store = builder.build().map_err(|e| invalid(&e.to_string()))?;
            let base =
                Path::parse(prefix.trim_end_matches('/')).map_err(|e| invalid(&e.to_string()))?;
            return Ok(Storage {
                store: Arc::new(store),
                base,
                local_root: None,
                uri: uri.to_string(),
            });
        }
        if let Some((key, _)) = options.first() {
            // Only S3 takes options; ignoring one would hide a mistake (a typo in the URI).
            return Err(invalid(&format!(
                "storage option {key:?} given, but only s3:// tables take storage options"
            )));
        }
        if let Some(name) = uri.strip_prefix("memory://") {
            let store = memory_stores()
                .lock()
                .map_err(|_| invalid("memory store registry poisoned"))?
                .entry(name.to_string())
                .or_insert_with(|| Arc::new(InMemory::new()))
                .clone();
            return Ok(Storage {
                store,
                base: Path::parse(name).map_err(|e| invalid(&e.to_string()))?,
                local_root: None,
                uri: uri.to_string(),
            });
        }
        let dir = match uri.strip_prefix("file://") {
            Some(path) => PathBuf::from(path),
            None if uri.contains("://") => {
                return Err(invalid(
                    "unsupported scheme (use s3://, file://, memory:// or a path)",
                ));
            }
            None => PathBuf::from(uri),
        };
        let dir = std::path::absolute(&dir).map_err(|e| invalid(&e.to_string()))?;
        if !dir.is_dir() {
            return Err(Error::TableNotFound(uri.to_string()));
        }
        let store = LocalFileSystem::new_with_prefix(&dir).map_err(|e| invalid(&e.to_string()))?;
        Ok(Storage {
            store: Arc::new(store),
            base: Path::default(),
            local_root: Some(dir),
            uri: uri.to_string(),
        })
    }

    /// Like [`Storage::open`], but first creates the directory of a local table.
    pub fn create(uri: &str, options: &[(String, String)]) -> Result<Self> {
        if !uri.contains("://") || uri.starts_with("file://") {
            let dir = PathBuf::from(uri.strip_prefix("file://").unwrap_or(uri));
            std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
                path: dir.display().to_string(),
                source,
            })?;
        }
        Storage::open(uri, options)
    }

    /// The same storage, with every request counted in `counts` (see [`crate::requests`]).
    pub fn counted(mut self, counts: Arc<crate::requests::RequestCounts>) -> Self {
        self.store = Arc::new(crate::requests::CountingStore::new(self.store, counts));
        self
    }

    /// The URI the table was opened with.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The table's local directory, when on local disk.
    pub fn local_root(&self) -> Option<&FsPath> {
        self.local_root.as_deref()
    }

    /// The underlying store (for streaming readers and writers).
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The store path of a table-relative path. The path is taken as it is, never
    /// percent-encoded (`Path::parse`, not `Path::from`): a partition directory `Köln` or `%2F` is
    /// that name on local disk and that key on S3, the same bytes on write, list and read, as
    /// Hudi's writers and hudi-rs name and find them.
    pub fn path(&self, rel: &str) -> Result<Path> {
        let rel = rel.trim_matches('/');
        let full = if self.base.as_ref().is_empty() {
            rel.to_string()
        } else if rel.is_empty() {
            return Ok(self.base.clone());
        } else {
            format!("{}/{rel}", self.base)
        };
        Path::parse(&full).map_err(|e| Error::InvalidPath {
            path: full,
            reason: e.to_string(),
        })
    }

    fn relative(&self, location: &Path) -> String {
        let full = location.as_ref();
        let base = self.base.as_ref();
        if base.is_empty() {
            full.to_string()
        } else {
            full.strip_prefix(base)
                .unwrap_or(full)
                .trim_start_matches('/')
                .to_string()
        }
    }

    pub async fn get(&self, rel: &str) -> Result<Bytes> {
        let path = self.path(rel)?;
        let result = self
            .store
            .get(&path)
            .await
            .map_err(|e| Error::storage(&path, e))?;
        result.bytes().await.map_err(|e| Error::storage(&path, e))
    }

    /// A byte range of an object.
    pub async fn get_range(&self, rel: &str, range: std::ops::Range<u64>) -> Result<Bytes> {
        let path = self.path(rel)?;
        self.store
            .get_range(&path, range)
            .await
            .map_err(|e| Error::storage(&path, e))
    }

    /// Like [`Storage::get`], but `None` when the object does not exist.
    pub async fn get_opt(&self, rel: &str) -> Result<Option<Bytes>> {
        match self.get(rel).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(Error::Storage {
                source: object_store::Error::NotFound { .. },
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn head(&self, rel: &str) -> Result<Option<Entry>> {
        let path = self.path(rel)?;
        match self.store.head(&path).await {
            Ok(meta) => Ok(Some(self.entry(meta))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::storage(&path, e)),
        }
    }

    /// Writes (or overwrites) an object; durable on local disk when this returns.
    pub async fn put(&self, rel: &str, bytes: Bytes) -> Result<()> {
        let path = self.path(rel)?;
        if let Some(root) = &self.local_root {
            let target = root.join(path.as_ref());
            return blocking(move || local::write_durable(&target, &bytes, false))
                .await
                .map(|_| ());
        }
        self.store
            .put(&path, PutPayload::from(bytes))
            .await
            .map_err(|e| Error::storage(&path, e))?;
        Ok(())
    }

    /// Atomically creates an object unless it exists (hard link on local disk, `If-None-Match: *`
    /// on S3). Durable on local disk when this returns `Created::Yes`.
    pub async fn put_if_absent(&self, rel: &str, bytes: Bytes) -> Result<Created> {
        let path = self.path(rel)?;
        if let Some(root) = &self.local_root {
            let target = root.join(path.as_ref());
            return blocking(move || local::write_durable(&target, &bytes, true)).await;
        }
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&path, PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) => Ok(Created::Yes),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(Created::AlreadyExists),
            Err(e) => Err(Error::storage(&path, e)),
        }
    }

    /// Replaces an object only if its entity tag is still `e_tag` (compare-and-swap). Returns
    /// `false` when somebody else changed it. Not available on local disk.
    pub async fn put_if_match(&self, rel: &str, bytes: Bytes, e_tag: &str) -> Result<bool> {
        let path = self.path(rel)?;
        let version = UpdateVersion {
            e_tag: Some(e_tag.to_string()),
            version: None,
        };
        let opts = PutOptions {
            mode: PutMode::Update(version),
            ..Default::default()
        };
        match self
            .store
            .put_opts(&path, PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(
                object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. },
            ) => Ok(false),
            Err(e) => Err(Error::storage(&path, e)),
        }
    }

    /// Deletes an object; deleting a missing object is not an error.
    pub async fn delete(&self, rel: &str) -> Result<()> {
        let path = self.path(rel)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::storage(&path, e)),
        }
    }

    /// Every object under a table-relative prefix (recursive), in no particular order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Entry>> {
        let path = self.path(prefix)?;
        if let Some(root) = &self.local_root
            && !root.join(prefix).exists()
        {
            return Ok(Vec::new());
        }
        let metas: Vec<ObjectMeta> = match self.store.list(Some(&path)).try_collect().await {
            Ok(metas) => metas,
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(Error::storage(&path, e)),
        };
        Ok(metas.into_iter().map(|meta| self.entry(meta)).collect())
    }

    /// The objects directly inside a table-relative directory (not recursive).
    pub async fn list_dir(&self, dir: &str) -> Result<Vec<Entry>> {
        let path = self.path(dir)?;
        if let Some(root) = &self.local_root
            && !root.join(dir).exists()
        {
            return Ok(Vec::new());
        }
        match self.store.list_with_delimiter(Some(&path)).await {
            Ok(listing) => Ok(listing
                .objects
                .into_iter()
                .map(|meta| self.entry(meta))
                .collect()),
            Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(Error::storage(&path, e)),
        }
    }

    /// The names of the directories directly inside a table-relative directory.
    pub async fn subdirs(&self, dir: &str) -> Result<Vec<String>> {
        let path = self.path(dir)?;
        if let Some(root) = &self.local_root
            && !root.join(dir).exists()
        {
            return Ok(Vec::new());
        }
        match self.store.list_with_delimiter(Some(&path)).await {
            Ok(listing) => Ok(listing
                .common_prefixes
                .iter()
                .filter_map(|p| p.filename().map(str::to_string))
                .collect()),
            Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(Error::storage(&path, e)),
        }
    }

    fn entry(&self, meta: ObjectMeta) -> Entry {
        Entry {
            path: self.relative(&meta.location),
            size: meta.size,
            e_tag: meta.e_tag,
        }
    }
}

/// Runs blocking file-system work off the async executor.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Task(e.to_string()))?
}

mod local {
    //! Durable local writes: temp file in the target directory, fsync, then rename (overwrite)
    //! or hard link (create-if-absent, atomic and first-wins), then fsync of the directory.

    use std::fs::{self, File};
    use std::io::Write;
    use std::path::Path;

    use super::Created;
    use crate::error::{Error, Result};

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io {
            path: path.display().to_string(),
            source,
        }
    }

    pub fn write_durable(target: &Path, bytes: &[u8], if_absent: bool) -> Result<Created> {
        let dir = target.parent().ok_or_else(|| Error::Io {
            path: target.display().to_string(),
            source: std::io::Error::other("no parent directory"),
        })?;
        fs::create_dir_all(dir).map_err(io(dir))?;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
        let result = (|| {
            let mut file = File::create(&temp).map_err(io(&temp))?;
            file.write_all(bytes).map_err(io(&temp))?;
            file.sync_all().map_err(io(&temp))?;
            if if_absent {
                match fs::hard_link(&temp, target) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        return Ok(Created::AlreadyExists);
                    }
                    Err(e) => return Err(io(target)(e)),
                }
            } else {
                fs::rename(&temp, target).map_err(io(target))?;
            }
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io(dir))?;
            Ok(Created::Yes)
        })();
        let _ = fs::remove_file(&temp);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_if_absent_is_first_wins_on_local_and_memory() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::Io {
            path: "tmp".into(),
            source: e,
        })?;
        let uri = dir.path().display().to_string();
        for storage in [
            Storage::open(&uri, &[])?,
            Storage::open("memory://storage-test", &[])?,
        ] {
            assert_eq!(
                storage.put_if_absent("a/b.txt", Bytes::from("one")).await?,
                Created::Yes
            );
            assert_eq!(
                storage.put_if_absent("a/b.txt", Bytes::from("two")).await?,
                Created::AlreadyExists
            );
            assert_eq!(storage.get("a/b.txt").await?, Bytes::from("one"));
            storage.put("a/c.txt", Bytes::from("x")).await?;
            let mut names: Vec<String> = storage
                .list("a")
                .await?
                .into_iter()
                .map(|e| e.path)
                .collect();
            names.sort();
            assert_eq!(names, vec!["a/b.txt".to_string(), "a/c.txt".to_string()]);
            storage.delete("a/c.txt").await?;
            assert!(storage.get_opt("a/c.txt").await?.is_none());
            assert!(storage.list("missing").await?.is_empty());
        }
        // No temp files are left behind on local disk.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("a"))
            .map_err(|e| Error::Io {
                path: "a".into(),
                source: e,
            })?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
        Ok(())
    }

    #[test]
    fn rejects_unknown_schemes_and_options() {
        assert!(matches!(
            Storage::open("gs://bucket/t", &[]),
            Err(Error::InvalidUri { .. })
        ));
        let opts = vec![("not_an_option".to_string(), "x".to_string())];
        assert!(matches!(
            Storage::open("s3://bucket/t", &opts),
            Err(Error::InvalidUri { .. })
        ));
    }
}
