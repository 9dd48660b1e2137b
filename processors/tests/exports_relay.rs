//! The `exports` processor and its outbox relay on an in-process Kafka with our registry:
//! catalogue events become records of the partner's topic (Confluent-framed values of
//! `fleuve.export.CatalogItem`, registered under `export.<partner>.catalog-value`, and
//! tombstones), the outbox is emptied once the broker acknowledged, and a relay that
//! produces a row again (a crash before its delete) writes an identical record.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions unwrap too: a failure is a test failure"
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apache_avro::types::Value;
use fleuve_processors::handlers::exports::{
    self, Exports, OutboxRecord, Partner, Partners, Relay, RelayConfig, OUTBOX,
};
use fleuve_processors::runtime::{Processor, ProcessorConfig};
use fleuve_producers::{Publisher, PublisherConfig};
use fleuve_projections::{Store, Write, WriteBatch};
use fleuve_schemas::{ContentUnpublished, ContentUpserted, DistributionRight};
use fleuve_testkit::Kafka;
use schema_registry_converter::async_impl::avro::AvroDecoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use tokio_util::sync::CancellationToken;

const TOPIC: &str = "export.isp-a.catalog";

fn upsert(n: u32, content_id: &str, partner: &str) -> ContentUpserted {
    ContentUpserted {
        event_id: format!("00000000-0000-4000-8000-{n:012}"),
        occurred_at: 1_700_000_000_000,
        producer: "cms".into(),
        correlation_id: None,
        content_id: content_id.into(),
        kind: fleuve_schemas::ContentKind::Clip,
        program_id: None,
        season_number: None,
        episode_number: None,
        title: format!("title of {content_id}"),
        description: None,
        tags: vec![],
        duration_ms: Some(1_000),
        available_from: 0,
        available_until: None,
        rights: vec![DistributionRight {
            partner: partner.into(),
            territories: vec!["FR".into(), "IT".into()],
        }],
    }
}

fn field<'v>(value: &'v Value, name: &str) -> &'v Value {
    match value {
        Value::Record(fields) => &fields.iter().find(|(n, _)| n == name).unwrap().1,
        other => panic!("not a record: {other:?}"),
    }
}

/// Key → decoded value (`None`: tombstone), in topic order per partition.
async fn read(kafka: &Kafka, decoder: &AvroDecoder) -> Vec<(String, Option<Value>)> {
    let mut out = Vec::new();
    for r in kafka.read_all(TOPIC) {
        let key = String::from_utf8(r.key.unwrap()).unwrap();
        let value = match r.payload {
            Some(p) => {
                assert_eq!(p[0], 0, "Confluent framing");
                let d = decoder.decode(Some(&p)).await.unwrap();
                assert_eq!(d.name.unwrap().fullname(None), "fleuve.export.CatalogItem");
                Some(d.value)
            }
            None => None,
        };
        out.push((key, value));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_produces_the_outbox_then_deletes_it() {
    let kafka = Kafka::start().await;
    kafka.create_topic(TOPIC, 3);
    kafka.create_topic("dlq.exports", 1);
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        fleuve_projections::open(&format!("embedded://{}", dir.path().to_str().unwrap()))
            .await
            .unwrap();
    let partners = Arc::new(Partners::new(vec![Partner::new("isp-a", ["FR", "BE"])]).unwrap());

    let publisher = Publisher::new(PublisherConfig::new(
        kafka.config(),
        &kafka.registry_url,
        "cms",
    ))
    .unwrap();
    publisher.publish(&upsert(1, "c1", "isp-a")).await.unwrap();
    publisher.publish(&upsert(2, "c2", "isp-a")).await.unwrap();
    publisher.publish(&upsert(3, "c3", "isp-b")).await.unwrap();
    publisher
        .publish(&ContentUnpublished {
            event_id: "00000000-0000-4000-8000-000000000004".into(),
            occurred_at: 1_700_000_000_001,
            producer: "cms".into(),
            correlation_id: None,
            content_id: "c2".into(),
            reason: None,
        })
        .await
        .unwrap();

    let shutdown = CancellationToken::new();
    let processor = Processor::new(
        ProcessorConfig::new(kafka.config(), &kafka.registry_url),
        Arc::new(Exports::new(Arc::clone(&partners))),
        Arc::clone(&store),
    )
    .unwrap();
    let relay = Relay::new(
        RelayConfig::new(kafka.config(), &kafka.registry_url),
        Arc::clone(&partners),
        Arc::clone(&store),
    )
    .unwrap();
    relay.ensure_topics().await.unwrap(); // exists already: nothing to create
    let p = tokio::spawn(processor.run(shutdown.clone()));
    let r = tokio::spawn(relay.run(shutdown.clone()));

    let decoder = AvroDecoder::new(SrSettings::new(kafka.registry_url.clone()));
    let deadline = Instant::now() + Duration::from_secs(30);
    let records = loop {
        let records = read(&kafka, &decoder).await;
        let outbox = store.scan_table(OUTBOX.name(), None, 100).await.unwrap();
        if records.len() >= 3 && outbox.is_empty() {
            break records;
        }
        assert!(
            Instant::now() < deadline,
            "relayed {records:?}, outbox {outbox:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    shutdown.cancel();
    p.await.unwrap().unwrap();
    r.await.unwrap().unwrap();

    assert_eq!(records.len(), 3, "{records:?}");
    let mut last: BTreeMap<String, Option<Value>> = BTreeMap::new();
    let mut c2 = Vec::new();
    for (key, value) in &records {
        if key == "c2" {
            c2.push(value.is_some());
        }
        last.insert(key.clone(), value.clone());
    }
    assert_eq!(
        c2,
        vec![true, false],
        "c2 exported, then a tombstone, in order"
    );
    assert!(last["c2"].is_none());
    let c1 = last["c1"].as_ref().unwrap();
    assert_eq!(field(c1, "content_id"), &Value::String("c1".into()));
    assert_eq!(
        field(c1, "territories"),
        &Value::Array(vec![Value::String("FR".into())])
    );
    assert_eq!(field(c1, "title"), &Value::String("title of c1".into()));

    let http = reqwest::Client::new();
    let versions: serde_json::Value = http
        .get(format!(
            "{}/subjects/{}/versions",
            kafka.registry_url,
            fleuve_schemas::export::subject("isp-a")
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(versions, serde_json::json!([1]));

    // A crash after the broker acknowledged, before the delete: the row is produced again,
    // identical.
    let c1_record = OutboxRecord {
        content_id: "c1".into(),
        item: Some(
            serde_json::from_slice(
                &store
                    .get(exports::SENT.name(), "isp-a", "c1")
                    .await
                    .unwrap()
                    .unwrap(),
            )
            .unwrap(),
        ),
        seq: 1,
    };
    store
        .apply(WriteBatch {
            projection: exports::NAME.into(),
            writes: vec![Write::Put {
                table: OUTBOX.name(),
                pk: "isp-a".into(),
                ck: fleuve_projections::paging::asc_i64(1),
                value: serde_json::to_vec(&c1_record).unwrap(),
                ts: 1,
            }]
            .into(),
            checkpoints: vec![],
        })
        .await
        .unwrap();
    let relay = Relay::new(
        RelayConfig::new(kafka.config(), &kafka.registry_url),
        Arc::clone(&partners),
        Arc::clone(&store),
    )
    .unwrap();
    assert_eq!(relay.pass_once().await.unwrap(), 1);
    assert!(store
        .scan_table(OUTBOX.name(), None, 10)
        .await
        .unwrap()
        .is_empty());
    let again = read(&kafka, &decoder).await;
    assert_eq!(again.len(), 4);
    let c1s: Vec<&Option<Value>> = again
        .iter()
        .filter(|(k, _)| k == "c1")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(c1s.len(), 2);
    assert_eq!(c1s[0], c1s[1], "the same value twice");
}
