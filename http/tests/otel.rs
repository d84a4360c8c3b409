//! With `OTEL_EXPORTER_OTLP_ENDPOINT` set, one checkout's spans arrive over
//! OTLP/HTTP at a receiver on 127.0.0.1, parented HTTP request → cart actor → store write, with the
//! inventory actor's reservation under the cart actor, and the relay's publication of the order
//! event under the order actor that wrote it, all in one trace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::json;

/// A minimal OTLP/HTTP receiver: accepts `POST /v1/traces` (protobuf) and keeps every span.
fn receiver() -> (u16, Arc<Mutex<Vec<Span>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
    let kept = spans.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let kept = kept.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut conn = conn;
                // Bounded: at most 1,000 requests on one connection.
                for _ in 0..1000 {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let l = line.trim_end();
                        if l.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = l.split_once(':') {
                            if k.eq_ignore_ascii_case("content-length") {
                                length = v.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    if let Ok(req) = ExportTraceServiceRequest::decode(body.as_slice()) {
                        let mut kept = kept.lock().unwrap();
                        for rs in req.resource_spans {
                            for ss in rs.scope_spans {
                                kept.extend(ss.spans);
                            }
                        }
                    }
                    let _ = conn.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
                    );
                }
            });
        }
    });
    (port, spans)
}

fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| match &v.value {
            Some(AnyValue::StringValue(s)) => Some(s.clone()),
            Some(AnyValue::IntValue(i)) => Some(i.to_string()),
            Some(AnyValue::BoolValue(b)) => Some(b.to_string()),
            _ => None,
        })
}

fn children<'a>(spans: &'a [Span], parent: &Span) -> Vec<&'a Span> {
    spans
        .iter()
        .filter(|s| s.parent_span_id == parent.span_id && s.trace_id == parent.trace_id)
        .collect()
}

#[actix_rt::test]
async fn one_checkout_exports_parented_spans() {
    let (port, spans) = receiver();
    let node = Node::start(
        NodeOpts::new()
            .demo_catalog(false)
            .env(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                &format!("http://127.0.0.1:{port}"),
            )
            .env("OTEL_BSP_SCHEDULE_DELAY", "100"),
    );
    let admin = admin_token(&node).await;
    create_product(&node, &admin, "Traced", "TRACE-1", 7.0, Some(5)).await;
    let eve = register(&node, "eve", "eve@example.com", PASSWORD).await;
    assert_eq!(add_to_cart(&node, &eve, "TRACE-1", 2).await, 204);
    let (s, order) = node.post("/api/checkout", Some(&eve), json!({})).await;
    assert_eq!(s, 201, "{order}");

    let is_checkout = |s: &Span| {
        attr(s, "http.route").is_some_and(|r| r.ends_with("/checkout"))
            && attr(s, "http.request.method").as_deref() == Some("POST")
    };
    let start = Instant::now();
    let mut found = None;
    while start.elapsed() < Duration::from_secs(30) && found.is_none() {
        actix_rt::time::sleep(Duration::from_millis(200)).await;
        let all = spans.lock().unwrap().clone();
        let Some(http) = all.iter().find(|s| is_checkout(s)).cloned() else {
            continue;
        };
        // Wait until the whole trace is in (spans end, and are exported, children first).
        let cart = children(&all, &http)
            .into_iter()
            .find(|s| s.name == "cart")
            .cloned();
        if let Some(cart) = cart {
            let under_cart = children(&all, &cart);
            let published = under_cart
                .iter()
                .filter(|s| s.name == "order")
                .any(|o| children(&all, o).iter().any(|s| s.name == "order.event"));
            if under_cart.iter().any(|s| s.name == "store.save")
                && under_cart.iter().any(|s| s.name == "inventory")
                && published
            {
                found = Some((all, http, cart));
            }
        }
    }
    let Some((all, http, cart)) = found else {
        let names: Vec<String> = spans
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.name.clone())
            .collect();
        panic!("no complete checkout trace; spans received: {names:?}");
    };
    assert_eq!(
        attr(&http, "http.response.status_code").as_deref(),
        Some("201")
    );
    assert!(http.parent_span_id.is_empty(), "the HTTP span is the root");
    assert!(
        http.name.starts_with("POST /api/") && http.name.ends_with("checkout"),
        "{}",
        http.name
    );
    // The reservation went to the SKU's inventory actor, which wrote through the store.
    let inventory = children(&all, &cart)
        .into_iter()
        .find(|s| s.name == "inventory")
        .unwrap();
    assert!(
        children(&all, inventory)
            .iter()
            .any(|s| s.name == "store.save"),
        "inventory actor without its store write"
    );
    // The order event's publication joins the trace, under the order actor that wrote it.
    let order_actor = children(&all, &cart)
        .into_iter()
        .find(|s| s.name == "order")
        .unwrap_or_else(|| panic!("no order actor under the cart actor"));
    assert!(
        children(&all, order_actor)
            .iter()
            .any(|s| s.name == "order.event"
                && attr(s, "messaging.destination.name").as_deref() == Some("order.created")),
        "no order.event publication under the order actor"
    );
    assert!(
        children(&all, order_actor)
            .iter()
            .any(|s| s.name == "store.save"),
        "the order actor's store write is not under it"
    );
    // The order actor stored the order (with its event) in the same trace.
    let trace: Vec<&Span> = all.iter().filter(|s| s.trace_id == http.trace_id).collect();
    assert!(
        trace.iter().any(|s| s.name == "order"),
        "{:?}",
        trace.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
}
