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

/// The version of the event JSON this build publishes.
pub const EVENT_VERSION: u32 = 1;

/// The JSON body of every order event.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventDto {
    /// The shape of this JSON; a consumer refuses versions it does not know. Absent in events
    /// of earlier builds, which are version 1.
    pub version: u32,
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
        version: EVENT_VERSION,
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
                // (Events of a newer build never get here: the relay leaves them to a newer node.)
                // Corrupt under a format this build knows: no build can ever read it, and it
                // would block the outbox forever. It is logged and skipped; it stays stored,
                // marked delivered with its batch, for an operator to inspect.
                Err(e) => {
                    tracing::error!(event_id = %entry.event_id, error = %e, "corrupt order event skipped")
                }
            }
        }
        self.inner.publish(&encoded).await
    }

    fn healthy(&self) -> bool {
        self.inner.healthy()
    }
}

/// A sink that traces each event's publication in the trace of the request that wrote it (a
/// span per event, parented by its `traceparent`, open until the sink accepted the batch).
pub struct Traced<S> {
    inner: S,
}

impl<S: EventSink> Traced<S> {
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

#[async_trait]
impl<S: EventSink> EventSink for Traced<S> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn publish(&self, entries: &[OutboxEntry]) -> Result<(), Error> {
        let spans: Vec<tracing::Span> = entries
            .iter()
            .map(|e| {
                crate::telemetry::event_span(&e.event_id, &e.routing_key, e.trace_parent.as_deref())
            })
            .collect();
        let published = self.inner.publish(entries).await;
        drop(spans);
        published
    }

    fn healthy(&self) -> bool {
        self.inner.healthy()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use emporium_persistence::testkit::outbox_entry;

    #[derive(Default)]
    struct Capture(Mutex<Vec<String>>);

    #[async_trait]
    impl EventSink for &'static Capture {
        fn name(&self) -> &'static str {
            "capture"
        }
        async fn publish(&self, entries: &[OutboxEntry]) -> Result<(), Error> {
            let mut seen = self
                .0
                .lock()
                .map_err(|_| Error::Unavailable("poisoned".into()))?;
            seen.extend(entries.iter().map(|e| e.event_id.clone()));
            Ok(())
        }
    }

    #[actix_rt::test]
    async fn corrupt_events_are_skipped() {
        let capture: &'static Capture = Box::leak(Box::default());
        let sink = JsonEvents::new(capture);
        // Corrupt under the known format: skipped, the rest of the batch goes on.
        assert_eq!(
            sink.publish(&[outbox_entry("bad", vec![1, 0xff])]).await,
            Ok(())
        );
        assert_eq!(capture.0.lock().map(|s| s.len()).unwrap_or(9), 0);
    }
}
