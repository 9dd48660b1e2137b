//! `schema_registry_converter`, a real Confluent client, against the registry.

use apache_avro::types::Value;
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};
use serde_json::json;

use crate::common::{self, Api};

const ORDER_PLACED: &str = r#"{
  "type": "record",
  "name": "OrderPlaced",
  "namespace": "fleuve.test",
  "fields": [
    {"name": "order_id", "type": "string"},
    {"name": "amount_cents", "type": "long"},
    {"name": "note", "type": ["null", "string"], "default": null}
  ]
}"#;

#[tokio::test]
async fn avro_encoder_and_decoder_round_trip_through_the_registry() {
    let cluster = common::cluster();
    let registry = common::start(&cluster).await;
    let base = common::serve(&registry).await;
    let api = Api::new(base.clone());
    // Something registered first, so the id is not trivially 1.
    api.register("other", "\"string\"").await;

    let strategy = SubjectNameStrategy::TopicRecordNameStrategyWithSchema(
        "orders".to_owned(),
        SuppliedSchema::new(
            Some("fleuve.test.OrderPlaced".to_owned()),
            SchemaType::Avro,
            ORDER_PLACED.to_owned(),
        ),
    );
    let encoder = AvroEncoder::new(SrSettings::new(base.clone()));
    let fields = vec![
        ("order_id", Value::String("o-42".to_owned())),
        ("amount_cents", Value::Long(1999)),
        (
            "note",
            Value::Union(1, Box::new(Value::String("gift".to_owned()))),
        ),
    ];
    let bytes = encoder.encode(fields.clone(), strategy).await.unwrap();

    // Confluent framing: magic 0, the registry's id, then Avro binary.
    assert_eq!(bytes[0], 0);
    let id = u32::from_be_bytes(bytes[1..5].try_into().unwrap());
    let (status, body) = api
        .get("/subjects/orders-fleuve.test.OrderPlaced/versions/latest")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], json!(id));
    assert_eq!(id, 2);
    assert_eq!(
        api.get("/subjects").await.1,
        json!(["orders-fleuve.test.OrderPlaced", "other"])
    );

    let decoder = AvroDecoder::new(SrSettings::new(base));
    let decoded = decoder.decode(Some(&bytes)).await.unwrap();
    assert_eq!(
        decoded.value,
        Value::Record(
            fields
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value))
                .collect()
        )
    );
    assert_eq!(
        decoded.name.map(|n| n.fullname(None)),
        Some("fleuve.test.OrderPlaced".to_owned())
    );
    registry.shutdown().await;
}
