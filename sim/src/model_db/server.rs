//! The model database as a simulated host: it answers the database seam's calls as frames of bincode
//! (a 4-byte length, then the message). A write is a transaction: the batch is staged, and applied
//! only when the same connection sends its COMMIT; a connection that closes first leaves nothing. A host crash drops the connections and, on
//! restart, rolls back the transactions that were in flight; an errors fault makes it refuse
//! connections as a PostgreSQL server that is starting up does (`57P03`).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sluice_connectors::jdbc::database::{Column, DbError, Relation, Rows, Select, WriteBatch};
use sluice_connectors::jdbc::timestamp::Timestamp;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::ModelDb;
use crate::kit::answering_errors;

/// A call of the database seam.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    Tables,
    Columns(Relation),
    Now,
    Max(Relation, String),
    Select(Select),
    CreateTable(String, Vec<Column>),
    AddColumns(String, Vec<Column>),
    /// Stages a batch of writes: the connection's transaction.
    Write(WriteBatch),
    /// Commits the connection's staged batch.
    Commit,
    SinkOffsets(String, String),
}

/// Its answer.
#[derive(Debug, Serialize, Deserialize)]
pub enum Answer {
    Tables(Vec<String>),
    Columns(Vec<Column>),
    Now(Timestamp),
    Max(Option<i64>),
    Rows(Rows),
    /// The batch is staged, waiting for its COMMIT.
    Staged,
    Done,
    SinkOffsets(Vec<(String, i32, i64)>),
}

/// Told of every batch of writes the database committed, with the address of the connection that
/// wrote it (a worker's), so that a test's model can say what became durable.
pub type WriteObserver = Arc<dyn Fn(SocketAddr, &WriteBatch) + Send + Sync>;

/// Serves `db` on `port` until the host stops; `observer` is told of every committed write.
pub async fn serve(
    db: Arc<ModelDb>,
    port: u16,
    observer: Option<WriteObserver>,
) -> turmoil::Result {
    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?;
    loop {
        let (stream, peer) = listener.accept().await?;
        tokio::spawn(answer(db.clone(), stream, peer, observer.clone()));
    }
}

/// Answers a connection's requests until it closes.
async fn answer(
    db: Arc<ModelDb>,
    mut stream: turmoil::net::TcpStream,
    peer: SocketAddr,
    observer: Option<WriteObserver>,
) -> io::Result<()> {
    let mut staged = None;
    // A closed connection ends its transaction: a staged batch is dropped, never applied.
    while let Ok(request) = read_frame::<Request>(&mut stream).await {
        let answer: Result<Answer, DbError> = if answering_errors() {
            Err(DbError::Unreachable {
                url: "the model database".into(),
                message: "the database system is starting up (57P03)".into(),
            })
        } else {
            match request {
                Request::Tables => Ok(Answer::Tables(db.tables())),
                Request::Columns(relation) => db.columns(&relation).map(Answer::Columns),
                Request::Now => Ok(Answer::Now(db.clock())),
                Request::Max(relation, column) => db.max(&relation, &column).map(Answer::Max),
                Request::Select(select) => db.select(&select).map(Answer::Rows),
                Request::CreateTable(table, columns) => {
                    db.create_table(&table, columns);
                    Ok(Answer::Done)
                }
                Request::AddColumns(table, columns) => {
                    db.add_columns(&table, &columns).map(|()| Answer::Done)
                }
                Request::Write(batch) => {
                    staged = Some(batch);
                    Ok(Answer::Staged)
                }
                Request::Commit => match staged.take() {
                    Some(batch) => db.apply(&batch).map(|()| {
                        if let Some(observer) = &observer {
                            observer(peer, &batch);
                        }
                        Answer::Done
                    }),
                    None => Err(DbError::Refused {
                        what: "a COMMIT".into(),
                        message: "no transaction is open on this connection".into(),
                    }),
                },
                Request::SinkOffsets(table, connector) => {
                    Ok(Answer::SinkOffsets(db.sink_offsets(&table, &connector)))
                }
            }
        };
        write_frame(&mut stream, &answer).await?;
    }
    Ok(())
}

/// Writes one message as a frame.
pub async fn write_frame<T: Serialize>(
    stream: &mut (impl AsyncWrite + Unpin),
    message: &T,
) -> io::Result<()> {
    // One write per frame: the simulated network carries each write as a segment of its own.
    let mut frame = vec![0; 4];
    bincode::serialize_into(&mut frame, message).map_err(io::Error::other)?;
    let len = u32::try_from(frame.len() - 4).map_err(io::Error::other)?;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    stream.write_all(&frame).await?;
    stream.flush().await
}

/// Reads one frame's message.
pub async fn read_frame<T: for<'de> Deserialize<'de>>(
    stream: &mut (impl AsyncRead + Unpin),
) -> io::Result<T> {
    let len = stream.read_u32().await? as usize;
    let mut bytes = vec![0; len];
    stream.read_exact(&mut bytes).await?;
    bincode::deserialize(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
