//! The wire protocol between the simulated broker and its clients: one request, one response, each a
//! length-prefixed bincode frame on a `turmoil::net` TCP stream.
//!
//! It carries what the Kafka protocol carries where the runtime depends on it (produce with producer id,
//! epoch and sequence, fetch with long polling and an isolation level, the classic group protocol's
//! JoinGroup, SyncGroup (the leader member's assignment), Heartbeat and LeaveGroup, offset commit with
//! generation fencing, and transactions: InitProducerId, AddPartitionsToTxn, TxnOffsetCommit, EndTxn),
//! without the Kafka protocol's encoding. Several brokers share the work as Kafka's do: metadata names
//! each partition's leader, FindCoordinator each group's and transactional id's coordinator, and a
//! request sent to the wrong broker is refused (NOT_LEADER_OR_FOLLOWER, NOT_COORDINATOR).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A topic partition on the wire. The topic's name is shared: a partition is cloned into every map and
/// record that names it (on the wire it is a string as before).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Tp {
    pub topic: Arc<str>,
    pub partition: i32,
}

impl Tp {
    pub fn new(topic: impl Into<Arc<str>>, partition: i32) -> Tp {
        Tp {
            topic: topic.into(),
            partition,
        }
    }
}

impl std::fmt::Display for Tp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// A record as the broker stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: i64,
}

/// Records for one partition from one producer, numbered for idempotence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProduceBatch {
    pub tp: Tp,
    /// The sequence number of the first record; the broker drops a batch it already appended.
    pub base_sequence: i64,
    pub records: Vec<Record>,
}

/// How a fetch treats transactions (`isolation.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Isolation {
    /// Every record, whatever its transaction's fate.
    ReadUncommitted,
    /// Records of committed transactions and plain appends, up to the first open transaction (the last
    /// stable offset).
    ReadCommitted,
}

/// A transactional producer's identity in transaction requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnProducer {
    pub transactional_id: String,
    pub producer_id: i64,
    pub epoch: i16,
}

/// What a group member consumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Interest {
    Topics(Vec<String>),
    /// A regular expression matching whole topic names.
    Pattern(String),
}

impl Interest {
    pub fn matches(&self, topic: &str) -> bool {
        match self {
            Interest::Topics(topics) => topics.iter().any(|t| t == topic),
            Interest::Pattern(pattern) => regex::Regex::new(&format!("^(?:{pattern})$"))
                .map(|re| re.is_match(topic))
                .unwrap_or(false),
        }
    }
}

/// A member's protocol metadata in JoinGroup (Kafka's `ConsumerProtocolSubscription`): the coordinator
/// hands every member's to the leader, whose assignor reads them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSubscription {
    pub interest: Interest,
    /// The partitions the member owns as it joins (cooperative members keep consuming them, and the
    /// sticky assignor keeps them where it can).
    pub owned: Vec<Tp>,
}

/// What a coordinator coordinates (FindCoordinator's key type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CoordinatorKind {
    /// A consumer group, by group id.
    Group,
    /// A transactional producer, by transactional id.
    Transaction,
}

/// A partition with no leader clients can reach, in a metadata answer.
pub const NO_LEADER: i32 = -1;

/// Why a member leaves its group, as the client says (LeaveGroup v5's `reason`, KIP-800).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaveReason {
    /// The application closed the consumer.
    Closing,
    /// The application did not poll within `max.poll.interval.ms` (librdkafka: "consumer poll timeout
    /// has expired").
    PollTimeout,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// The brokers, and the partition leaders of these topics (all topics when `None`); unknown topics are created with the
    /// broker's default partition count when `auto_create` is set.
    Metadata {
        topics: Option<Vec<String>>,
        auto_create: bool,
    },
    CreateTopic {
        name: String,
        partitions: i32,
    },
    /// Which broker coordinates this group or transactional id.
    FindCoordinator {
        kind: CoordinatorKind,
        key: String,
    },
    /// A new producer id (idempotent producer), or, with a transactional id, its producer id with a
    /// bumped epoch: older epochs are fenced and their open transaction is aborted.
    InitProducerId {
        transactional_id: Option<String>,
        transaction_timeout_ms: u64,
        /// The producer's own id and epoch when it bumps its epoch to recover from an abortable error
        /// (KIP-360): refused as `ProducerFenced` unless they are still the current ones, so a zombie's
        /// recovery cannot fence the instance that replaced it. `None`: a new instance, which always wins.
        current: Option<(i64, i16)>,
    },
    Produce {
        producer_id: i64,
        epoch: i16,
        /// Set by transactional producers: every batch's partition must be in their open transaction.
        transactional_id: Option<String>,
        batches: Vec<ProduceBatch>,
    },
    Fetch {
        positions: Vec<(Tp, i64)>,
        max_records: usize,
        max_wait_ms: u64,
        isolation: Isolation,
    },
    /// Opens the producer's transaction if needed and adds partitions to it.
    AddPartitionsToTxn {
        producer: TxnProducer,
        partitions: Vec<Tp>,
    },
    /// Offsets for `group`, applied only when the transaction commits.
    TxnOffsetCommit {
        producer: TxnProducer,
        group: String,
        offsets: Vec<(Tp, i64)>,
    },
    /// Commits or aborts the open transaction: writes a marker into each of its partitions.
    EndTxn {
        producer: TxnProducer,
        commit: bool,
    },
    EndOffsets {
        partitions: Vec<Tp>,
    },
    /// Each partition's log start offset.
    StartOffsets {
        partitions: Vec<Tp>,
    },
    /// Joins the group's next generation; answered once the coordinator has collected its members.
    JoinGroup {
        group: String,
        member_id: Option<String>,
        client_id: String,
        session_timeout_ms: u64,
        rebalance_timeout_ms: u64,
        /// The member speaks the cooperative protocol (`cooperative-sticky`): it keeps its partitions
        /// through a rebalance and gives up only those that move.
        cooperative: bool,
        subscription: MemberSubscription,
    },
    /// Asks for this member's assignment in `generation`; the leader sends everyone's (followers none),
    /// and a follower's is answered once the leader's has arrived.
    SyncGroup {
        group: String,
        member_id: String,
        generation: i32,
        assignments: Vec<(String, Vec<Tp>)>,
    },
    Heartbeat {
        group: String,
        member_id: String,
        generation: i32,
    },
    LeaveGroup {
        group: String,
        member_id: String,
        /// Why the member leaves (LeaveGroup v5's `reason`, KIP-800).
        reason: LeaveReason,
    },
    OffsetCommit {
        group: String,
        member_id: String,
        generation: i32,
        offsets: Vec<(Tp, i64)>,
    },
    OffsetFetch {
        group: String,
        partitions: Vec<Tp>,
    },
    /// An admin's commit for a group without members (generation -1 in Kafka): refused with
    /// NON_EMPTY_GROUP while the group has members.
    AdminOffsetCommit {
        group: String,
        offsets: Vec<(Tp, i64)>,
    },
    /// Deletes a group without members and its committed offsets (NON_EMPTY_GROUP otherwise).
    DeleteGroup {
        group: String,
    },
}

/// A record read back, with its offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchedRecord {
    pub tp: Tp,
    pub offset: i64,
    pub record: Record,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Response {
    Metadata {
        cluster_id: String,
        /// Every broker's id and address.
        brokers: Vec<(i32, String)>,
        /// Per topic, each partition's leader ([`NO_LEADER`] while it has none).
        topics: Vec<(String, Vec<i32>)>,
    },
    Coordinator {
        broker: i32,
    },
    TopicCreated {
        created: bool,
    },
    ProducerId {
        producer_id: i64,
        epoch: i16,
    },
    /// Per batch, in request order: the offset of its first record, or why it was refused.
    Produced {
        results: Vec<Result<i64, ErrorCode>>,
    },
    Fetched {
        records: Vec<FetchedRecord>,
        /// Per partition read, the offset to fetch from next: past the records returned and past the
        /// control markers and aborted records skipped, which are never returned.
        next: Vec<(Tp, i64)>,
        /// Partitions whose position is outside the log (before its start, the records there deleted
        /// by retention, or past its end): the consumer resets them as `auto.offset.reset` says.
        out_of_range: Vec<Tp>,
    },
    EndOffsets {
        offsets: Vec<(Tp, i64)>,
    },
    StartOffsets {
        offsets: Vec<(Tp, i64)>,
    },
    Joined {
        member_id: String,
        generation: i32,
        /// The member that computes the assignment.
        leader: String,
        /// The protocol every member supports: cooperative-sticky, else range.
        cooperative: bool,
        /// Every member's subscription, for the leader; empty for the others.
        members: Vec<(String, MemberSubscription)>,
    },
    Synced {
        assignment: Vec<Tp>,
    },
    Committed {
        offsets: Vec<(Tp, Option<i64>)>,
    },
    Done,
    Error(ErrorCode),
}

/// Kafka's error codes, where the runtime acts on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ErrorCode {
    #[error("UNKNOWN_TOPIC_OR_PARTITION")]
    UnknownTopicOrPartition,
    #[error("INVALID_PARTITIONS")]
    InvalidPartitions,
    #[error("UNKNOWN_MEMBER_ID")]
    UnknownMemberId,
    #[error("ILLEGAL_GENERATION")]
    IllegalGeneration,
    #[error("REBALANCE_IN_PROGRESS")]
    RebalanceInProgress,
    #[error("OUT_OF_ORDER_SEQUENCE_NUMBER")]
    OutOfOrderSequence,
    #[error("UNKNOWN_PRODUCER_ID")]
    UnknownProducerId,
    /// A newer epoch of this transactional id exists (a new instance called InitProducerId, or the
    /// coordinator aborted a transaction that outlived `transaction.timeout.ms`).
    #[error("PRODUCER_FENCED")]
    ProducerFenced,
    /// A produce to a partition not added to the transaction, or no transaction open.
    #[error("INVALID_TXN_STATE")]
    InvalidTxnState,
    /// The broker is not the partition's leader (any more): nothing was appended; retriable.
    #[error("NOT_LEADER_OR_FOLLOWER")]
    NotLeaderOrFollower,
    /// The batch was appended to the leader but not replicated in time: it may or may not stay;
    /// retriable (an idempotent producer's retry is deduplicated).
    #[error("REQUEST_TIMED_OUT")]
    RequestTimedOut,
    /// The broker does not coordinate this group or transactional id (any more): find it again.
    #[error("NOT_COORDINATOR")]
    NotCoordinator,
    /// The coordinator is down and not failed over yet.
    #[error("COORDINATOR_NOT_AVAILABLE")]
    CoordinatorNotAvailable,
    /// An admin request for a group that still has members.
    #[error("NON_EMPTY_GROUP")]
    NonEmptyGroup,
}

impl ErrorCode {
    /// Whether a producer retries a batch refused with this code (within `delivery.timeout.ms`).
    /// `OUT_OF_ORDER_SEQUENCE_NUMBER` is, here: it answers the batches that followed a failed one.
    pub fn is_retriable_produce_error(self) -> bool {
        matches!(
            self,
            ErrorCode::NotLeaderOrFollower
                | ErrorCode::RequestTimedOut
                | ErrorCode::OutOfOrderSequence
        )
    }
}

/// Frames larger than this are refused as corrupt.
const MAX_FRAME: u32 = 64 << 20;

/// Why a frame could not be sent or received.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad frame: {0}")]
    Codec(#[from] bincode::Error),
    #[error("frame of {0} bytes is larger than the limit")]
    TooLarge(u32),
}

pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    out: &mut W,
    message: &T,
) -> Result<(), FrameError> {
    // One write per frame: the simulated network carries each write as a segment of its own. Sized
    // first, the frame is encoded without growing its buffer.
    let size = usize::try_from(bincode::serialized_size(message)?).unwrap_or(0);
    let mut frame = Vec::with_capacity(4 + size);
    frame.extend_from_slice(&[0; 4]);
    bincode::serialize_into(&mut frame, message)?;
    let len = u32::try_from(frame.len() - 4).map_err(|_| FrameError::TooLarge(u32::MAX))?;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    out.write_all(&frame).await?;
    out.flush().await?;
    Ok(())
}

/// Reads one frame; `None` when the peer closed the connection between frames.
pub async fn read_frame<R: AsyncRead + Unpin, T: for<'de> Deserialize<'de>>(
    input: &mut R,
) -> Result<Option<T>, FrameError> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len);
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let mut body = vec![0u8; len as usize];
    input.read_exact(&mut body).await?;
    Ok(Some(bincode::deserialize(&body)?))
}
