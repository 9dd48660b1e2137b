//! Test helpers shared by the event modules: strategies for the common fields and the
//! round trip every event type must survive.

use std::fmt::Debug;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use crate::{Envelope, Event};

/// An identifier accepted by `check_id`.
pub(crate) fn id() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_:.-]{1,40}"
}

/// A one-line text of 1 to `max_chars` characters, any script, no control characters.
pub(crate) fn text(max_chars: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("\\PC{{1,{max_chars}}}"))
        .unwrap_or_else(|e| panic!("bad regex: {e}"))
}

pub(crate) fn country() -> impl Strategy<Value = String> {
    proptest::sample::select(&crate::COUNTRIES[..]).prop_map(str::to_owned)
}

pub(crate) fn currency() -> impl Strategy<Value = String> {
    "[A-Z]{3}"
}

prop_compose! {
    pub(crate) fn envelope()(
        uuid in any::<u128>(), occurred_at in 0i64..=4_102_444_800_000,
        producer in id(), correlation_id in proptest::option::of(id()),
    ) -> Envelope {
        Envelope {
            event_id: uuid::Uuid::from_u128(uuid).to_string(),
            occurred_at, producer, correlation_id,
        }
    }
}

/// Struct → Avro value (through the JSON converter the HTTP ingest uses) → Avro binary →
/// value → struct must give the event back; the catalogue's key and rules agree with the
/// struct's.
pub(crate) fn round_trip<E: Event + PartialEq + Debug>(event: &E) -> Result<(), TestCaseError> {
    let spec = E::spec();
    let value = event
        .to_avro()
        .map_err(|e| TestCaseError::fail(format!("to_avro: {e}")))?;
    prop_assert_eq!(spec.key_of(&value), Some(event.key()));
    let writer = GenericDatumWriter::builder(&spec.schema)
        .build()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let bytes = writer
        .write_value_to_vec(value)
        .map_err(|e| TestCaseError::fail(format!("encode: {e}")))?;
    // Serializing the struct straight to Avro (the publisher's fast path) gives the same
    // bytes as going through the Avro value.
    let direct = writer
        .write_ser_to_vec(event)
        .map_err(|e| TestCaseError::fail(format!("direct encode: {e}")))?;
    prop_assert_eq!(
        &direct,
        &bytes,
        "direct serialization differs from the value's"
    );
    let reader = GenericDatumReader::builder(&spec.schema)
        .build()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let decoded = reader
        .read_value(&mut bytes.as_slice())
        .map_err(|e| TestCaseError::fail(format!("decode: {e}")))?;
    spec.check(&decoded)
        .map_err(|e| TestCaseError::fail(format!("check: {e}")))?;
    let back = E::from_avro(&decoded).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&back, event);
    prop_assert_eq!(back.envelope(), event.envelope());
    Ok(())
}

/// Declares one round-trip proptest per event type, and `ROUND_TRIPPED`, the names of the
/// types so covered (the catalogue's tests check every type of the catalogue is in one).
macro_rules! round_trip_proptests {
    ($($test:ident: $ty:ty => $strategy:expr;)+) => {
        proptest::proptest! {
            $(
                #[test]
                fn $test(event in $strategy) {
                    $crate::events::testing::round_trip::<$ty>(&event)?;
                }
            )+
        }

        /// Event types whose Avro round trip a proptest of this module covers.
        pub(crate) const ROUND_TRIPPED: &[&str] = &[$(<$ty as $crate::Event>::TYPE),+];
    };
}

/// A change that makes a valid event invalid.
pub(crate) type Mutation<E> = fn(&mut E);

/// Applies each mutation to a valid sample and checks the rules reject it naming `field`.
pub(crate) fn rejects<E: Event + Clone>(sample: &E, cases: &[(Mutation<E>, &str)]) {
    assert_eq!(sample.validate(), Ok(()), "the sample itself must be valid");
    for (i, (mutate, field)) in cases.iter().enumerate() {
        let mut e = sample.clone();
        mutate(&mut e);
        match e.validate() {
            Ok(()) => panic!(
                "{} case {i}: accepted, expected an error on {field}",
                E::TYPE
            ),
            Err(err) => assert_eq!(&err.field, field, "{} case {i}: {err}", E::TYPE),
        }
        assert!(
            e.to_avro().is_err(),
            "{} case {i}: to_avro accepted it",
            E::TYPE
        );
    }
}

/// The symbols of the enum named `name` somewhere in the spec's record, in schema order.
pub(crate) fn enum_symbols(spec: &crate::EventSpec, name: &str) -> Vec<String> {
    fn find(schema: &apache_avro::Schema, name: &str) -> Option<Vec<String>> {
        use apache_avro::Schema;
        match schema {
            Schema::Enum(e) if e.name.name() == name => Some(e.symbols.clone()),
            Schema::Record(r) => r.fields.iter().find_map(|f| find(&f.schema, name)),
            Schema::Array(a) => find(&a.items, name),
            Schema::Map(m) => find(&m.types, name),
            Schema::Union(u) => u.variants().iter().find_map(|v| find(v, name)),
            _ => None,
        }
    }
    find(&spec.schema, name).unwrap_or_else(|| panic!("{} has no enum {name}", spec.name))
}
