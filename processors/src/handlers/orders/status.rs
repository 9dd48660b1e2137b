//! The order status machine (the table is in the module docs of the processor).

use fleuve_projections::orders::OrderStatus;

/// Why a status change is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The order is in that status already, and the status does not repeat.
    Again,
    /// The order went past that status already.
    Backwards,
    /// The order is delivered or cancelled.
    Final,
    /// A cancellation of an order handed to a carrier.
    AfterShipping,
    /// The change skips a step: the order must reach `needs` first.
    Skips { needs: OrderStatus },
}

/// Position of a status on the way from placement to delivery (cancellation is off it).
fn rank(status: OrderStatus) -> Option<u8> {
    match status {
        OrderStatus::Placed => Some(0),
        OrderStatus::PaymentFailed => Some(1),
        OrderStatus::PaymentAuthorized => Some(2),
        OrderStatus::Shipped => Some(3),
        OrderStatus::Delivered => Some(4),
        OrderStatus::Cancelled => None,
    }
}

/// Whether an order in status `from` may move to `to`; `free` tells an order whose total
/// is 0, which needs no payment to ship.
pub(super) fn check(from: OrderStatus, to: OrderStatus, free: bool) -> Result<(), Refusal> {
    use OrderStatus::{Cancelled, Delivered, PaymentAuthorized, PaymentFailed, Placed, Shipped};
    let allowed = matches!(
        (from, to),
        (Placed, PaymentAuthorized | PaymentFailed | Cancelled)
            | (PaymentFailed, PaymentAuthorized | PaymentFailed | Cancelled)
            | (PaymentAuthorized, Shipped | Cancelled)
            | (Shipped, Delivered)
    ) || (free && from == Placed && to == Shipped);
    if allowed {
        return Ok(());
    }
    if from == to {
        return Err(Refusal::Again);
    }
    if let (Some(f), Some(t)) = (rank(from), rank(to)) {
        if t < f {
            return Err(Refusal::Backwards);
        }
    }
    if from.is_final() {
        return Err(Refusal::Final);
    }
    Err(match to {
        Cancelled => Refusal::AfterShipping,
        Delivered => Refusal::Skips { needs: Shipped },
        _ => Refusal::Skips {
            needs: PaymentAuthorized,
        },
    })
}

/// The dead-letter reason of a refused change, naming the order, the event and both
/// statuses.
pub(super) fn reason(
    refusal: Refusal,
    order_id: &str,
    event_type: &str,
    from: OrderStatus,
    to: OrderStatus,
) -> String {
    match refusal {
        Refusal::Again => {
            format!("order {order_id} is already {from}; a second {event_type} is not applied")
        }
        Refusal::Backwards => {
            format!("order {order_id} is {from}; {event_type} would move it back to {to}")
        }
        Refusal::Final => format!(
            "order {order_id} is {from}, which is final; {event_type} would move it to {to}"
        ),
        Refusal::AfterShipping => format!(
            "order {order_id} is {from}; {event_type} would move it to {to}, but an order can \
             only be cancelled before it ships"
        ),
        Refusal::Skips { needs } => format!(
            "order {order_id} is {from}; {event_type} would move it to {to}, which needs \
             {needs} first"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderStatus::{Cancelled, Delivered, PaymentAuthorized, PaymentFailed, Placed, Shipped};

    /// Every (from, to) pair: the expected outcome for a paying order, in one table.
    #[test]
    fn transitions_table() {
        let skips_payment = Err(Refusal::Skips {
            needs: PaymentAuthorized,
        });
        let skips_shipping = Err(Refusal::Skips { needs: Shipped });
        #[rustfmt::skip]
        let table: &[(OrderStatus, OrderStatus, Result<(), Refusal>)] = &[
            (Placed, PaymentAuthorized, Ok(())),
            (Placed, PaymentFailed, Ok(())),
            (Placed, Shipped, skips_payment),
            (Placed, Delivered, skips_shipping),
            (Placed, Cancelled, Ok(())),
            (PaymentFailed, PaymentAuthorized, Ok(())),
            (PaymentFailed, PaymentFailed, Ok(())),
            (PaymentFailed, Shipped, skips_payment),
            (PaymentFailed, Delivered, skips_shipping),
            (PaymentFailed, Cancelled, Ok(())),
            (PaymentAuthorized, PaymentAuthorized, Err(Refusal::Again)),
            (PaymentAuthorized, PaymentFailed, Err(Refusal::Backwards)),
            (PaymentAuthorized, Shipped, Ok(())),
            (PaymentAuthorized, Delivered, skips_shipping),
            (PaymentAuthorized, Cancelled, Ok(())),
            (Shipped, PaymentAuthorized, Err(Refusal::Backwards)),
            (Shipped, PaymentFailed, Err(Refusal::Backwards)),
            (Shipped, Shipped, Err(Refusal::Again)),
            (Shipped, Delivered, Ok(())),
            (Shipped, Cancelled, Err(Refusal::AfterShipping)),
            (Delivered, PaymentAuthorized, Err(Refusal::Backwards)),
            (Delivered, PaymentFailed, Err(Refusal::Backwards)),
            (Delivered, Shipped, Err(Refusal::Backwards)),
            (Delivered, Delivered, Err(Refusal::Again)),
            (Delivered, Cancelled, Err(Refusal::Final)),
            (Cancelled, PaymentAuthorized, Err(Refusal::Final)),
            (Cancelled, PaymentFailed, Err(Refusal::Final)),
            (Cancelled, Shipped, Err(Refusal::Final)),
            (Cancelled, Delivered, Err(Refusal::Final)),
            (Cancelled, Cancelled, Err(Refusal::Again)),
        ];
        // No event moves an order to PLACED (a second OrderPlaced is refused before).
        let targets = OrderStatus::ALL.iter().filter(|s| **s != Placed).count();
        assert_eq!(table.len(), OrderStatus::ALL.len() * targets);
        for (from, to, expected) in table {
            assert_eq!(check(*from, *to, false), *expected, "{from} -> {to}");
        }
    }

    #[test]
    fn a_free_order_ships_without_payment_and_nothing_else_changes() {
        assert_eq!(check(Placed, Shipped, true), Ok(()));
        for from in OrderStatus::ALL {
            for to in OrderStatus::ALL {
                if (from, to) != (Placed, Shipped) {
                    assert_eq!(check(from, to, true), check(from, to, false));
                }
            }
        }
    }

    #[test]
    fn final_statuses_accept_nothing() {
        for from in OrderStatus::ALL.into_iter().filter(|s| s.is_final()) {
            for to in OrderStatus::ALL {
                assert!(check(from, to, true).is_err(), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn reasons_name_the_order_the_event_and_both_statuses() {
        assert_eq!(
            reason(
                Refusal::Backwards,
                "o-1",
                "OrderShipped",
                Delivered,
                Shipped
            ),
            "order o-1 is DELIVERED; OrderShipped would move it back to SHIPPED"
        );
        assert_eq!(
            reason(
                Refusal::Skips { needs: Shipped },
                "o-1",
                "OrderDelivered",
                PaymentAuthorized,
                Delivered
            ),
            "order o-1 is PAYMENT_AUTHORIZED; OrderDelivered would move it to DELIVERED, which \
             needs SHIPPED first"
        );
        assert_eq!(
            reason(
                Refusal::Final,
                "o-2",
                "PaymentAuthorized",
                Cancelled,
                PaymentAuthorized
            ),
            "order o-2 is CANCELLED, which is final; PaymentAuthorized would move it to \
             PAYMENT_AUTHORIZED"
        );
    }
}
