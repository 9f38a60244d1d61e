//! The RabbitMQ queue: autopkgtest-cloud's own transport.
//!
//! Publishing declares each durable queue once per connection, publishes
//! persistent messages (`delivery_mode` 2) to the default exchange with the
//! queue name as routing key and `mandatory` set, and waits for the
//! broker's publisher confirms: `submit` returns only when every message is
//! on disk at the broker. Confirms are awaited after the whole batch is
//! sent, not one by one, which is what makes thousands of requests per
//! second possible on one connection.
//!
//! A `--once` worker takes with `basic.get`; a long-running one consumes
//! every queue on one channel with a prefetch of 1 (one unacknowledged
//! message at a time), and both acknowledge only after the result is
//! stored; a worker that dies leaves the message unacknowledged and the
//! broker requeues it.
//!
//! The broker URL usually carries a password: [`BrokerUrl`] never shows it
//! (`Debug`, `Display` and every error use the redacted form).

use std::collections::HashSet;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions,
    BasicRejectOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use url::Url;

use super::queue::{Queue, QueueError, Submitted, Taken, new_id};
use super::request::Request;

/// An `amqp://` or `amqps://` URL whose password is never shown.
#[derive(Clone)]
pub struct BrokerUrl {
    url: Url,
    shown: String,
}

impl BrokerUrl {
    pub fn parse(text: &str) -> Result<Self, QueueError> {
        // Until the URL is known to be amqp://, a password can hide anywhere
        // before the last `@`: show none of it.
        let unparsed = || {
            text.rsplit_once('@')
                .map_or_else(|| text.to_owned(), |(_, host)| format!("***@{host}"))
        };
        let url = Url::parse(text).map_err(|_| QueueError::InvalidBroker {
            url: unparsed(),
            why: "not a URL (expected amqp://USER:PASSWORD@HOST[:PORT]/VHOST)",
        })?;
        if !matches!(url.scheme(), "amqp" | "amqps") {
            return Err(QueueError::InvalidBroker {
                url: unparsed(),
                why: "the scheme must be amqp:// or amqps://",
            });
        }
        let shown = crate::http::redact(&url);
        if url.host_str().is_none_or(str::is_empty) {
            return Err(QueueError::InvalidBroker {
                url: shown,
                why: "no host",
            });
        }
        Ok(Self { url, shown })
    }

    /// The URL with any password replaced by `***`.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

impl std::fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("BrokerUrl").field(&self.shown).finish()
    }
}

impl std::fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

pub struct AmqpQueue {
    broker: BrokerUrl,
    _connection: Connection,
    channel: Channel,
    declared: HashSet<String>,
    /// Consumers of a long-running worker, merged; the channel's prefetch
    /// of 1 means the broker pushes the next message only after the ack.
    consumers: Option<(Vec<String>, Deliveries)>,
}

/// The delivery of a taken message, for ack/reject.
pub struct AmqpHandle {
    acker: lapin::Acker,
}

impl std::fmt::Debug for AmqpHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AmqpHandle")
    }
}

/// Deliveries of all consumers, each tagged with its queue (the routing key
/// need not be the queue name when another exchange routed the message).
type Deliveries = futures_util::stream::SelectAll<
    futures_util::stream::BoxStream<'static, (String, lapin::Result<lapin::message::Delivery>)>,
>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

impl AmqpQueue {
    /// Connects and opens one channel in confirm mode.
    pub async fn connect(broker: &BrokerUrl) -> Result<Self, QueueError> {
        let connect_err = |source| QueueError::Connect {
            broker: broker.shown.clone(),
            source: Box::new(source),
        };
        let connect = Connection::connect(broker.url.as_str(), ConnectionProperties::default());
        let connection = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| QueueError::ConnectTimeout {
                broker: broker.shown.clone(),
            })?
            .map_err(connect_err)?;
        let channel = connection.create_channel().await.map_err(connect_err)?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(connect_err)?;
        // One unacknowledged message at a time for consumers on this
        // channel: a worker runs one test at a time.
        channel
            .basic_qos(1, BasicQosOptions { global: true })
            .await
            .map_err(connect_err)?;
        Ok(Self {
            broker: broker.clone(),
            _connection: connection,
            channel,
            declared: HashSet::new(),
            consumers: None,
        })
    }

    fn amqp_err(
        &self,
        action: &'static str,
        queue: &str,
    ) -> impl FnOnce(lapin::Error) -> QueueError {
        let broker = self.broker.shown.clone();
        let queue = queue.to_owned();
        move |source| QueueError::Amqp {
            broker,
            action,
            queue,
            source: Box::new(source),
        }
    }

    /// Declares `queue` durable (as autopkgtest-cloud does), once per
    /// connection. Returns the number of messages in it.
    pub async fn declare(&mut self, queue: &str) -> Result<u32, QueueError> {
        let q = self
            .channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(self.amqp_err("declare", queue))?;
        self.declared.insert(queue.to_owned());
        Ok(q.message_count())
    }
}

impl Queue for AmqpQueue {
    type Handle = AmqpHandle;

    async fn submit(&mut self, requests: &[Request]) -> Result<Vec<Submitted>, QueueError> {
        let mut out = Vec::with_capacity(requests.len());
        let mut confirms = Vec::with_capacity(requests.len());
        for r in requests {
            let queue = r.queue();
            if !self.declared.contains(&queue) {
                self.declare(&queue).await?;
            }
            let id = new_id();
            let body = r.body();
            let confirm = self
                .channel
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &body,
                    BasicProperties::default()
                        .with_delivery_mode(2)
                        .with_message_id(id.as_str().into()),
                )
                .await
                .map_err(self.amqp_err("publish to", &queue))?;
            confirms.push(confirm);
            out.push(Submitted {
                queue,
                id,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        for (confirm, s) in confirms.into_iter().zip(&out) {
            let confirmation = confirm
                .await
                .map_err(self.amqp_err("get a confirm from", &s.queue))?;
            let nacked = confirmation.is_nack();
            if confirmation.take_message().is_some() {
                return Err(QueueError::Unroutable {
                    broker: self.broker.shown.clone(),
                    queue: s.queue.clone(),
                    id: s.id.clone(),
                });
            }
            if nacked {
                return Err(QueueError::Nacked {
                    broker: self.broker.shown.clone(),
                    queue: s.queue.clone(),
                    id: s.id.clone(),
                });
            }
        }
        Ok(out)
    }

    async fn take(&mut self, queues: &[String]) -> Result<Option<Taken<AmqpHandle>>, QueueError> {
        for queue in queues {
            if !self.declared.contains(queue) {
                self.declare(queue).await?;
            }
            let got = self
                .channel
                .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
                .await
                .map_err(self.amqp_err("get from", queue))?;
            if let Some(msg) = got {
                let d = msg.delivery;
                let id = d.properties.message_id().as_ref().map_or_else(
                    || format!("tag-{}", d.delivery_tag),
                    |m| m.as_str().to_owned(),
                );
                return Ok(Some(Taken {
                    queue: queue.clone(),
                    id,
                    body: d.data,
                    handle: AmqpHandle { acker: d.acker },
                }));
            }
        }
        Ok(None)
    }

    async fn next(
        &mut self,
        queues: &[String],
        patience: Duration,
    ) -> Result<Option<Taken<AmqpHandle>>, QueueError> {
        if self.consumers.as_ref().is_none_or(|(q, _)| q != queues) {
            let mut merged = futures_util::stream::SelectAll::new();
            for queue in queues {
                if !self.declared.contains(queue) {
                    self.declare(queue).await?;
                }
                let consumer = self
                    .channel
                    .basic_consume(
                        queue.as_str().into(),
                        "".into(),
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(self.amqp_err("consume from", queue))?;
                let name = queue.clone();
                merged.push(consumer.map(move |d| (name.clone(), d)).boxed());
            }
            self.consumers = Some((queues.to_vec(), merged));
        }
        let Some((_, merged)) = self.consumers.as_mut() else {
            return Ok(None);
        };
        let (queue, delivery) = match tokio::time::timeout(patience, merged.next()).await {
            Err(_) | Ok(None) => return Ok(None),
            Ok(Some(d)) => d,
        };
        let d = delivery.map_err(self.amqp_err("consume from", &queue))?;
        let id = d.properties.message_id().as_ref().map_or_else(
            || format!("tag-{}", d.delivery_tag),
            |m| m.as_str().to_owned(),
        );
        Ok(Some(Taken {
            queue,
            id,
            body: d.data,
            handle: AmqpHandle { acker: d.acker },
        }))
    }

    async fn ack(&mut self, taken: Taken<AmqpHandle>) -> Result<(), QueueError> {
        taken
            .handle
            .acker
            .ack(BasicAckOptions::default())
            .await
            .map(|_| ())
            .map_err(self.amqp_err("acknowledge a message of", &taken.queue))
    }

    async fn reject(&mut self, taken: Taken<AmqpHandle>) -> Result<(), QueueError> {
        taken
            .handle
            .acker
            .reject(BasicRejectOptions { requeue: false })
            .await
            .map(|_| ())
            .map_err(self.amqp_err("reject a message of", &taken.queue))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_passwords_never_show() {
        let b = BrokerUrl::parse("amqp://user:s3cret@mq.example:5672/%2f").unwrap();
        for shown in [format!("{b}"), format!("{b:?}"), b.shown().to_owned()] {
            assert!(!shown.contains("s3cret"), "{shown}");
        }
        let e = BrokerUrl::parse("http://user:s3cret@mq.example/").unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
        let e = BrokerUrl::parse("user:s3cret@mq").unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }
}
