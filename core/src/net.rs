//! The network seam for connectors: a connector that talks to its external system over TCP dials through
//! a [`Dialer`] it is given, instead of calling `tokio::net::TcpStream::connect` itself. Production hands
//! it [`TcpDialer`]; the simulation hands it a dialer on turmoil's simulated network, where the external
//! system runs as a simulated host that can be slowed, cut off and crashed. The connector's code is the
//! same in both.

use std::io;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite};

/// A connection to an external system: bytes both ways.
pub trait Connection: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Connection for T {}

/// Opens connections to `host:port` addresses.
#[async_trait]
pub trait Dialer: Send + Sync {
    /// Connects to `address` (`host:port`).
    async fn dial(&self, address: &str) -> io::Result<Box<dyn Connection>>;
}

/// The machine's own network.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpDialer;

#[async_trait]
impl Dialer for TcpDialer {
    async fn dial(&self, address: &str) -> io::Result<Box<dyn Connection>> {
        let stream = tokio::net::TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        Ok(Box::new(stream))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn the_tcp_dialer_reaches_a_listener_on_this_machine() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4];
            stream.read_exact(&mut buf).await.unwrap();
            stream.write_all(&buf).await.unwrap();
        });
        let mut connection = TcpDialer.dial(&address).await.unwrap();
        connection.write_all(b"ping").await.unwrap();
        let mut echoed = [0u8; 4];
        connection.read_exact(&mut echoed).await.unwrap();
        assert_eq!(&echoed, b"ping");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn dialing_nothing_is_an_error_not_a_panic() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        assert!(TcpDialer.dial(&address).await.is_err());
    }
}
