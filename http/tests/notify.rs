//! `emporium notify` against the real servers: the machine's RabbitMQ and Redis, a capturing
//! SMTP server (aiosmtpd) of each test's own, the real binary. Every test uses its own exchange
//! and queue, so tests run side by side without seeing each other's events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::notify::*;
use common::*;
use emporium_persistence::testkit::{amqp_url, Private, Proxy};
use serde_json::{json, Value};

#[actix_rt::test]
async fn checkout_shipping_and_cancel_each_email_the_customer_once() {
    let rig = Rig::new().await;
    let notifier = rig.notifier(&[]);
    let node = Node::start(
        NodeOpts::new()
            .demo_catalog(false)
            .env("EMPORIUM_AMQP_URL", &amqp_url())
            .env("EMPORIUM_AMQP_EXCHANGE", &rig.exchange),
    );
    let admin = admin_token(&node).await;
    create_product(&node, &admin, "Green Teapot", "TEA-GREEN", 19.99, Some(50)).await;
    let customer = format!("ann-{}@example.com", uuid::Uuid::new_v4().simple());
    let token = register(&node, "ann", &customer, PASSWORD).await;

    // Order 1: checkout, then paid (no email for payment by default), then shipped.
    assert_eq!(add_to_cart(&node, &token, "TEA-GREEN", 3).await, 204);
    let (s, order1) = node.post("/api/checkout", Some(&token), json!({})).await;
    assert_eq!(s, 201, "checkout: {order1}");
    let id1 = id_of(&order1);
    for status in ["Paid", "Shipped"] {
        let path = format!("/api/admin/orders/{id1}/status");
        let (s, b) = node
            .post(&path, Some(&admin), json!({"status": status}))
            .await;
        assert_eq!(s, 200, "{status}: {b}");
    }
    // Order 2: checkout, then the customer cancels.
    assert_eq!(add_to_cart(&node, &token, "TEA-GREEN", 1).await, 204);
    let (s, order2) = node.post("/api/checkout", Some(&token), json!({})).await;
    assert_eq!(s, 201, "checkout: {order2}");
    let id2 = id_of(&order2);
    let (s, b) = node
        .post(
            &format!("/api/orders/{id2}/cancel"),
            Some(&token),
            Value::Null,
        )
        .await;
    assert_eq!(s, 200, "cancel: {b}");

    // Five events: created, paid, shipped, created, cancelled; four of them are emails.
    wait_for("five events handled", Duration::from_secs(60), || {
        (counter(&notifier, "emporium_notify_consumed_total") >= 5.0
            && counter(&notifier, "emporium_notify_sent_total") >= 4.0)
            .then_some(())
    })
    .await;
    let mails = rig.smtp.mails_to(&customer);
    let mut by_subject: BTreeMap<String, Mail> = BTreeMap::new();
    for m in &mails {
        assert!(
            by_subject.insert(m.subject.clone(), m.clone()).is_none(),
            "twice: {m:?}"
        );
    }
    assert_eq!(mails.len(), 4, "{:#?}", mails);
    let expect = [
        (
            format!("We received your order (order {id1})"),
            &id1,
            "Created",
            "59.97 USD",
            "3 x Green Teapot",
        ),
        (
            format!("Your order has shipped (order {id1})"),
            &id1,
            "Shipped",
            "59.97 USD",
            "3 x Green Teapot",
        ),
        (
            format!("We received your order (order {id2})"),
            &id2,
            "Created",
            "19.99 USD",
            "1 x Green Teapot",
        ),
        (
            format!("Your order was cancelled (order {id2})"),
            &id2,
            "Cancelled",
            "19.99 USD",
            "1 x Green Teapot",
        ),
    ];
    for (subject, id, status, total, line) in expect {
        let m = by_subject
            .get(&subject)
            .unwrap_or_else(|| panic!("no email {subject:?} among {:#?}", by_subject.keys()));
        assert_eq!(m.mail_from, FROM);
        let text = m.text.clone().unwrap_or_default();
        let html = m.html.clone().unwrap_or_default();
        for wanted in [id.as_str(), total, "TEA-GREEN", &customer] {
            assert!(
                text.contains(wanted),
                "{subject}: text lacks {wanted}:\n{text}"
            );
            assert!(
                html.contains(wanted),
                "{subject}: html lacks {wanted}:\n{html}"
            );
        }
        assert!(
            text.contains(&format!("Status:  {status}")),
            "{subject}:\n{text}"
        );
        assert!(text.contains(line), "{subject}:\n{text}");
        assert!(text.contains("Placed:  20"), "{subject}: no date:\n{text}");
        assert!(
            html.contains(&format!("<td>{status}</td>")),
            "{subject}:\n{html}"
        );
    }
    assert_eq!(counter(&notifier, "emporium_notify_no_template_total"), 1.0);
    rig.clean_up().await;
}

#[actix_rt::test]
async fn an_event_delivered_three_times_is_emailed_once() {
    let rig = Rig::new().await;
    let notifier = rig.notifier(&[]);
    let customer = format!("bo-{}@example.com", uuid::Uuid::new_v4().simple());
    let id = uuid::Uuid::new_v4().to_string();
    let body = event_body(&id, "order.shipped", &customer);
    for _ in 0..3 {
        rig.publish("order.shipped", &id, &body).await;
    }
    wait_for("three deliveries handled", Duration::from_secs(30), || {
        (counter(&notifier, "emporium_notify_consumed_total") >= 3.0).then_some(())
    })
    .await;
    let mails = rig.smtp.mails_to(&customer);
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert_eq!(event_of(&mails[0]), id);
    assert_eq!(
        counter(&notifier, "emporium_notify_duplicates_skipped_total"),
        2.0
    );
    assert_eq!(counter(&notifier, "emporium_notify_sent_total"), 1.0);
    rig.clean_up().await;
}

#[actix_rt::test]
async fn events_wait_while_smtp_is_down_and_are_sent_when_it_is_back() {
    let mut rig = Rig::new().await;
    // Attempts 250 ms, 0.5 s, 1 s, 2 s, then every 4 s: eight attempts span about 16 s.
    let mut notifier = rig.notifier(&[("EMPORIUM_NOTIFY_MAX_ATTEMPTS", "8")]);
    let customer = format!("cy-{}@example.com", uuid::Uuid::new_v4().simple());
    rig.smtp.down();
    let stopped = Instant::now();
    let mut ids = Vec::new();
    for kind in ["order.created", "order.shipped", "order.delivered"] {
        ids.push(rig.publish_event(kind, &customer).await);
    }
    wait_for("a failed attempt", Duration::from_secs(20), || {
        (counter(&notifier, "emporium_notify_retried_total") >= 1.0).then_some(())
    })
    .await;
    // SMTP stays away for 10 s; nothing is sent, nothing dead-lettered, the consumer lives.
    while stopped.elapsed() < Duration::from_secs(10) {
        assert!(notifier.is_running(), "{}", notifier.log_tail(40));
        assert_eq!(
            counter(&notifier, "emporium_notify_dead_lettered_total"),
            0.0
        );
        actix_rt::time::sleep(Duration::from_millis(500)).await;
    }
    rig.smtp.up();
    let mails = wait_for(
        "three emails after SMTP is back",
        Duration::from_secs(30),
        || {
            let m = rig.smtp.mails_to(&customer);
            (m.len() >= 3).then_some(m)
        },
    )
    .await;
    let mut got: Vec<String> = mails.iter().map(event_of).collect();
    got.sort();
    ids.sort();
    assert_eq!(got, ids);
    assert!(rig.take_dead_letters().await.is_empty());
    assert!(counter(&notifier, "emporium_notify_retried_total") >= 2.0);
    assert!(notifier.is_running());
    rig.clean_up().await;
}

#[actix_rt::test]
async fn refused_recipients_and_unreadable_messages_are_dead_lettered_and_consuming_goes_on() {
    let rig = Rig::new().await;
    let mut notifier = rig.notifier(&[
        ("EMPORIUM_NOTIFY_MAX_ATTEMPTS", "3"),
        ("EMPORIUM_NOTIFY_RETRY_INITIAL_MS", "100"),
    ]);
    let refused = format!(
        "{REJECTED_PREFIX}{}@example.com",
        uuid::Uuid::new_v4().simple()
    );
    let fine = format!("dee-{}@example.com", uuid::Uuid::new_v4().simple());
    rig.publish_event("order.created", &refused).await;
    rig.publish("order.created", "garbage-1", b"\x00not json at all")
        .await;
    let newer = uuid::Uuid::new_v4().to_string();
    let mut body: Value =
        serde_json::from_slice(&event_body(&newer, "order.created", &fine)).unwrap();
    body["version"] = json!(2);
    rig.publish("order.created", &newer, &serde_json::to_vec(&body).unwrap())
        .await;
    let ok = rig.publish_event("order.created", &fine).await;

    let mails = wait_for(
        "the readable event emailed",
        Duration::from_secs(30),
        || {
            let m = rig.smtp.mails_to(&fine);
            (!m.is_empty()).then_some(m)
        },
    )
    .await;
    assert_eq!(mails.iter().map(event_of).collect::<Vec<_>>(), vec![ok]);
    let dead = {
        let mut dead = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while dead.len() < 3 && Instant::now() < deadline {
            dead.extend(rig.take_dead_letters().await);
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
        dead
    };
    assert_eq!(dead.len(), 3, "{dead:?}");
    let reasons: Vec<&str> = dead.iter().map(|(_, r)| r.as_str()).collect();
    assert!(
        reasons[0].contains("permanent")
            && reasons[0].contains("550")
            && reasons[0].contains("after 3 attempts"),
        "{reasons:?}"
    );
    assert!(reasons[1].starts_with("malformed event"), "{reasons:?}");
    assert_eq!(dead[1].0, b"\x00not json at all".to_vec());
    assert!(
        reasons[2].contains("unknown event version 2"),
        "{reasons:?}"
    );
    let text = notifier.metrics();
    assert_eq!(
        metric(
            &text,
            "emporium_notify_dead_lettered_total",
            &[("reason", "smtp_permanent")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "emporium_notify_dead_lettered_total",
            &[("reason", "malformed")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "emporium_notify_dead_lettered_total",
            &[("reason", "unknown_version")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, "emporium_notify_retried_total", &[]),
        Some(2.0)
    );
    assert!(rig.smtp.mails_to(&refused).is_empty());
    assert!(notifier.is_running(), "{}", notifier.log_tail(40));
    rig.clean_up().await;
}

#[actix_rt::test]
async fn a_consumer_killed_mid_stream_emails_every_event_and_at_most_the_one_in_flight_twice() {
    const EVENTS: usize = 300;
    let rig = Rig::new().await;
    // Declares the queue, then stops, so the whole stream is waiting when the next one starts.
    let mut first = rig.notifier(&[]);
    first.kill9();
    let customer = format!("eve-{}@example.com", uuid::Uuid::new_v4().simple());
    let mut ids = Vec::new();
    for _ in 0..EVENTS {
        ids.push(rig.publish_event("order.shipped", &customer).await);
    }
    let mut notifier = rig.notifier(&[]);
    wait_for("a part of the stream sent", Duration::from_secs(60), || {
        (rig.smtp.mails_to(&customer).len() >= EVENTS / 5).then_some(())
    })
    .await;
    notifier.kill9();
    let before_restart = rig.smtp.mails_to(&customer).len();
    assert!(
        before_restart < EVENTS,
        "the stream was over before the kill"
    );
    notifier.spawn();
    notifier.wait_ready();
    let mails = wait_for("every event emailed", Duration::from_secs(120), || {
        let m = rig.smtp.mails_to(&customer);
        let mut distinct: Vec<String> = m.iter().map(event_of).collect();
        distinct.sort();
        distinct.dedup();
        (distinct.len() >= EVENTS).then_some(m)
    })
    .await;
    let mut per_event: BTreeMap<String, usize> = BTreeMap::new();
    for m in &mails {
        *per_event.entry(event_of(m)).or_default() += 1;
    }
    let twice = per_event.values().filter(|n| **n > 1).count();
    println!(
        "killed after {before_restart} of {EVENTS} emails; after the restart every event was \
         emailed, {twice} of them twice"
    );
    ids.sort();
    assert_eq!(per_event.keys().cloned().collect::<Vec<_>>(), ids);
    assert!(per_event.values().all(|n| *n <= 2), "{per_event:?}");
    assert!(twice <= 1, "{twice} events emailed twice");
    rig.clean_up().await;
}

#[actix_rt::test]
async fn a_lost_broker_is_reconnected_to_and_the_waiting_events_are_emailed() {
    let rig = Rig::new().await;
    let upstream = amqp_url();
    let host_port = upstream
        .rsplit('@')
        .next()
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default()
        .to_owned();
    let broker = Proxy::to_addr(host_port.parse().expect("the test broker's ip:port"));
    let proxied = upstream.replacen(&host_port, &format!("127.0.0.1:{}", broker.port), 1);
    let mut notifier = rig.notifier(&[("EMPORIUM_AMQP_URL", proxied.as_str())]);
    let ready = |n: &Notifier| {
        matches!(
            blocking_get_at("127.0.0.1", n.port, "/readyz"),
            Ok((200, _))
        )
    };

    broker.cut();
    wait_for(
        "/readyz to report the lost broker",
        Duration::from_secs(30),
        || (!ready(&notifier)).then_some(()),
    )
    .await;
    let customer = format!("fay-{}@example.com", uuid::Uuid::new_v4().simple());
    let mut ids = vec![
        rig.publish_event("order.created", &customer).await,
        rig.publish_event("order.cancelled", &customer).await,
    ];
    // It keeps trying (with backoff) and keeps running while the broker is away.
    wait_for(
        "the cut and two failed reconnections",
        Duration::from_secs(30),
        || {
            let log = std::fs::read_to_string(notifier.log_path()).unwrap_or_default();
            (log.matches("notification consumer disconnected").count() >= 3).then_some(())
        },
    )
    .await;
    assert!(notifier.is_running(), "{}", notifier.log_tail(40));
    assert!(rig.smtp.mails_to(&customer).is_empty());

    broker.restore();
    let mails = wait_for(
        "the waiting events emailed",
        Duration::from_secs(60),
        || {
            let m = rig.smtp.mails_to(&customer);
            (m.len() >= 2).then_some(m)
        },
    )
    .await;
    let mut got: Vec<String> = mails.iter().map(event_of).collect();
    got.sort();
    ids.sort();
    assert_eq!(got, ids);
    assert!(ready(&notifier));
    rig.clean_up().await;
}

#[actix_rt::test]
async fn events_wait_while_the_dedupe_store_is_down_and_are_emailed_once_it_is_back() {
    let rig = Rig::new().await;
    let mut redis = Private::redis();
    let url = redis.redis_url();
    let mut notifier = rig.notifier(&[("EMPORIUM_NOTIFY_REDIS_URL", url.as_str())]);
    let customer = format!("gus-{}@example.com", uuid::Uuid::new_v4().simple());
    let first = rig.publish_event("order.created", &customer).await;
    wait_for("the first email", Duration::from_secs(30), || {
        (rig.smtp.mails_to(&customer).len() == 1).then_some(())
    })
    .await;

    redis.down();
    let second = rig.publish_event("order.shipped", &customer).await;
    // Without the record nothing is sent (it could not be deduplicated), nothing dead-lettered.
    wait_for(
        "the dedupe store reported down",
        Duration::from_secs(30),
        || {
            (metric(&notifier.metrics(), "emporium_notify_redis_up", &[]) == Some(0.0))
                .then_some(())
        },
    )
    .await;
    assert_eq!(rig.smtp.mails_to(&customer).len(), 1);
    assert_eq!(
        counter(&notifier, "emporium_notify_dead_lettered_total"),
        0.0
    );
    assert!(notifier.is_running(), "{}", notifier.log_tail(40));

    redis.up();
    let mails = wait_for("the second email", Duration::from_secs(60), || {
        let m = rig.smtp.mails_to(&customer);
        (m.len() >= 2).then_some(m)
    })
    .await;
    let mut got: Vec<String> = mails.iter().map(event_of).collect();
    got.sort();
    let mut want = vec![first, second];
    want.sort();
    assert_eq!(got, want);
    rig.clean_up().await;
}
