//! A throwaway MariaDB server for tests: `mariadb-install-db` into a temp dir, then `mariadbd`
//! with the binlog as change capture needs it (`--log-bin --binlog-format=ROW
//! --binlog-row-metadata=FULL`) on a free port of 127.0.0.1, stopped by its PID when the
//! [`MariaDbServer`] is dropped. `root` connects over TCP without a password.
//!
//! The binaries come from Debian's `mariadb-server` (`scripts/test` installs it). When the tests
//! run as root the server runs as root too (`--user=root`): it is a private instance in a temp
//! dir, reachable only on 127.0.0.1.

use std::fs::File;
use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tempfile::TempDir;

const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// The binlog settings change capture needs.
pub const BINLOG_ARGS: &[&str] = &[
    "--log-bin=binlog",
    "--binlog-format=ROW",
    "--binlog-row-metadata=FULL",
    "--binlog-row-image=FULL",
];

/// A running MariaDB server.
#[derive(Debug)]
pub struct MariaDbServer {
    port: u16,
    child: Child,
    log: PathBuf,
    dir: TempDir,
}

impl MariaDbServer {
    /// A server with the binlog as capture needs it.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(BINLOG_ARGS)
    }

    /// A server with these `mariadbd` options besides the basic ones (data dir, port, socket).
    pub fn start_with(args: &[&str]) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("inlet-mariadb-")
            .tempdir()?;
        let data = dir.path().join("data");
        // Its own temp dir: servers bootstrapped at the same time collide on /tmp's file names.
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp)?;
        let root = running_as_root();
        let mut install = Command::new("mariadb-install-db");
        install
            .args([
                "--no-defaults",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ])
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()));
        if root {
            install.arg("--user=root");
        }
        let out = install.output().context(
            "running mariadb-install-db (install Debian's mariadb-server: scripts/test does)",
        )?;
        if !out.status.success() {
            bail!(
                "mariadb-install-db failed: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let port = free_port()?;
        let log = dir.path().join("mariadbd.log");
        let mut command = Command::new("mariadbd");
        command
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", dir.path().join("sock").display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg(format!("--port={port}"))
            .args([
                "--bind-address=127.0.0.1",
                "--server-id=1",
                "--skip-name-resolve",
            ])
            .args([
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-buffer-pool-size=32M",
                // Debian's packaged default (a bare mariadbd would default to latin1).
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_general_ci",
            ])
            .arg(format!("--log-error={}", log.display()))
            .args(args);
        if root {
            command.arg("--user=root");
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting mariadbd")?;
        let mut server = MariaDbServer {
            port,
            child,
            log,
            dir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                bail!("mariadbd exited with {status}:\n{}", server.log_text());
            }
            if Instant::now() > deadline {
                bail!(
                    "mariadbd did not accept connections within {START_TIMEOUT:?}:\n{}",
                    server.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mysql://root@127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    /// A connection as root.
    pub async fn connect(&self) -> anyhow::Result<mysql_async::Conn> {
        let opts = mysql_async::Opts::from_url(&self.url())?;
        Ok(mysql_async::Conn::new(opts).await?)
    }

    /// The server's error log so far.
    pub fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// The data directory (for tests that look at binlog files).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for MariaDbServer {
    fn drop(&mut self) {
        // SIGTERM is a clean shutdown; SIGKILL if it takes too long.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_)) | Err(_)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server's binlog file and offset (`SHOW MASTER STATUS`).
pub async fn binlog_at(conn: &mut mysql_async::Conn) -> anyhow::Result<(String, u64)> {
    use mysql_async::prelude::Queryable;
    let row: mysql_async::Row = conn
        .query_first("SHOW MASTER STATUS")
        .await?
        .context("SHOW MASTER STATUS returned nothing")?;
    Ok((row.get(0).context("file")?, row.get(1).context("position")?))
}

/// Commits a change to `shop.inlet_fence (id INT PRIMARY KEY, at DATETIME(6))` and returns the
/// binlog position after it, as inlet counts positions (`file number << 32 | offset`): once a
/// pipeline has it, every earlier transaction is in the lake.
pub async fn fence(conn: &mut mysql_async::Conn) -> anyhow::Result<u64> {
    use mysql_async::prelude::Queryable;
    conn.query_drop(
        "INSERT INTO shop.inlet_fence VALUES (1, NOW(6)) ON DUPLICATE KEY UPDATE at = NOW(6)",
    )
    .await?;
    let (file, offset) = binlog_at(conn).await?;
    let number: u64 = file.rsplit('.').next().unwrap_or("0").parse()?;
    Ok(number << 32 | offset)
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}
