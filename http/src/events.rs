//! Order events as the services downstream (mail, fulfilment, analytics) read them: JSON, one
//! message per event, `eventId` equal to the AMQP `message_id` so consumers can dedupe.
//!
//! Solves: turning the engine's stored events (its own binary encoding) into the public JSON shape
//! on the way out of the outbox, so the engine stays free of JSON and the broker sink free of the
//! domain. Deliberately does not: publish (the sink it wraps does) or retry (the relay does).

use async_trait::async_trait;
use emporium_persistence::{Error, EventSink, OutboxEntry};
use serde::Serialize;

use crate::dto::{rfc3339, OrderDto};

/// The JSON body of every order event.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventDto {
    pub event_id: String,
    /// `order.created`, `order.paid`, `order.cancelled`, … (also the routing key).
    #[serde(rename = "type")]
    pub kind: String,
    pub occurred_at: String,
    pub order: OrderDto,
}

/// Encodes an outbox entry's payload as the event's JSON.
pub fn to_json(entry: &OutboxEntry) -> Result<Vec<u8>, Error> {
    let event =
        emporium_engine::decode_order_event(&entry.payload).map_err(|e| Error::Corrupt {
            key: entry.event_id.clone(),
            reason: e.to_string(),
        })?;
    let dto = EventDto {
        event_id: entry.event_id.clone(),
        kind: entry.routing_key.clone(),
        occurred_at: rfc3339(event.occurred_at_ms),
        order: OrderDto::from(&event.order),
    };
    serde_json::to_vec(&dto).map_err(|e| Error::Corrupt {
        key: entry.event_id.clone(),
        reason: e.to_string(),
    })
}

/// A sink that hands the wrapped sink each event as JSON.
pub struct JsonEvents<S> {
    inner: S,
}

impl<S: EventSink> JsonEvents<S> {
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

#[async_trait]
impl<S: EventSink> EventSink for JsonEvents<S> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn publish(&self, entries: &[OutboxEntry]) -> Result<(), Error> {
        let mut encoded = Vec::with_capacity(entries.len());
        for entry in entries {
            match to_json(entry) {
                Ok(payload) => encoded.push(OutboxEntry {
                    payload,
                    ..entry.clone()
                }),
                // An event no build of this program can read would block the outbox forever;
                // it is logged and skipped (it stays stored, marked delivered with its batch).
                Err(e) => {
                    tracing::error!(event_id = %entry.event_id, error = %e, "undecodable order event skipped")
                }
            }
        }
        self.inner.publish(&encoded).await
    }

    fn healthy(&self) -> bool {
        self.inner.healthy()
    }
}
