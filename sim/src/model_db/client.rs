//! The database seam's simulated side: [`ModelDbOpener`] opens the model database host a
//! `connection.url` names (`jdbc:postgresql://db:5432/shop` dials `db:5432`), so the JDBC connectors run
//! unchanged in the simulation, with every call crossing the simulated network, where it can be cut
//! off, slowed or refused.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sluice_connectors::jdbc::database::{
    Column, ConnectionSettings, Database, DatabaseOpener, DbError, Relation, Rows, Select,
    WriteBatch,
};
use sluice_connectors::jdbc::sql::url::DatabaseUrl;
use sluice_connectors::jdbc::timestamp::Timestamp;
use sluice_core::net::Dialer;

use super::server::{read_frame, write_frame, Answer, Request};

/// How long a call may take before the database counts as out of reach.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

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
    async fn call(&self, request: Request) -> Result<Answer, DbError> {
        let unreachable = |message: String| DbError::Unreachable {
            url: self.address.clone(),
            message,
        };
        let exchange = async {
            let mut connection = self.dialer.dial(&self.address).await?;
            write_frame(&mut connection, &request).await?;
            read_frame::<Result<Answer, DbError>>(&mut connection).await
        };
        match tokio::time::timeout(CALL_TIMEOUT, exchange).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => Err(unreachable(e.to_string())),
            Err(_) => Err(unreachable(format!(
                "no answer within {} s",
                CALL_TIMEOUT.as_secs()
            ))),
        }
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
        match self.call(Request::Write(batch.clone())).await? {
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
