//! Every metric of `/metrics` goes through one `prometheus` registry: the HTTP request metrics
//! (count and latency per route) recorded here, and collectors that read the engine's, the
//! stores' and the cluster's counters at each scrape (`node`, `cluster`). The README lists them.

pub mod cluster;
pub mod family;
pub mod node;

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpRequest};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
    TextEncoder,
};
use tracing::Instrument as _;

use crate::AppState;

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    /// What the scrape asked the store just before gathering.
    pub scrape: Arc<node::ScrapeValues>,
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
            scrape: Arc::default(),
        })
    }

    /// Registers a collector that reads its values at each scrape.
    pub fn register(
        &self,
        collector: impl prometheus::core::Collector + 'static,
    ) -> Result<(), prometheus::Error> {
        self.registry.register(Box::new(collector))
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Kept in each resource's app data (per worker): the metric handles of the resource's route,
/// by method and status, made on first use. Recording a request then costs a short scan and two
/// atomic updates, not a second match of the path against the route table and two label lookups.
#[derive(Default)]
pub struct RouteMetrics(RefCell<Vec<RouteHandles>>);

struct RouteHandles {
    method: &'static str,
    status: StatusCode,
    requests: IntCounter,
    latency: Histogram,
}

impl RouteMetrics {
    fn record(&self, metrics: &Metrics, req: &HttpRequest, status: StatusCode, seconds: f64) {
        let method = method_label(req.method());
        // Never fails: recording does not re-enter itself. Still no panic on the request path.
        let Ok(mut handles) = self.0.try_borrow_mut() else {
            return;
        };
        if let Some(h) = handles
            .iter()
            .find(|h| h.method == method && h.status == status)
        {
            h.observe(seconds);
            return;
        }
        let route = req.match_pattern().unwrap_or_else(|| UNMATCHED.into());
        let h = RouteHandles::new(metrics, &route, method, status);
        h.observe(seconds);
        handles.push(h);
    }
}

impl RouteHandles {
    fn new(metrics: &Metrics, route: &str, method: &'static str, status: StatusCode) -> Self {
        Self {
            method,
            status,
            requests: metrics
                .requests
                .with_label_values(&[route, method, status.as_str()]),
            latency: metrics.latency.with_label_values(&[route, method]),
        }
    }

    fn observe(&self, seconds: f64) {
        self.requests.inc();
        self.latency.observe(seconds);
    }
}

const UNMATCHED: &str = "unmatched";

/// The method as a label: a client can send any token as a method, so the label set is closed.
fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
    }
}

/// Longer paths are refused before routing: matching a `{id}` segment costs time in its length
/// (~5 ms for 64 KiB on the one HTTP worker), and no path of the API comes anywhere near this.
const MAX_PATH: usize = 2048;

/// Middleware: records every request under its route pattern (not its raw path, which would let
/// clients create unbounded label values). Refuses over-long paths first (414).
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let started = Instant::now();
    if req.path().len() > MAX_PATH {
        let refused = crate::error::ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the path is longer than {MAX_PATH} bytes"),
        );
        let res = req.into_response(refused.to_response());
        observe(&res, started);
        return Ok(res.map_into_right_body());
    }
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
    if !span.is_disabled() {
        let route = req.match_pattern().unwrap_or_else(|| UNMATCHED.into());
        span.record("otel.name", format!("{} {route}", req.method()));
        span.record("http.route", route.as_str());
    }
    let res = next.call(req).instrument(span.clone()).await?;
    span.record("http.response.status_code", res.status().as_u16());
    observe(&res, started);
    Ok(res.map_into_left_body())
}

fn observe<B>(res: &ServiceResponse<B>, started: Instant) {
    let req = res.request();
    if let Some(state) = req.app_data::<web::Data<AppState>>() {
        let seconds = started.elapsed().as_secs_f64();
        match req.app_data::<RouteMetrics>() {
            Some(route) => route.record(&state.metrics, req, res.status(), seconds),
            // No resource matched (a 404 from a scope's default service, or a refused path).
            None => RouteHandles::new(
                &state.metrics,
                UNMATCHED,
                method_label(req.method()),
                res.status(),
            )
            .observe(seconds),
        }
    }
}
