//! The `listeners` key (Kafka Connect's: a list of `http://HOST:PORT` or `https://HOST:PORT`, default
//! `http://:8083`; an empty host binds every interface) and the worker id the API reports, from
//! `rest.advertised.host.name` and `rest.advertised.port` when set.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use sluice_core::config::ConfigMap;

/// Kafka Connect's default listener.
pub const DEFAULT_LISTENER: &str = "http://:8083";

/// Why `listeners` cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    #[error("listeners: {listener:?} is not http://HOST:PORT or https://HOST:PORT ({why})")]
    Malformed { listener: String, why: String },
    #[error("listeners: Sluice serves one listener; {0} were given")]
    Several(usize),
}

/// Where the REST API listens, and whether with TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen {
    pub address: SocketAddr,
    pub https: bool,
}

/// Where to listen, from `listeners`; `None` when it is set empty (no REST API).
pub fn listen_address(worker: &ConfigMap) -> Result<Option<Listen>, ListenerError> {
    let listeners = worker
        .get("listeners")
        .map(String::as_str)
        .unwrap_or(DEFAULT_LISTENER);
    let all: Vec<&str> = listeners
        .split(',')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let listener = match all.as_slice() {
        [] => return Ok(None),
        [one] => *one,
        several => return Err(ListenerError::Several(several.len())),
    };
    let malformed = |why: &str| ListenerError::Malformed {
        listener: listener.to_owned(),
        why: why.to_owned(),
    };
    let lower = listener.to_ascii_lowercase();
    let (https, scheme) = match () {
        () if lower.starts_with("http://") => (false, "http://".len()),
        () if lower.starts_with("https://") => (true, "https://".len()),
        () => return Err(malformed("it must start with http:// or https://")),
    };
    let rest = listener[scheme..].trim_end_matches('/');
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| malformed("it has no port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| malformed("the port is not a number"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = match host {
        "" | "0.0.0.0" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        other => other
            .parse()
            .map_err(|_| malformed("the host is not an IP address or localhost"))?,
    };
    Ok(Some(Listen {
        address: SocketAddr::new(ip, port),
        https,
    }))
}

/// The worker id the API reports: the advertised host and port when set, the bound address otherwise.
pub fn worker_id(worker: &ConfigMap, bound: SocketAddr) -> String {
    let host = worker
        .get("rest.advertised.host.name")
        .filter(|h| !h.is_empty())
        .cloned()
        .unwrap_or_else(|| match bound.ip() {
            ip if ip.is_unspecified() => "localhost".to_owned(),
            ip => ip.to_string(),
        });
    let port = worker
        .get("rest.advertised.port")
        .filter(|p| !p.is_empty())
        .cloned()
        .unwrap_or_else(|| bound.port().to_string());
    format!("{host}:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listeners(value: Option<&str>) -> Result<Option<SocketAddr>, ListenerError> {
        let mut worker = ConfigMap::new();
        if let Some(value) = value {
            worker.insert("listeners".into(), value.into());
        }
        listen_address(&worker).map(|listen| listen.map(|l| l.address))
    }

    #[test]
    fn listeners_are_read_as_kafka_connect_reads_them() {
        assert_eq!(
            listeners(None).unwrap(),
            Some("0.0.0.0:8083".parse().unwrap())
        );
        assert_eq!(
            listeners(Some("http://127.0.0.1:0")).unwrap(),
            Some("127.0.0.1:0".parse().unwrap())
        );
        assert_eq!(
            listeners(Some("http://[::1]:9000/")).unwrap(),
            Some("[::1]:9000".parse().unwrap())
        );
        assert_eq!(listeners(Some("")).unwrap(), None);
        let https = ConfigMap::from([("listeners".to_owned(), "HTTPS://:8443".to_owned())]);
        assert_eq!(
            listen_address(&https).unwrap(),
            Some(Listen {
                address: "0.0.0.0:8443".parse().unwrap(),
                https: true
            })
        );
        assert!(listeners(Some("ftp://:21")).is_err());
        let e = listeners(Some("http://host")).unwrap_err().to_string();
        assert!(
            e.contains("\"http://host\"") && e.contains("no port"),
            "{e}"
        );
    }

    #[test]
    fn the_worker_id_is_the_advertised_address() {
        let bound: SocketAddr = "0.0.0.0:8083".parse().unwrap();
        assert_eq!(worker_id(&ConfigMap::new(), bound), "localhost:8083");
        let advertised = ConfigMap::from([
            (
                "rest.advertised.host.name".to_owned(),
                "worker-1".to_owned(),
            ),
            ("rest.advertised.port".to_owned(), "18083".to_owned()),
        ]);
        assert_eq!(worker_id(&advertised, bound), "worker-1:18083");
    }
}
