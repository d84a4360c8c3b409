//! A consumer of order events for tests: an exclusive, auto-deleted queue bound to a topic
//! exchange (declared as the sink declares it, so whichever comes first creates it).

use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, Consumer, ExchangeKind};

use super::amqp_url;

/// Binds a fresh queue to `exchange` with `pattern` and consumes it without acks. Keep the
/// connection alive as long as the consumer is used.
pub async fn bind_consumer(exchange: &str, pattern: &str) -> (Connection, Consumer) {
    let conn = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| panic!("consumer connect (is RabbitMQ up?): {e}"));
    let channel = conn
        .create_channel()
        .await
        .unwrap_or_else(|e| panic!("consumer channel: {e}"));
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("declare exchange: {e}"));
    let private = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    let queue = channel
        .queue_declare("".into(), private, FieldTable::default())
        .await
        .unwrap_or_else(|e| panic!("declare queue: {e}"));
    channel
        .queue_bind(
            queue.name().clone(),
            exchange.into(),
            pattern.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("bind queue: {e}"));
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..BasicConsumeOptions::default()
    };
    let consumer = channel
        .basic_consume(
            queue.name().clone(),
            "emporium-test".into(),
            no_ack,
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("consume: {e}"));
    (conn, consumer)
}
