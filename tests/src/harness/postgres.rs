//! A throwaway PostgreSQL server for tests: `initdb` into a temp dir, then `postgres` with
//! `wal_level=logical` on a free port of 127.0.0.1, stopped by its PID when the
//! [`PostgresServer`] is dropped.
//!
//! The binaries come from `INLET_PG_BINDIR`, else `pg_config --bindir`, else
//! `/usr/lib/postgresql/15/bin`. Authentication is `trust` for the superuser `postgres`.
//!
//! PostgreSQL refuses to run as root. When the tests run as root, `initdb` and `postgres` run
//! as an unprivileged user instead (`INLET_PG_USER`, else `postgres` if that account exists, as
//! the Debian packages create it, else `nobody`): the child drops to that user's uid/gid
//! (std's `CommandExt::uid`/`gid`, which also clears the supplementary groups) and the temp
//! dir is handed to it with `chown`. No setup outside this file is needed.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tempfile::TempDir;

/// How long to wait for a started server to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Tries with a fresh port when the server dies at start (e.g. the port was taken).
const START_TRIES: usize = 3;
/// How long a fast shutdown (SIGINT) may take before the server is killed (SIGKILL).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Where Debian's PostgreSQL 15 package installs its server binaries.
const DEFAULT_BINDIR: &str = "/usr/lib/postgresql/15/bin";
/// The superuser `initdb` creates.
pub const SUPERUSER: &str = "postgres";

/// A running PostgreSQL server on 127.0.0.1 with `wal_level=logical`, 10 replication slots and
/// 10 WAL senders, `fsync=off`, trust authentication for [`SUPERUSER`], database `postgres`.
#[derive(Debug)]
pub struct PostgresServer {
    port: u16,
    child: Child,
    /// The server's stderr (its log), for error messages.
    log: File,
    socket_dir: PathBuf,
    /// Holds `data/` (the cluster) and `socket/`; removed after the server has stopped.
    dir: TempDir,
}

/// The account that runs the server when the tests run as root.
#[derive(Debug, Clone)]
struct ServerUser {
    name: String,
    uid: u32,
    gid: u32,
}

impl PostgresServer {
    /// Creates a cluster with `initdb` and starts `postgres` on a free port of 127.0.0.1, then
    /// waits until it accepts connections.
    pub fn start() -> anyhow::Result<Self> {
        let bindir = bindir()?;
        let user = if running_as_root()? {
            Some(server_user()?)
        } else {
            None
        };
        let dir = make_temp_dir(user.as_ref())?;
        let data_dir = dir.path().join("data");
        let socket_dir = dir.path().join("socket");
        std::fs::create_dir(&socket_dir)
            .with_context(|| format!("creating {}", socket_dir.display()))?;
        if let Some(user) = &user {
            std::os::unix::fs::chown(&socket_dir, Some(user.uid), Some(user.gid))
                .with_context(|| format!("chown {} to {}", socket_dir.display(), user.name))?;
        }
        initdb(&bindir, &data_dir, dir.path(), user.as_ref())?;

        let mut last_err = None;
        for _ in 0..START_TRIES {
            match start_postgres(&bindir, &data_dir, &socket_dir, dir.path(), user.as_ref()) {
                Ok((port, child, log)) => {
                    return Ok(PostgresServer {
                        port,
                        child,
                        log,
                        socket_dir,
                        dir,
                    });
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("postgres did not start")))
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The folder holding the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A libpq-style connection string for database `postgres` as [`SUPERUSER`] over TCP
    /// (`host=127.0.0.1 port=PORT user=postgres dbname=postgres`), accepted by tokio-postgres.
    pub fn connection_string(&self) -> String {
        self.connection_string_for("postgres")
    }

    /// Like [`Self::connection_string`] for another database.
    pub fn connection_string_for(&self, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={SUPERUSER} dbname={dbname}",
            self.port
        )
    }

    /// Connects with tokio-postgres to database `postgres` and drives the connection on a
    /// spawned task (needs a tokio runtime). The task ends when the client is dropped.
    pub async fn connect(&self) -> anyhow::Result<tokio_postgres::Client> {
        let conn_str = self.connection_string();
        let (client, connection) = tokio_postgres::connect(&conn_str, tokio_postgres::NoTls)
            .await
            .with_context(|| format!("connecting to {conn_str}"))?;
        tokio::spawn(async move {
            // An error here means the server went away; the client reports it on its next call.
            let _ = connection.await;
        });
        Ok(client)
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        read_log(&self.log)
    }

    /// A fast shutdown as `pg_ctl stop -m fast` makes it (SIGINT to the postmaster, which
    /// disconnects clients but lets WAL senders send what is left and wait for their receivers
    /// to confirm it). Returns how long it took, or an error when the server did not stop within
    /// `timeout` (it is killed then).
    pub fn fast_stop(&mut self, timeout: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return Ok(Duration::ZERO);
        }
        let signalled = Command::new("kill")
            .args(["-s", "INT", &self.child.id().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if signalled {
            while started.elapsed() < timeout {
                match self.child.try_wait() {
                    Ok(Some(_)) | Err(_) => return Ok(started.elapsed()),
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
        // Kills exactly the child we spawned; its backends exit on postmaster death.
        let _ = self.child.kill();
        let _ = self.child.wait();
        anyhow::bail!("the server did not stop within {timeout:?} of a fast shutdown")
    }

    /// Fast shutdown by PID, then SIGKILL if it has not exited within [`STOP_TIMEOUT`].
    fn stop(&mut self) {
        let _ = self.fast_stop(STOP_TIMEOUT);
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
        // `dir` is removed after this, when the fields are dropped.
    }
}

/// The folder with `initdb` and `postgres`.
fn bindir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("INLET_PG_BINDIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    for dir in from_pg_config
        .into_iter()
        .chain([PathBuf::from(DEFAULT_BINDIR)])
    {
        if dir.join("initdb").is_file() && dir.join("postgres").is_file() {
            return Ok(dir);
        }
    }
    bail!(
        "no PostgreSQL server binaries (initdb, postgres) found via INLET_PG_BINDIR, \
         `pg_config --bindir` or {DEFAULT_BINDIR}: install postgresql-15"
    )
}

fn running_as_root() -> anyhow::Result<bool> {
    // The owner of /proc/self is the effective uid of this process.
    let meta = std::fs::metadata("/proc/self").context("reading /proc/self")?;
    Ok(meta.uid() == 0)
}

/// The unprivileged account to run the server as, from `getent passwd`.
fn server_user() -> anyhow::Result<ServerUser> {
    let candidates: Vec<String> = match std::env::var("INLET_PG_USER") {
        Ok(name) if !name.is_empty() => vec![name],
        _ => vec!["postgres".into(), "nobody".into()],
    };
    for name in &candidates {
        let Ok(out) = Command::new("getent").args(["passwd", name]).output() else {
            continue;
        };
        if !out.status.success() {
            continue;
        }
        let line = String::from_utf8_lossy(&out.stdout);
        let fields: Vec<&str> = line.trim().split(':').collect();
        if let (Some(uid), Some(gid)) = (fields.get(2), fields.get(3))
            && let (Ok(uid), Ok(gid)) = (uid.parse::<u32>(), gid.parse::<u32>())
            && uid != 0
        {
            return Ok(ServerUser {
                name: name.clone(),
                uid,
                gid,
            });
        }
    }
    bail!(
        "running as root, and none of the accounts {candidates:?} exists to run PostgreSQL as \
         (initdb/postgres refuse to run as root): set INLET_PG_USER to an unprivileged user"
    )
}

/// A temp dir the server user can use: owned by it, and under a parent it can traverse.
fn make_temp_dir(user: Option<&ServerUser>) -> anyhow::Result<TempDir> {
    let Some(user) = user else {
        return tempfile::Builder::new()
            .prefix("inlet-pg-")
            .tempdir()
            .context("creating a temp dir for PostgreSQL");
    };
    let mut parent = std::env::temp_dir();
    if !traversable_by_others(&parent) {
        parent = PathBuf::from("/tmp");
    }
    let dir = tempfile::Builder::new()
        .prefix("inlet-pg-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a temp dir for PostgreSQL in {}", parent.display()))?;
    std::os::unix::fs::chown(dir.path(), Some(user.uid), Some(user.gid))
        .with_context(|| format!("chown {} to {}", dir.path().display(), user.name))?;
    Ok(dir)
}

/// Whether every ancestor of `path` is searchable by any user (mode o+x).
fn traversable_by_others(path: &Path) -> bool {
    path.ancestors().all(|p| {
        std::fs::metadata(p).is_ok_and(|m| m.is_dir() && m.permissions().mode() & 0o001 != 0)
    })
}

/// A command without the `PG*` variables of the environment (`PGHOST`, `PGSSLMODE`, ...).
fn clean_command(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.stdin(Stdio::null());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// A command that runs as `user` (if given) with `cwd` as working directory and no `PG*`
/// variables from the environment.
fn server_command(program: &Path, cwd: &Path, user: Option<&ServerUser>) -> Command {
    let mut cmd = clean_command(program);
    cmd.current_dir(cwd).env("LC_ALL", "C");
    if let Some(user) = user {
        cmd.uid(user.uid).gid(user.gid);
        cmd.env("HOME", cwd).env("USER", &user.name);
    }
    cmd
}

fn initdb(
    bindir: &Path,
    data_dir: &Path,
    cwd: &Path,
    user: Option<&ServerUser>,
) -> anyhow::Result<()> {
    let output = server_command(&bindir.join("initdb"), cwd, user)
        .arg("-D")
        .arg(data_dir)
        .args([
            "--auth=trust",
            "-U",
            SUPERUSER,
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ])
        .output()
        .context("cannot run initdb")?;
    if !output.status.success() {
        bail!(
            "initdb failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
    }
    Ok(())
}

/// Starts `postgres` on a free port and waits until `pg_isready` says it accepts connections.
fn start_postgres(
    bindir: &Path,
    data_dir: &Path,
    socket_dir: &Path,
    cwd: &Path,
    user: Option<&ServerUser>,
) -> anyhow::Result<(u16, Child, File)> {
    let port = free_port()?;
    let log = tempfile::tempfile().context("temp file for the postgres log")?;
    let mut child = server_command(&bindir.join("postgres"), cwd, user)
        .arg("-D")
        .arg(data_dir)
        .args(["-p", &port.to_string()])
        .arg("-k")
        .arg(socket_dir)
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "wal_level=logical",
            "-c",
            "max_replication_slots=10",
            "-c",
            "max_wal_senders=10",
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
        ])
        .stdout(log.try_clone()?)
        .stderr(log.try_clone()?)
        .spawn()
        .with_context(|| format!("cannot start {}", bindir.join("postgres").display()))?;

    let pg_isready = bindir.join("pg_isready");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("postgres exited at start ({status}):\n{}", read_log(&log));
        }
        let ready = clean_command(&pg_isready)
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-U", SUPERUSER, "-d", "postgres", "-t", "2"])
            .status()
            .context("cannot run pg_isready")?;
        if ready.success() {
            return Ok((port, child, log));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "postgres did not accept connections on 127.0.0.1:{port} within {START_TIMEOUT:?}:\n{}",
                read_log(&log)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read_log(log: &File) -> String {
    let mut log = log;
    let mut text = String::new();
    match log
        .seek(SeekFrom::Start(0))
        .and_then(|_| log.read_to_string(&mut text))
    {
        Ok(_) => text,
        Err(e) => format!("(cannot read the postgres log: {e})"),
    }
}

/// A port that was free on 127.0.0.1 a moment ago.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use std::net::{SocketAddr, TcpStream};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn starts_with_logical_wal_and_stops_on_drop() {
        let server = PostgresServer::start().expect("postgres starts");
        let client = server.connect().await.expect("connects");
        let row = client
            .query_one(
                "SELECT current_setting('wal_level'), current_setting('listen_addresses'), \
                 current_user::text, current_setting('server_version_num')::int",
                &[],
            )
            .await
            .expect("query");
        assert_eq!(row.get::<_, String>(0), "logical");
        assert_eq!(row.get::<_, String>(1), "127.0.0.1");
        assert_eq!(row.get::<_, String>(2), SUPERUSER);
        assert!(row.get::<_, i32>(3) >= 150_000);
        assert!(server.data_dir().join("PG_VERSION").is_file());

        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, server.port()));
        let dir = server.dir.path().to_path_buf();
        // The open client must not hold up the shutdown.
        drop(server);
        assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
        assert!(!dir.exists(), "{} was not removed", dir.display());
        drop(client);
    }
}
