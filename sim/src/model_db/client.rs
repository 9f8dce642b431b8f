//! The database seam's simulated side: [`ModelDbOpener`] opens the model database host a
//! `connection.url` names (`jdbc:postgresql://db:5432/shop` dials `db:5432`), so the JDBC connectors run
//! unchanged in the simulation, with every call crossing the simulated network, where it can be cut
//! off, slowed or refused.
//!
//! The client waits as the production driver (sqlx) does: a connection is given up after a timeout,
//! as a pool's acquire timeout gives up, but an answer is waited for as long as the connection
//! lives, since the production code sets no statement timeout. A write is two round trips on one
//! connection, the batch and then its COMMIT, as a transaction is: a client that never sent the
//! COMMIT (it crashed, or its call was dropped) leaves nothing behind.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sluice_connectors::jdbc::database::{
    Column, ConnectionSettings, Database, DatabaseOpener, DbError, Relation, Rows, Select,
    WriteBatch,
};
use sluice_connectors::jdbc::sql::url::DatabaseUrl;
use sluice_connectors::jdbc::timestamp::Timestamp;
use sluice_core::net::{Connection, Dialer};

use super::server::{read_frame, write_frame, Answer, Request};

/// How long connecting may take before the database counts as out of reach.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens the model database over a dialer (the simulation's).
pub struct ModelDbOpener {
    dialer: Arc<dyn Dialer>,
}

impl ModelDbOpener {
    pub fn new(dialer: Arc<dyn Dialer>) -> ModelDbOpener {
        ModelDbOpener { dialer }
    }
}

#[async_trait]
impl DatabaseOpener for ModelDbOpener {
    async fn open(&self, settings: &ConnectionSettings) -> Result<Arc<dyn Database>, DbError> {
        let address = match DatabaseUrl::parse(&settings.url) {
            Ok(DatabaseUrl::Postgres { host, port, .. }) => format!("{host}:{port}"),
            Ok(DatabaseUrl::Sqlite { .. }) => {
                return Err(DbError::Unsupported(
                    "the simulation has no SQLite files: name the model database's host".into(),
                ))
            }
            Err(e) => return Err(DbError::Unsupported(e.to_string())),
        };
        let client = ModelDbClient {
            dialer: self.dialer.clone(),
            address,
        };
        // Opening a pool connects once, as sqlx does.
        client.now().await?;
        Ok(Arc::new(client))
    }
}

/// The seam's calls, each on a connection of its own.
struct ModelDbClient {
    dialer: Arc<dyn Dialer>,
    address: String,
}

impl ModelDbClient {
    fn unreachable(&self, message: String) -> DbError {
        DbError::Unreachable {
            url: self.address.clone(),
            message,
        }
    }

    async fn connect(&self) -> Result<Box<dyn Connection>, DbError> {
        match tokio::time::timeout(CONNECT_TIMEOUT, self.dialer.dial(&self.address)).await {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(e)) => Err(self.unreachable(e.to_string())),
            Err(_) => Err(self.unreachable(format!(
                "no connection within {} s",
                CONNECT_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Sends one request on `connection` and waits for its answer.
    async fn exchange(
        &self,
        connection: &mut Box<dyn Connection>,
        request: &Request,
    ) -> Result<Answer, DbError> {
        let exchanged = async {
            write_frame(connection, request).await?;
            read_frame::<Result<Answer, DbError>>(connection).await
        };
        exchanged
            .await
            .map_err(|e| self.unreachable(e.to_string()))?
    }

    /// One request on a connection of its own.
    async fn call(&self, request: Request) -> Result<Answer, DbError> {
        let mut connection = self.connect().await?;
        self.exchange(&mut connection, &request).await
    }
}

fn unexpected(answer: Answer) -> DbError {
    DbError::Refused {
        what: "a call".into(),
        message: format!("the model database answered {answer:?}"),
    }
}

#[async_trait]
impl Database for ModelDbClient {
    async fn tables(&self) -> Result<Vec<String>, DbError> {
        match self.call(Request::Tables).await? {
            Answer::Tables(tables) => Ok(tables),
            other => Err(unexpected(other)),
        }
    }

    async fn columns(&self, relation: &Relation) -> Result<Vec<Column>, DbError> {
        match self.call(Request::Columns(relation.clone())).await? {
            Answer::Columns(columns) => Ok(columns),
            other => Err(unexpected(other)),
        }
    }

    async fn now(&self) -> Result<Timestamp, DbError> {
        match self.call(Request::Now).await? {
            Answer::Now(now) => Ok(now),
            other => Err(unexpected(other)),
        }
    }

    async fn max(&self, relation: &Relation, column: &str) -> Result<Option<i64>, DbError> {
        match self
            .call(Request::Max(relation.clone(), column.to_owned()))
            .await?
        {
            Answer::Max(max) => Ok(max),
            other => Err(unexpected(other)),
        }
    }

    async fn select(&self, select: &Select) -> Result<Rows, DbError> {
        match self.call(Request::Select(select.clone())).await? {
            Answer::Rows(rows) => Ok(rows),
            other => Err(unexpected(other)),
        }
    }

    async fn create_table(&self, table: &str, columns: &[Column]) -> Result<(), DbError> {
        match self
            .call(Request::CreateTable(table.to_owned(), columns.to_vec()))
            .await?
        {
            Answer::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    async fn add_columns(&self, table: &str, columns: &[Column]) -> Result<(), DbError> {
        match self
            .call(Request::AddColumns(table.to_owned(), columns.to_vec()))
            .await?
        {
            Answer::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    async fn write(&self, batch: &WriteBatch) -> Result<(), DbError> {
        let mut connection = self.connect().await?;
        match self
            .exchange(&mut connection, &Request::Write(batch.clone()))
            .await?
        {
            Answer::Staged => {}
            other => return Err(unexpected(other)),
        }
        match self.exchange(&mut connection, &Request::Commit).await? {
            Answer::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    async fn sink_offsets(
        &self,
        table: &str,
        connector: &str,
    ) -> Result<Vec<(String, i32, i64)>, DbError> {
        match self
            .call(Request::SinkOffsets(table.to_owned(), connector.to_owned()))
            .await?
        {
            Answer::SinkOffsets(offsets) => Ok(offsets),
            other => Err(unexpected(other)),
        }
    }
}
