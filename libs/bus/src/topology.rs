//! The streams and consumers of a namespace, declared in one place and
//! created idempotently at start (creating what exists changes nothing;
//! settings that changed are updated).

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};

use crate::names::{Namespace, Source, Stage, Topic};
use crate::{Bus, BusError};

/// How long JetStream remembers message ids for de-duplication.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// How long events, incidents, decisions, escalations and commands stay in
/// their streams (the database is the record).
pub const EVENTS_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long dead letters are kept for inspection and replay.
pub const DLQ_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

/// The settings of a durable pull consumer; every one is explicit.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub max_deliver: i64,
    pub ack_wait: Duration,
    pub max_ack_pending: i64,
}

impl Bus {
    /// Declares every stream of the namespace.
    ///
    /// # Errors
    /// When a stream cannot be created or updated.
    pub async fn declare_streams(&self) -> Result<(), BusError> {
        let ns = self.ns();
        let streams = Topic::ALL.map(|topic| stream::Config {
            name: ns.stream(topic),
            subjects: vec![ns.subjects(topic)],
            max_age: max_age(topic),
            ..base_stream(self.replicas())
        });
        for config in streams {
            let name = config.name.clone();
            match self.js().get_stream(&name).await {
                Ok(_) => {
                    self.js()
                        .update_stream(config)
                        .await
                        .map_err(|e| BusError::Topology(format!("update stream {name}: {e}")))?;
                }
                Err(_) => {
                    self.js()
                        .get_or_create_stream(config)
                        .await
                        .map_err(|e| BusError::Topology(format!("create stream {name}: {e}")))?;
                }
            }
        }
        Ok(())
    }

    /// Declares the durable consumer of `stage`.
    ///
    /// # Errors
    /// When it cannot be created or updated.
    pub async fn declare_consumer(
        &self,
        stage: Stage,
        settings: &ConsumerSettings,
    ) -> Result<(), BusError> {
        let Source {
            stream: stream_name,
            filter,
            consumer: name,
        } = source(self.ns(), stage)?;
        let config = pull::Config {
            durable_name: Some(name.clone()),
            description: Some(format!("AWFDRS {stage}")),
            ack_policy: AckPolicy::Explicit,
            deliver_policy: DeliverPolicy::All,
            filter_subject: filter,
            max_deliver: settings.max_deliver,
            ack_wait: settings.ack_wait,
            max_ack_pending: settings.max_ack_pending,
            // Pull requests bigger than a batch are never needed.
            max_batch: 0,
            ..Default::default()
        };
        let stream = self
            .js()
            .get_stream(&stream_name)
            .await
            .map_err(|e| BusError::Topology(format!("stream {stream_name}: {e}")))?;
        // create_consumer updates an existing consumer whose editable
        // settings differ, and is a no-op when they are the same.
        stream
            .create_consumer(config)
            .await
            .map_err(|e| BusError::Topology(format!("consumer {name}: {e}")))?;
        Ok(())
    }

    /// Deletes every stream of the namespace (tests, `awfdrs` resets).
    ///
    /// # Errors
    /// When a stream exists but cannot be deleted.
    pub async fn delete_streams(&self) -> Result<(), BusError> {
        let ns = self.ns();
        for name in Topic::ALL.map(|topic| ns.stream(topic)) {
            if self.js().get_stream(&name).await.is_ok() {
                self.js()
                    .delete_stream(&name)
                    .await
                    .map_err(|e| BusError::Topology(format!("delete stream {name}: {e}")))?;
            }
        }
        Ok(())
    }
}

impl Bus {
    /// How many messages the events stream holds (tools and tests).
    ///
    /// # Errors
    /// When the stream cannot be read.
    pub async fn events_stored(&self) -> Result<u64, BusError> {
        self.stored(Topic::Events).await
    }

    /// How many messages the stream of `topic` holds (tools and tests).
    ///
    /// # Errors
    /// When the stream cannot be read.
    pub async fn stored(&self, topic: Topic) -> Result<u64, BusError> {
        let name = self.ns().stream(topic);
        let mut stream = self
            .js()
            .get_stream(&name)
            .await
            .map_err(|e| BusError::Topology(format!("stream {name}: {e}")))?;
        let info = stream
            .info()
            .await
            .map_err(|e| BusError::Topology(format!("stream {name}: {e}")))?;
        Ok(info.state.messages)
    }

    /// Messages of `stage` not yet acknowledged or not yet delivered.
    ///
    /// # Errors
    /// When the consumer cannot be read.
    pub async fn consumer_backlog(&self, stage: Stage) -> Result<u64, BusError> {
        let Source {
            stream: stream_name,
            consumer: name,
            ..
        } = source(self.ns(), stage)?;
        let stream = self
            .js()
            .get_stream(&stream_name)
            .await
            .map_err(|e| BusError::Topology(format!("stream {stream_name}: {e}")))?;
        let mut consumer: async_nats::jetstream::consumer::PullConsumer = stream
            .get_consumer(&name)
            .await
            .map_err(|e| BusError::Topology(format!("consumer {name}: {e}")))?;
        let info = consumer
            .info()
            .await
            .map_err(|e| BusError::Topology(format!("consumer {name}: {e}")))?;
        Ok(info.num_pending + info.num_ack_pending as u64)
    }
}

/// How long a topic's messages are kept.
fn max_age(topic: Topic) -> Duration {
    match topic {
        Topic::Dlq => DLQ_MAX_AGE,
        Topic::Events
        | Topic::Incidents
        | Topic::Decisions
        | Topic::Escalations
        | Topic::Commands => EVENTS_MAX_AGE,
    }
}

/// Where `stage` reads.
///
/// # Errors
/// [`BusError::Topology`] for a stage that reads no stream.
pub(crate) fn source(ns: &Namespace, stage: Stage) -> Result<Source, BusError> {
    stage
        .source(ns)
        .ok_or_else(|| BusError::Topology(format!("stage {stage} reads no stream")))
}

fn base_stream(replicas: usize) -> stream::Config {
    stream::Config {
        retention: RetentionPolicy::Limits,
        storage: StorageType::File,
        discard: DiscardPolicy::Old,
        duplicate_window: DUPLICATE_WINDOW,
        num_replicas: replicas,
        allow_direct: true,
        ..Default::default()
    }
}
