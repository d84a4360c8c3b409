//! `AmqpSink` against the real RabbitMQ (`EMP_TEST_AMQP_URL`, default the local guest broker).
//! Every test publishes to its own exchange (deleted when the test ends) and listens with its own
//! exclusive queue, so tests never see each other's messages. A broker that goes away is played by
//! a proxy the test cuts, never by stopping the shared broker.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use emporium_persistence::testkit::{amqp_url, bind_consumer, free_port, Proxy};
use emporium_persistence::{AmqpOptions, AmqpSink, EventSink, OutboxEntry};
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::ExchangeDeleteOptions;
use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties, Consumer};
use tokio::time::timeout;

const CREATED_AT_MS: u64 = 1_700_000_000_123;

fn options(exchange: &str) -> AmqpOptions {
    AmqpOptions {
        exchange: exchange.to_owned(),
        ..AmqpOptions::default()
    }
}

/// `count` events, alternating routing keys, with payloads that are not all ASCII.
fn entries(tag: &str, count: usize) -> Vec<OutboxEntry> {
    (0..count)
        .map(|i| OutboxEntry {
            trace_parent: None,
            event_id: uuid::Uuid::new_v4().to_string(),
            routing_key: if i % 3 == 0 {
                "order.cancelled"
            } else {
                "order.created"
            }
            .to_owned(),
            payload: format!("{{\"tag\":\"{tag}\",\"n\":{i},\"name\":\"Crème brûlée\"}}")
                .into_bytes()
                .into_iter()
                .chain([0u8, 255, i as u8])
                .collect(),
            created_at_ms: CREATED_AT_MS,
        })
        .collect()
}

/// A unique exchange name, and the exchange deleted when the test ends (also on panic).
struct TestExchange {
    name: String,
}

impl TestExchange {
    fn new() -> Self {
        Self {
            name: format!("orders_test_{}", uuid::Uuid::new_v4().simple()),
        }
    }
}

impl Drop for TestExchange {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Its own thread and runtime: Drop cannot await, and may run while a runtime unwinds.
        let deleted = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(delete_exchange(&name))
        })
        .join();
        if !matches!(deleted, Ok(Ok(()))) {
            eprintln!("could not delete exchange {}: {deleted:?}", self.name);
        }
    }
}

/// Deletes `name` on the broker, over a connection of its own (bounded at 10 s).
async fn delete_exchange(name: &str) -> Result<(), String> {
    timeout(Duration::from_secs(10), async {
        let conn = Connection::connect(&amqp_url(), ConnectionProperties::default())
            .await
            .map_err(|e| e.to_string())?;
        let channel = conn.create_channel().await.map_err(|e| e.to_string())?;
        channel
            .exchange_delete(name.into(), ExchangeDeleteOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        conn.close(200, "OK".into())
            .await
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|_| "timed out".to_owned())?
}

/// A consumer with an exclusive auto-delete queue bound to the exchange with `order.*`, connected
/// straight to the broker (not through any proxy).
struct Listener {
    _conn: Connection,
    consumer: Consumer,
}

impl Listener {
    async fn bind(exchange: &str) -> Self {
        let (conn, consumer) = bind_consumer(exchange, "order.*").await;
        Self {
            _conn: conn,
            consumer,
        }
    }

    /// Deliveries until every id in `ids` has arrived; fails after 30 s.
    async fn receive_all(&mut self, ids: &HashSet<String>) -> Vec<Delivery> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = HashSet::new();
        let mut got = Vec::new();
        while !ids.iter().all(|id| seen.contains(id)) {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = timeout(left, self.consumer.next()).await;
            let delivery = match next {
                Ok(Some(Ok(d))) => d,
                Ok(Some(Err(e))) => panic!("consumer error: {e}"),
                Ok(None) => panic!("consumer ended"),
                Err(_) => panic!(
                    "only {} of {} events arrived within 30 s",
                    ids.intersection(&seen).count(),
                    ids.len()
                ),
            };
            seen.insert(message_id(&delivery));
            got.push(delivery);
        }
        got
    }
}

fn message_id(d: &Delivery) -> String {
    d.properties
        .message_id()
        .as_ref()
        .map(|id| id.as_str().to_owned())
        .unwrap_or_default()
}

fn ids(entries: &[OutboxEntry]) -> HashSet<String> {
    entries.iter().map(|e| e.event_id.clone()).collect()
}

/// Every delivery is one of `sent`, with the properties and payload the sink must set.
fn check_deliveries(sent: &[OutboxEntry], got: &[Delivery]) {
    let by_id: HashMap<&str, &OutboxEntry> =
        sent.iter().map(|e| (e.event_id.as_str(), e)).collect();
    for d in got {
        let id = message_id(d);
        let entry = by_id
            .get(id.as_str())
            .unwrap_or_else(|| panic!("unexpected message id {id:?}"));
        assert_eq!(d.routing_key.as_str(), entry.routing_key);
        assert_eq!(d.data, entry.payload, "payload of {id}");
        assert_eq!(*d.properties.delivery_mode(), Some(2), "persistent");
        assert_eq!(
            d.properties.content_type().as_ref().map(|c| c.as_str()),
            Some("application/json")
        );
        assert_eq!(*d.properties.timestamp(), Some(CREATED_AT_MS / 1000));
    }
}

async fn publish_ok(sink: &AmqpSink, batch: &[OutboxEntry]) {
    timeout(Duration::from_secs(30), sink.publish(batch))
        .await
        .unwrap_or_else(|_| panic!("publish hung for 30 s"))
        .unwrap_or_else(|e| panic!("publish: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_every_entry_with_its_properties_in_order() {
    let exchange = TestExchange::new();
    let mut listener = Listener::bind(&exchange.name).await;
    let sink =
        AmqpSink::new(&amqp_url(), options(&exchange.name)).unwrap_or_else(|e| panic!("new: {e}"));
    assert_eq!(sink.name(), "rabbitmq");
    timeout(Duration::from_secs(10), sink.connect())
        .await
        .unwrap_or_else(|_| panic!("connect hung"))
        .unwrap_or_else(|e| panic!("connect: {e}"));
    assert!(sink.healthy());

    let sent = entries("batch", 200);
    publish_ok(&sink, &sent).await;
    assert!(sink.healthy());

    let got = listener.receive_all(&ids(&sent)).await;
    check_deliveries(&sent, &got);
    // No fault, one channel: exactly once and in the order given.
    let order: Vec<String> = got.iter().map(message_id).collect();
    let expected: Vec<String> = sent.iter().map(|e| e.event_id.clone()).collect();
    assert_eq!(order, expected);
    assert!(got
        .iter()
        .any(|d| d.routing_key.as_str() == "order.cancelled"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_while_the_broker_is_cut_off_and_recovers_after() {
    let exchange = TestExchange::new();
    let mut listener = Listener::bind(&exchange.name).await;
    let broker: AMQPUri = amqp_url()
        .parse()
        .unwrap_or_else(|e| panic!("EMP_TEST_AMQP_URL: {e}"));
    let upstream: SocketAddr =
        tokio::net::lookup_host((broker.authority.host.as_str(), broker.authority.port))
            .await
            .unwrap_or_else(|e| panic!("resolve broker: {e}"))
            .find(|a| a.ip().is_loopback())
            .unwrap_or_else(|| panic!("the test broker must be on loopback"));
    let proxy = Proxy::to_addr(upstream);
    let mut via_proxy = broker.clone();
    via_proxy.authority.host = "127.0.0.1".to_owned();
    via_proxy.authority.port = proxy.port;
    let opts = AmqpOptions {
        connect_timeout: Duration::from_secs(2),
        confirm_timeout: Duration::from_secs(5),
        ..options(&exchange.name)
    };
    let sink = AmqpSink::new(&via_proxy.to_string(), opts).unwrap_or_else(|e| panic!("new: {e}"));

    let before = entries("before", 50);
    publish_ok(&sink, &before).await;
    assert!(sink.healthy());

    proxy.cut();
    let during = entries("during", 50);
    let failed = timeout(Duration::from_secs(20), sink.publish(&during))
        .await
        .unwrap_or_else(|_| panic!("publish hung for 20 s with the broker cut off"));
    assert!(
        failed.is_err(),
        "publish must fail while the broker is cut off"
    );
    assert!(failed.is_err_and(|e| e.is_retryable()));
    assert!(!sink.healthy());
    // Reconnecting fails too (the proxy refuses), and is bounded.
    let again = timeout(Duration::from_secs(20), sink.publish(&during))
        .await
        .unwrap_or_else(|_| panic!("publish hung for 20 s with the broker cut off"));
    assert!(again.is_err());
    assert!(!sink.healthy());

    proxy.restore();
    // The relay's part: retry the whole batch until it is accepted (bounded here to ~30 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match timeout(Duration::from_secs(20), sink.publish(&during)).await {
            Ok(Ok(())) => break,
            Ok(Err(e)) if Instant::now() < deadline && attempts < 100 => {
                eprintln!("retry {attempts}: {e}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Ok(Err(e)) => panic!("no recovery after {attempts} attempts: {e}"),
            Err(_) => panic!("publish hung for 20 s after the broker came back"),
        }
    }
    assert!(sink.healthy());

    let all: Vec<OutboxEntry> = before.iter().chain(&during).cloned().collect();
    let got = listener.receive_all(&ids(&all)).await;
    check_deliveries(&all, &got);
    let distinct: HashSet<String> = got.iter().map(message_id).collect();
    assert_eq!(distinct, ids(&all), "every event at least once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_url_is_refused_and_an_unreachable_broker_fails_fast() {
    for bad in [
        "not a url",
        "http://127.0.0.1:5672/",
        "amqp://127.0.0.1:notaport/%2f",
    ] {
        assert!(
            AmqpSink::new(bad, AmqpOptions::default()).is_err(),
            "{bad} accepted"
        );
    }
    // A port nothing listens on: bind a free one, then release it.
    let port = free_port();
    let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    let sink = AmqpSink::new(&url, options("orders_test_unreachable"))
        .unwrap_or_else(|e| panic!("new must not connect: {e}"));
    assert!(!sink.healthy());
    let connected = timeout(Duration::from_secs(10), sink.connect())
        .await
        .unwrap_or_else(|_| panic!("connect hung"));
    assert!(connected.is_err());
    // Past the reconnect throttle, so this publish really tries to connect.
    tokio::time::sleep(emporium_persistence::MIN_RECONNECT_INTERVAL).await;
    let published = timeout(Duration::from_secs(10), sink.publish(&entries("x", 3)))
        .await
        .unwrap_or_else(|_| panic!("publish hung"));
    assert!(published.is_err_and(|e| e.is_retryable()));
    assert!(!sink.healthy());
}

/// The relay runs on actix's runtime: a current-thread tokio runtime per thread.
#[actix_rt::test]
async fn publishes_on_a_current_thread_runtime() {
    let exchange = TestExchange::new();
    let mut listener = Listener::bind(&exchange.name).await;
    let sink =
        AmqpSink::new(&amqp_url(), options(&exchange.name)).unwrap_or_else(|e| panic!("new: {e}"));
    for round in 0..3 {
        let sent = entries(&format!("round{round}"), 10);
        publish_ok(&sink, &sent).await;
        let got = listener.receive_all(&ids(&sent)).await;
        check_deliveries(&sent, &got);
    }
    assert!(sink.healthy());
}

#[tokio::test]
async fn publishes_on_a_plain_tokio_current_thread_runtime() {
    let exchange = TestExchange::new();
    let mut listener = Listener::bind(&exchange.name).await;
    let sink =
        AmqpSink::new(&amqp_url(), options(&exchange.name)).unwrap_or_else(|e| panic!("new: {e}"));
    let sent = entries("plain", 20);
    publish_ok(&sink, &sent).await;
    let got = listener.receive_all(&ids(&sent)).await;
    check_deliveries(&sent, &got);
}

/// A channel error (here: the exchange deleted under the sink) fails the batch, and the next
/// publish opens a new channel that declares the exchange again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_from_a_channel_error() {
    let exchange = TestExchange::new();
    let sink =
        AmqpSink::new(&amqp_url(), options(&exchange.name)).unwrap_or_else(|e| panic!("new: {e}"));
    publish_ok(&sink, &entries("first", 5)).await;

    delete_exchange(&exchange.name)
        .await
        .unwrap_or_else(|e| panic!("delete exchange: {e}"));

    // Publishing to a missing exchange closes the channel (404): the batch must not succeed.
    let failed = timeout(Duration::from_secs(20), sink.publish(&entries("lost", 5)))
        .await
        .unwrap_or_else(|_| panic!("publish hung after a channel error"));
    assert!(
        failed.is_err(),
        "a batch to a missing exchange was accepted"
    );
    assert!(!sink.healthy());

    // Before anything else declares it again: only the sink's reconnect can have re-declared the
    // exchange, or this batch (to a missing exchange) would fail as the last one did.
    let redeclared = timeout(
        Duration::from_secs(20),
        sink.publish(&entries("redeclare", 1)),
    )
    .await
    .unwrap_or_else(|_| panic!("publish hung after reconnecting"));
    assert!(
        redeclared.is_ok(),
        "the sink did not re-declare the exchange: {redeclared:?}"
    );

    let mut listener = Listener::bind(&exchange.name).await;
    let sent = entries("again", 5);
    publish_ok(&sink, &sent).await;
    assert!(sink.healthy());
    let got = listener.receive_all(&ids(&sent)).await;
    check_deliveries(&sent, &got);
}
