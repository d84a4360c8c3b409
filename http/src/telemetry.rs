//! Logging and tracing. Logs go to stderr (filtered by `RUST_LOG`, default `info`). With
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set (and the `otel` cargo feature, on by default), the spans of a
//! request — HTTP → actor → store, and the relay's publishes — are exported over OTLP/HTTP
//! (protobuf) in batches from a background thread; the standard `OTEL_*` variables (service
//! name, batch delay, headers) apply.
//!
//! Without the endpoint nothing is exported and nothing slows down: the spans are created at
//! `TRACE` level under the `emporium` targets, and no layer enables them, so their call sites are
//! disabled once and cost a cached check.

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// Exports what is still buffered when dropped (at the end of `main`).
pub struct Telemetry {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        #[cfg(feature = "otel")]
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("emporium: flushing traces failed: {e}");
            }
        }
    }
}

/// The collector's address, when one is set (and not empty).
pub fn otlp_endpoint() -> Option<String> {
    std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        .ok()
        .filter(|e| !e.trim().is_empty())
}

/// `RUST_LOG`, default `info`. actix-http's per-connection protocol errors (a malformed request
/// line, a URI over 64 KiB) are logged at ERROR, one line per bad request from anyone: they are
/// silenced unless `RUST_LOG` names `actix_http` itself. The client gets its 400 either way.
fn log_filter() -> EnvFilter {
    let configured = std::env::var("RUST_LOG").unwrap_or_default();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    match "actix_http::h1::dispatcher=off".parse() {
        Ok(quiet) if !configured.contains("actix_http") => filter.add_directive(quiet),
        _ => filter,
    }
}

/// Installs the global subscriber. An exporter that cannot be built is reported and tracing goes
/// on without it (logs still work); it never stops the store.
pub fn init() -> Telemetry {
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(log_filter());
    let registry = tracing_subscriber::registry().with(logs);
    #[cfg(feature = "otel")]
    {
        let (provider, failure) = match otlp_endpoint().map(|endpoint| (otel::provider(), endpoint))
        {
            Some((Ok(provider), _)) => (Some(provider), None),
            Some((Err(e), endpoint)) => (
                None,
                Some(format!("cannot export traces to {endpoint}: {e}")),
            ),
            None => (None, None),
        };
        registry.with(provider.as_ref().map(otel::layer)).init();
        if provider.is_some() {
            emporium_engine::trace::set_capture(otel::capture);
        }
        match (failure, otlp_endpoint()) {
            (Some(failure), _) => tracing::error!("{failure}"),
            (None, Some(endpoint)) => tracing::info!(%endpoint, "exporting traces over OTLP/HTTP"),
            (None, None) => {}
        }
        Telemetry { provider }
    }
    #[cfg(not(feature = "otel"))]
    {
        registry.init();
        if otlp_endpoint().is_some() {
            tracing::warn!("OTEL_EXPORTER_OTLP_ENDPOINT is set but this build has no OpenTelemetry exporter (cargo feature `otel`)");
        }
        Telemetry {}
    }
}

/// A span for publishing one order event, parented to the span that wrote the event (its
/// `traceparent`), so the publication shows in the trace of the request that caused it.
/// Disabled (free) without OpenTelemetry.
pub fn event_span(event_id: &str, routing_key: &str, trace_parent: Option<&str>) -> tracing::Span {
    let span = tracing::trace_span!(target: "emporium::relay", "order.event",
        otel.name = "order.event", otel.kind = "producer",
        messaging.message.id = %event_id, messaging.destination.name = %routing_key);
    #[cfg(feature = "otel")]
    if !span.is_disabled() {
        if let Some(parent) = trace_parent.and_then(otel::parse_traceparent) {
            otel::set_parent(&span, parent);
        }
    }
    #[cfg(not(feature = "otel"))]
    let _ = trace_parent;
    span
}

#[cfg(feature = "otel")]
mod otel {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    /// The current span's context as a W3C `traceparent`.
    pub fn capture() -> Option<String> {
        let cx = tracing::Span::current().context();
        let span = cx.span();
        let sc = span.span_context();
        sc.is_valid().then(|| {
            format!(
                "00-{}-{}-{:02x}",
                sc.trace_id(),
                sc.span_id(),
                sc.trace_flags().to_u8()
            )
        })
    }

    /// `00-<trace id>-<span id>-<flags>`; anything else is ignored.
    pub fn parse_traceparent(text: &str) -> Option<SpanContext> {
        let mut parts = text.split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version != "00" || parts.next().is_some() {
            return None;
        }
        let trace = TraceId::from_hex(trace).ok()?;
        let span = SpanId::from_hex(span).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        let sc = SpanContext::new(
            trace,
            span,
            TraceFlags::new(flags),
            true,
            TraceState::default(),
        );
        sc.is_valid().then_some(sc)
    }

    pub fn set_parent(span: &tracing::Span, parent: SpanContext) {
        let cx = opentelemetry::Context::new().with_remote_span_context(parent);
        let _ = span.set_parent(cx);
    }

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing::level_filters::LevelFilter;
    use tracing::Subscriber;
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::registry::LookupSpan;
    use tracing_subscriber::Layer;

    /// Exports our spans (the `emporium` targets) to the provider's tracer.
    pub fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("emporium"))
            .with_filter(Targets::new().with_target("emporium", LevelFilter::TRACE))
    }

    pub fn provider() -> Result<SdkTracerProvider, String> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .map_err(|e| e.to_string())?;
        let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "emporium".into());
        Ok(SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name(service)
                    .build(),
            )
            .build())
    }
}
