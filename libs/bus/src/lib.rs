//! Everything AWFDRS says over NATS, and the only crate that imports
//! async-nats: typed subjects and names ([`names`]), the streams, consumers
//! and KV buckets declared in one place ([`topology`]), a publisher that sets
//! `Nats-Msg-Id` and awaits the ack ([`Bus::publish`]), and the one consumer
//! loop that maps a handler's outcome to ack, nak or dead-letter
//! ([`consumer`]).
//!
//! It decides nothing about the domain: handlers do, and tell the loop what
//! to do with each message.

pub mod consumer;
mod error;
pub mod headers;
pub mod keyed;
pub mod kv;
pub mod names;
pub mod topology;

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishAckFuture};
use bytes::Bytes;

pub use consumer::{
    ConsumerSpec, DeadLetter, DeadLetterSink, Delivery, Disposition, Handler, Outcome, Turn, Turns,
};
pub use error::BusError;
pub use names::{Namespace, Source, Stage, Topic};

/// A connection to NATS and JetStream in one namespace. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Bus {
    client: async_nats::Client,
    js: jetstream::Context,
    ns: Namespace,
    replicas: usize,
    publish_timeout: Duration,
}

/// A message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub subject: String,
    pub msg_id: String,
    pub correlation_id: Option<String>,
    /// Further headers, by name from [`headers`].
    pub headers: Vec<(&'static str, String)>,
    pub payload: Bytes,
}

/// What the broker said of a publish.
#[derive(Debug, Clone, Copy)]
pub struct Published {
    pub sequence: u64,
    /// The broker had already stored a message with the same id.
    pub duplicate: bool,
}

/// The servers of a `NATS_URL`: one address, or several separated by commas.
fn servers(url: &str) -> Result<Vec<async_nats::ServerAddr>, BusError> {
    url.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            u.parse::<async_nats::ServerAddr>()
                .map_err(|e| BusError::Unavailable(format!("cannot read NATS address {u:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|s| {
            if s.is_empty() {
                Err(BusError::Unavailable("no NATS address given".to_owned()))
            } else {
                Ok(s)
            }
        })
}

impl Bus {
    /// Connects to `url` for namespace `ns`: one server, or the servers of
    /// a cluster separated by commas (`nats://a:4222,nats://b:4222`), any
    /// of which may answer first; the client learns the rest of the cluster
    /// from it and fails over between them.
    ///
    /// # Errors
    /// When an address cannot be read, or no server can be reached within
    /// `connect_timeout`.
    pub async fn connect(
        url: &str,
        ns: Namespace,
        replicas: usize,
        connect_timeout: Duration,
        publish_timeout: Duration,
    ) -> Result<Self, BusError> {
        let client = async_nats::ConnectOptions::new()
            .name(format!("awfdrs-{}", ns.as_str()))
            .connection_timeout(connect_timeout)
            .max_reconnects(None)
            .event_callback(|event| async move {
                tracing::info!(%event, "nats connection event");
            })
            .connect(servers(url)?);
        let client = tokio::time::timeout(connect_timeout, client)
            .await
            .map_err(|_| BusError::Unavailable(format!("no NATS server answered at {url}")))?
            .map_err(|e| BusError::Unavailable(format!("cannot connect to {url}: {e}")))?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(publish_timeout);
        Ok(Self {
            client,
            js,
            ns,
            replicas,
            publish_timeout,
        })
    }

    /// The namespace.
    pub fn ns(&self) -> &Namespace {
        &self.ns
    }

    /// Whether the connection is up and the server's version is known.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// The version of the server we are connected to.
    pub fn server_version(&self) -> String {
        self.client.server_info().version
    }

    /// Round trip to the server within the publish timeout.
    ///
    /// # Errors
    /// When the server does not answer in time.
    pub async fn ping(&self) -> Result<(), BusError> {
        self.check(self.publish_timeout).await
    }

    /// Readiness: the connection is up and a round trip to the server
    /// completes within `within`. A broker that went away is seen at once
    /// (the connection state) or within `within` (the flush).
    ///
    /// # Errors
    /// [`BusError::Unavailable`] naming what failed.
    pub async fn check(&self, within: Duration) -> Result<(), BusError> {
        let state = self.client.connection_state();
        if state != async_nats::connection::State::Connected {
            return Err(BusError::Unavailable(format!("NATS connection is {state}")));
        }
        tokio::time::timeout(within, self.client.flush())
            .await
            .map_err(|_| {
                BusError::Unavailable(format!("NATS did not answer a flush within {within:?}"))
            })?
            .map_err(|e| BusError::Unavailable(format!("NATS flush failed: {e}")))
    }

    pub(crate) fn js(&self) -> &jetstream::Context {
        &self.js
    }

    pub(crate) fn replicas(&self) -> usize {
        self.replicas
    }

    /// Publishes one message and waits for the stream's ack.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when no stream took it in time.
    pub async fn publish(&self, msg: Outgoing) -> Result<Published, BusError> {
        let ack = self.start_publish(msg).await?;
        finish(ack).await
    }

    /// Publishes many messages pipelined (all sent, then all acks awaited);
    /// one result per message, in order.
    pub async fn publish_many(&self, msgs: Vec<Outgoing>) -> Vec<Result<Published, BusError>> {
        let mut pending = Vec::with_capacity(msgs.len());
        for msg in msgs {
            pending.push(self.start_publish(msg).await);
        }
        let mut out = Vec::with_capacity(pending.len());
        for p in pending {
            out.push(match p {
                Ok(ack) => finish(ack).await,
                Err(e) => Err(e),
            });
        }
        out
    }

    async fn start_publish(&self, msg: Outgoing) -> Result<PublishAckFuture, BusError> {
        let mut pairs: Vec<(&str, &str)> = vec![(headers::MSG_ID, msg.msg_id.as_str())];
        if let Some(c) = &msg.correlation_id {
            pairs.push((headers::CORRELATION_ID, c.as_str()));
        }
        pairs.extend(msg.headers.iter().map(|(k, v)| (*k, v.as_str())));
        let map = header_map(pairs)?;
        self.js
            .publish_with_headers(msg.subject, map, msg.payload)
            .await
            .map_err(|e| BusError::Unavailable(format!("publish failed: {e}")))
    }

    /// Publishes without JetStream (core NATS, no ack): what a producer
    /// outside AWFDRS does with `nats pub`. Used by the demo and tests.
    /// Values are encoded like every header the bus writes.
    ///
    /// # Errors
    /// When a header name is invalid, or the client cannot send.
    pub async fn publish_core(
        &self,
        subject: String,
        headers: Vec<(&str, String)>,
        payload: Bytes,
    ) -> Result<(), BusError> {
        let map = header_map(headers.iter().map(|(k, v)| (*k, v.as_str())))?;
        self.client
            .publish_with_headers(subject, map, payload)
            .await
            .map_err(|e| BusError::Unavailable(format!("publish failed: {e}")))?;
        self.client
            .flush()
            .await
            .map_err(|e| BusError::Unavailable(format!("flush failed: {e}")))
    }

    /// The largest message (payload and headers) the server accepts.
    pub fn max_payload(&self) -> usize {
        self.client.server_info().max_payload
    }
}

/// A header map of `pairs`, every value through [`headers::encode`].
///
/// # Errors
/// [`BusError::Header`] for a name that is not printable ASCII without `:`.
pub(crate) fn header_map<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<HeaderMap, BusError> {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        if !headers::is_valid_name(name) {
            return Err(BusError::Header(format!(
                "invalid header name {:?}",
                headers::encode(name)
            )));
        }
        let value: async_nats::HeaderValue = headers::encode(value)
            .parse()
            .map_err(|_| BusError::Header(format!("header {name}: value cannot be encoded")))?;
        map.insert(name, value);
    }
    Ok(map)
}

/// The first value of every header, decoded with [`headers::decode`].
pub(crate) fn decoded_headers(map: Option<&HeaderMap>) -> Vec<(String, String)> {
    let Some(map) = map else {
        return Vec::new();
    };
    map.iter()
        .filter_map(|(name, values)| {
            let v = values.first()?;
            Some((name.to_string(), headers::decode(v.as_str()).into_owned()))
        })
        .collect()
}

fn lookup<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A message seen by a plain subscription.
#[derive(Debug, Clone)]
pub struct Seen {
    pub subject: String,
    pub payload: Bytes,
    headers: Option<HeaderMap>,
    decoded: Vec<(String, String)>,
}

impl Seen {
    /// A header's value, decoded (what the writer gave the bus).
    pub fn header(&self, name: &str) -> Option<&str> {
        lookup(&self.decoded, name)
    }

    /// A header's value as it travelled (encoded, see [`headers`]).
    pub fn raw_header(&self, name: &str) -> Option<&str> {
        self.headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str())
    }
}

impl Bus {
    /// Subscribes (core NATS, no durability) to `subject`: for watching the
    /// dead-letter or incident subjects from tools and tests.
    ///
    /// # Errors
    /// When the subscription cannot be made.
    pub async fn subscribe(
        &self,
        subject: String,
    ) -> Result<impl futures::Stream<Item = Seen> + use<>, BusError> {
        use futures::StreamExt;
        let sub = self
            .client
            .subscribe(subject)
            .await
            .map_err(|e| BusError::Unavailable(format!("subscribe failed: {e}")))?;
        self.client
            .flush()
            .await
            .map_err(|e| BusError::Unavailable(format!("flush failed: {e}")))?;
        Ok(sub.map(|m| Seen {
            subject: m.subject.to_string(),
            payload: m.payload,
            decoded: decoded_headers(m.headers.as_ref()),
            headers: m.headers,
        }))
    }
}

async fn finish(ack: PublishAckFuture) -> Result<Published, BusError> {
    let ack = ack
        .await
        .map_err(|e| BusError::Unavailable(format!("no publish ack: {e}")))?;
    Ok(Published {
        sequence: ack.sequence,
        duplicate: ack.duplicate,
    })
}

#[cfg(test)]
mod tests {
    use super::servers;

    #[test]
    fn a_nats_url_names_one_server_or_a_cluster_separated_by_commas() {
        assert_eq!(servers("nats://127.0.0.1:4222").expect("one").len(), 1);
        let cluster = servers("nats://a:4222, nats://b:4222,nats://c:4222").expect("three");
        let hosts: Vec<_> = cluster.iter().map(|s| s.host().to_owned()).collect();
        assert_eq!(hosts, ["a", "b", "c"]);
        for bad in ["", " , ", "nats://a:notaport", "nats://a:4222,nats://b:x"] {
            assert!(servers(bad).is_err(), "{bad:?} was read");
        }
    }
}
