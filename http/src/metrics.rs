//! HTTP request metrics (count and latency per route), rendered in the Prometheus text format.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, Error};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};
use tracing::Instrument as _;

use crate::AppState;

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "emporium_http_requests_total",
                "HTTP requests by route, method and status.",
            ),
            &["route", "method", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "emporium_http_request_duration_seconds",
                "HTTP request latency by route.",
            )
            .buckets(vec![
                0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                2.5,
            ]),
            &["route", "method"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        Ok(Self {
            registry,
            requests,
            latency,
        })
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Middleware: records every request under its route pattern (not its raw path, which would let
/// clients create unbounded label values).
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    // Exported only with OpenTelemetry on (see `telemetry`); otherwise a disabled call site.
    let span = tracing::trace_span!(
        target: "emporium::http",
        "http.request",
        otel.name = tracing::field::Empty,
        otel.kind = "server",
        http.request.method = %req.method(),
        url.path = %req.path(),
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    // Matched once, for the span and the metrics both.
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    if !span.is_disabled() {
        span.record("otel.name", format!("{} {route}", req.method()));
        span.record("http.route", route.as_str());
    }
    let method = req.method().clone();
    let res = next.call(req).instrument(span.clone()).await?;
    span.record("http.response.status_code", res.status().as_u16());
    if let Some(m) = metrics {
        m.requests
            .with_label_values(&[route.as_str(), method.as_str(), res.status().as_str()])
            .inc();
        m.latency
            .with_label_values(&[route.as_str(), method.as_str()])
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(res)
}
