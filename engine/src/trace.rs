//! The trace context an order event carries (a W3C `traceparent`), so its publication joins the
//! trace of the request that caused it. The engine does not know OpenTelemetry: the binary
//! installs how to read the current context; without it events carry none.

use std::sync::OnceLock;

static CAPTURE: OnceLock<fn() -> Option<String>> = OnceLock::new();

/// Installs the function that renders the current span's context (once per process).
pub fn set_capture(capture: fn() -> Option<String>) {
    let _ = CAPTURE.set(capture);
}

/// The current context, if tracing is on.
pub(crate) fn current() -> Option<String> {
    CAPTURE.get().and_then(|capture| capture())
}
