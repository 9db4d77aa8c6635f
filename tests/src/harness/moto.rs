//! A local S3 server for tests: moto's `moto_server`, bound to 127.0.0.1 on a free
//! port, killed when the [`MotoServer`] is dropped.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long to wait for a started `moto_server` to answer HTTP.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Tries with a fresh port when the server dies at start (e.g. the port was taken).
const START_TRIES: usize = 3;
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `moto_server` on 127.0.0.1. Credentials are the dummy `test`/`test`,
/// region `us-east-1`; moto accepts any.
#[derive(Debug)]
pub struct MotoServer {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    addr: SocketAddr,
    child: Child,
    /// The server's stderr (its request log), for error messages.
    log: File,
}

impl MotoServer {
    /// Starts `moto_server -H 127.0.0.1 -p PORT` on a free port and waits until it
    /// answers HTTP.
    pub fn start() -> anyhow::Result<Self> {
        let mut last_err = None;
        for _ in 0..START_TRIES {
            match Self::start_once() {
                Ok(server) => return Ok(server),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("moto_server did not start")))
    }

    fn start_once() -> anyhow::Result<Self> {
        let port = free_port()?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let log = tempfile::tempfile().context("temp file for moto_server's log")?;
        let bin = super::moto_server();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log.try_clone()?)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let mut server = MotoServer {
            endpoint: format!("http://{addr}"),
            addr,
            child,
            log,
        };

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "moto_server exited at start ({status}):\n{}",
                    server.log_text()
                );
            }
            if let Ok((status, _)) = server.request("GET", "/")
                && (200..500).contains(&status)
            {
                return Ok(server);
            }
            if Instant::now() >= deadline {
                bail!(
                    "moto_server did not answer on {} within {:?}:\n{}",
                    server.endpoint,
                    START_TIMEOUT,
                    server.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Creates a bucket (an unsigned `PUT /<name>`, which moto accepts).
    pub fn create_bucket(&self, name: &str) -> anyhow::Result<()> {
        let (status, body) = self.request("PUT", &format!("/{name}"))?;
        if status != 200 {
            bail!(
                "creating bucket {name} on {} failed: HTTP {status}: {body}",
                self.endpoint
            );
        }
        Ok(())
    }

    /// object_store `AmazonS3` config keys (`AmazonS3ConfigKey` names) that point a
    /// client at this server; add the bucket (`aws_bucket`) or use an `s3://` URL.
    pub fn storage_options(&self) -> Vec<(String, String)> {
        [
            ("aws_endpoint", self.endpoint.as_str()),
            ("aws_allow_http", "true"),
            ("aws_access_key_id", "test"),
            ("aws_secret_access_key", "test"),
            ("aws_region", "us-east-1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// One plain HTTP/1.1 request without a body; returns the status and body.
    fn request(&self, method: &str, path: &str) -> anyhow::Result<(u16, String)> {
        let mut stream = TcpStream::connect_timeout(&self.addr, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.addr
        )?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        let response = String::from_utf8_lossy(&response);
        let status = response
            .strip_prefix("HTTP/1.")
            .and_then(|rest| rest.get(2..5))
            .and_then(|code| code.parse::<u16>().ok())
            .with_context(|| {
                format!("not an HTTP response from {}: {response:?}", self.endpoint)
            })?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or_default();
        Ok((status, body.to_owned()))
    }

    fn log_text(&self) -> String {
        let mut log = &self.log;
        let mut text = String::new();
        match log
            .seek(SeekFrom::Start(0))
            .and_then(|_| log.read_to_string(&mut text))
        {
            Ok(_) => text,
            Err(e) => format!("(cannot read moto_server's log: {e})"),
        }
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        // Kills exactly the child we spawned (by its PID), then reaps it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free on 127.0.0.1 a moment ago.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
    use object_store::path::Path;
    use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

    use super::*;

    #[test]
    fn starts_and_creates_buckets() {
        let server = MotoServer::start().expect("moto_server starts");
        assert!(server.endpoint.starts_with("http://127.0.0.1:"));
        server
            .create_bucket("harness-smoke")
            .expect("bucket created");
        let (status, body) = server.request("GET", "/").expect("list buckets");
        assert_eq!(status, 200);
        assert!(body.contains("harness-smoke"), "bucket not listed: {body}");
    }

    #[test]
    fn server_is_gone_after_drop() {
        let server = MotoServer::start().expect("moto_server starts");
        let addr = server.addr;
        drop(server);
        assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conditional_put_create_fails_with_already_exists() {
        let server = MotoServer::start().expect("moto_server starts");
        server.create_bucket("cond-put").expect("bucket created");
        let mut builder = AmazonS3Builder::new().with_bucket_name("cond-put");
        for (key, value) in server.storage_options() {
            let key = AmazonS3ConfigKey::from_str(&key).expect("a valid AmazonS3 config key");
            builder = builder.with_config(key, value);
        }
        let store = builder.build().expect("AmazonS3 client");

        let path = Path::from("table/.hoodie/20250101000000000.commit");
        let create = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        store
            .put_opts(&path, PutPayload::from_static(b"first"), create.clone())
            .await
            .expect("first create");
        let err = store
            .put_opts(&path, PutPayload::from_static(b"second"), create)
            .await
            .expect_err("second create of the same key must fail");
        assert!(
            matches!(err, object_store::Error::AlreadyExists { .. }),
            "expected AlreadyExists, got {err:?}"
        );
        let got = store
            .get(&path)
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes");
        assert_eq!(&got[..], b"first");
    }
}
