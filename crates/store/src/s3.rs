//! Blob octets in an S3-compatible object store (issue 17), one implementation of the
//! blob store interface ([`crate::blob::BlobDir`]: put / get / exists / remove bytes by
//! key); the others are files under the data directory and rows in the database.
//!
//! The client is apache arrow-rs `object_store` (its `aws` feature: SigV4 signing,
//! path-style requests, retries with backoff), which is asynchronous. The store's API is
//! synchronous (called from tokio's blocking pool and from the CLI), so this module owns
//! a small runtime of its own (two threads): each operation is spawned there and the
//! caller waits on a channel. That never nests `block_on` in a caller's runtime, so it
//! is safe from any thread.
//!
//! Every failure other than "no such object" (refused connection, timeout, 5xx,
//! throttling) is reported as [`Unavailable`], which the store turns into
//! [`crate::Error::Unavailable`]: a temporary error (4xx in SMTP/LMTP, `NO
//! [UNAVAILABLE]` in IMAP, `-ERR [SYS/TEMP]` in POP3). Nothing is cached about the
//! server's state, so when it is back the next operation simply works.
//!
//! Objects hold the same zstd-compressed octets as blob files. Keys:
//! `[prefix/]blobs/<2 hex>/<BLAKE3 hex>` and `[prefix/]parts/...`.

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjPath;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, PutPayload, RetryConfig};
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// Options of `[blobs]` (see the config crate for their meaning and defaults).
#[derive(Clone)]
pub struct ObjectsOptions {
    pub url: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub retries: u32,
    /// Seconds after which an upload hold is abandoned (`[blobs] hold_max`).
    pub hold_max: u64,
}

impl std::fmt::Debug for ObjectsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials.
        f.debug_struct("ObjectsOptions")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The object store is unreachable or failing: a temporary condition.
#[derive(Debug)]
pub struct Unavailable(pub String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "object store unavailable: {}", self.0)
    }
}

impl std::error::Error for Unavailable {}

fn unavailable(msg: impl Into<String>) -> io::Error {
    io::Error::other(Unavailable(msg.into()))
}

/// What `s3://bucket[/prefix]?endpoint=...&region=...` says.
#[derive(Debug, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    pub prefix: String,
    pub endpoint: Option<String>,
    pub region: String,
}

impl S3Url {
    pub fn parse(url: &str) -> Result<S3Url, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("[blobs] url must start with s3:// (got {url:?})"))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        if bucket.is_empty() {
            return Err("[blobs] url names no bucket".into());
        }
        let mut out = S3Url {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            endpoint: None,
            region: "us-east-1".into(),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "endpoint" => out.endpoint = Some(v.to_string()),
                "region" => out.region = v.to_string(),
                _ => return Err(format!("[blobs] url: unknown parameter {k:?}")),
            }
        }
        Ok(out)
    }
}

pub struct S3Objects {
    store: Arc<AmazonS3>,
    prefix: String,
    timeout: Duration,
    rt: Option<tokio::runtime::Runtime>,
    pub(crate) hold_max: u64,
}

impl std::fmt::Debug for S3Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Objects({})", self.prefix)
    }
}

impl Drop for S3Objects {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which tokio forbids inside another runtime.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl S3Objects {
    pub fn open(o: &ObjectsOptions) -> io::Result<S3Objects> {
        let u = S3Url::parse(&o.url).map_err(io::Error::other)?;
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&u.bucket)
            .with_region(&u.region)
            .with_virtual_hosted_style_request(false)
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(o.timeout)
                    .with_connect_timeout(o.connect_timeout)
                    .with_allow_http(true),
            )
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: o.retries as usize,
                retry_timeout: o.timeout,
            });
        if let Some(e) = &u.endpoint {
            b = b.with_endpoint(e);
        }
        if let Some(k) = &o.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(k) = &o.secret_access_key {
            b = b.with_secret_access_key(k);
        }
        let store = b
            .build()
            .map_err(|e| io::Error::other(format!("[blobs] url: {e}")))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("blob-s3")
            .enable_all()
            .build()?;
        Ok(S3Objects {
            store: Arc::new(store),
            prefix: if u.prefix.is_empty() {
                String::new()
            } else {
                format!("{}/", u.prefix)
            },
            timeout: o.timeout,
            rt: Some(rt),
            hold_max: o.hold_max,
        })
    }

    /// The object key of `name` (`blobs/ab/ab...`).
    pub fn key(&self, name: &str) -> ObjPath {
        ObjPath::from(format!("{}{name}", self.prefix))
    }

    /// Runs one operation on the runtime, bounded by `[blobs] timeout`.
    fn run<T, F>(&self, fut: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: Future<Output = object_store::Result<T>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let limit = self.timeout;
        let rt = self.rt.as_ref().ok_or_else(|| unavailable("shut down"))?;
        rt.spawn(async move {
            let _ = tx.send(tokio::time::timeout(limit, fut).await);
        });
        match rx.recv() {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(object_store::Error::NotFound { .. }))) => {
                Err(io::Error::new(io::ErrorKind::NotFound, "no such object"))
            }
            Ok(Ok(Err(e))) => Err(unavailable(e.to_string())),
            Ok(Err(_)) => Err(unavailable(format!("no answer within {limit:?}"))),
            Err(_) => Err(unavailable("request abandoned")),
        }
    }

    pub fn put(&self, name: &str, data: Vec<u8>) -> io::Result<()> {
        let (s, k) = (self.store.clone(), self.key(name));
        self.run(async move { s.put(&k, PutPayload::from(data)).await.map(|_| ()) })
    }

    /// The object's octets; `ErrorKind::NotFound` when there is none.
    pub fn get(&self, name: &str) -> io::Result<Vec<u8>> {
        let (s, k) = (self.store.clone(), self.key(name));
        self.run(async move {
            let r = s.get(&k).await?;
            Ok(r.bytes().await?.to_vec())
        })
    }

    pub fn exists(&self, name: &str) -> io::Result<bool> {
        let (s, k) = (self.store.clone(), self.key(name));
        match self.run(async move { s.head(&k).await.map(|_| ()) }) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes the object (no error when there is none).
    pub fn delete(&self, name: &str) -> io::Result<()> {
        let (s, k) = (self.store.clone(), self.key(name));
        match self.run(async move { s.delete(&k).await }) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::S3Url;

    #[test]
    fn parses_urls() {
        let u = S3Url::parse("s3://mail/node1/?endpoint=http://127.0.0.1:8333&region=eu-1")
            .unwrap();
        assert_eq!(
            u,
            S3Url {
                bucket: "mail".into(),
                prefix: "node1".into(),
                endpoint: Some("http://127.0.0.1:8333".into()),
                region: "eu-1".into()
            }
        );
        assert_eq!(S3Url::parse("s3://b").unwrap().region, "us-east-1");
        assert!(S3Url::parse("http://b").is_err());
        assert!(S3Url::parse("s3://?region=x").is_err());
        assert!(S3Url::parse("s3://b?secret=x").is_err());
    }
}
