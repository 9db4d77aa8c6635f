//! Change capture from MySQL 8.0+ and MariaDB 10.6+ (binlog, `mysql_async` with `binlog`):
//! the prerequisite checks and the discovery of the captured tables ([`catalog`]), the
//! conversion of their values into Arrow ([`types`]), row images of the binlog (`rows`), the initial snapshot in key ranges
//! (`snapshot`) and the binlog stream ([`source`]).

pub mod catalog;
pub mod gtid;
mod rows;
mod snapshot;
pub mod source;
pub mod types;

pub use source::{MysqlOptions, MysqlSource};

use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts};

use crate::error::{Error, Result};

/// How to reach the server.
#[derive(Debug, Clone)]
pub struct MysqlConnect {
    opts: Opts,
}

impl MysqlConnect {
    /// `url` is `mysql://user@host:port[/database]`; the password, if any, comes separately
    /// (from `password_env`) so that it never sits in the configuration file.
    pub fn parse(url: &str, password: Option<&str>) -> Result<Self> {
        let opts = Opts::from_url(url).map_err(|e| Error::Config {
            field: "source.connection".to_string(),
            reason: format!("not a mysql:// URL ({e}); expected mysql://user@host:port"),
        })?;
        let mut builder = OptsBuilder::from_opts(opts)
            // Values as they are stored: no time zone conversion of TIMESTAMP columns.
            .init(vec!["SET time_zone = '+00:00'".to_string()]);
        if let Some(password) = password {
            builder = builder.pass(Some(password.to_string()));
        }
        Ok(MysqlConnect {
            opts: builder.into(),
        })
    }

    /// A pool of at most `max` connections.
    pub fn pool(&self, max: usize) -> Pool {
        let constraints = PoolConstraints::new(0, max.max(1)).unwrap_or_default();
        Pool::new(
            OptsBuilder::from_opts(self.opts.clone())
                .pool_opts(PoolOpts::default().with_constraints(constraints)),
        )
    }

    /// A new connection.
    pub async fn connect(&self) -> Result<Conn> {
        Conn::new(self.opts.clone())
            .await
            .map_err(|e| Error::Mysql {
                context: format!(
                    "connecting to {}:{}",
                    self.opts.ip_or_hostname(),
                    self.opts.tcp_port()
                ),
                source: e,
            })
    }
}

/// An event as a server sends it, from its body: the 19-byte v4 header, no checksum (for unit
/// tests of event bytes as MySQL and MariaDB write them).
#[cfg(test)]
pub(crate) fn test_event(event_type: u8, body: &[u8]) -> mysql_async::binlog::events::Event {
    use mysql_async::binlog::events::{Event, FormatDescriptionEvent};
    let mut bytes = vec![0, 0, 0, 0, event_type, 1, 0, 0, 0];
    bytes.extend_from_slice(&(19 + body.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    bytes.extend_from_slice(body);
    let fde = FormatDescriptionEvent::new(mysql_async::binlog::BinlogVersion::Version4);
    Event::read(&fde, bytes.as_slice()).expect("an event")
}
