//! Crash recovery: whatever subset of a batch's rows reached the store before a crash, the
//! replay from the checkpoint ends with the rows of a run without a crash.

use fleuve_projections::embedded::EmbeddedStore;
use fleuve_projections::orders::TABLES;
use fleuve_projections::{Checkpoint, Store, WriteBatch, Writes};
use fleuve_schemas::{
    Event, OrderCancelled, OrderDelivered, OrderLine, OrderPlaced, OrderShipped, PaymentAuthorized,
    ShippingAddress,
};

use super::Orders;
use crate::handlers::testing::{dump, last_write_per_row, subset, uuid};
use crate::runtime::{Handler, Incoming};

fn incoming<E: Event>(offset: i64, e: &E) -> Incoming {
    crate::handlers::testing::incoming(fleuve_kafka::topics::ORDERS, offset, e)
}

fn at(offset: i64) -> i64 {
    1_700_000_000_000 + offset * 60_000
}

fn placed(offset: i64, order_id: &str, buyer_id: &str) -> Incoming {
    incoming(
        offset,
        &OrderPlaced {
            event_id: uuid(offset),
            occurred_at: at(offset),
            producer: "test".into(),
            correlation_id: None,
            order_id: order_id.into(),
            buyer_id: buyer_id.into(),
            seller_id: "s-1".into(),
            lines: vec![OrderLine {
                sku: "sku-1".into(),
                quantity: 2,
                unit_price_minor: 500,
            }],
            currency: "EUR".into(),
            shipping_address: ShippingAddress {
                name: "Camille Martin".into(),
                line1: "12 rue de la Paix".into(),
                line2: None,
                postal_code: "75002".into(),
                city: "Paris".into(),
                country: "FR".into(),
            },
        },
    )
}

fn authorized(offset: i64, order_id: &str) -> Incoming {
    incoming(
        offset,
        &PaymentAuthorized {
            event_id: uuid(offset),
            occurred_at: at(offset),
            producer: "test".into(),
            correlation_id: None,
            order_id: order_id.into(),
            amount_minor: 1000,
            currency: "EUR".into(),
            payment_ref: format!("psp-{offset}"),
        },
    )
}

fn shipped(offset: i64, order_id: &str) -> Incoming {
    incoming(
        offset,
        &OrderShipped {
            event_id: uuid(offset),
            occurred_at: at(offset),
            producer: "test".into(),
            correlation_id: None,
            order_id: order_id.into(),
            carrier: "dhl".into(),
            tracking_number: None,
        },
    )
}

fn delivered(offset: i64, order_id: &str) -> Incoming {
    incoming(
        offset,
        &OrderDelivered {
            event_id: uuid(offset),
            occurred_at: at(offset),
            producer: "test".into(),
            correlation_id: None,
            order_id: order_id.into(),
        },
    )
}

fn cancelled(offset: i64, order_id: &str) -> Incoming {
    incoming(
        offset,
        &OrderCancelled {
            event_id: uuid(offset),
            occurred_at: at(offset),
            producer: "test".into(),
            correlation_id: None,
            order_id: order_id.into(),
            reason: "changed my mind".into(),
        },
    )
}

async fn apply(store: &dyn Store, writes: Writes, checkpoint_after: Option<&Incoming>) {
    store
        .apply(WriteBatch {
            projection: Orders.name().to_owned(),
            writes,
            checkpoints: checkpoint_after
                .map(|e| Checkpoint {
                    topic: e.topic.clone(),
                    partition: e.partition,
                    next_offset: e.offset + 1,
                })
                .into_iter()
                .collect(),
        })
        .await
        .unwrap();
}

async fn fold_and_apply(store: &dyn Store, events: &[Incoming]) {
    let fold = Orders.fold(store, events).await.unwrap();
    apply(store, fold.writes, events.last()).await;
}

#[tokio::test]
async fn any_subset_of_a_batch_stored_before_a_crash_is_completed_by_the_replay() {
    let committed = [placed(0, "o-1", "b-1")];
    let batch = [
        authorized(1, "o-1"),
        placed(2, "o-2", "b-2"),
        shipped(3, "o-1"),
        shipped(4, "o-9"), // refused: never placed
        authorized(5, "o-2"),
    ];
    let extra = [
        delivered(6, "o-1"),
        cancelled(7, "o-2"),
        authorized(8, "o-2"), // refused: CANCELLED is final
    ];
    let replay: Vec<Incoming> = batch.iter().chain(&extra).cloned().collect();
    let tmp = tempfile::tempdir().unwrap();
    let open = |name: String| {
        let path = tmp.path().join(name);
        async move { EmbeddedStore::open(path.to_str().unwrap()).await.unwrap() }
    };

    let clean = open("clean".into()).await;
    fold_and_apply(&clean, &committed).await;
    let first = last_write_per_row(
        Orders
            .fold(&clean, &batch)
            .await
            .unwrap()
            .writes
            .into_iter_all(),
    );
    fold_and_apply(&clean, &batch).await;
    fold_and_apply(&clean, &extra).await;
    let expected = dump(&clean, TABLES).await;

    assert_eq!(first.len(), 6, "orders, by buyer and by seller × 2 orders");
    for mask in 0..(1u64 << first.len()) {
        let store = open(format!("crash-{mask}")).await;
        fold_and_apply(&store, &committed).await;
        apply(&store, subset(&first, mask).into(), None).await;
        let second = last_write_per_row(
            Orders
                .fold(&store, &replay)
                .await
                .unwrap()
                .writes
                .into_iter_all(),
        );
        let second_mask = mask.wrapping_mul(2_654_435_761) >> 7;
        apply(&store, subset(&second, second_mask).into(), None).await;
        fold_and_apply(&store, &replay).await;
        assert_eq!(
            dump(&store, TABLES).await,
            expected,
            "rows stored by the first attempt: {mask:#b}, by the second: {second_mask:#b}"
        );
    }
}
