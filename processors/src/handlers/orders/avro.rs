//! Direct decoders of the `orders` events from their Avro values, as the catalogue's
//! (`handlers/catalog/avro.rs`, whose value readers this uses): `from_avro` goes through
//! serde and was the largest part of this processor's fold. Each answers `None` for a value
//! not of its schema's shape, which the caller then decodes with `from_avro` (which says
//! what is wrong); when it answers, it gives what `from_avro` gives (checked below).

use apache_avro::types::Value;
use fleuve_schemas::{
    OrderCancelled, OrderDelivered, OrderLine, OrderPlaced, OrderShipped, PaymentAuthorized,
    PaymentFailed, ShippingAddress,
};

use crate::handlers::catalog::avro::{array, field, int, long, optional, string};

/// The record's fields.
fn record(v: &Value) -> Option<&[(String, Value)]> {
    match v {
        Value::Record(f) => Some(f),
        _ => None,
    }
}

/// The envelope fields every event starts with.
struct Envelope {
    event_id: String,
    occurred_at: i64,
    producer: String,
    correlation_id: Option<String>,
    order_id: String,
}

fn envelope(f: &[(String, Value)]) -> Option<Envelope> {
    Some(Envelope {
        event_id: string(field(f, "event_id")?)?,
        occurred_at: long(field(f, "occurred_at")?)?,
        producer: string(field(f, "producer")?)?,
        correlation_id: optional(field(f, "correlation_id")?, string)?,
        order_id: string(field(f, "order_id")?)?,
    })
}

fn line(v: &Value) -> Option<OrderLine> {
    let f = record(v)?;
    Some(OrderLine {
        sku: string(field(f, "sku")?)?,
        quantity: int(field(f, "quantity")?)?,
        unit_price_minor: long(field(f, "unit_price_minor")?)?,
    })
}

fn address(v: &Value) -> Option<ShippingAddress> {
    let f = record(v)?;
    Some(ShippingAddress {
        name: string(field(f, "name")?)?,
        line1: string(field(f, "line1")?)?,
        line2: optional(field(f, "line2")?, string)?,
        postal_code: string(field(f, "postal_code")?)?,
        city: string(field(f, "city")?)?,
        country: string(field(f, "country")?)?,
    })
}

pub(super) fn order_placed(v: &Value) -> Option<OrderPlaced> {
    let f = record(v)?;
    let e = envelope(f)?;
    Some(OrderPlaced {
        event_id: e.event_id,
        occurred_at: e.occurred_at,
        producer: e.producer,
        correlation_id: e.correlation_id,
        order_id: e.order_id,
        buyer_id: string(field(f, "buyer_id")?)?,
        seller_id: string(field(f, "seller_id")?)?,
        lines: array(field(f, "lines")?, line)?,
        currency: string(field(f, "currency")?)?,
        shipping_address: address(field(f, "shipping_address")?)?,
    })
}

pub(super) fn payment_authorized(v: &Value) -> Option<PaymentAuthorized> {
    let f = record(v)?;
    let e = envelope(f)?;
    Some(PaymentAuthorized {
        event_id: e.event_id,
        occurred_at: e.occurred_at,
        producer: e.producer,
        correlation_id: e.correlation_id,
        order_id: e.order_id,
        amount_minor: long(field(f, "amount_minor")?)?,
        currency: string(field(f, "currency")?)?,
        payment_ref: string(field(f, "payment_ref")?)?,
    })
}

pub(super) fn payment_failed(v: &Value) -> Option<PaymentFailed> {
    let f = record(v)?;
    let e = envelope(f)?;
    Some(PaymentFailed {
        event_id: e.event_id,
        occurred_at: e.occurred_at,
        producer: e.producer,
        correlation_id: e.correlation_id,
        order_id: e.order_id,
        reason: string(field(f, "reason")?)?,
    })
}

pub(super) fn order_shipped(v: &Value) -> Option<OrderShipped> {
    let f = record(v)?;
    let e = envelope(f)?;
    Some(OrderShipped {
        event_id: e.event_id,
        occurred_at: e.occurred_at,
        producer: e.producer,
        correlation_id: e.correlation_id,
        order_id: e.order_id,
        carrier: string(field(f, "carrier")?)?,
        tracking_number: optional(field(f, "tracking_number")?, string)?,
    })
}

pub(super) fn order_delivered(v: &Value) -> Option<OrderDelivered> {
    let e = envelope(record(v)?)?;
    Some(OrderDelivered {
        event_id: e.event_id,
        occurred_at: e.occurred_at,
        producer: e.producer,
        correlation_id: e.correlation_id,
        order_id: e.order_id,
    })
}

pub(super) fn order_cancelled(v: &Value) -> Option<OrderCancelled> {
    let f = record(v)?;
    let e = envelope(f)?;
    Some(OrderCancelled {
        event_id: e.event_id,
        occurred_at: e.occurred_at,
        producer: e.producer,
        correlation_id: e.correlation_id,
        order_id: e.order_id,
        reason: string(field(f, "reason")?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleuve_schemas::Event;

    fn check<E: Event + PartialEq + std::fmt::Debug>(e: &E, fast: fn(&Value) -> Option<E>) {
        let value = e.to_avro().unwrap();
        let decoded = fast(&value).expect("the schema's shapes are read");
        assert_eq!(&decoded, e);
        assert_eq!(decoded, E::from_avro(&value).unwrap());
        assert_eq!(fast(&Value::Null), None);
    }

    #[test]
    fn decode_as_from_avro_does() {
        for (i, correlation_id) in [None, Some("corr-1".to_owned())].into_iter().enumerate() {
            let env = |n: u8| {
                (
                    format!("00000000-0000-4000-8000-0000000000{i}{n}"),
                    1_700_000_000_000 + i64::from(n),
                )
            };
            let (event_id, occurred_at) = env(1);
            check(
                &OrderPlaced {
                    event_id,
                    occurred_at,
                    producer: "shop".to_owned(),
                    correlation_id: correlation_id.clone(),
                    order_id: "o-1".to_owned(),
                    buyer_id: "b-1".to_owned(),
                    seller_id: "s-1".to_owned(),
                    lines: vec![
                        OrderLine {
                            sku: "sku-1".to_owned(),
                            quantity: 2,
                            unit_price_minor: 500,
                        },
                        OrderLine {
                            sku: "sku-2".to_owned(),
                            quantity: 1,
                            unit_price_minor: 0,
                        },
                    ],
                    currency: "EUR".to_owned(),
                    shipping_address: ShippingAddress {
                        name: "Camille \"Cam\" Martin".to_owned(),
                        line1: "12 rue de la République".to_owned(),
                        line2: (i == 1).then(|| "bât. B".to_owned()),
                        postal_code: "13001".to_owned(),
                        city: "Marseille".to_owned(),
                        country: "FR".to_owned(),
                    },
                },
                order_placed,
            );
            let (event_id, occurred_at) = env(2);
            check(
                &PaymentAuthorized {
                    event_id,
                    occurred_at,
                    producer: "psp".to_owned(),
                    correlation_id: correlation_id.clone(),
                    order_id: "o-1".to_owned(),
                    amount_minor: 1_000,
                    currency: "EUR".to_owned(),
                    payment_ref: "pay-1".to_owned(),
                },
                payment_authorized,
            );
            let (event_id, occurred_at) = env(3);
            check(
                &PaymentFailed {
                    event_id,
                    occurred_at,
                    producer: "psp".to_owned(),
                    correlation_id: correlation_id.clone(),
                    order_id: "o-1".to_owned(),
                    reason: "card declined".to_owned(),
                },
                payment_failed,
            );
            let (event_id, occurred_at) = env(4);
            check(
                &OrderShipped {
                    event_id,
                    occurred_at,
                    producer: "wms".to_owned(),
                    correlation_id: correlation_id.clone(),
                    order_id: "o-1".to_owned(),
                    carrier: "colissimo".to_owned(),
                    tracking_number: (i == 0).then(|| "TRK1".to_owned()),
                },
                order_shipped,
            );
            let (event_id, occurred_at) = env(5);
            check(
                &OrderDelivered {
                    event_id,
                    occurred_at,
                    producer: "wms".to_owned(),
                    correlation_id: correlation_id.clone(),
                    order_id: "o-1".to_owned(),
                },
                order_delivered,
            );
            let (event_id, occurred_at) = env(6);
            check(
                &OrderCancelled {
                    event_id,
                    occurred_at,
                    producer: "shop".to_owned(),
                    correlation_id,
                    order_id: "o-1".to_owned(),
                    reason: "changed my mind".to_owned(),
                },
                order_cancelled,
            );
        }
    }
}
