//! The media store: where uploaded sources and published HLS objects live.
//!
//! A thin layer over [`object_store`]: a local directory by default
//! (`MEDIA_STORE=/var/lib/stream/media` or `file:///...`), `memory://` for
//! tests; any other `object_store` URL scheme (S3, GCS, Azure) is
//! configuration once the matching `object_store` feature is compiled in.
//!
//! Key layout (the only place that knows it):
//! * `uploads/<video id>/source` — the uploaded original;
//! * `videos/<video id>/master.m3u8`, `videos/<video id>/<track>/<file>` —
//!   published HLS.

use std::path::Path as FsPath;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::io::AsyncWriteExt;

pub use object_store;

/// Errors of the media store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The configured location is not usable.
    #[error("media store {spec:?}: {reason}")]
    Config { spec: String, reason: String },
    /// A streamed upload went past its byte limit; nothing was kept.
    #[error("upload exceeds the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// The client's body stream failed; nothing was kept.
    #[error("upload interrupted: {0}")]
    Body(String),
    #[error("media store: {0}")]
    Store(#[from] object_store::Error),
    #[error("local file: {0}")]
    Io(#[from] std::io::Error),
}

/// Read/write chunk for streaming between files and the store, bytes.
const CHUNK: usize = 1 << 20;

/// Handle to the media store; cheap to clone.
#[derive(Clone, Debug)]
pub struct MediaStore {
    inner: Arc<dyn ObjectStore>,
}

impl MediaStore {
    /// Open a store from a directory path or an `object_store` URL
    /// (`file:///abs/dir`, `memory://`, ...). A directory is created if
    /// missing.
    ///
    /// Errors: [`StoreError::Config`] for an unusable path or URL.
    pub fn open(spec: &str) -> Result<Self, StoreError> {
        let config_err = |reason: String| StoreError::Config {
            spec: spec.to_string(),
            reason,
        };
        let inner: Arc<dyn ObjectStore> = if spec.contains("://") {
            let url = url::Url::parse(spec).map_err(|e| config_err(e.to_string()))?;
            if url.scheme() == "file" {
                let dir = url
                    .to_file_path()
                    .map_err(|_| config_err("not a local path".into()))?;
                Arc::new(local(&dir).map_err(|e| config_err(e.to_string()))?)
            } else {
                let (store, prefix) = object_store::parse_url(&url).map_err(|e| {
                    config_err(format!("{e} (is its object_store feature built in?)"))
                })?;
                Arc::new(object_store::prefix::PrefixStore::new(store, prefix))
            }
        } else {
            Arc::new(local(FsPath::new(spec)).map_err(|e| config_err(e.to_string()))?)
        };
        Ok(MediaStore { inner })
    }

    /// The underlying object store (for serving with conditional and range
    /// requests).
    pub fn objects(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    /// Key of an uploaded source.
    pub fn source_key(video_id: &str) -> Path {
        Path::from(format!("uploads/{video_id}/source"))
    }

    /// Prefix of a video's published HLS objects.
    pub fn video_prefix(video_id: &str) -> Path {
        Path::from(format!("videos/{video_id}"))
    }

    /// Key of one published HLS object, `rel` like `720p/seg_00001.m4s`.
    pub fn video_object(video_id: &str, rel: &str) -> Path {
        Path::from(format!("videos/{video_id}/{rel}"))
    }

    /// Stream `body` into `key`, failing with [`StoreError::TooLarge`] past
    /// `limit` bytes. Never holds the whole body in memory. On any error
    /// the partial upload is aborted and nothing is kept. Returns the size.
    pub async fn put_stream<S, E>(&self, key: &Path, body: S, limit: u64) -> Result<u64, StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let upload = self.inner.put_multipart(key).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, 5 * CHUNK);
        let mut body = body;
        let mut size = 0u64;
        let result: Result<(), StoreError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| StoreError::Body(e.to_string()))?;
                size += chunk.len() as u64;
                if size > limit {
                    return Err(StoreError::TooLarge { limit });
                }
                writer.wait_for_capacity(4).await?;
                writer.write(&chunk);
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                writer.finish().await?;
                Ok(size)
            }
            Err(e) => {
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }

    /// Upload a local file to `key` (streamed in 1 MiB chunks).
    pub async fn put_file(&self, key: &Path, file: &FsPath) -> Result<u64, StoreError> {
        let len = tokio::fs::metadata(file).await?.len();
        if len <= 8 * CHUNK as u64 {
            let bytes = tokio::fs::read(file).await?;
            self.inner.put(key, PutPayload::from(bytes)).await?;
            return Ok(len);
        }
        let f = tokio::fs::File::open(file).await?;
        let chunks = tokio_util::io::ReaderStream::with_capacity(f, CHUNK);
        self.put_stream(key, chunks, u64::MAX).await
    }

    /// Upload in-memory bytes to `key`.
    pub async fn put_bytes(&self, key: &Path, bytes: Bytes) -> Result<(), StoreError> {
        self.inner.put(key, PutPayload::from(bytes)).await?;
        Ok(())
    }

    /// Read a whole (small) object, e.g. a playlist. `Ok(None)` if absent.
    pub async fn get_bytes(&self, key: &Path) -> Result<Option<Bytes>, StoreError> {
        match self.inner.get(key).await {
            Ok(r) => Ok(Some(r.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Copy `key` into a new local file (streamed).
    pub async fn download_to_file(&self, key: &Path, file: &FsPath) -> Result<u64, StoreError> {
        let mut stream = self.inner.get(key).await?.into_stream();
        let mut out = tokio::fs::File::create(file).await?;
        let mut size = 0u64;
        while let Some(chunk) = stream.try_next().await? {
            size += chunk.len() as u64;
            out.write_all(&chunk).await?;
        }
        out.flush().await?;
        Ok(size)
    }

    /// Delete every object under `prefix`. Idempotent.
    pub async fn delete_prefix(&self, prefix: &Path) -> Result<(), StoreError> {
        let locations = self
            .inner
            .list(Some(prefix))
            .map_ok(|meta| meta.location)
            .boxed();
        self.inner
            .delete_stream(locations)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(())
    }

    /// Whether an object exists at `key` (a `HEAD`, no body read).
    ///
    /// Errors: [`StoreError::Store`] when the store cannot answer (a
    /// missing object is `Ok(false)`, not an error).
    pub async fn exists(&self, key: &Path) -> Result<bool, StoreError> {
        match self.inner.head(key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Delete one object; absent is fine.
    pub async fn delete(&self, key: &Path) -> Result<(), StoreError> {
        match self.inner.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

fn local(dir: &FsPath) -> Result<object_store::local::LocalFileSystem, StoreError> {
    std::fs::create_dir_all(dir)?;
    Ok(object_store::local::LocalFileSystem::new_with_prefix(dir)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stream_upload_respects_limit_and_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = MediaStore::open(dir.path().to_str().unwrap()).unwrap();
        let key = MediaStore::source_key("01ARZ3NDEKTSV4RRFFQ69G5FAV");
        let chunks = futures::stream::iter(
            (0..4).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![7u8; 1000]))),
        );
        let err = store.put_stream(&key, chunks, 3500).await.unwrap_err();
        assert!(matches!(err, StoreError::TooLarge { limit: 3500 }));
        assert!(store.get_bytes(&key).await.unwrap().is_none());

        let chunks = futures::stream::iter(
            (0..3).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![7u8; 1000]))),
        );
        assert_eq!(store.put_stream(&key, chunks, 3500).await.unwrap(), 3000);
        assert_eq!(store.get_bytes(&key).await.unwrap().unwrap().len(), 3000);
    }

    #[tokio::test]
    async fn exists_answers_for_present_and_missing_objects() {
        let dir = tempfile::tempdir().unwrap();
        let store = MediaStore::open(dir.path().to_str().unwrap()).unwrap();
        let key = MediaStore::source_key("01ARZ3NDEKTSV4RRFFQ69G5FAV");
        assert!(!store.exists(&key).await.unwrap());
        store
            .put_bytes(&key, Bytes::from_static(b"x"))
            .await
            .unwrap();
        assert!(store.exists(&key).await.unwrap());
    }

    #[tokio::test]
    async fn delete_prefix_removes_a_video() {
        let store = MediaStore::open("memory://").unwrap();
        for rel in ["master.m3u8", "720p/index.m3u8", "720p/seg_00000.m4s"] {
            store
                .put_bytes(
                    &MediaStore::video_object("v1", rel),
                    Bytes::from_static(b"x"),
                )
                .await
                .unwrap();
        }
        store
            .put_bytes(
                &MediaStore::video_object("v2", "master.m3u8"),
                Bytes::from_static(b"y"),
            )
            .await
            .unwrap();
        store
            .delete_prefix(&MediaStore::video_prefix("v1"))
            .await
            .unwrap();
        assert!(store
            .get_bytes(&MediaStore::video_object("v1", "720p/index.m3u8"))
            .await
            .unwrap()
            .is_none());
        assert!(store
            .get_bytes(&MediaStore::video_object("v2", "master.m3u8"))
            .await
            .unwrap()
            .is_some());
    }
}
