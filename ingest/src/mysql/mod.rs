//! Change capture from MySQL 8.0+ and MariaDB 10.6+ (binlog, `mysql_async` with `binlog`).
//!
//! So far: connecting, the prerequisite checks (each problem names what to run), the
//! discovery of the captured tables with their keys and columns, and the conversion of their
//! values into Arrow ([`types`]). The snapshot and the binlog
//! stream come next; until then `[source] kind = "mysql"` is not accepted.

pub mod catalog;
pub mod source;
pub mod types;

pub use source::{MysqlOptions, MysqlSource};

use mysql_async::{Conn, Opts, OptsBuilder};

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
