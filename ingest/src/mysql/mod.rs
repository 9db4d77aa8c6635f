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
