//! Crash test on a real broker (Tansu): a deterministic mixed stream of more than 50,000
//! events over the four event topics; `fleuve process all` killed while it works, at random
//! moments and at chosen kill points, at least four times, and restarted each time. Once it
//! has caught up, every projection table must equal, row for row, the one a clean single run over the
//! same log builds; stock counts and reservations must equal a model of the inventory rules
//! exactly; and the dead-letter topics must hold exactly the events that break a rule
//! (copies allowed: a crash may write a dead letter twice).
//!
//! How it goes:
//!
//! 1. Tansu (its header table indexed by [`Broker::start`]: [`Broker::index_headers`] says why), a `fleuve
//!    registry`, the platform's topics. The stream is generated from a seeded xorshift in
//!    *waves*: a wave holds at most one event per Kafka key, so its events are published as
//!    one batch per event type, all at once, and waves are published one after the other:
//!    per key, the log order is the generation order. The generator keeps
//!    the state the rules depend on (orders' statuses, contents' states, stock per sku) and
//!    notes which events must be dead-lettered: a few invalid order moves, catalogue events
//!    on unknown or deleted contents, stock movements that would make a count negative.
//! 2. Build A: 40 % of the stream is published, then `fleuve process all` starts on store
//!    dir A. It is killed while it works (the plan below says how: a SIGKILL once it has
//!    consumed a random 5–70 % of the records it has to read, watched on its metrics every
//!    10 ms so that it lands mid-work however fast the machine is, or a kill point); the store is then opened in the test to check that the processors had
//!    work left (the checkpoints are behind the log; otherwise the kill does not count) and
//!    that no checkpoint went backwards. The next 20 % is published and the process restarted
//!    at once, as Kubernetes or an operator would, and so on until four kills have counted.
//!    Each restart must resume processing within [`RESUME_WITHIN`] (the time is printed).
//!    The rounds follow [`PLAN`]; a kill point (`fleuve_processors::runtime::kill`, armed with
//!    `FLEUVE_KILL_POINTS`) makes the process abort itself at a chosen instant, on a pass
//!    drawn at random:
//!    1. owned partitions, killed mid-batch (`processor::before_apply`: folded, dead letters
//!       sent, nothing stored);
//!    2. a consumer group (`processor_membership = "group"`, stall bound 5 s); the broker is
//!       killed with SIGKILL and restarted at once while the processors work, then the
//!       process is killed with SIGKILL once a random share of its records is consumed;
//!    3. a group again, started right after round 2's members were killed, which Tansu
//!       0.6.0's coordinator gets wrong (the group forms with an empty assignment; see the
//!       broker conformance suite) and the stall watchdog heals by leaving and rejoining;
//!       killed during the rebalance that assigns partitions (`processor::on_assign`);
//!    4. a group, killed between the store write and the offset commit
//!       (`processor::after_apply`).
//!
//!    After the last one, the rest of the stream (touching every partition) is published and the
//!    process runs until every processor's lag gauge is 0 on every partition of its topics;
//!    it is then stopped with SIGTERM.
//! 3. Build B: a clean single run on a fresh store dir B, same consumer groups (with no
//!    checkpoint in its store, each processor seeks its partitions back to the beginning).
//!    The committed offsets are already at the end, so the lag gauge says nothing here: the
//!    test waits until every processor has consumed as many records as its topics hold,
//!    stops it with SIGTERM (the batch at hand is finished) and checks in the store that the
//!    checkpoints are at the end of the log; if not, it runs it again for what is left.
//! 4. Both stores' checkpoints must be at the end of the log; every table of A must equal
//!    B's; stock must equal the model; the dead-letter topics must hold exactly the expected
//!    events, all with reason `rejected`, and B must have added a copy of each.
//!
//! Settings: `FLEUVE_CRASH_SEED` (the stream; fixed by default) and `FLEUVE_CRASH_KILL_SEED`
//! (the kill delays; from the clock by default). Both are printed. On failure, or with
//! `FLEUVE_CRASH_KEEP` set, the work directory (stores, process logs) is kept and its path
//! printed.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test stops at the first unexpected error"
)]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use fleuve_e2e::{Broker, Metrics, ProcessorProcess, RegistryProcess};
use fleuve_kafka::{topics, KafkaConfig};
use fleuve_processors::runtime::kill;
use fleuve_producers::{Published, Publisher, PublisherConfig};
use fleuve_projections::{Store, TableRow};
use fleuve_schemas::{
    BookmarkAdded, BookmarkRemoved, ContentDeleted, ContentKind, ContentUnpublished,
    ContentUpserted, DistributionRight, ErasureReason, Event, OrderCancelled, OrderDelivered,
    OrderLine, OrderPlaced, OrderShipped, PaymentAuthorized, PaymentFailed, PlaybackProgressed,
    ShippingAddress, StockAdjusted, StockAdjustmentReason, StockReleased, StockReserved,
    UserDataErased,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Events in the planned stream (more may be added if a kill finds nothing left to do).
const TOTAL_EVENTS: usize = 52_000;
/// Kills that must hit the processors while they have work left.
const KILLS: usize = 4;
/// Most kill rounds before giving up on getting `KILLS` effective ones.
const MAX_ROUNDS: usize = 7;
/// Share of the stream published before the first start; each later part is
/// `(1 - FIRST_PART) / KILLS` of it.
const FIRST_PART: f64 = 0.4;
/// Kill point: share of the round's records consumed (per mille) when the process is killed.
const KILL_AT_PER_MILLE: (i64, i64) = (50, 700);
/// Longest wait for the kill point; the process is killed then, wherever it is.
const KILL_WAIT: Duration = Duration::from_secs(60);
/// Longest a restarted process may take to consume again (a consumer group on Tansu may
/// have to wait for the killed members' sessions, 45 s, before a rejoin can heal it).
const RESUME_WITHIN: Duration = Duration::from_secs(60);
/// How a round's process dies.
#[derive(Debug, Clone, Copy)]
enum Death {
    /// SIGKILL from the test once a random share of the round's records is consumed
    /// ([`KILL_AT_PER_MILLE`]): wherever the process is, most likely mid-batch.
    Signal,
    /// The process aborts itself at a kill point of `fleuve_processors::runtime::kill`, on
    /// pass `n + 1`, `n` drawn from the range.
    At(&'static str, (i64, i64)),
}

/// One round of build A: how its processors hold their partitions, whether the broker is
/// killed while they work, how the process dies.
#[derive(Debug, Clone, Copy)]
struct Round {
    group: bool,
    broker_kill: bool,
    death: Death,
}

/// The rounds, in order (a round past the plan, when a kill found nothing left to do, owns
/// its partitions and dies by [`Death::Signal`]). Every kill point of the plan must be
/// reached.
const PLAN: [Round; 4] = [
    // Mid-batch: folded, dead letters sent, nothing written to the store.
    Round {
        group: false,
        broker_kill: false,
        death: Death::At(kill::BEFORE_APPLY, (1, 8)),
    },
    // The broker is killed and restarted under the processors, which are then killed.
    Round {
        group: true,
        broker_kill: true,
        death: Death::Signal,
    },
    // Right after the previous members' crash (Tansu's coordinator forms the group with
    // an empty assignment; the watchdog rejoins), during the rebalance that assigns
    // partitions.
    Round {
        group: true,
        broker_kill: false,
        death: Death::At(kill::ON_ASSIGN, (0, 3)),
    },
    // Between the store write and the offset commit.
    Round {
        group: true,
        broker_kill: false,
        death: Death::At(kill::AFTER_APPLY, (1, 6)),
    },
];
/// The settings of a consumer-group round.
const GROUP_ENV: [(&str, &str); 2] = [
    ("FLEUVE_PROCESSOR_MEMBERSHIP", "group"),
    ("FLEUVE_PROCESSOR_STALL_AFTER_MS", "5000"),
];
/// Signal number of SIGABRT, with which a kill point ends the process.
const SIGABRT: i32 = 6;
const DEFAULT_SEED: u64 = 0x00f1_e0fe_c4a5;

const USERS: u64 = 1500;
const VIDEOS: u64 = 400;
const CONTENTS: u64 = 240;
const SKUS: u64 = 300;
const NEW_ORDERS_PER_WAVE: usize = 55;

/// Event times start on 2025-01-01T00:00:00Z; a wave is a minute.
const BASE_MS: i64 = 1_735_689_600_000;
const Y2000_MS: i64 = 946_684_800_000;
const Y2001_MS: i64 = 978_307_200_000;
const Y2200_MS: i64 = 7_258_118_400_000;
const Y2201_MS: i64 = 7_289_654_400_000;
const PRODUCER: &str = "crash-test";

/// A tiny xorshift64* generator: the same seed gives the same stream on every machine.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // splitmix64 of the seed, so that close seeds give unrelated streams; never 0.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Self((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// In `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// In `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + i64::try_from(self.below(u64::try_from(hi - lo + 1).unwrap())).unwrap()
    }

    /// True with probability `p`/1000.
    fn per_mille(&mut self, p: u64) -> bool {
        self.below(1000) < p
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[usize::try_from(self.below(items.len() as u64)).unwrap()]
    }

    /// A UUID (version 4 layout) in lowercase hyphenated form.
    fn uuid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            8 + (b >> 62),
            (b >> 48) & 0xfff,
            b & 0xffff_ffff_ffff
        )
    }
}

/// Declares the event enum of the stream and how a wave is published.
macro_rules! event_kinds {
    ($($field:ident: $variant:ident),+ $(,)?) => {
        #[derive(Debug, Clone)]
        enum Ev {
            $($variant($variant),)+
        }

        impl Ev {
            fn event_id(&self) -> &str {
                match self {
                    $(Ev::$variant(e) => &e.event_id,)+
                }
            }

            fn type_name(&self) -> &'static str {
                match self {
                    $(Ev::$variant(_) => <$variant as Event>::TYPE,)+
                }
            }
        }

        /// Publishes a wave: one batch per event type, all at once (no key appears twice in
        /// a wave, so the order between its batches does not matter). Returns every
        /// event's position.
        async fn publish_wave(publisher: &Publisher, wave: &[Ev]) -> Result<Vec<Published>> {
            $(
                let $field: Vec<$variant> = wave
                    .iter()
                    .filter_map(|e| match e {
                        Ev::$variant(x) => Some(x.clone()),
                                                _ => None,
                    })
                    .collect();
            )+
            let ($($field,)+) = tokio::try_join!($(send(publisher, &$field)),+)?;
            let mut all = Vec::with_capacity(wave.len());
            $(all.extend($field);)+
            Ok(all)
        }
    };
}

event_kinds!(
    progressed: PlaybackProgressed,
    bookmark_added: BookmarkAdded,
    bookmark_removed: BookmarkRemoved,
    erased: UserDataErased,
    upserted: ContentUpserted,
    unpublished: ContentUnpublished,
    deleted: ContentDeleted,
    placed: OrderPlaced,
    authorized: PaymentAuthorized,
    payment_failed: PaymentFailed,
    shipped: OrderShipped,
    delivered: OrderDelivered,
    cancelled: OrderCancelled,
    adjusted: StockAdjusted,
    reserved: StockReserved,
    released: StockReleased,
);

/// Publishes one batch of one type; any failure stops the test (the model would no longer
/// match the log).
async fn send<E: Event>(publisher: &Publisher, events: &[E]) -> Result<Vec<Published>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let results = publisher
        .publish_batch(events)
        .await
        .with_context(|| format!("publishing a batch of {}", E::TYPE))?;
    results
        .into_iter()
        .map(|r| r.with_context(|| format!("publishing a {}", E::TYPE)))
        .collect()
}

/// A content of the catalogue, as its events left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ContentSt {
    Unknown,
    Published,
    Unpublished,
    Deleted,
}

/// An order, as its valid events left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OrderSt {
    Placed,
    PaymentFailed,
    PaymentAuthorized,
    Shipped,
    Delivered,
    Cancelled,
}

#[derive(Debug, Clone)]
struct OrderModel {
    id: String,
    status: OrderSt,
    total_minor: i64,
}

/// The stock of a sku by the inventory rules: available and reserved never negative; a
/// release gives back at most what its order reserved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct StockModel {
    available: i64,
    reserved: i64,
    /// Units reserved per order (0 once all released).
    reservations: BTreeMap<String, i64>,
}

/// The stream generator and the model of what the processors must make of it.
#[derive(Debug)]
struct Gen {
    rng: Rng,
    wave: i64,
    events: usize,
    by_type: BTreeMap<&'static str, usize>,
    bookmarks: Vec<BTreeSet<u64>>,
    contents: Vec<ContentSt>,
    next_order: u64,
    active_orders: Vec<OrderModel>,
    final_orders: Vec<OrderModel>,
    ghost_orders: u64,
    stock: BTreeMap<String, StockModel>,
    /// Event ids each processor must dead-letter.
    rejected: BTreeMap<&'static str, BTreeSet<String>>,
}

impl Gen {
    fn new(seed: u64) -> Self {
        Self {
            rng: Rng::new(seed),
            wave: 0,
            events: 0,
            by_type: BTreeMap::new(),
            bookmarks: vec![BTreeSet::new(); USERS as usize],
            contents: vec![ContentSt::Unknown; CONTENTS as usize],
            next_order: 0,
            active_orders: Vec::new(),
            final_orders: Vec::new(),
            ghost_orders: 0,
            stock: BTreeMap::new(),
            rejected: BTreeMap::new(),
        }
    }

    fn reject(&mut self, processor: &'static str, event_id: &str) {
        self.rejected
            .entry(processor)
            .or_default()
            .insert(event_id.to_owned());
    }

    /// An event id and an event time within the wave starting at `t0`.
    fn envelope(&mut self, t0: i64) -> (String, i64) {
        (self.rng.uuid(), t0 + self.rng.range(0, 50_000))
    }

    /// The next wave: at most one event per key of each topic.
    fn wave(&mut self) -> Vec<Ev> {
        self.wave += 1;
        let t0 = BASE_MS + self.wave * 60_000;
        let mut out = Vec::with_capacity(900);
        self.user_activity(t0, &mut out);
        self.catalog(t0, &mut out);
        self.orders(t0, &mut out);
        self.inventory(t0, &mut out);
        self.events += out.len();
        for e in &out {
            *self.by_type.entry(e.type_name()).or_default() += 1;
        }
        out
    }

    fn user_activity(&mut self, t0: i64, out: &mut Vec<Ev>) {
        for u in 0..USERS {
            if !self.rng.per_mille(250) {
                continue;
            }
            let user_id = format!("u-{u:04}");
            let (event_id, mut occurred_at) = self.envelope(t0);
            let roll = self.rng.below(1000);
            let video = self.rng.below(VIDEOS);
            if roll < 3 {
                self.bookmarks[u as usize].clear();
                let reason = *self.rng.pick(ErasureReason::ALL);
                out.push(Ev::UserDataErased(UserDataErased {
                    event_id,
                    occurred_at,
                    producer: PRODUCER.into(),
                    correlation_id: None,
                    user_id,
                    reason,
                }));
            } else if roll < 700 {
                let duration_ms = 600_000 + i64::try_from(video * 37_000 % 5_400_000).unwrap();
                let position_ms = match self.rng.below(20) {
                    0 | 1 => duration_ms,
                    2 => 0,
                    _ => self.rng.range(0, duration_ms),
                };
                if self.rng.per_mille(50) {
                    // A device coming back online with an older position.
                    occurred_at -= self.rng.range(60_000, 660_000);
                }
                let device = *self.rng.pick(&["web", "ios", "android", "tv"]);
                out.push(Ev::PlaybackProgressed(PlaybackProgressed {
                    event_id,
                    occurred_at,
                    producer: PRODUCER.into(),
                    correlation_id: None,
                    user_id,
                    content_id: format!("v-{video:03}"),
                    position_ms,
                    duration_ms,
                    device: device.into(),
                }));
            } else if roll < 850 {
                self.bookmarks[u as usize].insert(video);
                out.push(Ev::BookmarkAdded(BookmarkAdded {
                    event_id,
                    occurred_at,
                    producer: PRODUCER.into(),
                    correlation_id: None,
                    user_id,
                    content_id: format!("v-{video:03}"),
                }));
            } else {
                let existing: Vec<u64> = self.bookmarks[u as usize].iter().copied().collect();
                let video = if !existing.is_empty() && self.rng.per_mille(700) {
                    *self.rng.pick(&existing)
                } else {
                    video
                };
                self.bookmarks[u as usize].remove(&video);
                out.push(Ev::BookmarkRemoved(BookmarkRemoved {
                    event_id,
                    occurred_at,
                    producer: PRODUCER.into(),
                    correlation_id: None,
                    user_id,
                    content_id: format!("v-{video:03}"),
                }));
            }
        }
    }

    /// Contents come in families of 8: a programme, a season, five episodes and a clip.
    fn content(&mut self, c: u64, event_id: String, occurred_at: i64) -> ContentUpserted {
        let programme = c - c % 8;
        let program_id = format!("ct-{programme:03}");
        let (kind, program, season, episode) = match c % 8 {
            0 => (ContentKind::Programme, None, None, None),
            1 => (ContentKind::Season, Some(program_id), Some(1), None),
            7 => (ContentKind::Clip, Some(program_id), Some(1), Some(0)),
            n => (
                ContentKind::Episode,
                Some(program_id),
                Some(1),
                Some(i32::try_from(n).unwrap() - 1),
            ),
        };
        // Windows long past, open-ended, or far in the future: never an edge between an
        // event's time and the test's wall clock, so both builds see the same view.
        let (available_from, available_until) = *self.rng.pick(&[
            (Y2000_MS, Some(Y2001_MS)),
            (Y2000_MS, None),
            (Y2000_MS, Some(Y2200_MS)),
            (Y2200_MS, None),
            (Y2200_MS, Some(Y2201_MS)),
        ]);
        let tags: Vec<String> = ["drama", "comedy", "news", "kids", "sport"]
            .iter()
            .filter(|_| self.rng.per_mille(300))
            .map(|t| (*t).to_owned())
            .collect();
        let mut rights = Vec::new();
        for partner in ["salto", "isp-1"] {
            if self.rng.per_mille(400) {
                rights.push(DistributionRight {
                    partner: partner.to_owned(),
                    territories: if self.rng.per_mille(500) {
                        vec!["FR".into()]
                    } else {
                        vec!["FR".into(), "BE".into()]
                    },
                });
            }
        }
        ContentUpserted {
            event_id,
            occurred_at,
            producer: PRODUCER.into(),
            correlation_id: None,
            content_id: format!("ct-{c:03}"),
            kind,
            program_id: program,
            season_number: season,
            episode_number: episode,
            title: format!("Content {c} (wave {})", self.wave),
            description: self
                .rng
                .per_mille(500)
                .then(|| format!("Described in wave {}.", self.wave)),
            tags,
            duration_ms: (kind != ContentKind::Programme && kind != ContentKind::Season)
                .then(|| self.rng.range(60_000, 3_600_000)),
            available_from,
            available_until,
            rights,
        }
    }

    fn catalog(&mut self, t0: i64, out: &mut Vec<Ev>) {
        for c in 0..CONTENTS {
            if !self.rng.per_mille(150) {
                continue;
            }
            let (event_id, occurred_at) = self.envelope(t0);
            let content_id = format!("ct-{c:03}");
            let state = self.contents[c as usize];
            let roll = self.rng.below(100);
            // (upsert, unpublish) thresholds; the rest deletes.
            let (upsert, unpublish) = match state {
                ContentSt::Unknown => (95, 98),
                ContentSt::Published | ContentSt::Unpublished => (70, 90),
                ContentSt::Deleted => (80, 90),
            };
            if roll < upsert {
                let e = self.content(c, event_id, occurred_at);
                self.contents[c as usize] = ContentSt::Published;
                out.push(Ev::ContentUpserted(e));
            } else if roll < unpublish {
                if matches!(state, ContentSt::Unknown | ContentSt::Deleted) {
                    self.reject("catalog", &event_id);
                } else {
                    self.contents[c as usize] = ContentSt::Unpublished;
                }
                out.push(Ev::ContentUnpublished(ContentUnpublished {
                    event_id,
                    occurred_at,
                    producer: PRODUCER.into(),
                    correlation_id: None,
                    content_id,
                    reason: self.rng.per_mille(500).then(|| "rights expired".to_owned()),
                }));
            } else {
                if matches!(state, ContentSt::Unknown | ContentSt::Deleted) {
                    self.reject("catalog", &event_id);
                } else {
                    self.contents[c as usize] = ContentSt::Deleted;
                }
                out.push(Ev::ContentDeleted(ContentDeleted {
                    event_id,
                    occurred_at,
                    producer: PRODUCER.into(),
                    correlation_id: None,
                    content_id,
                }));
            }
        }
    }

    fn orders(&mut self, t0: i64, out: &mut Vec<Ev>) {
        // Orders advanced this wave first, then new ones (one event per order per wave).
        let mut still_active = Vec::with_capacity(self.active_orders.len());
        for mut order in std::mem::take(&mut self.active_orders) {
            if self.rng.per_mille(700) {
                self.advance(&mut order, t0, out);
            }
            if matches!(order.status, OrderSt::Delivered | OrderSt::Cancelled) {
                self.final_orders.push(order);
            } else {
                still_active.push(order);
            }
        }
        self.active_orders = still_active;
        // A few moves out of a final status (backwards or after a cancellation).
        if !self.final_orders.is_empty() && self.rng.per_mille(600) {
            let i = self.rng.below(self.final_orders.len() as u64) as usize;
            let order = self.final_orders.swap_remove(i);
            let (event_id, occurred_at) = self.envelope(t0);
            self.reject("orders", &event_id);
            out.push(match order.status {
                OrderSt::Delivered => Ev::OrderShipped(OrderShipped {
                    event_id,
                    occurred_at,
                    producer: PRODUCER.into(),
                    correlation_id: None,
                    order_id: order.id,
                    carrier: "colissimo".into(),
                    tracking_number: None,
                }),
                _ => Ev::PaymentAuthorized(PaymentAuthorized {
                    event_id,
                    occurred_at,
                    producer: PRODUCER.into(),
                    correlation_id: None,
                    order_id: order.id,
                    amount_minor: order.total_minor,
                    currency: "EUR".into(),
                    payment_ref: "pay-late".into(),
                }),
            });
        }
        // An order that was never placed.
        if self.rng.per_mille(500) {
            self.ghost_orders += 1;
            let (event_id, occurred_at) = self.envelope(t0);
            self.reject("orders", &event_id);
            out.push(Ev::OrderDelivered(OrderDelivered {
                event_id,
                occurred_at,
                producer: PRODUCER.into(),
                correlation_id: None,
                order_id: format!("o-ghost-{}", self.ghost_orders),
            }));
        }
        for _ in 0..NEW_ORDERS_PER_WAVE {
            self.next_order += 1;
            let order_id = format!("o-{:05}", self.next_order);
            let (event_id, occurred_at) = self.envelope(t0);
            let mut skus: Vec<u64> = (0..self.rng.range(1, 3))
                .map(|_| self.rng.below(SKUS))
                .collect();
            skus.sort_unstable();
            skus.dedup();
            let lines: Vec<OrderLine> = skus
                .iter()
                .map(|s| OrderLine {
                    sku: format!("sku-{s:03}"),
                    quantity: i32::try_from(self.rng.range(1, 3)).unwrap(),
                    unit_price_minor: self.rng.range(100, 9_999),
                })
                .collect();
            let placed = OrderPlaced {
                event_id,
                occurred_at,
                producer: PRODUCER.into(),
                correlation_id: Some(format!("checkout-{}", self.next_order)),
                order_id: order_id.clone(),
                buyer_id: format!("b-{:03}", self.rng.below(300)),
                seller_id: format!("s-{:02}", self.rng.below(20)),
                lines,
                currency: "EUR".into(),
                shipping_address: ShippingAddress {
                    name: "Camille Martin".into(),
                    line1: format!("{} rue de la Paix", self.rng.range(1, 200)),
                    line2: None,
                    postal_code: "75002".into(),
                    city: "Paris".into(),
                    country: "FR".into(),
                },
            };
            self.active_orders.push(OrderModel {
                id: order_id,
                status: OrderSt::Placed,
                total_minor: placed.total_minor().unwrap(),
            });
            out.push(Ev::OrderPlaced(placed));
        }
    }

    /// The next event of an active order: mostly a valid move, sometimes one the status
    /// machine refuses (the order stays as it was).
    fn advance(&mut self, order: &mut OrderModel, t0: i64, out: &mut Vec<Ev>) {
        let (event_id, occurred_at) = self.envelope(t0);
        let order_id = order.id.clone();
        let authorized = |event_id: String, amount_minor: i64| {
            Ev::PaymentAuthorized(PaymentAuthorized {
                event_id,
                occurred_at,
                producer: PRODUCER.into(),
                correlation_id: None,
                order_id: order_id.clone(),
                amount_minor,
                currency: "EUR".into(),
                payment_ref: format!("pay-{order_id}"),
            })
        };
        let failed = |event_id: String| {
            Ev::PaymentFailed(PaymentFailed {
                event_id,
                occurred_at,
                producer: PRODUCER.into(),
                correlation_id: None,
                order_id: order_id.clone(),
                reason: "card declined".into(),
            })
        };
        let cancelled = |event_id: String| {
            Ev::OrderCancelled(OrderCancelled {
                event_id,
                occurred_at,
                producer: PRODUCER.into(),
                correlation_id: None,
                order_id: order_id.clone(),
                reason: "buyer changed their mind".into(),
            })
        };
        let shipped = |event_id: String| {
            Ev::OrderShipped(OrderShipped {
                event_id,
                occurred_at,
                producer: PRODUCER.into(),
                correlation_id: None,
                order_id: order_id.clone(),
                carrier: "colissimo".into(),
                tracking_number: Some(format!("trk-{order_id}")),
            })
        };
        let delivered = |event_id: String| {
            Ev::OrderDelivered(OrderDelivered {
                event_id,
                occurred_at,
                producer: PRODUCER.into(),
                correlation_id: None,
                order_id: order_id.clone(),
            })
        };
        if self.rng.per_mille(25) {
            // A move the status machine refuses.
            self.reject("orders", &event_id);
            let ev = match order.status {
                OrderSt::Placed => match self.rng.below(2) {
                    0 => delivered(event_id),
                    _ => authorized(event_id, order.total_minor + 1),
                },
                OrderSt::PaymentFailed => shipped(event_id),
                OrderSt::PaymentAuthorized => match self.rng.below(2) {
                    0 => authorized(event_id, order.total_minor),
                    _ => delivered(event_id),
                },
                OrderSt::Shipped => cancelled(event_id),
                OrderSt::Delivered | OrderSt::Cancelled => unreachable!("final orders"),
            };
            out.push(ev);
            return;
        }
        let roll = self.rng.below(100);
        let (ev, to) = match order.status {
            OrderSt::Placed if roll < 80 => (
                authorized(event_id, order.total_minor),
                OrderSt::PaymentAuthorized,
            ),
            OrderSt::Placed if roll < 92 => (failed(event_id), OrderSt::PaymentFailed),
            OrderSt::Placed => (cancelled(event_id), OrderSt::Cancelled),
            OrderSt::PaymentFailed if roll < 50 => (
                authorized(event_id, order.total_minor),
                OrderSt::PaymentAuthorized,
            ),
            OrderSt::PaymentFailed if roll < 70 => (failed(event_id), OrderSt::PaymentFailed),
            OrderSt::PaymentFailed => (cancelled(event_id), OrderSt::Cancelled),
            OrderSt::PaymentAuthorized if roll < 85 => (shipped(event_id), OrderSt::Shipped),
            OrderSt::PaymentAuthorized => (cancelled(event_id), OrderSt::Cancelled),
            OrderSt::Shipped => (delivered(event_id), OrderSt::Delivered),
            OrderSt::Delivered | OrderSt::Cancelled => unreachable!("final orders"),
        };
        order.status = to;
        out.push(ev);
    }

    fn inventory(&mut self, t0: i64, out: &mut Vec<Ev>) {
        for s in 0..SKUS {
            if !self.rng.per_mille(650) {
                continue;
            }
            let sku = format!("sku-{s:03}");
            let (event_id, occurred_at) = self.envelope(t0);
            let m = self.stock.entry(sku.clone()).or_default().clone();
            let held: Vec<(String, i64)> = m
                .reservations
                .iter()
                .filter(|(_, q)| **q > 0)
                .map(|(o, q)| (o.clone(), *q))
                .collect();
            let adjusted = |delta: i64, reason: StockAdjustmentReason| {
                Ev::StockAdjusted(StockAdjusted {
                    event_id: event_id.clone(),
                    occurred_at,
                    producer: PRODUCER.into(),
                    correlation_id: None,
                    sku: sku.clone(),
                    delta: i32::try_from(delta).unwrap(),
                    reason,
                })
            };
            let reserved = |order_id: &str, quantity: i64| {
                Ev::StockReserved(StockReserved {
                    event_id: event_id.clone(),
                    occurred_at,
                    producer: PRODUCER.into(),
                    correlation_id: Some(order_id.to_owned()),
                    sku: sku.clone(),
                    order_id: order_id.to_owned(),
                    quantity: i32::try_from(quantity).unwrap(),
                })
            };
            let released = |order_id: &str, quantity: i64| {
                Ev::StockReleased(StockReleased {
                    event_id: event_id.clone(),
                    occurred_at,
                    producer: PRODUCER.into(),
                    correlation_id: Some(order_id.to_owned()),
                    sku: sku.clone(),
                    order_id: order_id.to_owned(),
                    quantity: i32::try_from(quantity).unwrap(),
                })
            };
            let new_order = format!("o-{:05}", self.rng.range(1, 99_999));
            let roll = self.rng.below(1000);
            // (event, new model) — `None` for the model when the event must be rejected.
            let (ev, next): (Ev, Option<StockModel>) = if roll < 25 {
                // Would make a count negative: rejected, nothing changes.
                let ev = match self.rng.below(3) {
                    0 => reserved(&new_order, m.available + self.rng.range(1, 5)),
                    1 => adjusted(
                        -(m.available + self.rng.range(1, 5)),
                        StockAdjustmentReason::Damaged,
                    ),
                    _ => {
                        let order = held.first().map_or(new_order.as_str(), |(o, _)| o.as_str());
                        released(order, m.reserved + self.rng.range(1, 3))
                    }
                };
                (ev, None)
            } else if m.available < 3 || roll < 300 {
                let delta = self.rng.range(5, 40);
                let mut n = m.clone();
                n.available += delta;
                (adjusted(delta, StockAdjustmentReason::Received), Some(n))
            } else if roll < 620 {
                let (order, quantity) = if !held.is_empty() && self.rng.per_mille(300) {
                    (self.rng.pick(&held).0.clone(), 1)
                } else {
                    (new_order.clone(), self.rng.range(1, m.available.min(5)))
                };
                let mut n = m.clone();
                n.available -= quantity;
                n.reserved += quantity;
                *n.reservations.entry(order.clone()).or_default() += quantity;
                (reserved(&order, quantity), Some(n))
            } else if roll < 850 && !held.is_empty() {
                let (order, has) = self.rng.pick(&held).clone();
                let quantity = self.rng.range(1, has);
                let mut n = m.clone();
                n.available += quantity;
                n.reserved -= quantity;
                *n.reservations.get_mut(&order).unwrap() -= quantity;
                (released(&order, quantity), Some(n))
            } else {
                let (delta, reason) = match self.rng.below(3) {
                    0 => (
                        -self.rng.range(1, m.available.min(4)),
                        StockAdjustmentReason::Damaged,
                    ),
                    1 => (self.rng.range(1, 2), StockAdjustmentReason::Returned),
                    _ => (
                        *self.rng.pick(&[-2, -1, 1, 2, 3]),
                        StockAdjustmentReason::Correction,
                    ),
                };
                let mut n = m.clone();
                n.available += delta;
                (adjusted(delta, reason), Some(n))
            };
            match next {
                Some(n) => {
                    assert!(n.available >= 0 && n.reserved >= 0, "generator bug: {n:?}");
                    self.stock.insert(sku, n);
                }
                None => self.reject("inventory", ev.event_id()),
            }
            out.push(ev);
        }
    }
}

/// Reads an environment variable as a number (decimal or 0x-hexadecimal).
fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

/// Processor names and the topics each consumes.
fn processors() -> Vec<(&'static str, &'static [&'static str])> {
    fleuve_processors::handlers::NAMES
        .iter()
        .map(|n| {
            let handler = fleuve_processors::handlers::by_name(n).expect("known processor");
            (*n, handler.topics())
        })
        .collect()
}

/// The end offset (high watermark) of every partition of `topic`.
fn end_offsets(bootstrap: &str, topic: &str) -> Result<BTreeMap<i32, i64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let t = metadata
        .topics()
        .first()
        .with_context(|| format!("no metadata for {topic}"))?;
    ensure!(!t.partitions().is_empty(), "topic {topic} has no partition");
    let mut out = BTreeMap::new();
    for p in t.partitions() {
        let (_, high) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
        out.insert(p.id(), high);
    }
    Ok(out)
}

/// End offsets of every event topic.
type Ends = BTreeMap<String, BTreeMap<i32, i64>>;

fn all_end_offsets(bootstrap: &str) -> Result<Ends> {
    topics::EVENT_TOPICS
        .iter()
        .map(|t| Ok(((*t).to_owned(), end_offsets(bootstrap, t)?)))
        .collect()
}

/// One dead letter, as read back from `dlq.<processor>`.
#[derive(Debug, Clone)]
struct DeadLetter {
    event_id: String,
    reason: String,
    error: String,
    source: String,
}

fn header(m: &rdkafka::message::BorrowedMessage<'_>, key: &str) -> String {
    m.headers()
        .and_then(|h| h.iter().find(|h| h.key == key))
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

/// Every record of a dead-letter topic.
fn read_dead_letters(bootstrap: &str, topic: &str) -> Result<Vec<DeadLetter>> {
    let ends = end_offsets(bootstrap, topic)?;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "crash-test-dlq-reader")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in ends.keys() {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut remaining: i64 = ends.values().sum();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while remaining > 0 {
        ensure!(
            Instant::now() < deadline,
            "{remaining} records of {topic} not read within 60 s"
        );
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m?;
            remaining -= 1;
            out.push(DeadLetter {
                event_id: header(&m, "event_id"),
                reason: header(&m, "dlq.reason"),
                error: header(&m, "dlq.error"),
                source: format!(
                    "{}/{}@{}",
                    header(&m, "dlq.source.topic"),
                    header(&m, "dlq.source.partition"),
                    header(&m, "dlq.source.offset")
                ),
            });
        }
    }
    Ok(out)
}

/// Every table of a store, in (pk, ck) order.
type Dump = BTreeMap<&'static str, Vec<TableRow>>;

async fn dump(store: &dyn Store) -> Result<Dump> {
    let mut out = Dump::new();
    for table in fleuve_projections::tables() {
        let mut rows: Vec<TableRow> = Vec::new();
        loop {
            let after = rows.last().map(|r| (r.pk.as_str(), r.ck.as_str()));
            let page = store.scan_table(table, after, 1000).await?;
            let done = page.len() < 1000;
            rows.extend(page);
            if done {
                break;
            }
        }
        out.insert(table, rows);
    }
    Ok(out)
}

async fn open_store(dir: &Path) -> Result<Arc<dyn Store>> {
    let url = format!("embedded://{}", dir.display());
    fleuve_projections::open(&url)
        .await
        .with_context(|| format!("opening {url}"))
}

/// Checkpoints of every processor: (processor, topic, partition) → next offset.
type Checkpoints = BTreeMap<(String, String, i32), i64>;

async fn checkpoints(store: &dyn Store) -> Result<Checkpoints> {
    let mut out = Checkpoints::new();
    for (name, _) in processors() {
        for c in store.checkpoints(name).await? {
            out.insert((name.to_owned(), c.topic, c.partition), c.next_offset);
        }
    }
    Ok(out)
}

/// Records each processor still has to apply: (processor → records behind the log), from
/// the store's checkpoints and the topics' end offsets.
fn behind(cps: &Checkpoints, ends: &Ends) -> BTreeMap<&'static str, i64> {
    let mut out = BTreeMap::new();
    for (name, topics) in processors() {
        let mut n = 0;
        for t in topics {
            for (p, end) in ends.get(*t).into_iter().flatten() {
                let at = cps
                    .get(&(name.to_owned(), (*t).to_owned(), *p))
                    .copied()
                    .unwrap_or(0);
                n += end - at;
            }
        }
        out.insert(name, n);
    }
    out
}

/// Fails unless every checkpoint is at the end of its partition.
fn ensure_at_end(cps: &Checkpoints, ends: &Ends, build: &str) -> Result<()> {
    let mut wrong = Vec::new();
    for (name, topics) in processors() {
        for t in topics {
            for (p, end) in ends.get(*t).into_iter().flatten() {
                let at = cps.get(&(name.to_owned(), (*t).to_owned(), *p)).copied();
                if at.unwrap_or(0) != *end {
                    wrong.push(format!("{name} {t}/{p}: checkpoint {at:?}, end {end}"));
                }
            }
        }
    }
    ensure!(
        wrong.is_empty(),
        "{build}: checkpoints not at the end of the log:\n  {}",
        wrong.join("\n  ")
    );
    Ok(())
}

fn counters(m: &Metrics, name: &str) -> BTreeMap<String, i64> {
    m.series(name, &[])
        .map(|s| {
            #[expect(
                clippy::cast_possible_truncation,
                reason = "the value is a count or a time well within i64"
            )]
            let v = s.value as i64;
            (s.labels.get("processor").cloned().unwrap_or_default(), v)
        })
        .collect()
}

const CONSUMED: &str = "fleuve_processor_events_consumed_total";
const APPLIED: &str = "fleuve_processor_events_applied_total";
const LAG: &str = "fleuve_processor_lag_events";

/// What a process's log says about its groups and failures (rebalances, errors, retries),
/// last lines first cut: the dead-letter warnings that fill its tail are left out.
fn log_digest(p: &ProcessorProcess) -> String {
    let all = fleuve_e2e::log_tail(p.log_path(), usize::MAX);
    let lines: Vec<&str> = all
        .lines()
        .filter(|l| {
            [
                "partitions assigned",
                "partitions revoked",
                "ERROR",
                "SESSTMOUT",
                "seek",
                "transient failure",
            ]
            .iter()
            .any(|k| l.contains(k))
        })
        .collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Fails with the process's log tail when it has exited.
fn ensure_running(p: &mut ProcessorProcess, what: &str) -> Result<()> {
    if let Some(status) = p.exited()? {
        bail!(
            "{what}: fleuve process exited with {status}; its log ({}):\n{}",
            p.log_path().display(),
            p.log_tail(60)
        );
    }
    Ok(())
}

/// Waits (up to `timeout`) until the process ends at the kill point `point`: it must abort
/// (SIGABRT) and its log must say the kill point was reached. Returns how it ended.
async fn wait_kill_point(
    p: &mut ProcessorProcess,
    point: &str,
    timeout: Duration,
) -> Result<String> {
    use std::os::unix::process::ExitStatusExt;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = p.exited()? {
            break status;
        }
        if Instant::now() >= deadline {
            bail!(
                "kill point {point} not reached within {timeout:?} (is the `fleuve` binary built \
                 with the `failpoints` feature, as `cargo test --workspace` builds it?); its log:\n{}",
                p.log_tail(30)
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let log = fleuve_e2e::log_tail(p.log_path(), usize::MAX);
    ensure!(
        status.signal() == Some(SIGABRT) && log.contains("kill point reached"),
        "the process was to abort at kill point {point}, but it exited with {status}; its log:\n{}",
        p.log_tail(40)
    );
    Ok(format!("aborted at kill point {point}"))
}

/// Waits until the process has consumed its first records; returns when.
async fn wait_consuming(
    http: &reqwest::Client,
    p: &mut ProcessorProcess,
    timeout: Duration,
) -> Result<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        ensure_running(p, "waiting for it to consume")?;
        if let Ok(m) = p.metrics(http).await {
            if m.sum(CONSUMED, &[]) > 0.0 {
                return Ok(Instant::now());
            }
        }
        if Instant::now() > deadline {
            bail!(
                "fleuve process consumed nothing within {timeout:?}; rebalances and errors in its log:\n{}\nits log's tail:\n{}",
                log_digest(p),
                p.log_tail(30)
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until the processors have consumed `records` in all (or `timeout` has passed:
/// the kill then happens wherever the process is).
async fn wait_consumed_sum(
    http: &reqwest::Client,
    p: &mut ProcessorProcess,
    records: i64,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        ensure_running(p, "waiting for the kill point")?;
        if let Ok(m) = p.metrics(http).await {
            #[expect(
                clippy::cast_possible_truncation,
                reason = "the value is a count or a time well within i64"
            )]
            let consumed = m.sum(CONSUMED, &[]) as i64;
            if consumed >= records {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Waits until every processor reports a lag of 0 on every partition of its topics.
async fn wait_lag_zero(
    http: &reqwest::Client,
    p: &mut ProcessorProcess,
    ends: &Ends,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        ensure_running(p, "waiting for it to catch up")?;
        let m = p.metrics(http).await.unwrap_or_default();
        let mut pending = Vec::new();
        for (name, topics) in processors() {
            for t in topics {
                for part in ends
                    .get(*t)
                    .into_iter()
                    .flatten()
                    .map(|(p, _)| p.to_string())
                {
                    let lag = m.value(
                        LAG,
                        &[("processor", name), ("topic", t), ("partition", &part)],
                    );
                    if lag != Some(0.0) {
                        pending.push(format!("{name} {t}/{part}: {lag:?}"));
                    }
                }
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "not caught up within {timeout:?}: lag gauges not 0 (None = no gauge):\n  {}\n\
                 applied so far: {:?}\nrebalances and errors in its log ({}):\n{}\nits log's tail:\n{}",
                pending.join("\n  "),
                counters(&m, APPLIED),
                p.log_path().display(),
                log_digest(p),
                p.log_tail(30)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until each processor has consumed at least `expected` records.
async fn wait_consumed(
    http: &reqwest::Client,
    p: &mut ProcessorProcess,
    expected: &BTreeMap<&'static str, i64>,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        ensure_running(p, "waiting for the clean run")?;
        let m = p.metrics(http).await.unwrap_or_default();
        let consumed = counters(&m, CONSUMED);
        let short: Vec<String> = expected
            .iter()
            .filter(|(name, n)| consumed.get(**name).copied().unwrap_or(0) < **n)
            .map(|(name, n)| format!("{name}: {:?} of {n}", consumed.get(*name)))
            .collect();
        if short.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the clean run did not consume the log within {timeout:?}: {}\n\
                 rebalances and errors in its log ({}):\n{}\nits log's tail:\n{}",
                short.join(", "),
                p.log_path().display(),
                log_digest(p),
                p.log_tail(30)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Stops a process gracefully and fails if it did not exit cleanly.
fn stop(p: ProcessorProcess, what: &str) -> Result<()> {
    let log = p.log_path().to_owned();
    let status = p.terminate(Duration::from_secs(60))?;
    ensure!(
        status.success(),
        "{what}: fleuve process exited with {status} after SIGTERM; its log ({}):\n{}",
        log.display(),
        fleuve_e2e::log_tail(&log, 60)
    );
    Ok(())
}

fn preview(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    if s.chars().count() > 400 {
        format!(
            "{}… ({} bytes)",
            s.chars().take(400).collect::<String>(),
            s.len()
        )
    } else {
        s.into_owned()
    }
}

/// The differences between two dumps, table by table: counts and the first differing rows.
fn differences(a: &Dump, b: &Dump) -> Vec<String> {
    let mut out = Vec::new();
    for (table, rows_a) in a {
        let empty = Vec::new();
        let rows_b = b.get(table).unwrap_or(&empty);
        if rows_a == rows_b {
            continue;
        }
        let map_a: BTreeMap<(&str, &str), &[u8]> = rows_a
            .iter()
            .map(|r| ((r.pk.as_str(), r.ck.as_str()), r.value.as_slice()))
            .collect();
        let map_b: BTreeMap<(&str, &str), &[u8]> = rows_b
            .iter()
            .map(|r| ((r.pk.as_str(), r.ck.as_str()), r.value.as_slice()))
            .collect();
        let keys: BTreeSet<(&str, &str)> = map_a.keys().chain(map_b.keys()).copied().collect();
        let diffs: Vec<String> = keys
            .into_iter()
            .filter_map(|k| match (map_a.get(&k), map_b.get(&k)) {
                (Some(va), Some(vb)) if va == vb => None,
                (Some(va), Some(vb)) => Some(format!(
                    "  {k:?} differs:\n    crashed: {}\n    clean:   {}",
                    preview(va),
                    preview(vb)
                )),
                (Some(va), None) => Some(format!(
                    "  {k:?} only in the crashed build: {}",
                    preview(va)
                )),
                (None, Some(vb)) => {
                    Some(format!("  {k:?} only in the clean build: {}", preview(vb)))
                }
                (None, None) => None,
            })
            .collect();
        out.push(format!(
            "table {table}: {} rows after the crashes, {} in the clean run, {} differ; first ones:\n{}",
            rows_a.len(),
            rows_b.len(),
            diffs.len(),
            diffs.iter().take(5).cloned().collect::<Vec<_>>().join("\n")
        ));
    }
    out
}

/// Stock rows against the model: every sku's counts and every reservation.
fn check_stock(dump: &Dump, model: &BTreeMap<String, StockModel>) -> Result<()> {
    use fleuve_projections::inventory::{Reservation, Stock, STOCK, STOCK_RESERVATIONS};
    let mut got: BTreeMap<String, StockModel> = BTreeMap::new();
    for row in dump.get(STOCK.name()).into_iter().flatten() {
        let s: Stock = serde_json::from_slice(&row.value)
            .with_context(|| format!("stock row {}: {}", row.pk, preview(&row.value)))?;
        let m = got.entry(row.pk.clone()).or_default();
        m.available = s.available;
        m.reserved = s.reserved;
    }
    for row in dump.get(STOCK_RESERVATIONS.name()).into_iter().flatten() {
        let r: Reservation = serde_json::from_slice(&row.value)
            .with_context(|| format!("reservation row {}: {}", row.pk, preview(&row.value)))?;
        got.entry(row.pk.clone())
            .or_default()
            .reservations
            .insert(r.order_id, r.quantity);
    }
    let skus: BTreeSet<&String> = got.keys().chain(model.keys()).collect();
    let wrong: Vec<String> = skus
        .into_iter()
        .filter_map(|sku| {
            let (g, m) = (got.get(sku), model.get(sku));
            (g != m).then(|| format!("{sku}: store {g:?}\n    model {m:?}"))
        })
        .collect();
    ensure!(
        wrong.is_empty(),
        "stock differs from the model for {} of {} skus; first ones:\n  {}",
        wrong.len(),
        model.len(),
        wrong
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    Ok(())
}

/// Distinct event ids per dead-letter topic, and how many records each has.
type DeadLetterCounts = BTreeMap<&'static str, BTreeMap<String, usize>>;

/// Checks every `dlq.<processor>` topic against the events the model says break a rule:
/// the same distinct event ids, every record with reason `rejected`. Returns the counts.
fn check_dead_letters(
    bootstrap: &str,
    expected: &BTreeMap<&'static str, BTreeSet<String>>,
) -> Result<DeadLetterCounts> {
    let mut counts = DeadLetterCounts::new();
    let mut problems = Vec::new();
    for (name, _) in processors() {
        let letters = read_dead_letters(bootstrap, &format!("dlq.{name}"))?;
        let expected = expected.get(name).cloned().unwrap_or_default();
        let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
        for l in &letters {
            *per_id.entry(l.event_id.clone()).or_default() += 1;
            if l.reason != "rejected" {
                problems.push(format!(
                    "dlq.{name}: {} ({}) has reason `{}`: {}",
                    l.event_id, l.source, l.reason, l.error
                ));
            }
        }
        let unexpected: Vec<&DeadLetter> = letters
            .iter()
            .filter(|l| !expected.contains(&l.event_id))
            .collect();
        let missing: Vec<&String> = expected
            .iter()
            .filter(|id| !per_id.contains_key(*id))
            .collect();
        if !unexpected.is_empty() {
            problems.push(format!(
                "dlq.{name}: {} dead letters the model does not expect; first ones:\n    {}",
                unexpected.len(),
                unexpected
                    .iter()
                    .take(5)
                    .map(|l| format!("{} at {}: {}", l.event_id, l.source, l.error))
                    .collect::<Vec<_>>()
                    .join("\n    ")
            ));
        }
        if !missing.is_empty() {
            problems.push(format!(
                "dlq.{name}: {} events that break a rule were not dead-lettered; first ones: {:?}",
                missing.len(),
                missing.iter().take(5).collect::<Vec<_>>()
            ));
        }
        counts.insert(name, per_id);
    }
    ensure!(
        problems.is_empty(),
        "dead-letter topics:\n  {}",
        problems.join("\n  ")
    );
    Ok(counts)
}

/// The stream and where it stands.
struct Stream {
    gen: Gen,
    /// Planned waves not published yet, in order.
    planned: std::collections::VecDeque<Vec<Ev>>,
    published: usize,
}

impl Stream {
    /// Publishes `events` worth of waves (planned ones first, then new ones); returns the
    /// partitions they touched, by topic.
    async fn publish(
        &mut self,
        publisher: &Publisher,
        events: usize,
    ) -> Result<BTreeMap<String, BTreeSet<i32>>> {
        let mut touched: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
        let mut sent = 0;
        while sent < events {
            let wave = match self.planned.pop_front() {
                Some(w) => w,
                None => self.gen.wave(),
            };
            for p in publish_wave(publisher, &wave).await? {
                touched
                    .entry(p.position.topic.to_string())
                    .or_default()
                    .insert(p.position.partition);
            }
            sent += wave.len();
        }
        self.published += sent;
        Ok(touched)
    }

    fn planned_events(&self) -> usize {
        self.planned.iter().map(Vec::len).sum()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processors_killed_mid_stream_build_the_projections_of_a_clean_run() -> Result<()> {
    let work = tempfile::Builder::new().prefix("fleuve-crash-").tempdir()?;
    let mut broker = Broker::start()?;
    let outcome = crash_test(&mut broker, work.path()).await;
    let keep = outcome.is_err() || std::env::var_os("FLEUVE_CRASH_KEEP").is_some();
    if !keep {
        return Ok(());
    }
    for log in ["broker.log", "broker.err"] {
        let _ = std::fs::copy(broker.dir.path().join(log), work.path().join(log));
    }
    let kept = work.keep();
    match outcome {
        Ok(()) => {
            eprintln!("stores and logs kept in {}", kept.display());
            Ok(())
        }
        Err(e) => Err(e.context(format!(
            "crash test failed; stores and logs (processes, broker) kept in {}",
            kept.display()
        ))),
    }
}

async fn crash_test(broker: &mut Broker, work: &Path) -> Result<()> {
    let started = Instant::now();
    let seed = env_u64("FLEUVE_CRASH_SEED").unwrap_or(DEFAULT_SEED);
    let kill_seed = env_u64("FLEUVE_CRASH_KILL_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    eprintln!(
        "crash test: FLEUVE_CRASH_SEED={seed:#x} FLEUVE_CRASH_KILL_SEED={kill_seed:#x}, work dir {}",
        work.display()
    );
    let mut kill_rng = Rng::new(kill_seed);
    let elapsed = || format!("{:>5.1} s", started.elapsed().as_secs_f64());

    let registry = RegistryProcess::start(broker, work)?;
    let bootstrap = broker.bootstrap();
    topics::ensure_topics(&KafkaConfig::new(&bootstrap), &topics::platform_topics(3)).await?;
    let publisher = Publisher::new(PublisherConfig::new(
        KafkaConfig::new(&bootstrap)
            .with_client_id("crash-test")
            .with_delivery_timeout(Duration::from_secs(60)),
        &registry.url,
        PRODUCER,
    ))?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;

    let mut gen = Gen::new(seed);
    let mut planned = std::collections::VecDeque::new();
    while gen.events < TOTAL_EVENTS {
        planned.push_back(gen.wave());
    }
    eprintln!(
        "{} stream: {} events in {} waves: {:?}",
        elapsed(),
        gen.events,
        planned.len(),
        gen.by_type
    );
    let total_planned = gen.events;
    let mut stream = Stream {
        gen,
        planned,
        published: 0,
    };
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "a share of about 52,000 events"
    )]
    let first_part = (total_planned as f64 * FIRST_PART) as usize;
    let later_part = (total_planned - first_part).div_ceil(KILLS);

    // Build A, killed mid-work.
    let store_a = work.join("store-a");
    let mut seen = Checkpoints::new();
    let mut effective = 0;
    let mut round = 0;
    let mut killed = false;
    let mut resumes = Vec::new();
    stream.publish(&publisher, first_part).await?;
    eprintln!("{} published {} events", elapsed(), stream.published);
    while effective < KILLS {
        round += 1;
        ensure!(
            round <= MAX_ROUNDS,
            "only {effective} of {round} kills found the processors with work left"
        );
        if killed {
            stream.publish(&publisher, later_part).await?;
            eprintln!("{} published {} events", elapsed(), stream.published);
        }
        let todo: i64 = behind(&seen, &all_end_offsets(&bootstrap)?).values().sum();
        let plan = PLAN.get(round - 1).copied().unwrap_or(Round {
            group: false,
            broker_kill: false,
            death: Death::Signal,
        });
        let log = work.join(format!("a-{round}.log"));
        let mut env: Vec<(&str, String)> = Vec::new();
        if plan.group {
            env.extend(GROUP_ENV.iter().map(|(k, v)| (*k, (*v).to_owned())));
        }
        let how = match plan.death {
            Death::Signal => {
                let per_mille = kill_rng.range(KILL_AT_PER_MILLE.0, KILL_AT_PER_MILLE.1);
                let kill_at = (todo * per_mille / 1000).max(1);
                (
                    format!("SIGKILL at {kill_at} of {todo} records to read ({per_mille} ‰)"),
                    kill_at,
                )
            }
            Death::At(point, (lo, hi)) => {
                let skip = kill_rng.range(lo, hi);
                env.push((kill::ENV, format!("{point}={skip}*off->return")));
                (
                    format!(
                        "kill point {point} on pass {} ({todo} records to read)",
                        skip + 1
                    ),
                    0,
                )
            }
        };
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let membership = if plan.group {
            "consumer group"
        } else {
            "owned partitions"
        };
        let restarted = Instant::now();
        let mut p = ProcessorProcess::start_with_env(
            broker,
            &registry.url,
            &store_a,
            &["all"],
            &log,
            &env,
        )?;
        let since = if killed { "immediate restart" } else { "start" };
        let m = match plan.death {
            Death::At(point, _) if point == kill::ON_ASSIGN => {
                // It dies while its groups assign partitions, before it consumes.
                let status = wait_kill_point(&mut p, point, RESUME_WITHIN + KILL_WAIT).await?;
                eprintln!(
                    "{} round {round} ({membership}): {status} in a rebalance {:.1} s after the {since}",
                    elapsed(),
                    restarted.elapsed().as_secs_f64(),
                );
                Metrics::default()
            }
            Death::At(point, _) => {
                // It consumes, then dies at the kill point (maybe before a scrape saw it
                // consume: the kill points are past the consumption, so its exit bounds the
                // time it took to resume).
                let mut last = Metrics::default();
                let mut consuming = None;
                let deadline = restarted + RESUME_WITHIN + KILL_WAIT;
                while p.exited()?.is_none() && Instant::now() < deadline {
                    if let Ok(m) = p.metrics(&http).await {
                        if consuming.is_none() && m.sum(CONSUMED, &[]) > 0.0 {
                            consuming = Some(Instant::now());
                        }
                        last = m;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                let status = wait_kill_point(&mut p, point, Duration::ZERO).await?;
                let resumed = consuming.unwrap_or_else(Instant::now) - restarted;
                ensure!(
                    resumed <= RESUME_WITHIN,
                    "round {round}: consumed nothing within {RESUME_WITHIN:?} of the {since}"
                );
                eprintln!(
                    "{} round {round} ({membership}): consuming {:.1} s after the {since}; {status}",
                    elapsed(),
                    resumed.as_secs_f64(),
                );
                resumes.push(resumed);
                last
            }
            Death::Signal => {
                let consuming = wait_consuming(&http, &mut p, RESUME_WITHIN).await?;
                let resumed = consuming.duration_since(restarted);
                eprintln!(
                    "{} round {round} ({membership}): consuming {:.1} s after the {since}",
                    elapsed(),
                    resumed.as_secs_f64(),
                );
                resumes.push(resumed);
                if plan.broker_kill {
                    wait_consumed_sum(&http, &mut p, (how.1 / 2).max(1), KILL_WAIT).await?;
                    broker.kill_and_restart()?;
                    eprintln!("{} broker killed (SIGKILL) and restarted", elapsed());
                }
                wait_consumed_sum(&http, &mut p, how.1, KILL_WAIT).await?;
                let m = p.metrics(&http).await.unwrap_or_default();
                ensure_running(&mut p, "just before the kill")?;
                p.kill()?;
                m
            }
        };
        let delay = restarted.elapsed().as_millis();
        killed = true;
        // What the crash left: checkpoints behind the log (work was left), none backwards.
        let ends = all_end_offsets(&bootstrap)?;
        let store = open_store(&store_a).await?;
        let cps = checkpoints(&*store).await?;
        drop(store);
        for (key, at) in &seen {
            let now = cps.get(key).copied().unwrap_or(0);
            ensure!(
                now >= *at,
                "checkpoint {key:?} went backwards across kill {round}: {at} → {now}"
            );
        }
        seen.clone_from(&cps);
        let left = behind(&cps, &ends);
        let work_left = left.values().any(|n| *n > 0);
        if work_left {
            effective += 1;
        }
        eprintln!(
            "{} kill {round} ({}, {membership}): {}, {delay} ms after the start; consumed {:?}, applied {:?} (last scrape); records left per processor {:?}",
            elapsed(),
            if work_left { "counts" } else { "nothing left to do: does not count" },
            how.0,
            counters(&m, CONSUMED),
            counters(&m, APPLIED),
            left
        );
    }

    // The rest of the stream, touching every partition, then the last run until caught up.
    let mut touched = stream
        .publish(&publisher, stream.planned_events().max(later_part))
        .await?;
    let mut extra_waves = 0;
    loop {
        let ends = all_end_offsets(&bootstrap)?;
        let uncovered: Vec<String> = ends
            .iter()
            .flat_map(|(t, parts)| {
                parts
                    .keys()
                    .filter(|p| !touched.get(t).is_some_and(|s| s.contains(p)))
                    .map(move |p| format!("{t}/{p}"))
            })
            .collect();
        if uncovered.is_empty() {
            break;
        }
        extra_waves += 1;
        ensure!(
            extra_waves <= 5,
            "5 more waves did not reach partitions {uncovered:?}"
        );
        for (t, ps) in stream.publish(&publisher, 1).await? {
            touched.entry(t).or_default().extend(ps);
        }
    }
    eprintln!(
        "{} published {} events in all; last run",
        elapsed(),
        stream.published
    );
    let ends = all_end_offsets(&bootstrap)?;
    let log = work.join("a-final.log");
    let restarted = Instant::now();
    let mut p = ProcessorProcess::start(broker, &registry.url, &store_a, &["all"], &log)?;
    let consuming = wait_consuming(&http, &mut p, RESUME_WITHIN).await?;
    resumes.push(consuming.duration_since(restarted));
    eprintln!(
        "{} restarts resumed consuming after {:?} s",
        elapsed(),
        resumes
            .iter()
            .map(|d| format!("{:.1}", d.as_secs_f64()))
            .collect::<Vec<_>>()
    );
    wait_lag_zero(&http, &mut p, &ends, Duration::from_secs(180)).await?;
    let m = p.metrics(&http).await?;
    stop(p, "the last run of build A")?;
    eprintln!(
        "{} build A caught up (lag 0 everywhere; last run applied {:?}) and stopped",
        elapsed(),
        counters(&m, APPLIED)
    );
    let store = open_store(&store_a).await?;
    let cps_a = checkpoints(&*store).await?;
    ensure_at_end(&cps_a, &ends, "build A (after the crashes)")?;
    let dump_a = dump(&*store).await?;
    drop(store);
    let empty: Vec<&str> = dump_a
        .iter()
        .filter(|(_, rows)| rows.is_empty())
        .map(|(t, _)| *t)
        .collect();
    ensure!(
        empty.is_empty(),
        "tables left empty by the stream (the test would prove nothing about them): {empty:?}"
    );
    check_stock(&dump_a, &stream.gen.stock)?;
    let dead_a = check_dead_letters(&bootstrap, &stream.gen.rejected)?;
    eprintln!(
        "{} build A: {:?} rows; stock of {} skus exact; dead letters {:?}",
        elapsed(),
        dump_a
            .iter()
            .map(|(t, r)| (*t, r.len()))
            .collect::<BTreeMap<_, _>>(),
        stream.gen.stock.len(),
        dead_a
            .iter()
            .map(|(p, ids)| (*p, (ids.len(), ids.values().sum::<usize>())))
            .collect::<BTreeMap<_, _>>()
    );

    // Build B: one clean run over the same log.
    let store_b = work.join("store-b");
    let mut to_consume = behind(&Checkpoints::new(), &ends);
    let mut attempt = 0;
    let cps_b = loop {
        attempt += 1;
        let log = work.join(format!("b-{attempt}.log"));
        let mut p = ProcessorProcess::start(broker, &registry.url, &store_b, &["all"], &log)?;
        wait_consumed(&http, &mut p, &to_consume, Duration::from_secs(240)).await?;
        stop(p, "the clean run")?;
        let store = open_store(&store_b).await?;
        let cps = checkpoints(&*store).await?;
        drop(store);
        let left = behind(&cps, &ends);
        if left.values().all(|n| *n == 0) {
            break cps;
        }
        ensure!(
            attempt < 4,
            "the clean run is still behind the log after {attempt} runs: {left:?}"
        );
        eprintln!(
            "{} clean run stopped with records left {left:?} (records consumed twice?); running it again",
            elapsed()
        );
        to_consume = left;
    };
    ensure_at_end(&cps_b, &ends, "build B (clean run)")?;
    let store = open_store(&store_b).await?;
    let dump_b = dump(&*store).await?;
    drop(store);
    eprintln!("{} build B done in {attempt} run(s)", elapsed());

    let diffs = differences(&dump_a, &dump_b);
    ensure!(
        diffs.is_empty(),
        "the projections built through {KILLS}+ crashes differ from a clean run's:\n{}",
        diffs.join("\n")
    );
    ensure!(cps_a == cps_b, "checkpoints differ: {cps_a:?}\n{cps_b:?}");
    let dead_b = check_dead_letters(&bootstrap, &stream.gen.rejected)?;
    for (name, ids) in &dead_a {
        for (id, n) in ids {
            let after = dead_b[name].get(id).copied().unwrap_or(0);
            ensure!(
                after > *n,
                "dlq.{name}: the clean run did not dead-letter {id} again ({n} → {after} records)"
            );
        }
    }
    let rows: usize = dump_a.values().map(Vec::len).sum();
    eprintln!(
        "{} OK: {} events, {effective} effective kills in {round} rounds, {rows} rows in {} tables identical to the clean run, stock exact",
        elapsed(),
        stream.published,
        dump_a.len()
    );
    Ok(())
}

#[test]
fn the_generator_is_deterministic_and_mixed() {
    let mut a = Gen::new(7);
    let mut b = Gen::new(7);
    for _ in 0..5 {
        let (wa, wb) = (a.wave(), b.wave());
        let ids_a: Vec<&str> = wa.iter().map(Ev::event_id).collect();
        let ids_b: Vec<&str> = wb.iter().map(Ev::event_id).collect();
        assert_eq!(ids_a, ids_b);
    }
    while a.events < TOTAL_EVENTS {
        a.wave();
    }
    assert_eq!(
        a.by_type.len(),
        16,
        "every event type appears: {:?}",
        a.by_type
    );
    for (processor, min) in [("catalog", 5), ("orders", 20), ("inventory", 20)] {
        let n = a.rejected.get(processor).map_or(0, BTreeSet::len);
        assert!(n >= min, "{processor}: only {n} events to reject");
    }
    let mut seen = HashSet::new();
    let mut c = Gen::new(7);
    for _ in 0..20 {
        for e in c.wave() {
            assert!(seen.insert(e.event_id().to_owned()), "duplicate event id");
            let u = uuid_ok(e.event_id());
            assert!(u, "{} is not a lowercase hyphenated UUID", e.event_id());
        }
    }
}

fn uuid_ok(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && s.chars()
            .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c))
}
