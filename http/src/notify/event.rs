//! An order event as the consumer reads it: the public JSON that `crate::events` publishes
//! (version 1), checked before anything is sent.

use serde::Deserialize;

/// The event types the engine publishes (also the routing keys).
pub const KNOWN_TYPES: [&str; 5] = [
    "order.created",
    "order.paid",
    "order.shipped",
    "order.delivered",
    "order.cancelled",
];

/// The one JSON version this consumer reads.
const VERSION: u32 = 1;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Absent in events of builds before the field existed: version 1.
    #[serde(default)]
    pub version: Option<u32>,
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub occurred_at: String,
    pub order: Order,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub id: String,
    pub user_email: String,
    pub items: Vec<Line>,
    pub total: f64,
    pub currency: String,
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Line {
    pub name: String,
    pub sku: String,
    pub quantity: u32,
    pub price: f64,
    pub line_total: f64,
}

/// Why a message can never become an email, whoever retries it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("malformed event: {0}")]
    Malformed(String),
    #[error("unknown event version {0} (this consumer reads version {VERSION})")]
    UnknownVersion(u32),
    #[error("unknown event type {0:?}")]
    UnknownType(String),
}

impl Invalid {
    /// The `reason` label of the dead-letter counter.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::UnknownVersion(_) => "unknown_version",
            Self::UnknownType(_) => "unknown_type",
        }
    }
}

impl Event {
    /// Parses and checks a message body.
    pub fn parse(body: &[u8]) -> Result<Event, Invalid> {
        // The version first, so a newer shape is reported as such rather than as malformed.
        let raw: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| Invalid::Malformed(e.to_string()))?;
        match raw.get("version") {
            None => {}
            Some(v) => match v.as_u64() {
                Some(1) => {}
                Some(other) => {
                    return Err(Invalid::UnknownVersion(
                        u32::try_from(other).unwrap_or(u32::MAX),
                    ))
                }
                None => return Err(Invalid::Malformed(format!("version {v} is not a number"))),
            },
        }
        let event: Event =
            serde_json::from_value(raw).map_err(|e| Invalid::Malformed(e.to_string()))?;
        if !KNOWN_TYPES.contains(&event.kind.as_str()) {
            return Err(Invalid::UnknownType(event.kind));
        }
        if event.event_id.is_empty() || event.event_id.len() > 200 {
            return Err(Invalid::Malformed("eventId must be 1 to 200 bytes".into()));
        }
        Ok(event)
    }

    /// Seconds since the event occurred (0 if its time cannot be read or lies ahead).
    pub fn age_secs(&self) -> f64 {
        humantime::parse_rfc3339(&self.occurred_at)
            .ok()
            .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
            .map_or(0.0, |d| d.as_secs_f64())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn body(version: Option<u32>, kind: &str) -> Vec<u8> {
        let mut v = serde_json::json!({
            "eventId": "e-1", "type": kind, "occurredAt": "2026-01-02T03:04:05.000Z",
            "order": {"id": "o-1", "userEmail": "ann@example.com", "total": 39.98,
                "currency": "USD", "status": "Created", "createdAt": "2026-01-02T03:04:05.000Z",
                "updatedAt": "2026-01-02T03:04:05.000Z", "history": [],
                "items": [{"productId": "p", "name": "Mug", "sku": "MUG-1", "quantity": 2,
                    "price": 19.99, "lineTotal": 39.98}]}
        });
        if let Some(n) = version {
            v["version"] = n.into();
        }
        serde_json::to_vec(&v).unwrap_or_default()
    }

    #[test]
    fn events_of_this_and_earlier_builds_parse() {
        for version in [None, Some(1)] {
            let e = Event::parse(&body(version, "order.shipped")).map_err(|e| e.to_string());
            assert_eq!(e.map(|e| e.order.items[0].quantity), Ok(2), "{version:?}");
        }
    }

    #[test]
    fn garbage_newer_versions_and_unknown_types_are_refused() {
        assert_eq!(
            Event::parse(&body(Some(2), "order.created")).err(),
            Some(Invalid::UnknownVersion(2))
        );
        assert_eq!(
            Event::parse(&body(None, "order.lost")).err(),
            Some(Invalid::UnknownType("order.lost".into()))
        );
        for garbage in [&b"not json"[..], b"{}", b"[1,2]", b"{\"version\":\"x\"}"] {
            assert!(
                matches!(Event::parse(garbage), Err(Invalid::Malformed(_))),
                "{garbage:?}"
            );
        }
    }
}
