//! What each inventory event does to a sku's stock row and to the reservation row of its
//! order: the arithmetic, the rules, and the recognition of events applied already (see
//! the module docs of the processor).

use fleuve_projections::inventory::{
    Reservation, ReservationChange, Stock, ADJUSTMENT_IDS_KEPT, REPLAY_WINDOW,
};
use fleuve_schemas::{StockAdjusted, StockReleased, StockReserved};

/// The rows an event changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Effect {
    /// Nothing changes: the event was applied already, or refused the first time it was
    /// folded (and dead-lettered then). The text says which, for the logs.
    Skip(&'static str),
    /// The rows to write (`None`: unchanged).
    Write {
        stock: Option<Stock>,
        reservation: Option<Reservation>,
    },
}

const REDELIVERED: &str = "redelivered: applied already";
const REFUSED_BEFORE: &str = "redelivered: dead-lettered the first time";
const RETRIED: &str = "a retry (same event_id) of an event applied already";

/// Marks `offset` applied to the stock row, forgetting the reservations that fell out of
/// [`REPLAY_WINDOW`].
fn stock_applied(stock: &mut Stock, offset: i64, at_ms: i64) {
    stock.applied_offset = offset;
    stock.updated_at_ms = at_ms;
    let oldest = offset.saturating_sub(REPLAY_WINDOW);
    stock.recent_reserved_offsets.retain(|o| *o > oldest);
}

/// Moves `quantity` between `available` and `reserved` (from available when positive, back
/// when negative), refusing to make either negative or to overflow.
fn move_units(stock: &Stock, quantity: i64) -> Option<(i64, i64)> {
    let available = stock.available.checked_sub(quantity)?;
    let reserved = stock.reserved.checked_add(quantity)?;
    (available >= 0 && reserved >= 0).then_some((available, reserved))
}

/// `StockAdjusted`: adds `delta` to the available units.
pub(super) fn adjust(stock: &Stock, e: &StockAdjusted, offset: i64) -> Result<Effect, String> {
    if offset <= stock.applied_offset {
        return Ok(Effect::Skip(REDELIVERED));
    }
    if stock.recent_adjustment_ids.contains(&e.event_id) {
        return Ok(Effect::Skip(RETRIED));
    }
    let delta = i64::from(e.delta);
    let available = match stock.available.checked_add(delta) {
        Some(a) if a >= 0 => a,
        Some(a) => {
            return Err(format!(
                "sku {}: StockAdjusted of {delta} would leave {a} available ({} available, {} \
                 reserved)",
                e.sku, stock.available, stock.reserved
            ))
        }
        None => {
            return Err(format!(
                "sku {}: StockAdjusted of {delta} would overflow the available count ({})",
                e.sku, stock.available
            ))
        }
    };
    let mut stock = stock.clone();
    stock.available = available;
    stock.recent_adjustment_ids.push(e.event_id.clone());
    let excess = stock
        .recent_adjustment_ids
        .len()
        .saturating_sub(ADJUSTMENT_IDS_KEPT);
    stock.recent_adjustment_ids.drain(..excess);
    stock_applied(&mut stock, offset, e.occurred_at);
    Ok(Effect::Write {
        stock: Some(stock),
        reservation: None,
    })
}

/// The reservation with one more event applied.
fn change(
    reservation: &Reservation,
    offset: i64,
    event_id: &str,
    change: i64,
    at_ms: i64,
) -> Reservation {
    let mut r = reservation.clone();
    r.quantity = r.quantity.saturating_add(change);
    r.updated_at_ms = at_ms;
    r.applied_offset = offset;
    r.history.push(ReservationChange {
        offset,
        event_id: event_id.to_owned(),
        change,
        at_ms,
    });
    r
}

/// `StockReserved`: moves `quantity` from available to reserved, for the order.
pub(super) fn reserve(
    stock: &Stock,
    reservation: &Reservation,
    e: &StockReserved,
    offset: i64,
) -> Result<Effect, String> {
    let quantity = i64::from(e.quantity);
    let stock_part = || -> Result<Stock, String> {
        let (available, reserved) = move_units(stock, quantity).ok_or_else(|| {
            format!(
                "sku {}: cannot reserve {quantity} for order {}: only {} available",
                e.sku, e.order_id, stock.available
            )
        })?;
        let mut s = stock.clone();
        s.available = available;
        s.reserved = reserved;
        s.recent_reserved_offsets.push(offset);
        stock_applied(&mut s, offset, e.occurred_at);
        Ok(s)
    };
    let reservation_part = || change(reservation, offset, &e.event_id, quantity, e.occurred_at);
    match (
        offset <= stock.applied_offset,
        offset <= reservation.applied_offset,
    ) {
        (true, true) => Ok(Effect::Skip(REDELIVERED)),
        // The stock row is ahead: it tells whether it applied the event.
        (true, false) if stock.recent_reserved_offsets.contains(&offset) => Ok(Effect::Write {
            stock: None,
            reservation: Some(reservation_part()),
        }),
        (true, false) => Ok(Effect::Skip(REFUSED_BEFORE)),
        // The reservation is ahead: its history tells whether it applied the event.
        (false, true) if reservation.has_offset(offset) => Ok(Effect::Write {
            stock: Some(stock_part()?),
            reservation: None,
        }),
        (false, true) => Ok(Effect::Skip(REFUSED_BEFORE)),
        (false, false) if reservation.has_event(&e.event_id) => Ok(Effect::Skip(RETRIED)),
        (false, false) => Ok(Effect::Write {
            stock: Some(stock_part()?),
            reservation: Some(reservation_part()),
        }),
    }
}

/// Whether a release is allowed by the order's reservation (the only row its rule reads).
fn check_release(reservation: &Reservation, e: &StockReleased) -> Result<(), String> {
    let quantity = i64::from(e.quantity);
    if reservation.history.is_empty() {
        return Err(format!(
            "sku {}: cannot release {quantity} for order {}: it has reserved none",
            e.sku, e.order_id
        ));
    }
    if quantity > reservation.quantity {
        return Err(format!(
            "sku {}: cannot release {quantity} for order {}: only {} reserved for it",
            e.sku, e.order_id, reservation.quantity
        ));
    }
    Ok(())
}

/// `StockReleased`: moves `quantity` back from reserved to available, out of the order's
/// reservation.
pub(super) fn release(
    stock: &Stock,
    reservation: &Reservation,
    e: &StockReleased,
    offset: i64,
) -> Result<Effect, String> {
    let quantity = i64::from(e.quantity);
    let stock_part = || -> Result<Stock, String> {
        let (available, reserved) = move_units(stock, -quantity).ok_or_else(|| {
            format!(
                "sku {}: cannot release {quantity}: only {} reserved in all ({} available)",
                e.sku, stock.reserved, stock.available
            )
        })?;
        let mut s = stock.clone();
        s.available = available;
        s.reserved = reserved;
        stock_applied(&mut s, offset, e.occurred_at);
        Ok(s)
    };
    let reservation_part = || change(reservation, offset, &e.event_id, -quantity, e.occurred_at);
    match (
        offset <= stock.applied_offset,
        offset <= reservation.applied_offset,
    ) {
        (true, true) => Ok(Effect::Skip(REDELIVERED)),
        // The reservation is behind, hence as it was before the event: decide again on it.
        (true, false) if reservation.has_event(&e.event_id) => Ok(Effect::Skip(RETRIED)),
        (true, false) => Ok(match check_release(reservation, e) {
            Ok(()) => Effect::Write {
                stock: None,
                reservation: Some(reservation_part()),
            },
            Err(_) => Effect::Skip(REFUSED_BEFORE),
        }),
        // The reservation is ahead: its history tells whether it applied the event.
        (false, true) if reservation.has_offset(offset) => Ok(Effect::Write {
            stock: Some(stock_part()?),
            reservation: None,
        }),
        (false, true) => Ok(Effect::Skip(REFUSED_BEFORE)),
        (false, false) if reservation.has_event(&e.event_id) => Ok(Effect::Skip(RETRIED)),
        (false, false) => {
            check_release(reservation, e)?;
            Ok(Effect::Write {
                stock: Some(stock_part()?),
                reservation: Some(reservation_part()),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use fleuve_schemas::StockAdjustmentReason;

    use super::*;

    fn uuid(n: u32) -> String {
        format!("00000000-0000-4000-8000-{n:012}")
    }

    fn adjusted(n: u32, delta: i32) -> StockAdjusted {
        StockAdjusted {
            event_id: uuid(n),
            occurred_at: i64::from(n) * 1000,
            producer: "test".into(),
            correlation_id: None,
            sku: "sku-1".into(),
            delta,
            reason: StockAdjustmentReason::Received,
        }
    }

    fn reserved(n: u32, order_id: &str, quantity: i32) -> StockReserved {
        StockReserved {
            event_id: uuid(n),
            occurred_at: i64::from(n) * 1000,
            producer: "test".into(),
            correlation_id: None,
            sku: "sku-1".into(),
            order_id: order_id.into(),
            quantity,
        }
    }

    fn released(n: u32, order_id: &str, quantity: i32) -> StockReleased {
        StockReleased {
            event_id: uuid(n),
            occurred_at: i64::from(n) * 1000,
            producer: "test".into(),
            correlation_id: None,
            sku: "sku-1".into(),
            order_id: order_id.into(),
            quantity,
        }
    }

    fn written(effect: Result<Effect, String>) -> (Option<Stock>, Option<Reservation>) {
        match effect {
            Ok(Effect::Write { stock, reservation }) => (stock, reservation),
            other => panic!("expected writes, got {other:?}"),
        }
    }

    fn stock(available: i64, reserved: i64) -> Stock {
        Stock {
            available,
            reserved,
            applied_offset: 9,
            ..Stock::empty("sku-1")
        }
    }

    #[test]
    fn adjustments_add_to_available_and_never_make_it_negative() {
        let (s, r) = written(adjust(&stock(5, 7), &adjusted(10, -5), 10));
        let s = s.unwrap();
        assert_eq!((s.available, s.reserved, s.applied_offset), (0, 7, 10));
        assert_eq!(s.recent_adjustment_ids, [uuid(10)]);
        assert_eq!(r, None);
        assert_eq!(
            adjust(&stock(5, 7), &adjusted(10, -6), 10),
            Err(
                "sku sku-1: StockAdjusted of -6 would leave -1 available (5 available, 7 \
                 reserved)"
                    .into()
            )
        );
        assert!(adjust(&stock(i64::MAX, 0), &adjusted(10, 1), 10)
            .unwrap_err()
            .contains("overflow"));
    }

    #[test]
    fn an_adjustment_is_applied_once_per_offset_and_per_event_id() {
        let (s, _) = written(adjust(&stock(5, 0), &adjusted(10, 3), 10));
        let s = s.unwrap();
        assert_eq!(
            adjust(&s, &adjusted(10, 3), 10),
            Ok(Effect::Skip(REDELIVERED))
        );
        // A producer's retry: same event, later offset.
        assert_eq!(adjust(&s, &adjusted(10, 3), 12), Ok(Effect::Skip(RETRIED)));
        // Only the last ADJUSTMENT_IDS_KEPT ids are kept.
        let mut s = s;
        for n in 0..40 {
            let offset = 20 + i64::from(n);
            s = written(adjust(&s, &adjusted(100 + n, 1), offset))
                .0
                .unwrap();
        }
        assert_eq!(s.recent_adjustment_ids.len(), ADJUSTMENT_IDS_KEPT);
        assert_eq!(s.recent_adjustment_ids.last(), Some(&uuid(139)));
        assert_eq!(s.available, 48);
    }

    #[test]
    fn reserving_moves_units_from_available_to_reserved() {
        let (s, r) = written(reserve(
            &stock(5, 1),
            &Reservation::empty("o-1"),
            &reserved(10, "o-1", 5),
            10,
        ));
        let (s, r) = (s.unwrap(), r.unwrap());
        assert_eq!((s.available, s.reserved), (0, 6));
        assert_eq!(s.recent_reserved_offsets, [10]);
        assert_eq!((r.quantity, r.applied_offset, r.history.len()), (5, 10, 1));
        assert_eq!(
            reserve(
                &stock(5, 1),
                &Reservation::empty("o-1"),
                &reserved(10, "o-1", 6),
                10
            ),
            Err("sku sku-1: cannot reserve 6 for order o-1: only 5 available".into())
        );
        // A second reservation of the same order adds up.
        let (s2, r2) = written(reserve(&stock(3, 6), &r, &reserved(11, "o-1", 2), 11));
        assert_eq!((s2.unwrap().reserved, r2.unwrap().quantity), (8, 7));
    }

    #[test]
    fn releasing_needs_enough_reserved_by_that_order() {
        let (_, r) = written(reserve(
            &stock(5, 0),
            &Reservation::empty("o-1"),
            &reserved(10, "o-1", 3),
            10,
        ));
        let r = r.unwrap();
        let s = stock(2, 3);
        assert_eq!(
            release(&s, &Reservation::empty("o-2"), &released(11, "o-2", 1), 11),
            Err("sku sku-1: cannot release 1 for order o-2: it has reserved none".into())
        );
        assert_eq!(
            release(&s, &r, &released(11, "o-1", 4), 11),
            Err("sku sku-1: cannot release 4 for order o-1: only 3 reserved for it".into())
        );
        let (s, r) = written(release(&s, &r, &released(11, "o-1", 3), 11));
        let (s, r) = (s.unwrap(), r.unwrap());
        assert_eq!((s.available, s.reserved, r.quantity), (5, 0, 0));
        // Everything released: a further release is refused, a retry skipped.
        assert_eq!(
            release(&s, &r, &released(12, "o-1", 1), 12),
            Err("sku sku-1: cannot release 1 for order o-1: only 0 reserved for it".into())
        );
        assert_eq!(
            release(&s, &r, &released(11, "o-1", 3), 13),
            Ok(Effect::Skip(RETRIED))
        );
    }

    /// A crash can store one of the two rows of an event and not the other: the replay
    /// completes the event on the row behind, or leaves both alone if it was refused.
    #[test]
    fn an_event_stored_on_one_row_only_is_completed_on_the_other() {
        let before_s = stock(5, 0);
        let before_r = Reservation::empty("o-1");
        let e = reserved(10, "o-1", 4);
        let (after_s, after_r) = written(reserve(&before_s, &before_r, &e, 10));
        let (after_s, after_r) = (after_s.unwrap(), after_r.unwrap());
        assert_eq!(
            written(reserve(&after_s, &before_r, &e, 10)),
            (None, Some(after_r.clone()))
        );
        assert_eq!(
            written(reserve(&before_s, &after_r, &e, 10)),
            (Some(after_s.clone()), None)
        );
        // A refused reservation, with the stock row moved on by a later event.
        let mut later = before_s.clone();
        later.applied_offset = 11;
        assert_eq!(
            reserve(&later, &before_r, &reserved(10, "o-1", 9), 10),
            Ok(Effect::Skip(REFUSED_BEFORE))
        );
        // Releases: the reservation behind decides again.
        let e = released(12, "o-1", 4);
        let (rel_s, rel_r) = written(release(&after_s, &after_r, &e, 12));
        let (rel_s, rel_r) = (rel_s.unwrap(), rel_r.unwrap());
        assert_eq!(
            written(release(&rel_s, &after_r, &e, 12)),
            (None, Some(rel_r.clone()))
        );
        assert_eq!(
            written(release(&after_s, &rel_r, &e, 12)),
            (Some(rel_s.clone()), None)
        );
        assert_eq!(
            release(&rel_s, &after_r, &released(12, "o-1", 5), 12),
            Ok(Effect::Skip(REFUSED_BEFORE))
        );
    }

    #[test]
    fn the_stock_row_forgets_reservations_out_of_the_replay_window() {
        let mut s = stock(100, 0);
        s.recent_reserved_offsets = vec![1, 5_000, 9_999];
        let (s, _) = written(adjust(&s, &adjusted(1, 1), 10_001));
        assert_eq!(s.unwrap().recent_reserved_offsets, [5_000, 9_999]);
    }
}
