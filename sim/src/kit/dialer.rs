//! The network seam's simulated side: connections over turmoil's network, so a connector reaches its
//! external system's simulated hosts with the same code that dials real ones in production.

use std::io;

use async_trait::async_trait;
use sluice_core::net::{Connection, Dialer};

/// Dials over turmoil's simulated network; use it inside the simulation only.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimDialer;

#[async_trait]
impl Dialer for SimDialer {
    async fn dial(&self, address: &str) -> io::Result<Box<dyn Connection>> {
        let stream = turmoil::net::TcpStream::connect(address).await?;
        Ok(Box::new(stream))
    }
}
