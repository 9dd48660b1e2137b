//! Topic `inventory`, keyed by sku: the stock of each product.

use serde::{Deserialize, Serialize};

use super::{envelope_rules, fail, id_field, positive, Event};
use crate::json::FieldError;

avro_enum! {
    /// Why a stock was adjusted (Avro enum `fleuve.inventory.StockAdjustmentReason`).
    pub enum StockAdjustmentReason {
        /// Goods received from a supplier.
        Received = "RECEIVED",
        /// Inventory count correction.
        Correction = "CORRECTION",
        /// Units damaged or lost.
        Damaged = "DAMAGED",
        /// Units returned by a buyer.
        Returned = "RETURNED",
    }
}

/// The stock of a product changed for a reason other than an order (`inventory`, key
/// `sku`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockAdjusted {
    pub event_id: String,
    pub occurred_at: i64,
    pub producer: String,
    pub correlation_id: Option<String>,
    /// The product; the Kafka key.
    pub sku: String,
    /// Signed change of the stock on hand, never 0.
    pub delta: i32,
    pub reason: StockAdjustmentReason,
}

impl Event for StockAdjusted {
    const TYPE: &'static str = "StockAdjusted";

    envelope_from_fields!();

    fn key(&self) -> &str {
        &self.sku
    }

    fn validate(&self) -> Result<(), FieldError> {
        envelope_rules(&self.envelope())?;
        id_field("sku", &self.sku)?;
        if self.delta == 0 {
            return Err(fail("delta", "must not be 0"));
        }
        Ok(())
    }
}

/// Units of a product were reserved for an order (`inventory`, key `sku`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockReserved {
    pub event_id: String,
    pub occurred_at: i64,
    pub producer: String,
    pub correlation_id: Option<String>,
    /// The product; the Kafka key.
    pub sku: String,
    pub order_id: String,
    /// Units reserved, > 0.
    pub quantity: i32,
}

impl Event for StockReserved {
    const TYPE: &'static str = "StockReserved";

    envelope_from_fields!();

    fn key(&self) -> &str {
        &self.sku
    }

    fn validate(&self) -> Result<(), FieldError> {
        envelope_rules(&self.envelope())?;
        id_field("sku", &self.sku)?;
        id_field("order_id", &self.order_id)?;
        positive("quantity", self.quantity.into())
    }
}

/// Units reserved for an order went back to the available stock (`inventory`, key `sku`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockReleased {
    pub event_id: String,
    pub occurred_at: i64,
    pub producer: String,
    pub correlation_id: Option<String>,
    /// The product; the Kafka key.
    pub sku: String,
    pub order_id: String,
    /// Units released, > 0.
    pub quantity: i32,
}

impl Event for StockReleased {
    const TYPE: &'static str = "StockReleased";

    envelope_from_fields!();

    fn key(&self) -> &str {
        &self.sku
    }

    fn validate(&self) -> Result<(), FieldError> {
        envelope_rules(&self.envelope())?;
        id_field("sku", &self.sku)?;
        id_field("order_id", &self.order_id)?;
        positive("quantity", self.quantity.into())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::events::testing::{enum_symbols, envelope, id, rejects};

    prop_compose! {
        fn stock_adjusted()(
            e in envelope(), sku in id(),
            delta in prop_oneof![i32::MIN..=-1, 1..=i32::MAX],
            reason in proptest::sample::select(StockAdjustmentReason::ALL),
        ) -> StockAdjusted {
            StockAdjusted {
                event_id: e.event_id, occurred_at: e.occurred_at, producer: e.producer,
                correlation_id: e.correlation_id, sku, delta, reason,
            }
        }
    }

    prop_compose! {
        fn stock_reserved()(
            e in envelope(), sku in id(), order_id in id(), quantity in 1..=i32::MAX,
        ) -> StockReserved {
            StockReserved {
                event_id: e.event_id, occurred_at: e.occurred_at, producer: e.producer,
                correlation_id: e.correlation_id, sku, order_id, quantity,
            }
        }
    }

    prop_compose! {
        fn stock_released()(
            e in envelope(), sku in id(), order_id in id(), quantity in 1..=i32::MAX,
        ) -> StockReleased {
            StockReleased {
                event_id: e.event_id, occurred_at: e.occurred_at, producer: e.producer,
                correlation_id: e.correlation_id, sku, order_id, quantity,
            }
        }
    }

    round_trip_proptests! {
        stock_adjusted_round_trips_through_avro_binary: StockAdjusted => stock_adjusted();
        stock_reserved_round_trips_through_avro_binary: StockReserved => stock_reserved();
        stock_released_round_trips_through_avro_binary: StockReleased => stock_released();
    }

    #[test]
    fn stock_rules_name_the_field() {
        let adjusted = StockAdjusted {
            event_id: "0b5b1f6e-7a0b-4a53-9c0e-0d2f4e3b8a11".into(),
            occurred_at: 1,
            producer: "inventory".into(),
            correlation_id: None,
            sku: "sku-1".into(),
            delta: -3,
            reason: StockAdjustmentReason::Damaged,
        };
        rejects(
            &adjusted,
            &[
                (|e| e.delta = 0, "delta"),
                (|e| e.sku = String::new(), "sku"),
            ],
        );
        let reserved = StockReserved {
            event_id: "0b5b1f6e-7a0b-4a53-9c0e-0d2f4e3b8a11".into(),
            occurred_at: 1,
            producer: "inventory".into(),
            correlation_id: None,
            sku: "sku-1".into(),
            order_id: "o-1".into(),
            quantity: 2,
        };
        rejects(
            &reserved,
            &[
                (|e| e.quantity = 0, "quantity"),
                (|e| e.quantity = -2, "quantity"),
                (|e| e.order_id = String::new(), "order_id"),
            ],
        );
        let released = StockReleased {
            event_id: "0b5b1f6e-7a0b-4a53-9c0e-0d2f4e3b8a11".into(),
            occurred_at: 1,
            producer: "inventory".into(),
            correlation_id: None,
            sku: "sku-1".into(),
            order_id: "o-1".into(),
            quantity: 2,
        };
        rejects(&released, &[(|e| e.quantity = 0, "quantity")]);
    }

    #[test]
    fn enum_symbols_match_the_schema() {
        let symbols: Vec<&str> = StockAdjustmentReason::ALL
            .iter()
            .map(|r| r.symbol())
            .collect();
        assert_eq!(
            enum_symbols(StockAdjusted::spec(), "StockAdjustmentReason"),
            symbols
        );
    }
}
