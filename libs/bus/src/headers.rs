//! Header names AWFDRS reads and writes.

/// JetStream's de-duplication id.
pub const MSG_ID: &str = "Nats-Msg-Id";
/// The correlation id carried from the gateway through every worker.
pub const CORRELATION_ID: &str = "X-Correlation-ID";
/// Why a message was dead-lettered.
pub const DLQ_REASON: &str = "Awfdrs-Dlq-Reason";
/// The subject a dead-lettered message was first published to.
pub const DLQ_SUBJECT: &str = "Awfdrs-Dlq-Subject";
/// Its stream sequence.
pub const DLQ_SEQUENCE: &str = "Awfdrs-Dlq-Stream-Sequence";
/// How many times it had been delivered.
pub const DLQ_DELIVERED: &str = "Awfdrs-Dlq-Delivered";
/// The consumer that gave up on it.
pub const DLQ_CONSUMER: &str = "Awfdrs-Dlq-Consumer";
/// How the event entered AWFDRS (`http` when the gateway published it).
pub const SOURCE: &str = "Awfdrs-Source";
/// The gateway's reservation of the event's idempotency key (a UUID), on
/// the messages it publishes: the detector stores the event only while the
/// key is still reserved by it.
pub const RESERVATION: &str = "Awfdrs-Reservation";
