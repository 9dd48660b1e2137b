//! `fleuve`: one binary, every service a subcommand.
//!
//! ```text
//! fleuve run                 # everything on one machine: registry, ingest, processors, query API
//! fleuve registry            # the schema registry            (default 127.0.0.1:8081)
//! fleuve ingest              # the HTTP ingest service        (default 127.0.0.1:8082)
//! fleuve process <name>…    # processors: user_progress bookmarks catalog orders inventory exports, or all (ops 127.0.0.1:8083)
//! fleuve query               # the query API                  (default 127.0.0.1:8080)
//! fleuve topics create       # create the platform's topics (idempotent)
//! fleuve schemas check       # are the .avsc files compatible with their earlier versions?
//! fleuve replay --topic T    # a topic's events over a range, decoded, as JSON lines or CSV
//! fleuve rebuild <projection> # rebuild a projection beside the live one, then switch (or --as-of: a snapshot)
//! fleuve token               # a development JWT signed with FLEUVE_JWT_HS256_SECRET
//! fleuve config              # the settings in effect
//! ```
//!
//! Settings, lowest precedence first: defaults, the TOML file of `--config` /
//! `FLEUVE_CONFIG`, `FLEUVE_*` environment variables, flags (`fleuve --help` lists them;
//! `fleuve config` prints those in effect).

mod config_file;
mod rebuild_admin;
mod schemas_check;

/// jemalloc rather than glibc's malloc: the processors allocate many small rows per event,
/// and glibc's heap fragments under that load (docs/benchmarks.md §4).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use fleuve_kafka::{topics, KafkaConfig};
use fleuve_processors::runtime::{
    Membership, ProcessorConfig, MAX_BATCH_EVENTS, MAX_BATCH_WAIT, STALL_AFTER_RANGE,
};
use fleuve_producers::ingest::{self, IngestConfig};
use fleuve_projections::versions::Versions;
use fleuve_projections::Store;
use fleuve_query_api::{LagConfig, QueryConfig};
use fleuve_registry::RegistryConfig;
use fleuve_schemas::clock::rfc3339_millis;
use fleuve_service::auth::{mint_hs256, AuthConfig, Authenticator};
use fleuve_service::serve::Server;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "fleuve",
    version,
    about = "Fleuve: event-sourced streaming platform"
)]
struct Cli {
    /// TOML configuration file (keys as the settings' long names with `_`); environment
    /// variables and flags override it.
    #[arg(long, global = true, env = "FLEUVE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// The brokers (every command that talks to Kafka).
#[derive(Debug, Args)]
struct Kafka {
    /// Kafka bootstrap servers.
    #[arg(long, env = "FLEUVE_BROKERS", default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Produce delivery timeout, in milliseconds: past it, ingest answers 503.
    #[arg(long, env = "FLEUVE_DELIVERY_TIMEOUT_MS", default_value_t = 10_000)]
    delivery_timeout_ms: u64,
}

/// The schema registry the producers and processors use.
#[derive(Debug, Args)]
struct RegistryUrl {
    /// Schema registry URL used by producers and processors.
    #[arg(
        long,
        env = "FLEUVE_REGISTRY_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    registry_url: String,
}

/// The projection store (processors and query API).
#[derive(Debug, Args)]
struct StoreUrl {
    /// Projection store URL (`embedded://<dir>`; `scylla://…` when compiled in).
    #[arg(
        long,
        env = "FLEUVE_STORE",
        default_value = "embedded://var/projections"
    )]
    store: String,
}

/// Topic creation.
#[derive(Debug, Args)]
struct Partitions {
    /// Partitions of the event topics when they are created.
    #[arg(long, env = "FLEUVE_PARTITIONS", default_value_t = 3)]
    partitions: i32,
}

/// Authentication of the HTTP APIs (ingest, query API).
#[derive(Debug, Args)]
struct NoAuth {
    /// Serve the HTTP APIs without authentication (development only; otherwise a JWT key
    /// must be configured: FLEUVE_JWT_HS256_SECRET, FLEUVE_JWT_RS256_PUBLIC_KEY_FILE or
    /// FLEUVE_JWT_JWKS_FILE).
    #[arg(long, env = "FLEUVE_NO_AUTH")]
    no_auth: bool,
}

/// The query API's waits and readiness.
#[derive(Debug, Args)]
struct QuerySettings {
    /// Longest a query API read waits for its X-Fleuve-Position tokens, in milliseconds;
    /// past it the answer is 503 `position_not_reached`.
    #[arg(long, env = "FLEUVE_QUERY_POSITION_WAIT_MS", default_value_t = 2_000)]
    query_position_wait_ms: u64,
    /// Longest a query API request may take, in milliseconds (then 503 `timeout`).
    #[arg(
        long,
        env = "FLEUVE_QUERY_REQUEST_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    query_request_timeout_ms: u64,
    /// The query API's /readyz fails while a projection is more than this many records
    /// behind its topics (0: lag is not checked).
    #[arg(long, env = "FLEUVE_QUERY_MAX_LAG_EVENTS", default_value_t = 50_000)]
    query_max_lag_events: i64,
    /// The query API's /readyz fails while a projection lags and has applied nothing for
    /// this many milliseconds, whatever its lag (0: stalls are not checked; needs Kafka).
    #[arg(long, env = "FLEUVE_QUERY_STALL_AFTER_MS", default_value_t = 30_000)]
    query_stall_after_ms: u64,
}

/// The `exports` processor's partners.
#[derive(Debug, Args)]
struct ExportsSettings {
    /// Partners file of the `exports` processor (TOML, `[[partner]] id = "…"
    /// territories = ["FR", …]`; see docs/exports.md). Without it, `exports` keeps its state
    /// but exports to no one.
    #[arg(long, env = "FLEUVE_EXPORTS_PARTNERS")]
    exports_partners: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct QueryAddr {
    /// Address the query API listens on.
    #[arg(long, env = "FLEUVE_QUERY_ADDR", default_value = "127.0.0.1:8080")]
    query_addr: SocketAddr,
}

#[derive(Debug, Args)]
struct RegistryAddr {
    /// Address the schema registry listens on.
    #[arg(long, env = "FLEUVE_REGISTRY_ADDR", default_value = "127.0.0.1:8081")]
    registry_addr: SocketAddr,
}

#[derive(Debug, Args)]
struct IngestAddr {
    /// Address the ingest service listens on.
    #[arg(long, env = "FLEUVE_INGEST_ADDR", default_value = "127.0.0.1:8082")]
    ingest_addr: SocketAddr,
}

#[derive(Debug, Args)]
struct ProcessorAddr {
    /// Address of a processor's operational endpoints (/metrics, /healthz, /readyz, and
    /// the admin routes of `fleuve rebuild`).
    #[arg(long, env = "FLEUVE_PROCESSOR_ADDR", default_value = "127.0.0.1:8083")]
    processor_addr: SocketAddr,
}

/// The processors' settings (`fleuve process`, `fleuve run`).
#[derive(Debug, Args)]
struct ProcessorSettings {
    #[command(flatten)]
    registry: RegistryUrl,
    #[command(flatten)]
    store: StoreUrl,
    #[command(flatten)]
    partitions: Partitions,
    #[command(flatten)]
    exports: ExportsSettings,
    #[command(flatten)]
    addr: ProcessorAddr,
    #[command(flatten)]
    batches: Batches,
    #[command(flatten)]
    watching: Watching,
}

/// How processors batch records (`fleuve process`, `fleuve run`, and the projection builds
/// they run); see the runtime's docs, `fleuve_processors::runtime`.
#[derive(Debug, Args)]
struct Batches {
    /// Most records a processor applies in one batch, from 1 to 5000.
    #[arg(
        long,
        env = "FLEUVE_PROCESSOR_BATCH_MAX_EVENTS",
        default_value = "1000",
        value_name = "N",
        value_parser = parse_batch_max_events
    )]
    processor_batch_max_events: usize,
    /// Longest a processor waits for more records once a batch has its first one, in
    /// milliseconds, from 0 to 10000. Records already received are always added (up to
    /// --processor-batch-max-events); 0 waits for none, so a batch never waits.
    #[arg(
        long,
        env = "FLEUVE_PROCESSOR_BATCH_MAX_WAIT_MS",
        default_value = "0",
        value_name = "MS",
        value_parser = parse_batch_max_wait_ms
    )]
    processor_batch_max_wait_ms: u64,
}

/// How processors get their partitions, and when one counts as stalled (`fleuve process`,
/// `fleuve run`); see docs/projections.md, "Partitions and stalls".
#[derive(Debug, Args)]
struct Watching {
    /// How processors get the partitions of their topics: `owned` (this process assigns
    /// itself every partition, no consumer group: for a store only it writes), `group` (a
    /// consumer group splits them between the processes sharing one store), or `auto`:
    /// owned on an embedded store, a group on any other.
    #[arg(
        long,
        env = "FLEUVE_PROCESSOR_MEMBERSHIP",
        default_value = "auto",
        value_enum
    )]
    processor_membership: MembershipArg,
    /// Static group membership: this process's `group.instance.id` in its processors'
    /// consumer groups (unique per process, stable across its restarts: a pod name of a
    /// StatefulSet). Group membership only.
    #[arg(long, env = "FLEUVE_PROCESSOR_GROUP_INSTANCE_ID")]
    processor_group_instance_id: Option<String>,
    /// A projection that lags and has applied nothing for this long, in milliseconds, is
    /// stalled: /readyz fails, and a group member leaves and rejoins its group. From 1000
    /// to 3600000.
    #[arg(
        long,
        env = "FLEUVE_PROCESSOR_STALL_AFTER_MS",
        default_value = "30000",
        value_name = "MS",
        value_parser = parse_stall_after_ms
    )]
    processor_stall_after_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum MembershipArg {
    Auto,
    Owned,
    Group,
}

impl Watching {
    /// Sets the membership and the stall bound; `store` is the store URL (`auto` picks owned
    /// partitions on an embedded store).
    fn apply(&self, store: &str, config: &mut ProcessorConfig) -> Result<()> {
        let owned = match self.processor_membership {
            MembershipArg::Owned => true,
            MembershipArg::Group => false,
            MembershipArg::Auto => store.starts_with("embedded:"),
        };
        config.membership = if owned {
            if self.processor_group_instance_id.is_some() {
                bail!(
                    "processor_group_instance_id is set but processors own their partitions \
                     (processor_membership = {:?} on store {store}): set \
                     processor_membership = \"group\" or drop the instance id",
                    self.processor_membership
                );
            }
            Membership::Owned
        } else {
            Membership::Group {
                instance_id: self.processor_group_instance_id.clone(),
            }
        };
        config.stall_after = Duration::from_millis(self.processor_stall_after_ms);
        Ok(())
    }
}

/// `processor_stall_after_ms`: whole milliseconds in [`STALL_AFTER_RANGE`].
fn parse_stall_after_ms(value: &str) -> Result<u64, String> {
    let (lo, hi) = (
        u64::try_from(STALL_AFTER_RANGE.0.as_millis()).unwrap_or(0),
        u64::try_from(STALL_AFTER_RANGE.1.as_millis()).unwrap_or(u64::MAX),
    );
    match value.trim().parse::<u64>() {
        Ok(ms) if (lo..=hi).contains(&ms) => Ok(ms),
        _ => Err(format!(
            "processor_stall_after_ms must be a whole number of milliseconds from {lo} to {hi}, \
             got `{value}`"
        )),
    }
}

impl Batches {
    fn apply(&self, config: &mut ProcessorConfig) {
        config.batch_max_events = self.processor_batch_max_events;
        config.batch_max_wait = Duration::from_millis(self.processor_batch_max_wait_ms);
    }
}

/// `processor_batch_max_events`: a whole number from 1 to [`MAX_BATCH_EVENTS`].
fn parse_batch_max_events(value: &str) -> Result<usize, String> {
    match value.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_BATCH_EVENTS).contains(&n) => Ok(n),
        _ => Err(format!(
            "processor_batch_max_events must be a whole number from 1 to {MAX_BATCH_EVENTS}, \
             got `{value}`"
        )),
    }
}

/// `processor_batch_max_wait_ms`: whole milliseconds from 0 to [`MAX_BATCH_WAIT`].
fn parse_batch_max_wait_ms(value: &str) -> Result<u64, String> {
    let max = u64::try_from(MAX_BATCH_WAIT.as_millis()).unwrap_or(u64::MAX);
    match value.trim().parse::<u64>() {
        Ok(ms) if ms <= max => Ok(ms),
        _ => Err(format!(
            "processor_batch_max_wait_ms must be a whole number of milliseconds from 0 to \
             {max}, got `{value}`"
        )),
    }
}

/// The settings of the whole platform in one process (`run`, and `config` which prints them).
#[derive(Debug, Args)]
struct Platform {
    #[command(flatten)]
    kafka: Kafka,
    #[command(flatten)]
    processors: ProcessorSettings,
    #[command(flatten)]
    no_auth: NoAuth,
    #[command(flatten)]
    query: QuerySettings,
    #[command(flatten)]
    query_addr: QueryAddr,
    #[command(flatten)]
    registry_addr: RegistryAddr,
    #[command(flatten)]
    ingest_addr: IngestAddr,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole platform in this process (the broker runs separately: `make broker`).
    Run(Platform),
    /// Run the schema registry.
    Registry {
        #[command(flatten)]
        kafka: Kafka,
        #[command(flatten)]
        addr: RegistryAddr,
    },
    /// Run the HTTP ingest service.
    Ingest {
        #[command(flatten)]
        kafka: Kafka,
        #[command(flatten)]
        registry: RegistryUrl,
        #[command(flatten)]
        no_auth: NoAuth,
        #[command(flatten)]
        addr: IngestAddr,
    },
    /// Run processors: one, several, or `all`, sharing one store and one ops endpoint.
    Process {
        /// Processor names (user_progress, bookmarks, catalog, orders, inventory, exports) or
        /// `all`.
        #[arg(required = true)]
        names: Vec<String>,
        #[command(flatten)]
        kafka: Kafka,
        #[command(flatten)]
        processors: ProcessorSettings,
    },
    /// Run the query API.
    Query {
        #[command(flatten)]
        kafka: Kafka,
        #[command(flatten)]
        store: StoreUrl,
        #[command(flatten)]
        no_auth: NoAuth,
        #[command(flatten)]
        query: QuerySettings,
        #[command(flatten)]
        addr: QueryAddr,
    },
    /// Manage the platform's topics.
    Topics {
        #[command(subcommand)]
        action: TopicsAction,
    },
    /// Print the settings in effect (defaults < config file < FLEUVE_* environment < flags),
    /// secrets redacted.
    Config(Platform),
    /// Print a signed HS256 token for development and tests (needs FLEUVE_JWT_HS256_SECRET).
    Token {
        /// Subject (`sub` claim): a service, user or seller id.
        #[arg(long, default_value = "dev")]
        sub: String,
        /// Scopes granted (repeat the flag for several).
        #[arg(long = "scope", default_value = "events:write")]
        scopes: Vec<String>,
        /// Lifetime of the token, in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl_secs: u64,
    },
    /// Work with the event schemas (`schemas/avro/<topic>/<Event>.avsc`).
    Schemas {
        #[command(subcommand)]
        action: SchemasAction,
    },
    /// Replay a topic's events over a range, decoded through the schema registry (older
    /// schema versions shown in the current shape), as JSON lines or CSV. `--from` is
    /// inclusive and `--to` exclusive; the replay stops at the end of the range (default:
    /// the end of the topic when it starts). A summary goes to stderr.
    Replay {
        #[command(flatten)]
        args: ReplayArgs,
        #[command(flatten)]
        kafka: Kafka,
        #[command(flatten)]
        registry: RegistryUrl,
    },
    /// Rebuild a projection from the start of the log beside the live one, then switch the
    /// query API to it once it has caught up (the old version is kept until dropped); with
    /// `--as-of TIME`, build a snapshot as of that instant instead, read with
    /// `?snapshot=<name>`. Runs in the process of the projection's processor, reached at
    /// `--processor-url`.
    Rebuild(RebuildArgs),
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct RebuildArgs {
    #[command(subcommand)]
    action: Option<RebuildAction>,
    /// Projection to rebuild: user_progress, bookmarks, catalog, orders or inventory.
    #[arg(required = true)]
    projection: Option<String>,
    /// Build a snapshot as of this instant (RFC 3339 time or date, UTC midnight): the
    /// events written before it, frozen.
    #[arg(long)]
    as_of: Option<String>,
    /// The snapshot's name (a-z, 0-9, `-`, `_`, `.`; default: the instant, 20261101t000000z).
    #[arg(long, requires = "as_of")]
    name: Option<String>,
    /// Start the build and return without following it.
    #[arg(long)]
    no_wait: bool,
    #[command(flatten)]
    target: ProcessorTarget,
}

#[derive(Debug, Args)]
struct ProcessorTarget {
    /// Ops URL of the process running the projection's processor (`fleuve run`, or its
    /// `fleuve process`).
    #[arg(
        long,
        env = "FLEUVE_PROCESSOR_URL",
        default_value = "http://127.0.0.1:8083",
        global = true
    )]
    processor_url: String,
}

#[derive(Debug, Subcommand)]
enum RebuildAction {
    /// List the versions of a projection: which one is read, which one is written.
    List { projection: String },
    /// Follow a build until it is live (rebuild) or ready (snapshot).
    Status { projection: String, version: String },
    /// Delete a retired version or a snapshot (the versions in use cannot be dropped).
    Drop { projection: String, version: String },
}

#[derive(Debug, Args)]
struct ReplayArgs {
    /// Topic to replay (user-activity, catalog, orders, inventory…).
    #[arg(long)]
    topic: String,
    /// Start, inclusive: an RFC 3339 time (2026-11-22T10:00:00Z), a date (2026-11-22,
    /// midnight UTC), an offset in every partition (1500) or per partition (0:1500,2:80).
    /// Default: the beginning.
    #[arg(long)]
    from: Option<fleuve_replay::Bound>,
    /// End, exclusive, in the same formats as --from. Default: the end of each partition
    /// when the replay starts.
    #[arg(long)]
    to: Option<fleuve_replay::Bound>,
    /// Keep only these event types (repeat the flag or separate with commas).
    #[arg(long = "type", value_delimiter = ',')]
    types: Vec<String>,
    /// Keep only records with this Kafka key (repeat the flag for several).
    #[arg(long = "key")]
    keys: Vec<String>,
    /// Output format: jsonl (one JSON object per event) or csv (envelope columns and the
    /// event as JSON).
    #[arg(long, default_value = "jsonl")]
    format: fleuve_replay::Format,
    /// Write to this file instead of stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Stop at the first record that cannot be decoded (otherwise counted, reported in
    /// the summary, and skipped).
    #[arg(long)]
    strict: bool,
    /// Longest wait for the broker or the registry to answer, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// No progress bar, even on a terminal.
    #[arg(long)]
    no_progress: bool,
}

#[derive(Debug, Subcommand)]
enum SchemasAction {
    /// Fail, explaining why, when an .avsc file breaks compatibility with its earlier
    /// versions: its git history (`git`, the default), the file at a git ref (`git:<ref>`),
    /// or the subject's versions in the registry (`registry`, at --registry-url).
    Check {
        /// Folder of the schema files.
        #[arg(long, default_value = "schemas/avro")]
        dir: PathBuf,
        /// Where the earlier versions come from: `git`, `git:<ref>` or `registry`.
        #[arg(long, default_value = "git")]
        against: schemas_check::Against,
        /// Compatibility level (NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD,
        /// FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE); default: the registry's for the
        /// subject with `--against registry`, else BACKWARD.
        #[arg(long)]
        level: Option<fleuve_registry::compatibility::CompatibilityLevel>,
        #[command(flatten)]
        registry: RegistryUrl,
    },
}

#[derive(Debug, Subcommand)]
enum TopicsAction {
    /// Create the platform's topics that do not exist yet.
    Create {
        #[command(flatten)]
        kafka: Kafka,
        #[command(flatten)]
        partitions: Partitions,
    },
}

impl Kafka {
    fn kafka(&self, client_id: &str) -> KafkaConfig {
        KafkaConfig::new(&self.brokers)
            .with_client_id(client_id)
            .with_delivery_timeout(Duration::from_millis(self.delivery_timeout_ms))
    }
}

fn main() {
    // The configuration file's values become the settings' defaults: the environment and
    // the flags then take precedence (see `config_file`).
    let args: Vec<String> = std::env::args().collect();
    let mut command = Cli::command();
    if let Some(path) = config_file::path_from(&args) {
        match config_file::read(&path) {
            Ok(values) => command = config_file::install(command, values),
            Err(e) => fail(&e),
        }
    }
    let cli = match Cli::from_arg_matches(&command.get_matches_from(&args)) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if matches!(cli.command, Command::Replay { .. }) {
        init_replay_tracing();
    } else {
        fleuve_service::init_tracing();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => fail(&anyhow::Error::from(e).context("starting the async runtime")),
    };
    if let Err(e) = runtime.block_on(run(cli)) {
        fail(&e);
    }
}

/// Whether [`fail`] also logs the error (not for `fleuve replay`, whose log goes to the same
/// stderr as the error line).
static LOG_FAILURE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// `fleuve replay` writes events on stdout: its logs go to stderr, warnings and errors only
/// unless RUST_LOG says otherwise.
fn init_replay_tracing() {
    LOG_FAILURE.store(false, std::sync::atomic::Ordering::Relaxed);
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _already_set = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

fn fail(e: &anyhow::Error) -> ! {
    let message = report(e);
    if LOG_FAILURE.load(std::sync::atomic::Ordering::Relaxed) {
        tracing::error!(error = %message, "fleuve stopped");
    }
    eprintln!("fleuve: {message}");
    std::process::exit(1);
}

/// The error and its causes on one line, leaving out causes whose text the line already
/// holds (librdkafka errors repeat their cause in their own message).
fn report(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

async fn run(cli: Cli) -> Result<()> {
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());
    let mut tasks = JoinSet::new();
    let mut servers: Vec<Server> = Vec::new();
    match cli.command {
        Command::Topics {
            action: TopicsAction::Create { kafka, partitions },
        } => {
            create_topics(&kafka, &partitions).await?;
            return Ok(());
        }
        Command::Schemas {
            action:
                SchemasAction::Check {
                    dir,
                    against,
                    level,
                    registry,
                },
        } => return check_schemas(&registry, &dir, against, level).await,
        Command::Replay {
            args,
            kafka,
            registry,
        } => return replay(&kafka, &registry, args).await,
        Command::Rebuild(args) => return rebuild(args).await,
        Command::Token {
            sub,
            scopes,
            ttl_secs,
        } => return print_token(&sub, &scopes, ttl_secs),
        Command::Config(Platform {
            kafka,
            processors,
            no_auth,
            query,
            query_addr,
            registry_addr,
            ingest_addr,
        }) => {
            print_config(
                cli.config.as_deref(),
                &kafka,
                &processors,
                &no_auth,
                &query,
                (&query_addr, &registry_addr, &ingest_addr),
            );
            return Ok(());
        }
        Command::Registry { kafka, addr } => {
            let mut config = RegistryConfig::new(kafka.kafka("fleuve-registry"));
            config.addr = addr.registry_addr;
            servers.push(fleuve_registry::start(config, &shutdown).await?);
        }
        Command::Ingest {
            kafka,
            registry,
            no_auth,
            addr,
        } => {
            servers.push(start_ingest(&kafka, &registry, &no_auth, &addr, &shutdown).await?);
        }
        Command::Process {
            names,
            kafka,
            processors: settings,
        } => {
            let names = processor_names(&names)?;
            create_topics(&kafka, &settings.partitions).await?;
            let store = open_store(&settings.store).await?;
            let versions = follow_versions(store, &shutdown, &mut tasks).await?;
            let config = processors(&kafka, &settings, names, versions)?;
            servers.push(fleuve_processors::start(config, &shutdown).await?);
        }
        Command::Query {
            kafka,
            store,
            no_auth,
            query,
            addr,
        } => {
            let versions =
                follow_versions(open_store(&store).await?, &shutdown, &mut tasks).await?;
            servers.push(start_query(&kafka, &no_auth, &query, &addr, versions, &shutdown).await?);
        }
        Command::Run(Platform {
            kafka,
            processors: settings,
            no_auth,
            query,
            query_addr,
            registry_addr,
            ingest_addr,
        }) => {
            create_topics(&kafka, &settings.partitions).await?;
            let mut registry = RegistryConfig::new(kafka.kafka("fleuve-registry"));
            registry.addr = registry_addr.registry_addr;
            servers.push(fleuve_registry::start(registry, &shutdown).await?);
            servers.push(
                start_ingest(
                    &kafka,
                    &settings.registry,
                    &no_auth,
                    &ingest_addr,
                    &shutdown,
                )
                .await?,
            );
            let store = open_store(&settings.store).await?;
            let versions = follow_versions(store, &shutdown, &mut tasks).await?;
            let names = fleuve_processors::handlers::NAMES.to_vec();
            let config = processors(&kafka, &settings, names, Arc::clone(&versions))?;
            servers.push(fleuve_processors::start(config, &shutdown).await?);
            servers.push(
                start_query(&kafka, &no_auth, &query, &query_addr, versions, &shutdown).await?,
            );
            print_welcome(
                (&query_addr, &registry_addr, &ingest_addr),
                &kafka,
                &settings.store,
                &no_auth,
            )?;
        }
    }
    for server in servers {
        tasks.spawn(async move { server.stopped().await.map_err(anyhow::Error::from) });
    }
    // Wait for Ctrl-C / SIGTERM, or for any service to fail (which stops the others).
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        let outcome = joined.context("a service task panicked").and_then(|r| r);
        if let Err(e) = outcome {
            if failure.is_none() {
                tracing::error!(error = %format!("{e:#}"), "a service failed; stopping the others");
                failure = Some(e);
            }
            shutdown.cancel();
        } else if !shutdown.is_cancelled() {
            shutdown.cancel();
        }
    }
    match failure {
        Some(e) => Err(e),
        None => {
            tracing::info!("stopped cleanly");
            Ok(())
        }
    }
}

#[expect(clippy::print_stdout, reason = "the command's output")]
async fn check_schemas(
    registry: &RegistryUrl,
    dir: &std::path::Path,
    against: schemas_check::Against,
    level: Option<fleuve_registry::compatibility::CompatibilityLevel>,
) -> Result<()> {
    let against = match against {
        schemas_check::Against::Registry(_) => {
            schemas_check::Against::Registry(registry.registry_url.clone())
        }
        other => other,
    };
    let outcomes = schemas_check::check(dir, &against, level).await?;
    let mut broken = 0;
    for o in &outcomes {
        if o.problems.is_empty() {
            println!(
                "ok    {} ({}, {} earlier version(s)) {}",
                o.subject,
                o.level,
                o.compared_with,
                o.file.display()
            );
        } else {
            broken += 1;
            println!(
                "FAIL  {} ({}) {}: incompatible with its earlier versions",
                o.subject,
                o.level,
                o.file.display()
            );
            for p in &o.problems {
                println!("        - {p}");
            }
        }
    }
    if broken > 0 {
        bail!(
            "{broken} schema(s) break their compatibility level: give new fields a default, \
             keep removed fields' defaults, or register the change under a new event type"
        );
    }
    Ok(())
}

/// `fleuve replay`: the range to the output, a progress bar on a terminal, the summary on
/// stderr.
async fn replay(kafka: &Kafka, registry: &RegistryUrl, args: ReplayArgs) -> Result<()> {
    use std::io::IsTerminal;

    let mut config = fleuve_replay::ReplayConfig::new(
        kafka.kafka("fleuve-replay"),
        &registry.registry_url,
        &args.topic,
    );
    config.from = args.from;
    config.to = args.to;
    config.types = args.types;
    config.keys = args.keys;
    config.format = args.format;
    config.strict = args.strict;
    config.timeout = Duration::from_millis(args.timeout_ms);
    // Unknown event types are reported before any connection is made.
    fleuve_replay::check_types(&config.topic, &config.types)?;
    let to_stdout = args.output.is_none();
    let out: Box<dyn std::io::Write + Send> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::with_capacity(
            1 << 16,
            std::fs::File::create(path)
                .with_context(|| format!("cannot write the output file {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::with_capacity(
            1 << 16,
            std::io::stdout(),
        )),
    };
    // A bar only where a person watches, and not over events printed to the same terminal.
    let show_bar = !args.no_progress
        && std::io::stderr().is_terminal()
        && !(to_stdout && std::io::stdout().is_terminal());
    let progress: Box<dyn fleuve_replay::Progress> = if show_bar {
        Box::new(Bar(None))
    } else {
        Box::new(fleuve_replay::NoProgress)
    };
    let summary = fleuve_replay::replay(config, out, progress).await?;
    eprintln!("{summary}");
    Ok(())
}

/// The replay's progress bar (indicatif, on stderr).
struct Bar(Option<indicatif::ProgressBar>);

impl fleuve_replay::Progress for Bar {
    fn start(&mut self, records: u64) {
        let bar = indicatif::ProgressBar::new(records);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} records, eta {eta}, {msg}",
        ) {
            bar.set_style(style);
        }
        self.0 = Some(bar);
    }

    fn advance(&mut self, read: u64, written: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(read);
            bar.set_message(format!("{written} written"));
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.0.take() {
            bar.finish_and_clear();
        }
    }
}

fn spawn_signal_handler(shutdown: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for SIGTERM");
                        let _ = ctrl_c.await;
                        shutdown.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down");
        shutdown.cancel();
    });
}

async fn create_topics(kafka: &Kafka, partitions: &Partitions) -> Result<()> {
    let config = kafka.kafka("fleuve-admin");
    topics::ensure_topics(&config, &topics::platform_topics(partitions.partitions))
        .await
        .with_context(|| {
            format!(
                "creating topics on the broker at {} (is it running? `make broker` starts one)",
                kafka.brokers
            )
        })
}

async fn open_store(store: &StoreUrl) -> Result<Arc<dyn Store>> {
    fleuve_projections::open(&store.store)
        .await
        .with_context(|| format!("opening the projection store {}", store.store))
}

async fn start_ingest(
    kafka: &Kafka,
    registry: &RegistryUrl,
    no_auth: &NoAuth,
    addr: &IngestAddr,
    shutdown: &CancellationToken,
) -> Result<Server> {
    let config = ingest::ServiceConfig {
        addr: addr.ingest_addr,
        kafka: kafka.kafka("fleuve-ingest"),
        registry_url: registry.registry_url.clone(),
        ingest: IngestConfig {
            auth: authenticator(no_auth)?,
            ..IngestConfig::default()
        },
    };
    Ok(ingest::start(config, shutdown).await?)
}

/// The JWT verifier from the FLEUVE_JWT_* settings; `None` only with `--no-auth`.
fn authenticator(no_auth: &NoAuth) -> Result<Option<Authenticator>> {
    let config =
        AuthConfig::from_lookup(config_file::variable).context("reading the JWT settings")?;
    match (config, no_auth.no_auth) {
        (_, true) => {
            tracing::warn!(
                "authentication is disabled (--no-auth): anyone can publish and read everything"
            );
            Ok(None)
        }
        (Some(config), false) => Ok(Some(
            Authenticator::new(config).context("loading the JWT keys")?,
        )),
        (None, false) => bail!(
            "no JWT key configured: set FLEUVE_JWT_HS256_SECRET, FLEUVE_JWT_RS256_PUBLIC_KEY_FILE \
             or FLEUVE_JWT_JWKS_FILE (or pass --no-auth for a local, unauthenticated setup)"
        ),
    }
}

#[expect(clippy::print_stdout, reason = "the command's output")]
fn print_config(
    file: Option<&std::path::Path>,
    kafka: &Kafka,
    processors: &ProcessorSettings,
    no_auth: &NoAuth,
    query: &QuerySettings,
    (query_addr, registry_addr, ingest_addr): (&QueryAddr, &RegistryAddr, &IngestAddr),
) {
    let file = file.map_or_else(|| "(none)".to_owned(), |p| p.display().to_string());
    let (batches, watching) = (&processors.batches, &processors.watching);
    println!("# configuration file: {file}");
    println!("brokers = {:?}", kafka.brokers);
    println!("registry_url = {:?}", processors.registry.registry_url);
    println!("store = {:?}", processors.store.store);
    println!("partitions = {}", processors.partitions.partitions);
    println!("delivery_timeout_ms = {}", kafka.delivery_timeout_ms);
    println!("no_auth = {}", no_auth.no_auth);
    println!("query_position_wait_ms = {}", query.query_position_wait_ms);
    println!(
        "query_request_timeout_ms = {}",
        query.query_request_timeout_ms
    );
    println!("query_max_lag_events = {}", query.query_max_lag_events);
    println!("query_stall_after_ms = {}", query.query_stall_after_ms);
    if let Some(path) = &processors.exports.exports_partners {
        println!("exports_partners = {:?}", path.display().to_string());
    }
    println!("query_addr = \"{}\"", query_addr.query_addr);
    println!("registry_addr = \"{}\"", registry_addr.registry_addr);
    println!("ingest_addr = \"{}\"", ingest_addr.ingest_addr);
    println!("processor_addr = \"{}\"", processors.addr.processor_addr);
    println!(
        "processor_batch_max_events = {}",
        batches.processor_batch_max_events
    );
    println!(
        "processor_batch_max_wait_ms = {}",
        batches.processor_batch_max_wait_ms
    );
    println!(
        "processor_membership = \"{}\"",
        format!("{:?}", watching.processor_membership).to_lowercase()
    );
    if let Some(id) = &watching.processor_group_instance_id {
        println!("processor_group_instance_id = {id:?}");
    }
    println!(
        "processor_stall_after_ms = {}",
        watching.processor_stall_after_ms
    );
    for key in config_file::KEYS.iter().filter(|k| k.starts_with("jwt_")) {
        let var = format!("FLEUVE_{}", key.to_ascii_uppercase());
        match config_file::variable(&var) {
            Some(_) if key.ends_with("secret") => println!("{key} = \"(set, hidden)\""),
            Some(v) => println!("{key} = {v:?}"),
            None => {}
        }
    }
}

#[expect(clippy::print_stdout, reason = "the command's output")]
fn print_token(sub: &str, scopes: &[String], ttl_secs: u64) -> Result<()> {
    let secret = config_file::variable("FLEUVE_JWT_HS256_SECRET")
        .context("FLEUVE_JWT_HS256_SECRET is not set: tokens are signed with it")?;
    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
    println!(
        "{}",
        mint_hs256(&secret, sub, &scopes, Duration::from_secs(ttl_secs))?
    );
    Ok(())
}

/// The processors named on the command line (`all` for every one), each once, in the
/// order given.
fn processor_names(names: &[String]) -> Result<Vec<&'static str>> {
    let known = fleuve_processors::handlers::NAMES;
    let mut out: Vec<&'static str> = Vec::new();
    for name in names {
        let add: Vec<&'static str> = if name == "all" {
            known.to_vec()
        } else {
            match known.iter().find(|k| **k == name.as_str()) {
                Some(k) => vec![*k],
                None => bail!(
                    "unknown processor `{name}`; known processors: {}, or `all`",
                    known.join(", ")
                ),
            }
        };
        for n in add {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    Ok(out)
}

/// The projection versions in `store`, refreshed every [`VERSIONS_REFRESH`] until shutdown.
async fn follow_versions(
    store: Arc<dyn Store>,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<Result<()>>,
) -> Result<Arc<Versions>> {
    let versions = Versions::open(store)
        .await
        .context("reading the projection versions")?;
    let follower = Arc::clone(&versions);
    let token = shutdown.clone();
    tasks.spawn(async move {
        tokio::select! {
            () = token.cancelled() => {}
            () = follower.follow(VERSIONS_REFRESH) => {}
        }
        Ok(())
    });
    Ok(versions)
}

/// How often a process re-reads which projection versions are read and written (a rebuild
/// switching in another process).
const VERSIONS_REFRESH: Duration = Duration::from_millis(500);

/// `fleuve rebuild`.
#[expect(clippy::print_stdout, reason = "the command's output")]
async fn rebuild(args: RebuildArgs) -> Result<()> {
    init_replay_tracing();
    let client = rebuild_admin::Client::new(&args.target.processor_url)?;
    let version_arg = |s: &str| -> Result<u32> {
        s.trim_start_matches('v')
            .parse()
            .with_context(|| format!("version must be a number (2 or v2), got `{s}`"))
    };
    match args.action {
        Some(RebuildAction::List { projection }) => {
            let list = client.list(&projection).await?;
            println!(
                "{}: the query API reads v{}, the processor writes v{}",
                list.projection, list.routing.reader, list.routing.writer
            );
            println!(
                "{:<8} {:<9} {:<10} {:<24} {:<24} {:>12}",
                "version", "kind", "state", "name", "as of", "records"
            );
            for v in list.versions {
                let i = v.info;
                println!(
                    "{:<8} {:<9} {:<10} {:<24} {:<24} {:>12}",
                    format!("v{}", i.version),
                    format!("{:?}", i.kind).to_lowercase(),
                    format!("{:?}", i.state).to_lowercase(),
                    i.name.unwrap_or_default(),
                    i.as_of_ms
                        .map(|ms| rfc3339_millis(ms).unwrap_or_else(|| ms.to_string()))
                        .unwrap_or_default(),
                    i.records
                );
            }
            Ok(())
        }
        Some(RebuildAction::Status {
            projection,
            version,
        }) => {
            rebuild_admin::follow(&client, &projection, version_arg(&version)?).await?;
            Ok(())
        }
        Some(RebuildAction::Drop {
            projection,
            version,
        }) => {
            let v = client
                .drop_version(&projection, version_arg(&version)?)
                .await?;
            println!("{projection} v{} dropped", v.info.version);
            Ok(())
        }
        None => {
            let projection = args.projection.context("name the projection to rebuild")?;
            let as_of_ms = match &args.as_of {
                None => None,
                Some(t) => match t.parse::<fleuve_replay::Bound>() {
                    Ok(fleuve_replay::Bound::Time(ms)) => Some(ms),
                    _ => bail!(
                        "--as-of `{t}` is not a time: expected an RFC 3339 time                          (2026-11-22T10:00:00Z) or a date (2026-11-22, midnight UTC)"
                    ),
                },
            };
            let v = client
                .start(&projection, as_of_ms, args.name.as_deref())
                .await?;
            let what = match &v.info.name {
                Some(name) => format!("snapshot `{name}`"),
                None => "rebuild".to_owned(),
            };
            eprintln!("{projection} v{}: {what} started", v.info.version);
            if args.no_wait {
                println!("{}", v.info.version);
                return Ok(());
            }
            rebuild_admin::follow(&client, &projection, v.info.version).await?;
            Ok(())
        }
    }
}

async fn start_query(
    kafka: &Kafka,
    no_auth: &NoAuth,
    query: &QuerySettings,
    addr: &QueryAddr,
    versions: Arc<Versions>,
    shutdown: &CancellationToken,
) -> Result<Server> {
    let position_wait = Duration::from_millis(query.query_position_wait_ms);
    let request_timeout = Duration::from_millis(query.query_request_timeout_ms);
    if position_wait >= request_timeout {
        bail!(
            "query_position_wait_ms ({}) must be less than query_request_timeout_ms ({}): a read \
             waiting for its position would always time out first",
            query.query_position_wait_ms,
            query.query_request_timeout_ms
        );
    }
    if query.query_max_lag_events < 0 {
        bail!(
            "query_max_lag_events must be 0 (no lag check) or more, got {}",
            query.query_max_lag_events
        );
    }
    let config = QueryConfig {
        auth: authenticator(no_auth)?,
        position_wait,
        request_timeout,
        lag: (query.query_max_lag_events > 0 || query.query_stall_after_ms > 0).then(|| {
            LagConfig::new(kafka.kafka("fleuve-query"), query.query_max_lag_events)
                .with_stall_after(
                    (query.query_stall_after_ms > 0)
                        .then(|| Duration::from_millis(query.query_stall_after_ms)),
                )
        }),
        ..QueryConfig::default()
    };
    let config = fleuve_query_api::ServiceConfig {
        addr: addr.query_addr,
        versions,
        query: config,
    };
    Ok(fleuve_query_api::start(config, shutdown).await?)
}

/// What `fleuve process` and `fleuve run` give the processors.
fn processors(
    kafka: &Kafka,
    settings: &ProcessorSettings,
    names: Vec<&'static str>,
    versions: Arc<Versions>,
) -> Result<fleuve_processors::ServiceConfig> {
    let mut runtime = ProcessorConfig::new(
        kafka.kafka("fleuve-processor"),
        &settings.registry.registry_url,
    );
    settings.batches.apply(&mut runtime);
    settings
        .watching
        .apply(&settings.store.store, &mut runtime)?;
    Ok(fleuve_processors::ServiceConfig {
        addr: settings.addr.processor_addr,
        names,
        runtime,
        exports_partners: settings.exports.exports_partners.clone(),
        export_partitions: settings.partitions.partitions,
        versions,
    })
}

#[expect(clippy::print_stdout, reason = "the command's output")]
fn print_welcome(
    (query_addr, registry_addr, ingest_addr): (&QueryAddr, &RegistryAddr, &IngestAddr),
    kafka: &Kafka,
    store: &StoreUrl,
    no_auth: &NoAuth,
) -> Result<()> {
    let (auth_header, read_header) = match config_file::variable("FLEUVE_JWT_HS256_SECRET") {
        Some(secret) if !no_auth.no_auth => {
            let day = Duration::from_secs(24 * 3600);
            let write = mint_hs256(&secret, "dev", &["events:write"], day)?;
            let read = mint_hs256(&secret, "u-1", &["user"], day)?;
            (
                format!("\n    -H 'Authorization: Bearer {write}' \\"),
                format!(" \\\n    -H 'Authorization: Bearer {read}'"),
            )
        }
        _ => (String::new(), String::new()),
    };
    println!(
        r#"
Fleuve is running.
  query API        http://{query}
  schema registry  http://{registry}
  ingest           http://{ingest}
  broker           {brokers}
  store            {store}

Publish a playback progress:
  curl -sS -X POST http://{ingest}/v1/events/PlaybackProgressed \{auth_header}
    -H 'Content-Type: application/json' \
    -d '{{"user_id":"u-1","content_id":"c-1","position_ms":60000,"duration_ms":1800000,"device":"web"}}'

Read it back (as user u-1; add -H 'X-Fleuve-Position: <position from the answer above>'
to wait until the projection has it):
  curl -sS http://{query}/v1/users/u-1/progress/c-1{read_header}

Ctrl-C stops everything.
"#,
        query = query_addr.query_addr,
        registry = registry_addr.registry_addr,
        ingest = ingest_addr.ingest_addr,
        brokers = kafka.brokers,
        store = store.store,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    /// The batch settings `args` give to `process`, `run` or `config`.
    fn batches(args: &[&str]) -> Result<(usize, u64), String> {
        let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
        match cli.command {
            Command::Process { processors, .. }
            | Command::Run(Platform { processors, .. })
            | Command::Config(Platform { processors, .. }) => Ok((
                processors.batches.processor_batch_max_events,
                processors.batches.processor_batch_max_wait_ms,
            )),
            other => panic!("not a command with batch settings: {other:?}"),
        }
    }

    #[test]
    fn batch_settings_default_to_the_runtimes_and_flags_set_them() {
        let runtime = ProcessorConfig::new(KafkaConfig::new("127.0.0.1:9092"), "http://r");
        let runtime_wait = u64::try_from(runtime.batch_max_wait.as_millis()).unwrap();
        assert_eq!(
            batches(&["fleuve", "config"]),
            Ok((runtime.batch_max_events, runtime_wait))
        );
        assert_eq!(
            batches(&[
                "fleuve",
                "process",
                "orders",
                "--processor-batch-max-events",
                "200",
                "--processor-batch-max-wait-ms",
                "25",
            ]),
            Ok((200, 25))
        );
        assert_eq!(
            batches(&[
                "fleuve",
                "run",
                "--processor-batch-max-events=5000",
                "--processor-batch-max-wait-ms=10000",
            ]),
            Ok((5000, 10_000))
        );
        assert_eq!(
            batches(&["fleuve", "config", "--processor-batch-max-events", "1"]),
            Ok((1, runtime_wait))
        );

        let cli = Cli::try_parse_from([
            "fleuve",
            "process",
            "all",
            "--processor-batch-max-events=300",
            "--processor-batch-max-wait-ms=40",
        ])
        .unwrap();
        let Command::Process { processors, .. } = cli.command else {
            panic!("not `process`");
        };
        let mut config = runtime.clone();
        processors.batches.apply(&mut config);
        assert_eq!(config.batch_max_events, 300);
        assert_eq!(config.batch_max_wait, Duration::from_millis(40));
    }

    #[test]
    fn out_of_range_batch_settings_name_the_setting_and_the_range() {
        let events = "processor_batch_max_events must be a whole number from 1 to 5000";
        let wait = "processor_batch_max_wait_ms must be a whole number of milliseconds from 0 \
                    to 10000";
        for (flag, value, expected) in [
            ("--processor-batch-max-events", "0", events),
            ("--processor-batch-max-events", "5001", events),
            ("--processor-batch-max-events", "-3", events),
            ("--processor-batch-max-events", "many", events),
            ("--processor-batch-max-wait-ms", "10001", wait),
            ("--processor-batch-max-wait-ms", "soon", wait),
            ("--processor-batch-max-wait-ms", "1.5", wait),
            ("--processor-batch-max-wait-ms", "20ms", wait),
        ] {
            let arg = format!("{flag}={value}");
            for command in [
                vec!["fleuve", "process", "all", &arg],
                vec!["fleuve", "run", &arg],
                vec!["fleuve", "config", &arg],
            ] {
                let err = batches(&command).unwrap_err();
                assert!(
                    err.contains(flag) && err.contains(expected),
                    "{command:?}: {err}"
                );
                assert!(err.contains(&format!("got `{value}`")), "{err}");
            }
        }
    }

    /// The processor settings `args` give to `process`, `run` or `config`, applied to a
    /// runtime configuration for the store `store`.
    fn watching(args: &[&str], store: &str) -> Result<ProcessorConfig, String> {
        let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
        let (Command::Process { processors, .. }
        | Command::Run(Platform { processors, .. })
        | Command::Config(Platform { processors, .. })) = cli.command
        else {
            panic!("not a command with processor settings");
        };
        let mut config = ProcessorConfig::new(KafkaConfig::new("127.0.0.1:9092"), "http://r");
        processors
            .watching
            .apply(store, &mut config)
            .map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn processors_own_their_partitions_on_an_embedded_store_and_share_them_elsewhere() {
        let embedded = "embedded://var/projections";
        let scylla = "scylla://scylla:9042/fleuve";
        let runtime = ProcessorConfig::new(KafkaConfig::new("127.0.0.1:9092"), "http://r");
        let c = watching(&["fleuve", "run"], embedded).unwrap();
        assert_eq!(c.membership, Membership::Owned);
        assert_eq!(c.stall_after, runtime.stall_after);
        let c = watching(&["fleuve", "process", "all"], scylla).unwrap();
        assert_eq!(c.membership, Membership::Group { instance_id: None });
        let c = watching(
            &[
                "fleuve",
                "process",
                "orders",
                "--processor-membership=group",
                "--processor-group-instance-id=fleuve-processor-0",
                "--processor-stall-after-ms=5000",
            ],
            embedded,
        )
        .unwrap();
        assert_eq!(
            c.membership,
            Membership::Group {
                instance_id: Some("fleuve-processor-0".into())
            }
        );
        assert_eq!(c.stall_after, Duration::from_secs(5));
        let c = watching(
            &["fleuve", "config", "--processor-membership=owned"],
            scylla,
        )
        .unwrap();
        assert_eq!(c.membership, Membership::Owned);

        let err = watching(
            &["fleuve", "run", "--processor-group-instance-id=p-0"],
            embedded,
        )
        .unwrap_err();
        assert!(
            err.contains("processor_group_instance_id") && err.contains("processor_membership"),
            "{err}"
        );
        for bad in ["999", "3600001", "soon", "-1"] {
            let err = watching(
                &[
                    "fleuve",
                    "run",
                    &format!("--processor-stall-after-ms={bad}"),
                ],
                embedded,
            )
            .unwrap_err();
            assert!(
                err.contains("processor_stall_after_ms must be a whole number of milliseconds from 1000 to 3600000")
                    && err.contains(&format!("got `{bad}`")),
                "{err}"
            );
        }
        let err = watching(
            &["fleuve", "run", "--processor-membership=shared"],
            embedded,
        )
        .unwrap_err();
        assert!(
            err.contains("auto") && err.contains("owned") && err.contains("group"),
            "{err}"
        );
    }

    /// The ranges in the flags' help are the runtime's.
    #[test]
    fn batch_settings_help_states_the_runtimes_bounds() {
        let cli = Cli::command();
        let process = cli.find_subcommand("process").unwrap();
        let help = |id: &str| {
            process
                .get_arguments()
                .find(|a| a.get_id() == id)
                .and_then(|a| a.get_help())
                .map(|h| h.to_string())
                .unwrap_or_default()
        };
        assert!(
            help("processor_batch_max_events").contains(&format!("from 1 to {MAX_BATCH_EVENTS}"))
        );
        assert!(help("processor_batch_max_wait_ms")
            .contains(&format!("from 0 to {}", MAX_BATCH_WAIT.as_millis())));
    }

    /// Each key of the configuration file is applied as `FLEUVE_<KEY>`: a setting of some
    /// command must read that variable (the JWT keys are read by `AuthConfig::from_env`).
    #[test]
    fn every_file_key_is_a_setting_read_from_its_variable() {
        let cli = Cli::command();
        let mut variables: Vec<String> = cli
            .get_arguments()
            .chain(cli.get_subcommands().flat_map(|c| c.get_arguments()))
            .filter_map(|a| a.get_env())
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        variables.sort();
        for key in config_file::KEYS.iter().filter(|k| !k.starts_with("jwt_")) {
            let var = format!("FLEUVE_{}", key.to_ascii_uppercase());
            assert!(
                variables.binary_search(&var).is_ok(),
                "`{key}` is applied as {var}, which no setting reads"
            );
        }
        for command in ["process", "run", "config"] {
            let vars: Vec<String> = cli
                .find_subcommand(command)
                .unwrap()
                .get_arguments()
                .filter_map(|a| a.get_env())
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            for var in [
                "FLEUVE_PROCESSOR_BATCH_MAX_EVENTS",
                "FLEUVE_PROCESSOR_BATCH_MAX_WAIT_MS",
            ] {
                assert!(vars.iter().any(|v| v == var), "`{command}` ignores {var}");
            }
        }
    }

    /// Each command takes the settings it uses, and only those.
    #[test]
    fn settings_are_scoped_to_the_commands_that_use_them() {
        for args in [
            &["fleuve", "token", "--brokers", "k:9092"][..],
            &["fleuve", "registry", "--query-addr", "127.0.0.1:1"],
            &["fleuve", "ingest", "--store", "embedded://x"],
            &["fleuve", "query", "--processor-batch-max-events", "10"],
            &["fleuve", "process", "all", "--no-auth"],
        ] {
            let err = Cli::try_parse_from(args).unwrap_err().to_string();
            assert!(err.contains("unexpected argument"), "{args:?}: {err}");
        }
        for args in [
            &[
                "fleuve",
                "run",
                "--brokers",
                "k:9092",
                "--query-addr",
                "127.0.0.1:1",
            ][..],
            &[
                "fleuve",
                "topics",
                "create",
                "--brokers",
                "k:9092",
                "--partitions",
                "6",
            ],
            &["fleuve", "schemas", "check", "--registry-url", "http://r"],
            &[
                "fleuve",
                "replay",
                "--topic",
                "orders",
                "--brokers",
                "k:9092",
            ],
            &["fleuve", "--config", "f.toml", "config", "--no-auth"],
        ] {
            Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
    }

    /// A file's value is the default of its setting in every command that has it; the
    /// environment and the flags still win.
    #[test]
    fn file_values_become_the_settings_defaults() {
        let values = vec![
            ("brokers".to_owned(), "file:9092".to_owned()),
            ("processor_batch_max_events".to_owned(), "77".to_owned()),
            ("query_addr".to_owned(), "0.0.0.0:9000".to_owned()),
        ];
        let command = config_file::install(Cli::command(), values);
        let parse = |args: &[&str]| {
            Cli::from_arg_matches(&command.clone().try_get_matches_from(args).unwrap()).unwrap()
        };
        let Command::Run(Platform {
            kafka,
            processors,
            query_addr,
            ..
        }) = parse(&["fleuve", "run"]).command
        else {
            panic!("not `run`");
        };
        assert_eq!(kafka.brokers, "file:9092");
        assert_eq!(processors.batches.processor_batch_max_events, 77);
        assert_eq!(query_addr.query_addr.to_string(), "0.0.0.0:9000");
        let Command::Registry { kafka, .. } =
            parse(&["fleuve", "registry", "--brokers", "flag:1"]).command
        else {
            panic!("not `registry`");
        };
        assert_eq!(kafka.brokers, "flag:1");
        // Every key but the JWT ones is a setting of some command.
        let mut ids: Vec<String> = Vec::new();
        fn collect(c: &clap::Command, ids: &mut Vec<String>) {
            ids.extend(c.get_arguments().map(|a| a.get_id().to_string()));
            for sub in c.get_subcommands() {
                collect(sub, ids);
            }
        }
        collect(&Cli::command(), &mut ids);
        for key in config_file::KEYS.iter().filter(|k| !k.starts_with("jwt_")) {
            assert!(ids.iter().any(|id| id == key), "`{key}` is no setting");
        }
    }

    /// Every read model has a processor that folds exactly its declared topics (the query
    /// API waits for positions and measures lag on those).
    #[test]
    fn every_read_model_has_its_processor() {
        let mut from_handlers: Vec<(&str, Vec<&str>)> = fleuve_processors::handlers::NAMES
            .iter()
            .filter(|name| **name != fleuve_processors::handlers::exports::NAME)
            .map(|name| {
                let handler = fleuve_processors::handlers::by_name(name)
                    .unwrap_or_else(|| panic!("no handler {name}"));
                (*name, handler.topics().to_vec())
            })
            .collect();
        let mut from_models: Vec<(&str, Vec<&str>)> = fleuve_projections::MODELS
            .iter()
            .map(|m| (m.name, m.topics.to_vec()))
            .collect();
        from_handlers.sort();
        from_models.sort();
        assert_eq!(from_models, from_handlers);
    }
}
