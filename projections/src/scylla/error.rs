//! Mapping of the driver's errors to [`StoreError`].
//!
//! What a retry may fix becomes [`StoreError::Unavailable`]: timeouts, broken or refused
//! connections, too few live replicas for the consistency level, an overloaded,
//! bootstrapping or rate-limiting node, a replica failing a read or write. What will fail
//! again the same way becomes [`StoreError::Backend`] (bad credentials, missing
//! permissions, a statement the server rejects), [`StoreError::Incompatible`] (columns of
//! another type than this release reads) or [`StoreError::Corrupt`] (a value that does not
//! decode). Every message names the keyspace and the contact points, and says what to
//! check when the cause is likely a setting.

use scylla::errors::{
    ConnectionError, ConnectionPoolError, ConnectionSetupRequestErrorKind, DbError,
    DeserializationError, ExecutionError, IntoRowsResultError, MaybeFirstRowError, MetadataError,
    NewSessionError, NextPageError, NextRowError, PagerExecutionError, PrepareError,
    RequestAttemptError, RequestError, RowsError, SchemaAgreementError, TypeCheckError,
    UseKeyspaceError,
};

use crate::store::StoreError;

/// Where the store is, for messages.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub keyspace: String,
    pub hosts: String,
    pub local_dc: Option<String>,
}

impl Ctx {
    fn describe(&self, action: &str) -> String {
        format!("{action} (keyspace `{}` at {})", self.keyspace, self.hosts)
    }
}

/// What a caller should do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Transient,
    Permanent,
}

fn build(ctx: &Ctx, action: &str, kind: Kind, detail: &str, hint: Option<String>) -> StoreError {
    let mut message = format!("{}: {detail}", ctx.describe(action));
    if let Some(hint) = hint {
        message.push_str(" — ");
        message.push_str(&hint);
    }
    match kind {
        Kind::Transient => StoreError::Unavailable(message),
        Kind::Permanent => StoreError::Backend(message),
    }
}

/// A failed statement execution.
pub fn map_execution(ctx: &Ctx, action: &str, e: ExecutionError) -> StoreError {
    let (kind, hint) = execution_kind(ctx, &e);
    build(ctx, action, kind, &e.to_string(), hint)
}

/// A failed `prepare`.
pub fn map_prepare(ctx: &Ctx, action: &str, e: PrepareError) -> StoreError {
    let (kind, hint) = prepare_kind(ctx, &e);
    build(ctx, action, kind, &e.to_string(), hint)
}

/// A failed connection to the cluster.
pub fn map_new_session(ctx: &Ctx, e: NewSessionError) -> StoreError {
    let action = "connecting to ScyllaDB";
    let (kind, hint) = match &e {
        NewSessionError::FailedToResolveAnyHostname(_) => (
            Kind::Transient,
            Some("check the host names in the URL and DNS".to_owned()),
        ),
        NewSessionError::EmptyKnownNodesList => (Kind::Permanent, None),
        NewSessionError::MetadataError(m) => metadata_kind(ctx, m),
        NewSessionError::UseKeyspaceError(u) => use_keyspace_kind(ctx, u),
        NewSessionError::IllegalConfig(_) => (Kind::Permanent, None),
        _ => (Kind::Permanent, None),
    };
    build(ctx, action, kind, &e.to_string(), hint)
}

/// A failed paged read (the first page).
pub fn map_pager(ctx: &Ctx, action: &str, e: PagerExecutionError) -> StoreError {
    let (kind, hint) = match &e {
        PagerExecutionError::PrepareError(p) => prepare_kind(ctx, p),
        PagerExecutionError::NextPageError(n) => {
            return map_next_page(ctx, action, n);
        }
        PagerExecutionError::UseKeyspaceError(u) => use_keyspace_kind(ctx, u),
        PagerExecutionError::SchemaAgreementError(s) => schema_agreement_kind(ctx, s),
        PagerExecutionError::MetadataError(m) => metadata_kind(ctx, m),
        PagerExecutionError::SerializationError(_) => (Kind::Permanent, None),
        _ => (Kind::Permanent, None),
    };
    build(ctx, action, kind, &e.to_string(), hint)
}

fn map_next_page(ctx: &Ctx, action: &str, e: &NextPageError) -> StoreError {
    let (kind, hint) = match e {
        NextPageError::RequestFailure(r) => request_kind(ctx, r),
        NextPageError::TypeCheckError(t) => return incompatible(ctx, action, t),
        NextPageError::PartitionKeyError(_) | NextPageError::ResultMetadataParseError(_) => {
            (Kind::Permanent, None)
        }
        _ => (Kind::Permanent, None),
    };
    build(ctx, action, kind, &e.to_string(), hint)
}

/// Reading the rows of a result failed. `key` names what was read (for
/// [`StoreError::Corrupt`]).
pub fn map_rows(ctx: &Ctx, key: &str, e: impl Into<RowsFailure>) -> StoreError {
    let action = format!("reading {key}");
    match e.into() {
        RowsFailure::Decode(d) => StoreError::Corrupt {
            key: key.to_owned(),
            reason: format!("{}: {d}", ctx.describe("decoding a value")),
        },
        RowsFailure::Type(t) => incompatible(ctx, &action, &t),
        RowsFailure::NotRows => build(
            ctx,
            &action,
            Kind::Permanent,
            "the server answered a SELECT without rows",
            None,
        ),
        RowsFailure::Metadata(m) => build(ctx, &action, Kind::Permanent, &m, None),
        RowsFailure::NextPage(n) => map_next_page(ctx, &action, &n),
    }
}

fn incompatible(ctx: &Ctx, action: &str, e: &TypeCheckError) -> StoreError {
    StoreError::Incompatible(format!(
        "{}: the columns do not have the types this release reads ({e}); \
         was the keyspace created by another application or release?",
        ctx.describe(action)
    ))
}

/// The ways reading rows out of a response can fail.
#[derive(Debug)]
pub enum RowsFailure {
    Decode(DeserializationError),
    Type(TypeCheckError),
    NotRows,
    Metadata(String),
    NextPage(NextPageError),
}

impl From<DeserializationError> for RowsFailure {
    fn from(e: DeserializationError) -> Self {
        RowsFailure::Decode(e)
    }
}

impl From<TypeCheckError> for RowsFailure {
    fn from(e: TypeCheckError) -> Self {
        RowsFailure::Type(e)
    }
}

impl From<RowsError> for RowsFailure {
    fn from(e: RowsError) -> Self {
        match e {
            RowsError::TypeCheckFailed(t) => RowsFailure::Type(t),
        }
    }
}

impl From<MaybeFirstRowError> for RowsFailure {
    fn from(e: MaybeFirstRowError) -> Self {
        match e {
            MaybeFirstRowError::TypeCheckFailed(t) => RowsFailure::Type(t),
            MaybeFirstRowError::DeserializationFailed(d) => RowsFailure::Decode(d),
        }
    }
}

impl From<IntoRowsResultError> for RowsFailure {
    fn from(e: IntoRowsResultError) -> Self {
        match e {
            IntoRowsResultError::ResultNotRows(_) => RowsFailure::NotRows,
            IntoRowsResultError::ResultMetadataLazyDeserializationError(m) => {
                RowsFailure::Metadata(m.to_string())
            }
        }
    }
}

impl From<NextRowError> for RowsFailure {
    fn from(e: NextRowError) -> Self {
        match e {
            NextRowError::NextPageError(n) => RowsFailure::NextPage(n),
            NextRowError::RowDeserializationError(d) => RowsFailure::Decode(d),
            other => RowsFailure::Metadata(other.to_string()),
        }
    }
}

type Classified = (Kind, Option<String>);

fn execution_kind(ctx: &Ctx, e: &ExecutionError) -> Classified {
    match e {
        ExecutionError::BadQuery(_) => (Kind::Permanent, None),
        ExecutionError::EmptyPlan => (Kind::Transient, Some(empty_plan_hint(ctx))),
        ExecutionError::PrepareError(p) => prepare_kind(ctx, p),
        ExecutionError::ConnectionPoolError(p) => pool_kind(ctx, p),
        ExecutionError::LastAttemptError(a) => attempt_kind(ctx, a),
        ExecutionError::RequestTimeout(_) => (Kind::Transient, None),
        ExecutionError::UseKeyspaceError(u) => use_keyspace_kind(ctx, u),
        ExecutionError::SchemaAgreementError(s) => schema_agreement_kind(ctx, s),
        ExecutionError::MetadataError(m) => metadata_kind(ctx, m),
        _ => (Kind::Permanent, None),
    }
}

fn request_kind(ctx: &Ctx, e: &RequestError) -> Classified {
    match e {
        RequestError::EmptyPlan => (Kind::Transient, Some(empty_plan_hint(ctx))),
        RequestError::ConnectionPoolError(p) => pool_kind(ctx, p),
        RequestError::RequestTimeout(_) => (Kind::Transient, None),
        RequestError::LastAttemptError(a) => attempt_kind(ctx, a),
        _ => (Kind::Permanent, None),
    }
}

fn prepare_kind(ctx: &Ctx, e: &PrepareError) -> Classified {
    match e {
        PrepareError::ConnectionPoolError(p) => pool_kind(ctx, p),
        PrepareError::AllAttemptsFailed { first_attempt } => attempt_kind(ctx, first_attempt),
        PrepareError::PreparedStatementIdsMismatch => (Kind::Transient, None),
        _ => (Kind::Permanent, None),
    }
}

fn use_keyspace_kind(ctx: &Ctx, e: &UseKeyspaceError) -> Classified {
    match e {
        UseKeyspaceError::RequestError(a) => attempt_kind(ctx, a),
        UseKeyspaceError::RequestTimeout(_) => (Kind::Transient, None),
        UseKeyspaceError::BadKeyspaceName(_) | UseKeyspaceError::KeyspaceNameMismatch { .. } => {
            (Kind::Permanent, None)
        }
        _ => (Kind::Permanent, None),
    }
}

fn schema_agreement_kind(ctx: &Ctx, e: &SchemaAgreementError) -> Classified {
    match e {
        SchemaAgreementError::ConnectionPoolError(p) => pool_kind(ctx, p),
        SchemaAgreementError::PrepareError(p) => prepare_kind(ctx, p),
        SchemaAgreementError::RequestError(a) => attempt_kind(ctx, a),
        SchemaAgreementError::Timeout(_) | SchemaAgreementError::RequiredHostAbsent(_) => (
            Kind::Transient,
            Some("the nodes do not agree on the schema yet; is a node down?".to_owned()),
        ),
        _ => (Kind::Permanent, None),
    }
}

fn metadata_kind(ctx: &Ctx, e: &MetadataError) -> Classified {
    match e {
        MetadataError::ConnectionPoolError(p) => pool_kind(ctx, p),
        // Fetching the cluster's metadata failed on the wire.
        MetadataError::FetchError(_) => (Kind::Transient, None),
        // The cluster describes itself in a way the driver does not understand.
        _ => (Kind::Permanent, None),
    }
}

fn pool_kind(ctx: &Ctx, e: &ConnectionPoolError) -> Classified {
    match e {
        ConnectionPoolError::Broken {
            last_connection_error,
        } => connection_kind(ctx, last_connection_error),
        ConnectionPoolError::Initializing => (Kind::Transient, None),
        ConnectionPoolError::NodeDisabledByHostFilter => (Kind::Transient, None),
        _ => (Kind::Transient, None),
    }
}

fn connection_kind(ctx: &Ctx, e: &ConnectionError) -> Classified {
    match e {
        ConnectionError::ConnectionSetupRequestError(setup) => match setup.get_error() {
            ConnectionSetupRequestErrorKind::DbError(DbError::AuthenticationError, _) => {
                (Kind::Permanent, Some(credentials_hint()))
            }
            ConnectionSetupRequestErrorKind::MissingAuthentication => (
                Kind::Permanent,
                Some("the cluster requires a password: give scylla://user:password@host/… in the URL".to_owned()),
            ),
            ConnectionSetupRequestErrorKind::StartAuthSessionError(_)
            | ConnectionSetupRequestErrorKind::AuthChallengeEvaluationError(_)
            | ConnectionSetupRequestErrorKind::AuthFinishError(_) => {
                (Kind::Permanent, Some(credentials_hint()))
            }
            ConnectionSetupRequestErrorKind::DbError(db, _) => db_kind(ctx, db),
            _ => (Kind::Transient, None),
        },
        ConnectionError::ConnectTimeout | ConnectionError::IoError(_) => (
            Kind::Transient,
            Some(format!(
                "is ScyllaDB listening for CQL at {}?",
                ctx.hosts
            )),
        ),
        _ => (Kind::Transient, None),
    }
}

fn attempt_kind(ctx: &Ctx, e: &RequestAttemptError) -> Classified {
    match e {
        RequestAttemptError::DbError(db, _) => db_kind(ctx, db),
        RequestAttemptError::BrokenConnectionError(_)
        | RequestAttemptError::UnableToAllocStreamId => (Kind::Transient, None),
        RequestAttemptError::SerializationError(_)
        | RequestAttemptError::CqlRequestSerialization(_)
        | RequestAttemptError::BodyExtensionsParseError(_)
        | RequestAttemptError::CqlResultParseError(_)
        | RequestAttemptError::CqlErrorParseError(_)
        | RequestAttemptError::UnexpectedResponse(_) => (Kind::Permanent, None),
        _ => (Kind::Permanent, None),
    }
}

fn db_kind(ctx: &Ctx, e: &DbError) -> Classified {
    match e {
        DbError::Unavailable { .. } => (
            Kind::Transient,
            Some(
                "too few live replicas for LOCAL_QUORUM: are nodes down, or is the keyspace's \
                 replication factor larger than the datacenter?"
                    .to_owned(),
            ),
        ),
        DbError::Overloaded
        | DbError::IsBootstrapping
        | DbError::ReadTimeout { .. }
        | DbError::WriteTimeout { .. }
        | DbError::ReadFailure { .. }
        | DbError::WriteFailure { .. }
        | DbError::RateLimitReached { .. }
        | DbError::TruncateError
        | DbError::Unprepared { .. } => (Kind::Transient, None),
        DbError::AuthenticationError => (Kind::Permanent, Some(credentials_hint())),
        DbError::Unauthorized => (
            Kind::Permanent,
            Some(format!(
                "grant the user CREATE, SELECT and MODIFY on keyspace `{}`",
                ctx.keyspace
            )),
        ),
        DbError::SyntaxError
        | DbError::Invalid
        | DbError::ConfigError
        | DbError::AlreadyExists { .. }
        | DbError::FunctionFailure { .. }
        | DbError::ServerError
        | DbError::ProtocolError
        | DbError::Other(_) => (Kind::Permanent, None),
        _ => (Kind::Permanent, None),
    }
}

fn credentials_hint() -> String {
    "check the user and password in the URL (scylla://user:password@host/…)".to_owned()
}

fn empty_plan_hint(ctx: &Ctx) -> String {
    match &ctx.local_dc {
        Some(dc) => format!(
            "no live node in datacenter `{dc}`: check `local_dc` in the URL and the nodes' state"
        ),
        None => "no live node to send the request to".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scylla::statement::Consistency;

    fn ctx() -> Ctx {
        Ctx {
            keyspace: "fleuve".into(),
            hosts: "10.0.0.1:9042".into(),
            local_dc: Some("dc1".into()),
        }
    }

    fn db(e: DbError) -> ExecutionError {
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(e, "server said no".into()))
    }

    #[test]
    fn transient_errors_become_unavailable() {
        let transient = [
            db(DbError::Unavailable {
                consistency: Consistency::LocalQuorum,
                required: 2,
                alive: 1,
            }),
            db(DbError::Overloaded),
            db(DbError::IsBootstrapping),
            db(DbError::WriteTimeout {
                consistency: Consistency::LocalQuorum,
                received: 1,
                required: 2,
                write_type: scylla::errors::WriteType::Simple,
            }),
            db(DbError::ReadTimeout {
                consistency: Consistency::LocalQuorum,
                received: 1,
                required: 2,
                data_present: false,
            }),
            ExecutionError::RequestTimeout(std::time::Duration::from_secs(10)),
            ExecutionError::EmptyPlan,
            ExecutionError::ConnectionPoolError(ConnectionPoolError::Initializing),
        ];
        for e in transient {
            let shown = e.to_string();
            let mapped = map_execution(&ctx(), "writing rows", e);
            assert!(mapped.is_transient(), "{shown} -> {mapped:?}");
            let text = mapped.to_string();
            assert!(
                text.contains("keyspace `fleuve` at 10.0.0.1:9042"),
                "{text}"
            );
            assert!(text.contains("writing rows"), "{text}");
        }
    }

    #[test]
    fn permanent_errors_become_backend() {
        for e in [
            db(DbError::Unauthorized),
            db(DbError::AuthenticationError),
            db(DbError::SyntaxError),
            db(DbError::Invalid),
            db(DbError::ServerError),
        ] {
            let mapped = map_execution(&ctx(), "reading", e);
            assert!(matches!(mapped, StoreError::Backend(_)), "{mapped:?}");
        }
        let text = map_execution(&ctx(), "reading", db(DbError::Unauthorized)).to_string();
        assert!(text.contains("grant the user"), "{text}");
    }

    #[test]
    fn empty_plan_points_at_local_dc() {
        let text = map_execution(&ctx(), "reading", ExecutionError::EmptyPlan).to_string();
        assert!(text.contains("local_dc"), "{text}");
    }
}
