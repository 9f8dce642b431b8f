//! Errors from the Kafka seam, in terms the runtime acts on.

/// Why a record could not be handed to the producer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The producer's queue is full: wait for room, then send again.
    #[error("the producer queue is full")]
    QueueFull,
    #[error(transparent)]
    Kafka(#[from] KafkaError),
}

/// What went wrong talking to Kafka.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KafkaError {
    /// This group member's generation is over (it was thrown out or a rebalance began): its commits are
    /// rejected until it rejoins.
    #[error("commit rejected, the group has rebalanced: {0}")]
    Fenced(String),
    /// The group is rebalancing: this member is still in it, and a commit is refused until the new
    /// generation forms (REBALANCE_IN_PROGRESS), or the new generation formed, with this member, while
    /// its commit carried the generation before (ILLEGAL_GENERATION: the coordinator answers
    /// UNKNOWN_MEMBER_ID to a member it no longer has). Offsets of partitions the member still owns in
    /// the new generation may be committed again.
    #[error("commit refused while the group rebalances: {0}")]
    RebalanceInProgress(String),
    /// A newer producer with the same `transactional.id` exists (or this one's transaction outlived
    /// `transaction.timeout.ms`): this producer is a zombie, and nothing it sends can commit any more.
    #[error("producer fenced: {0}")]
    ProducerFenced(String),
    #[error("timed out: {0}")]
    Timeout(String),
    /// A client setting the backend refused, naming the key.
    #[error("invalid client setting {key}: {message}")]
    Config { key: String, message: String },
    /// Any other failure, in the backend's words.
    #[error("{0}")]
    Backend(String),
}
