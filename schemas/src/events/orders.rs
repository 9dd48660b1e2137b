//! Topic `orders`, keyed by order id: an order's life from placement to delivery.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{
    country_field, currency_field, envelope_rules, fail, id_field, non_negative, positive,
    text_field, Event,
};
use crate::json::FieldError;

/// Longest address text (name, line, postal code, city) accepted, in bytes.
pub const MAX_ADDRESS_BYTES: usize = 256;
/// Longest failure or cancellation reason accepted, in bytes.
pub const MAX_REASON_BYTES: usize = 1024;

/// One product of an order (record `fleuve.orders.OrderLine`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// Stock keeping unit; unique within the order.
    pub sku: String,
    /// Units ordered, > 0.
    pub quantity: i32,
    /// Price of one unit in minor units of the order's currency, >= 0.
    pub unit_price_minor: i64,
}

/// Where an order is delivered (record `fleuve.orders.ShippingAddress`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippingAddress {
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub postal_code: String,
    pub city: String,
    /// ISO 3166-1 alpha-2 code.
    pub country: String,
}

/// A buyer placed an order with a seller (`orders`, key `order_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub event_id: String,
    pub occurred_at: i64,
    pub producer: String,
    pub correlation_id: Option<String>,
    /// The order; the Kafka key.
    pub order_id: String,
    pub buyer_id: String,
    pub seller_id: String,
    /// At least one line, each sku once.
    pub lines: Vec<OrderLine>,
    /// ISO 4217 code of every amount of the order.
    pub currency: String,
    pub shipping_address: ShippingAddress,
}

impl OrderPlaced {
    /// Sum of `quantity × unit_price_minor` over the lines, in minor units; `None` on
    /// overflow (which [`Event::validate`] rejects).
    pub fn total_minor(&self) -> Option<i64> {
        self.lines.iter().try_fold(0i64, |total, line| {
            i64::from(line.quantity)
                .checked_mul(line.unit_price_minor)
                .and_then(|amount| total.checked_add(amount))
        })
    }
}

impl Event for OrderPlaced {
    const TYPE: &'static str = "OrderPlaced";

    envelope_from_fields!();

    fn key(&self) -> &str {
        &self.order_id
    }

    fn validate(&self) -> Result<(), FieldError> {
        envelope_rules(&self.envelope())?;
        id_field("order_id", &self.order_id)?;
        id_field("buyer_id", &self.buyer_id)?;
        id_field("seller_id", &self.seller_id)?;
        if self.lines.is_empty() {
            return Err(fail("lines", "must have at least one line"));
        }
        let mut skus = HashMap::new();
        for (i, line) in self.lines.iter().enumerate() {
            let sku = format!("lines[{i}].sku");
            id_field(&sku, &line.sku)?;
            if let Some(first) = skus.insert(line.sku.as_str(), i) {
                return Err(fail(
                    &sku,
                    format!("`{}` is already on lines[{first}]", line.sku),
                ));
            }
            positive(&format!("lines[{i}].quantity"), line.quantity.into())?;
            non_negative(
                &format!("lines[{i}].unit_price_minor"),
                line.unit_price_minor,
            )?;
        }
        if self.total_minor().is_none() {
            return Err(fail(
                "lines",
                "the order total (sum of quantity x unit_price_minor) overflows a 64-bit long",
            ));
        }
        currency_field("currency", &self.currency)?;
        let a = &self.shipping_address;
        for (field, value) in [
            ("shipping_address.name", &a.name),
            ("shipping_address.line1", &a.line1),
            ("shipping_address.postal_code", &a.postal_code),
            ("shipping_address.city", &a.city),
        ] {
            text_field(field, value, MAX_ADDRESS_BYTES)?;
        }
        if let Some(line2) = &a.line2 {
            text_field("shipping_address.line2", line2, MAX_ADDRESS_BYTES)?;
        }
        country_field("shipping_address.country", &a.country)
    }
}

/// The payment of an order was authorized (`orders`, key `order_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentAuthorized {
    pub event_id: String,
    pub occurred_at: i64,
    pub producer: String,
    pub correlation_id: Option<String>,
    /// The order; the Kafka key.
    pub order_id: String,
    /// Authorized amount in minor units, > 0.
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Reference at the payment provider.
    pub payment_ref: String,
}

impl Event for PaymentAuthorized {
    const TYPE: &'static str = "PaymentAuthorized";

    envelope_from_fields!();

    fn key(&self) -> &str {
        &self.order_id
    }

    fn validate(&self) -> Result<(), FieldError> {
        envelope_rules(&self.envelope())?;
        id_field("order_id", &self.order_id)?;
        positive("amount_minor", self.amount_minor)?;
        currency_field("currency", &self.currency)?;
        id_field("payment_ref", &self.payment_ref)
    }
}

/// The payment of an order was refused or could not complete (`orders`, key `order_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentFailed {
    pub event_id: String,
    pub occurred_at: i64,
    pub producer: String,
    pub correlation_id: Option<String>,
    /// The order; the Kafka key.
    pub order_id: String,
    pub reason: String,
}

impl Event for PaymentFailed {
    const TYPE: &'static str = "PaymentFailed";

    envelope_from_fields!();

    fn key(&self) -> &str {
        &self.order_id
    }

    fn validate(&self) -> Result<(), FieldError> {
        envelope_rules(&self.envelope())?;
        id_field("order_id", &self.order_id)?;
        text_field("reason", &self.reason, MAX_REASON_BYTES)
    }
}

/// The seller handed an order to a carrier (`orders`, key `order_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderShipped {
    pub event_id: String,
    pub occurred_at: i64,
    pub producer: String,
    pub correlation_id: Option<String>,
    /// The order; the Kafka key.
    pub order_id: String,
    pub carrier: String,
    pub tracking_number: Option<String>,
}

impl Event for OrderShipped {
    const TYPE: &'static str = "OrderShipped";

    envelope_from_fields!();

    fn key(&self) -> &str {
        &self.order_id
    }

    fn validate(&self) -> Result<(), FieldError> {
        envelope_rules(&self.envelope())?;
        id_field("order_id", &self.order_id)?;
        id_field("carrier", &self.carrier)?;
        if let Some(t) = &self.tracking_number {
            id_field("tracking_number", t)?;
        }
        Ok(())
    }
}

/// The carrier delivered an order (`orders`, key `order_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderDelivered {
    pub event_id: String,
    pub occurred_at: i64,
    pub producer: String,
    pub correlation_id: Option<String>,
    /// The order; the Kafka key.
    pub order_id: String,
}

impl Event for OrderDelivered {
    const TYPE: &'static str = "OrderDelivered";

    envelope_from_fields!();

    fn key(&self) -> &str {
        &self.order_id
    }

    fn validate(&self) -> Result<(), FieldError> {
        envelope_rules(&self.envelope())?;
        id_field("order_id", &self.order_id)
    }
}

/// An order was cancelled before delivery (`orders`, key `order_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCancelled {
    pub event_id: String,
    pub occurred_at: i64,
    pub producer: String,
    pub correlation_id: Option<String>,
    /// The order; the Kafka key.
    pub order_id: String,
    pub reason: String,
}

impl Event for OrderCancelled {
    const TYPE: &'static str = "OrderCancelled";

    envelope_from_fields!();

    fn key(&self) -> &str {
        &self.order_id
    }

    fn validate(&self) -> Result<(), FieldError> {
        envelope_rules(&self.envelope())?;
        id_field("order_id", &self.order_id)?;
        text_field("reason", &self.reason, MAX_REASON_BYTES)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::events::testing::{country, currency, envelope, id, rejects, text};

    prop_compose! {
        fn address()(
            name in text(40), line1 in text(60), line2 in proptest::option::of(text(60)),
            postal_code in "[A-Z0-9 -]{1,10}", city in text(40), country in country(),
        ) -> ShippingAddress {
            ShippingAddress { name, line1, line2, postal_code, city, country }
        }
    }

    prop_compose! {
        fn order_placed()(
            e in envelope(), order_id in id(), buyer_id in id(), seller_id in id(),
            lines in proptest::collection::btree_map(
                id(), (1..=1_000i32, 0..=1_000_000_000i64), 1..6),
            currency in currency(), shipping_address in address(),
        ) -> OrderPlaced {
            OrderPlaced {
                event_id: e.event_id, occurred_at: e.occurred_at, producer: e.producer,
                correlation_id: e.correlation_id, order_id, buyer_id, seller_id,
                lines: lines
                    .into_iter()
                    .map(|(sku, (quantity, unit_price_minor))| OrderLine { sku, quantity, unit_price_minor })
                    .collect(),
                currency, shipping_address,
            }
        }
    }

    prop_compose! {
        fn payment_authorized()(
            e in envelope(), order_id in id(), amount_minor in 1..=i64::MAX,
            currency in currency(), payment_ref in id(),
        ) -> PaymentAuthorized {
            PaymentAuthorized {
                event_id: e.event_id, occurred_at: e.occurred_at, producer: e.producer,
                correlation_id: e.correlation_id, order_id, amount_minor, currency, payment_ref,
            }
        }
    }

    prop_compose! {
        fn payment_failed()(e in envelope(), order_id in id(), reason in text(100)) -> PaymentFailed {
            PaymentFailed {
                event_id: e.event_id, occurred_at: e.occurred_at, producer: e.producer,
                correlation_id: e.correlation_id, order_id, reason,
            }
        }
    }

    prop_compose! {
        fn order_shipped()(
            e in envelope(), order_id in id(), carrier in id(),
            tracking_number in proptest::option::of(id()),
        ) -> OrderShipped {
            OrderShipped {
                event_id: e.event_id, occurred_at: e.occurred_at, producer: e.producer,
                correlation_id: e.correlation_id, order_id, carrier, tracking_number,
            }
        }
    }

    prop_compose! {
        fn order_delivered()(e in envelope(), order_id in id()) -> OrderDelivered {
            OrderDelivered {
                event_id: e.event_id, occurred_at: e.occurred_at, producer: e.producer,
                correlation_id: e.correlation_id, order_id,
            }
        }
    }

    prop_compose! {
        fn order_cancelled()(e in envelope(), order_id in id(), reason in text(100)) -> OrderCancelled {
            OrderCancelled {
                event_id: e.event_id, occurred_at: e.occurred_at, producer: e.producer,
                correlation_id: e.correlation_id, order_id, reason,
            }
        }
    }

    round_trip_proptests! {
        order_placed_round_trips_through_avro_binary: OrderPlaced => order_placed();
        payment_authorized_round_trips_through_avro_binary: PaymentAuthorized => payment_authorized();
        payment_failed_round_trips_through_avro_binary: PaymentFailed => payment_failed();
        order_shipped_round_trips_through_avro_binary: OrderShipped => order_shipped();
        order_delivered_round_trips_through_avro_binary: OrderDelivered => order_delivered();
        order_cancelled_round_trips_through_avro_binary: OrderCancelled => order_cancelled();
    }

    fn order() -> OrderPlaced {
        OrderPlaced {
            event_id: "0b5b1f6e-7a0b-4a53-9c0e-0d2f4e3b8a11".into(),
            occurred_at: 1,
            producer: "orders".into(),
            correlation_id: Some("req-1".into()),
            order_id: "o-1".into(),
            buyer_id: "b-1".into(),
            seller_id: "s-1".into(),
            lines: vec![
                OrderLine {
                    sku: "sku-1".into(),
                    quantity: 2,
                    unit_price_minor: 1_999,
                },
                OrderLine {
                    sku: "sku-2".into(),
                    quantity: 1,
                    unit_price_minor: 0,
                },
                OrderLine {
                    sku: "sku-3".into(),
                    quantity: 1,
                    unit_price_minor: 500,
                },
            ],
            currency: "EUR".into(),
            shipping_address: ShippingAddress {
                name: "Camille Martin".into(),
                line1: "12 rue de la Paix".into(),
                line2: None,
                postal_code: "75002".into(),
                city: "Paris".into(),
                country: "FR".into(),
            },
        }
    }

    #[test]
    fn order_rules_name_the_field() {
        assert_eq!(order().total_minor(), Some(4_498));
        rejects(
            &order(),
            &[
                (|e| e.lines.clear(), "lines"),
                (|e| e.lines[2].sku = "sku-1".into(), "lines[2].sku"),
                (|e| e.lines[2].sku = String::new(), "lines[2].sku"),
                (|e| e.lines[1].quantity = 0, "lines[1].quantity"),
                (
                    |e| e.lines[1].unit_price_minor = -1,
                    "lines[1].unit_price_minor",
                ),
                (
                    |e| {
                        e.lines[0].unit_price_minor = i64::MAX;
                    },
                    "lines",
                ),
                (|e| e.currency = "eur".into(), "currency"),
                (|e| e.currency = "EURO".into(), "currency"),
                (|e| e.buyer_id = String::new(), "buyer_id"),
                (|e| e.seller_id = "x".repeat(200), "seller_id"),
                (|e| e.order_id = "\u{1b}".into(), "order_id"),
                (
                    |e| e.shipping_address.country = "FX".into(),
                    "shipping_address.country",
                ),
                (
                    |e| e.shipping_address.city = String::new(),
                    "shipping_address.city",
                ),
                (
                    |e| e.shipping_address.line2 = Some("a\nb".into()),
                    "shipping_address.line2",
                ),
            ],
        );
    }

    #[test]
    fn payment_and_shipping_rules_name_the_field() {
        let authorized = PaymentAuthorized {
            event_id: "0b5b1f6e-7a0b-4a53-9c0e-0d2f4e3b8a11".into(),
            occurred_at: 1,
            producer: "payments".into(),
            correlation_id: None,
            order_id: "o-1".into(),
            amount_minor: 4_498,
            currency: "EUR".into(),
            payment_ref: "psp_123".into(),
        };
        rejects(
            &authorized,
            &[
                (|e| e.amount_minor = 0, "amount_minor"),
                (|e| e.currency = "E1R".into(), "currency"),
                (|e| e.payment_ref = String::new(), "payment_ref"),
            ],
        );
        let failed = PaymentFailed {
            event_id: "0b5b1f6e-7a0b-4a53-9c0e-0d2f4e3b8a11".into(),
            occurred_at: 1,
            producer: "payments".into(),
            correlation_id: None,
            order_id: "o-1".into(),
            reason: "card declined".into(),
        };
        rejects(&failed, &[(|e| e.reason = String::new(), "reason")]);
        let shipped = OrderShipped {
            event_id: "0b5b1f6e-7a0b-4a53-9c0e-0d2f4e3b8a11".into(),
            occurred_at: 1,
            producer: "orders".into(),
            correlation_id: None,
            order_id: "o-1".into(),
            carrier: "colissimo".into(),
            tracking_number: Some("6A123".into()),
        };
        rejects(
            &shipped,
            &[
                (|e| e.carrier = String::new(), "carrier"),
                (
                    |e| e.tracking_number = Some(String::new()),
                    "tracking_number",
                ),
            ],
        );
        let cancelled = OrderCancelled {
            event_id: "0b5b1f6e-7a0b-4a53-9c0e-0d2f4e3b8a11".into(),
            occurred_at: 1,
            producer: "orders".into(),
            correlation_id: None,
            order_id: "o-1".into(),
            reason: "buyer changed their mind".into(),
        };
        rejects(&cancelled, &[(|e| e.reason = "x".repeat(1025), "reason")]);
    }

    #[test]
    fn json_from_the_ingest_is_checked_with_the_field_path() {
        let spec = OrderPlaced::spec();
        let mut doc = serde_json::to_value(order()).unwrap();
        doc["lines"][1]["sku"] = json!("sku-1");
        let value = crate::json::to_avro(&spec.schema, &doc).unwrap();
        let Err(crate::EventError::Invalid(e)) = spec.check(&value) else {
            panic!("expected a field error")
        };
        assert_eq!(e.field, "lines[1].sku");
        doc["lines"][0]["quantity"] = json!(1.5);
        assert_eq!(
            crate::json::to_avro(&spec.schema, &doc).unwrap_err().field,
            "lines[0].quantity"
        );
        doc["lines"][0]["quantity"] = json!(2);
        doc["shipping_address"]["zip"] = json!("75002");
        assert_eq!(
            crate::json::to_avro(&spec.schema, &doc).unwrap_err().field,
            "shipping_address.zip"
        );
    }
}
