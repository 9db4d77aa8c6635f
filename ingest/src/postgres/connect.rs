//! Connection settings shared by the SQL connections (tokio-postgres) and the walsender session
//! (pgwire-replication), TLS included.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use pgwire_replication::{ReplicationConfig, TlsConfig};
use tokio_postgres::config::Host;

use super::types::SESSION_OPTIONS;
use crate::error::{Error, Result};

/// How often the replication worker may tell the server the acknowledged position: often
/// enough that a stop does not wait long for the last one, seldom enough to cost nothing (a
/// 34-byte message).
const STATUS_INTERVAL: Duration = Duration::from_millis(100);

/// How TLS is used (libpq's `sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    /// Encrypt, do not verify the certificate.
    Require,
    /// Encrypt and verify the chain.
    VerifyCa,
    /// Encrypt, verify the chain and the host name.
    VerifyFull,
}

/// Where and how to connect.
#[derive(Clone)]
pub struct ConnectOptions {
    pub sql: tokio_postgres::Config,
    pub tls: TlsMode,
    pub root_cert: Option<String>,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("hosts", &self.sql.get_hosts())
            .field("user", &self.sql.get_user())
            .field("dbname", &self.sql.get_dbname())
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl ConnectOptions {
    /// From a libpq-style `key=value` string or a `postgres://` URL. `sslmode` `disable`,
    /// `prefer` (treated as disable), `require`, `verify-ca`, `verify-full`.
    pub fn parse(
        connection: &str,
        password: Option<&str>,
        root_cert: Option<&str>,
    ) -> Result<Self> {
        let mut tls = TlsMode::Disable;
        let mut text = connection.to_string();
        for (name, mode) in [
            ("verify-full", TlsMode::VerifyFull),
            ("verify-ca", TlsMode::VerifyCa),
            ("require", TlsMode::Require),
        ] {
            let needle = format!("sslmode={name}");
            if text.contains(&needle) {
                tls = mode;
                // tokio-postgres knows only disable/prefer/require; verification is ours.
                text = text.replace(&needle, "sslmode=disable");
            }
        }
        let mut sql = tokio_postgres::Config::from_str(&text).map_err(|e| Error::Config {
            field: "source.connection".to_string(),
            reason: e.to_string(),
        })?;
        if let Some(password) = password {
            sql.password(password);
        }
        if sql.get_user().is_none() {
            return Err(Error::Config {
                field: "source.connection".to_string(),
                reason: "no user given (add user=NAME)".to_string(),
            });
        }
        sql.options(SESSION_OPTIONS);
        sql.application_name("inlet");
        sql.connect_timeout(Duration::from_secs(10));
        Ok(ConnectOptions {
            sql,
            tls,
            root_cert: root_cert.map(str::to_string),
        })
    }

    fn host(&self) -> (String, u16) {
        let host = match self.sql.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".to_string(),
        };
        let port = self.sql.get_ports().first().copied().unwrap_or(5432);
        (host, port)
    }

    /// `user@host:port/dbname` (no secrets), for messages.
    pub fn describe(&self) -> String {
        let (host, port) = self.host();
        format!(
            "{}@{host}:{port}/{}",
            self.sql.get_user().unwrap_or(""),
            self.database()
        )
    }

    pub fn user(&self) -> &str {
        self.sql.get_user().unwrap_or("")
    }

    pub fn database(&self) -> String {
        self.sql
            .get_dbname()
            .unwrap_or_else(|| self.user())
            .to_string()
    }

    /// A SQL connection, driven on a spawned task.
    pub async fn connect(&self) -> Result<tokio_postgres::Client> {
        let context = || format!("connecting to {}", self.describe());
        if self.tls == TlsMode::Disable {
            let (client, connection) = self
                .sql
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| Error::postgres(context(), e))?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "SQL connection ended.");
                }
            });
            return Ok(client);
        }
        let mut sql = self.sql.clone();
        sql.ssl_mode(tokio_postgres::config::SslMode::Require);
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(self.rustls_config()?);
        let (client, connection) = sql
            .connect(tls)
            .await
            .map_err(|e| Error::postgres(context(), e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "SQL connection ended.");
            }
        });
        Ok(client)
    }

    fn rustls_config(&self) -> Result<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?;
        let config = match self.tls {
            TlsMode::Require | TlsMode::Disable => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
                .with_no_client_auth(),
            TlsMode::VerifyCa | TlsMode::VerifyFull => {
                let mut roots = rustls::RootCertStore::empty();
                match &self.root_cert {
                    Some(path) => {
                        use rustls::pki_types::pem::PemObject;
                        let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
                            .map_err(|e| Error::Tls(format!("reading {path}: {e}")))?;
                        for cert in certs {
                            let cert =
                                cert.map_err(|e| Error::Tls(format!("reading {path}: {e}")))?;
                            roots
                                .add(cert)
                                .map_err(|e| Error::Tls(format!("{path}: {e}")))?;
                        }
                    }
                    None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
        };
        Ok(config)
    }

    /// Settings of a walsender session on `slot` for `publication`.
    pub fn replication(&self, slot: &str, publication: &str) -> ReplicationConfig {
        let (host, port) = self.host();
        let password = self
            .sql
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default();
        let tls = match self.tls {
            TlsMode::Disable => TlsConfig::disabled(),
            TlsMode::Require => TlsConfig::require(),
            TlsMode::VerifyCa => TlsConfig::verify_ca(self.root_cert.clone().map(Into::into)),
            TlsMode::VerifyFull => TlsConfig::verify_full(self.root_cert.clone().map(Into::into)),
        };
        ReplicationConfig::new(
            host,
            self.user(),
            password,
            self.database(),
            slot,
            publication,
        )
        .with_port(port)
        .with_tls(tls)
        .with_options(SESSION_OPTIONS)
        .with_application_name("inlet")
        // A durable position reaches the slot at most this long after it is acknowledged, and a
        // stop waits this long at most for the last one (the worker sends no status on stop).
        .with_status_interval(STATUS_INTERVAL)
        .with_wakeup_interval(Duration::from_secs(5))
    }
}

/// `sslmode=require`: encrypted, certificate not verified (as libpq does).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `"name"` with embedded quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` with embedded quotes doubled.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
