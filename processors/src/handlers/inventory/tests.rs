//! Crash recovery: whatever subset of a batch's rows reached the store before a crash, the
//! replay from the checkpoint ends with the rows of a run without a crash.

use fleuve_projections::embedded::EmbeddedStore;
use fleuve_projections::inventory::TABLES;
use fleuve_projections::{Store, WriteBatch, Writes};
use fleuve_schemas::{Event, StockAdjusted, StockAdjustmentReason, StockReleased, StockReserved};

use super::Inventory;
use crate::handlers::testing::{dump, last_write_per_row, subset, uuid};
use crate::runtime::{Handler, Incoming};

fn incoming<E: Event>(offset: i64, e: &E) -> Incoming {
    crate::handlers::testing::incoming(fleuve_kafka::topics::INVENTORY, offset, e)
}

fn adjusted(offset: i64, sku: &str, delta: i32) -> Incoming {
    incoming(
        offset,
        &StockAdjusted {
            event_id: uuid(offset),
            occurred_at: 1_700_000_000_000 + offset,
            producer: "test".into(),
            correlation_id: None,
            sku: sku.into(),
            delta,
            reason: StockAdjustmentReason::Correction,
        },
    )
}

fn reserved(offset: i64, sku: &str, order_id: &str, quantity: i32) -> Incoming {
    incoming(
        offset,
        &StockReserved {
            event_id: uuid(offset),
            occurred_at: 1_700_000_000_000 + offset,
            producer: "test".into(),
            correlation_id: None,
            sku: sku.into(),
            order_id: order_id.into(),
            quantity,
        },
    )
}

fn released(offset: i64, sku: &str, order_id: &str, quantity: i32) -> Incoming {
    incoming(
        offset,
        &StockReleased {
            event_id: uuid(offset),
            occurred_at: 1_700_000_000_000 + offset,
            producer: "test".into(),
            correlation_id: None,
            sku: sku.into(),
            order_id: order_id.into(),
            quantity,
        },
    )
}

async fn apply(store: &dyn Store, writes: Writes, events: &[Incoming]) {
    let checkpoints = events
        .last()
        .map(|e| fleuve_projections::Checkpoint {
            topic: e.topic.clone(),
            partition: e.partition,
            next_offset: e.offset + 1,
        })
        .into_iter()
        .collect();
    store
        .apply(WriteBatch {
            projection: Inventory.name().to_owned(),
            writes,
            checkpoints,
        })
        .await
        .unwrap();
}

async fn fold_and_apply(store: &dyn Store, events: &[Incoming]) {
    let fold = Inventory.fold(store, events).await.unwrap();
    apply(store, fold.writes, events).await;
}

#[tokio::test]
async fn any_subset_of_a_batch_stored_before_a_crash_is_completed_by_the_replay() {
    let committed = [adjusted(0, "sku-1", 10), adjusted(1, "sku-2", 3)];
    let batch = [
        reserved(2, "sku-1", "o-1", 4),
        reserved(3, "sku-1", "o-2", 3),
        released(4, "sku-1", "o-1", 2),
        reserved(5, "sku-1", "o-3", 10), // refused: 5 available
        adjusted(6, "sku-1", -1),
        released(7, "sku-2", "o-9", 1), // refused: nothing reserved
        reserved(8, "sku-2", "o-1", 3),
        released(9, "sku-1", "o-2", 3),
        reserved(10, "sku-1", "o-1", 1),
        released(11, "sku-2", "o-1", 1),
    ];
    let extra = [
        reserved(12, "sku-1", "o-3", 3),
        released(13, "sku-1", "o-1", 3),
        reserved(14, "sku-2", "o-2", 1),
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
        Inventory
            .fold(&clean, &batch)
            .await
            .unwrap()
            .writes
            .into_iter_all(),
    );
    fold_and_apply(&clean, &batch).await;
    fold_and_apply(&clean, &extra).await;
    let expected = dump(&clean, TABLES).await;

    assert_eq!(first.len(), 5, "stock × 2, reservations × 3");
    for mask in 0..(1u64 << first.len()) {
        let store = open(format!("crash-{mask}")).await;
        fold_and_apply(&store, &committed).await;
        // First attempt: some rows stored, no checkpoint.
        store
            .apply(WriteBatch {
                projection: Inventory.name().to_owned(),
                writes: subset(&first, mask).into(),
                checkpoints: Vec::new(),
            })
            .await
            .unwrap();
        // Second attempt, a longer batch from the same checkpoint: crashes too.
        let second = last_write_per_row(
            Inventory
                .fold(&store, &replay)
                .await
                .unwrap()
                .writes
                .into_iter_all(),
        );
        let second_mask = mask.wrapping_mul(2_654_435_761) >> 7;
        store
            .apply(WriteBatch {
                projection: Inventory.name().to_owned(),
                writes: subset(&second, second_mask).into(),
                checkpoints: Vec::new(),
            })
            .await
            .unwrap();
        // Third attempt succeeds.
        fold_and_apply(&store, &replay).await;
        assert_eq!(
            dump(&store, TABLES).await,
            expected,
            "rows stored by the first attempt: {mask:#b}, by the second: {second_mask:#b}"
        );
    }
}
