//! `connection.url`: the JDBC URLs Confluent's connectors take (`jdbc:sqlite:PATH`,
//! `jdbc:postgresql://HOST:PORT/DB?user=...`) and the plain ones sqlx users write (`sqlite:PATH`,
//! `postgres://USER@HOST:PORT/DB`), read into what sqlx connects with.

use std::path::PathBuf;

/// A database a `connection.url` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite {
        path: PathBuf,
    },
    Postgres {
        host: String,
        port: u16,
        database: String,
        /// `user` and `password` given in the URL (`connection.user`/`connection.password` win).
        user: Option<String>,
        password: Option<String>,
        tls: PgTls,
    },
}

/// TLS to PostgreSQL, from the URL's parameters as PostgreSQL's JDBC driver reads them: `sslmode`
/// (`disable`, `allow`, `prefer` (the default), `require`, `verify-ca`, `verify-full`), `ssl=true`
/// (`verify-full`), `sslrootcert` (the CA file; the machine's roots otherwise), `sslcert` and `sslkey`
/// (a client certificate, PEM).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PgTls {
    pub mode: PgSslMode,
    pub root_cert: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// `sslmode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PgSslMode {
    Disable,
    Allow,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl PgSslMode {
    fn parse(text: &str) -> Option<PgSslMode> {
        Some(match text {
            "disable" => PgSslMode::Disable,
            "allow" => PgSslMode::Allow,
            "prefer" => PgSslMode::Prefer,
            "require" => PgSslMode::Require,
            "verify-ca" => PgSslMode::VerifyCa,
            "verify-full" => PgSslMode::VerifyFull,
            _ => return None,
        })
    }
}

/// Why a `connection.url` names no database Sluice can open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("connection.url {url:?}: {reason}")]
pub struct UrlError {
    /// The URL with any password replaced.
    pub url: String,
    pub reason: String,
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<DatabaseUrl, UrlError> {
        let fail = |reason: &str| UrlError {
            url: hide_password(url),
            reason: reason.to_owned(),
        };
        let plain = url.trim().strip_prefix("jdbc:").unwrap_or(url.trim());
        if let Some(path) = plain.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() {
                return Err(fail("names no SQLite file (jdbc:sqlite:PATH)"));
            }
            return Ok(DatabaseUrl::Sqlite { path: path.into() });
        }
        let rest = ["postgresql://", "postgres://"]
            .iter()
            .find_map(|scheme| plain.strip_prefix(scheme))
            .ok_or_else(|| {
                fail("is not a SQLite or PostgreSQL URL: give jdbc:sqlite:PATH, jdbc:postgresql://HOST:PORT/DB, sqlite:PATH or postgres://HOST:PORT/DB")
            })?;
        let (address, params) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, database) = address.split_once('/').unwrap_or((address, ""));
        let (credentials, host_port) = match authority.rsplit_once('@') {
            Some((credentials, host_port)) => (Some(credentials), host_port),
            None => (None, authority),
        };
        let (mut user, mut password) = match credentials {
            Some(credentials) => match credentials.split_once(':') {
                Some((user, password)) => (Some(user.to_owned()), Some(password.to_owned())),
                None => (Some(credentials.to_owned()), None),
            },
            None => (None, None),
        };
        let mut tls = PgTls::default();
        for param in params.split('&').filter(|p| !p.is_empty()) {
            match param.split_once('=') {
                Some(("user", value)) => user = Some(value.to_owned()),
                Some(("password", value)) => password = Some(value.to_owned()),
                Some(("sslmode", value)) => {
                    tls.mode = PgSslMode::parse(value).ok_or_else(|| {
                        fail(&format!("sslmode {value:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"))
                    })?
                }
                Some(("ssl", "true")) => tls.mode = PgSslMode::VerifyFull,
                Some(("ssl", "false")) => tls.mode = PgSslMode::Disable,
                Some(("sslrootcert", value)) => tls.root_cert = Some(value.into()),
                Some(("sslcert", value)) => tls.client_cert = Some(value.into()),
                Some(("sslkey", value)) => tls.client_key = Some(value.into()),
                _ => {}
            }
        }
        let (host, port) = match host_port.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse()
                    .map_err(|_| fail(&format!("port {port:?} is not a number")))?,
            ),
            None => (host_port, 5432),
        };
        if host.is_empty() {
            return Err(fail("names no host"));
        }
        if database.is_empty() {
            return Err(fail("names no database (jdbc:postgresql://HOST:PORT/DB)"));
        }
        Ok(DatabaseUrl::Postgres {
            host: host.to_owned(),
            port,
            database: database.to_owned(),
            user,
            password,
            tls,
        })
    }
}

/// The URL with the password in its user info or its `password=` parameter replaced by `[hidden]`.
pub fn hide_password(url: &str) -> String {
    let mut shown = url.to_owned();
    if let Some(scheme_end) = shown.find("://") {
        let authority_start = scheme_end + 3;
        let authority_end = shown[authority_start..]
            .find(['/', '?'])
            .map_or(shown.len(), |i| authority_start + i);
        if let Some(at) = shown[authority_start..authority_end].rfind('@') {
            let credentials = &shown[authority_start..authority_start + at];
            if let Some(colon) = credentials.find(':') {
                shown.replace_range(
                    authority_start + colon + 1..authority_start + at,
                    "[hidden]",
                );
            }
        }
    }
    if let Some(query) = shown.find('?') {
        let hidden: Vec<String> = shown[query + 1..]
            .split('&')
            .map(|param| match param.split_once('=') {
                Some(("password", _)) => "password=[hidden]".to_owned(),
                _ => param.to_owned(),
            })
            .collect();
        shown.replace_range(query + 1.., &hidden.join("&"));
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jdbc_and_plain_urls_name_the_same_databases() {
        for url in [
            "jdbc:sqlite:/data/shop.db",
            "sqlite:/data/shop.db",
            "sqlite:///data/shop.db",
        ] {
            assert_eq!(
                DatabaseUrl::parse(url),
                Ok(DatabaseUrl::Sqlite {
                    path: "/data/shop.db".into()
                }),
                "{url}"
            );
        }
        let expected = DatabaseUrl::Postgres {
            host: "db.local".into(),
            port: 5433,
            database: "shop".into(),
            user: Some("app".into()),
            password: Some("pw".into()),
            tls: PgTls::default(),
        };
        for url in [
            "jdbc:postgresql://db.local:5433/shop?user=app&password=pw",
            "postgres://app:pw@db.local:5433/shop",
            "postgresql://app:pw@db.local:5433/shop?sslmode=prefer",
        ] {
            assert_eq!(DatabaseUrl::parse(url), Ok(expected.clone()), "{url}");
        }
        let tls = |url: &str| match DatabaseUrl::parse(url) {
            Ok(DatabaseUrl::Postgres { tls, .. }) => tls,
            other => panic!("{url}: {other:?}"),
        };
        assert_eq!(
            tls("jdbc:postgresql://db/shop?sslmode=verify-ca&sslrootcert=/etc/ca.pem&sslcert=/c.pem&sslkey=/k.pem"),
            PgTls {
                mode: PgSslMode::VerifyCa,
                root_cert: Some("/etc/ca.pem".into()),
                client_cert: Some("/c.pem".into()),
                client_key: Some("/k.pem".into()),
            }
        );
        assert_eq!(
            tls("jdbc:postgresql://db/shop?ssl=true").mode,
            PgSslMode::VerifyFull
        );
        assert_eq!(
            tls("jdbc:postgresql://db/shop?sslmode=disable").mode,
            PgSslMode::Disable
        );
        let e = DatabaseUrl::parse("jdbc:postgresql://db/shop?sslmode=yes-please").unwrap_err();
        assert!(e.to_string().contains("sslmode \"yes-please\""), "{e}");
        assert!(matches!(
            DatabaseUrl::parse("jdbc:postgresql://db/shop"),
            Ok(DatabaseUrl::Postgres { port: 5432, .. })
        ));
    }

    #[test]
    fn a_bad_url_is_named_without_its_password() {
        let e = DatabaseUrl::parse("jdbc:mysql://root:topsecret@db/shop").unwrap_err();
        assert!(
            e.to_string().contains("not a SQLite or PostgreSQL URL"),
            "{e}"
        );
        assert!(!e.to_string().contains("topsecret"), "{e}");
        let e = DatabaseUrl::parse("jdbc:postgresql://db:54x/shop?password=topsecret").unwrap_err();
        assert!(e.to_string().contains("\"54x\""), "{e}");
        assert!(!e.to_string().contains("topsecret"), "{e}");
        assert!(DatabaseUrl::parse("jdbc:postgresql://db:5432")
            .unwrap_err()
            .to_string()
            .contains("names no database"));
        assert!(DatabaseUrl::parse("jdbc:sqlite:").is_err());
    }
}
