//! Schema migrations: the keyspace, then the CQL files of `migrations/scylla/`, in order.
//!
//! Each file is named `NNN_name.cql` (versions 1, 2, 3… without gaps) and holds one or
//! more statements separated by `;`. Every statement is idempotent (`CREATE … IF NOT
//! EXISTS`, `ALTER` guarded by the version check), so two processes opening the store at
//! once, or a process that stopped halfway through a migration, do no harm. The versions
//! applied are recorded in `schema_migrations`; a keyspace holding a version this release
//! does not know is refused with [`StoreError::Incompatible`] (it was migrated by a newer
//! release).
//!
//! To change the schema, add a file with the next number and list it in [`FILES`]; never
//! edit an applied one.

use std::collections::BTreeMap;
use std::time::Duration;

use scylla::client::session::Session;
use scylla::statement::unprepared::Statement;

use super::error::{map_execution, map_rows, Ctx};
use super::url::ScyllaConfig;
use crate::store::StoreError;

/// The migration files, in version order (checked by the tests).
const FILES: &[(&str, &str)] = &[
    (
        "001_rows.cql",
        include_str!("../../migrations/scylla/001_rows.cql"),
    ),
    (
        "002_checkpoints.cql",
        include_str!("../../migrations/scylla/002_checkpoints.cql"),
    ),
];

/// Client-side timeout of a schema change: longer than the store's request timeout, as
/// the cluster has to agree on the new schema.
const DDL_TIMEOUT: Duration = Duration::from_secs(60);

/// Table recording the applied versions. Created before any migration runs.
const BOOTSTRAP: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (\
    version int PRIMARY KEY, name text, applied_at timestamp)";

/// One migration file, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub version: u32,
    pub file: &'static str,
    pub statements: Vec<String>,
}

/// Every migration, checked: versions 1..=n in order, each with at least one statement.
pub fn all() -> Result<Vec<Migration>, String> {
    parse_all(FILES)
}

fn parse_all(files: &[(&'static str, &str)]) -> Result<Vec<Migration>, String> {
    let mut out = Vec::with_capacity(files.len());
    for (expected, (file, text)) in (1u32..).zip(files) {
        let version = parse_file_name(file)?;
        if version != expected {
            return Err(format!(
                "migration `{file}` has version {version}, expected {expected} \
                 (versions start at 1, without gaps, listed in order)"
            ));
        }
        let statements = split_statements(text).map_err(|e| format!("`{file}`: {e}"))?;
        if statements.is_empty() {
            return Err(format!("migration `{file}` holds no statement"));
        }
        out.push(Migration {
            version,
            file,
            statements,
        });
    }
    Ok(out)
}

/// The version of a file named `NNN_name.cql`.
pub fn parse_file_name(file: &str) -> Result<u32, String> {
    let bad = |why: &str| format!("migration file `{file}`: {why} (expected NNN_name.cql)");
    let stem = file
        .strip_suffix(".cql")
        .ok_or_else(|| bad("not a .cql file"))?;
    let (number, name) = stem
        .split_once('_')
        .ok_or_else(|| bad("no `_` after the version"))?;
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("the version is not a number"));
    }
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(bad(
            "the name must be lower-case letters, digits and underscores",
        ));
    }
    number
        .parse::<u32>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| bad("the version must be from 1 to 4294967295"))
}

/// Splits CQL text into statements at `;`, dropping comments (`--`, `//`, `/* */`) and
/// blank statements. Semicolons inside string literals (`'…'`, `$$…$$`) and quoted names
/// (`"…"`) do not split.
pub fn split_statements(text: &str) -> Result<Vec<String>, String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    let mut push = |current: &mut String| {
        let statement = current.trim();
        if !statement.is_empty() {
            statements.push(statement.to_owned());
        }
        current.clear();
    };
    while let Some(c) = chars.next() {
        match c {
            ';' => push(&mut current),
            '-' if chars.peek() == Some(&'-') => skip_line(&mut chars, &mut current),
            '/' if chars.peek() == Some(&'/') => skip_line(&mut chars, &mut current),
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut previous = ' ';
                loop {
                    match chars.next() {
                        Some('/') if previous == '*' => break,
                        Some(c) => previous = c,
                        None => return Err("unterminated /* comment".into()),
                    }
                }
                current.push(' ');
            }
            '\'' | '"' => {
                // '' (or "") inside the literal is an escaped quote: reading it as the end
                // of one literal and the start of the next gives the same text.
                current.push(c);
                loop {
                    match chars.next() {
                        Some(q) if q == c => {
                            current.push(q);
                            break;
                        }
                        Some(other) => current.push(other),
                        None => {
                            return Err(format!("unterminated {c}…{c} literal"));
                        }
                    }
                }
            }
            '$' if chars.peek() == Some(&'$') => {
                chars.next();
                current.push_str("$$");
                let mut previous = ' ';
                loop {
                    match chars.next() {
                        Some('$') if previous == '$' => {
                            current.push('$');
                            break;
                        }
                        Some(c) => {
                            current.push(c);
                            previous = c;
                        }
                        None => return Err("unterminated $$…$$ literal".into()),
                    }
                }
            }
            c => current.push(c),
        }
    }
    push(&mut current);
    Ok(statements)
}

fn skip_line(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, current: &mut String) {
    for c in chars.by_ref() {
        if c == '\n' {
            break;
        }
    }
    current.push('\n');
}

/// Creates the keyspace if needed, makes it the session's keyspace, and applies the
/// migrations not applied yet. Returns the versions it applied.
pub async fn run(
    session: &Session,
    config: &ScyllaConfig,
    ctx: &Ctx,
) -> Result<Vec<u32>, StoreError> {
    let migrations = all().map_err(StoreError::Backend)?;
    let known = migrations.last().map_or(0, |m| m.version);

    let create_keyspace = create_keyspace_cql(config);
    session
        .query_unpaged(ddl(create_keyspace), ())
        .await
        .map_err(|e| map_execution(ctx, "creating the keyspace", e))?;
    session
        .use_keyspace(config.keyspace.as_str(), true)
        .await
        .map_err(|e| map_execution(ctx, "switching to the keyspace", e.into()))?;
    session
        .query_unpaged(ddl(BOOTSTRAP.to_owned()), ())
        .await
        .map_err(|e| map_execution(ctx, "creating table schema_migrations", e))?;

    let applied = applied_versions(session, ctx).await?;
    if let Some((&newest, name)) = applied.iter().next_back() {
        if newest > known {
            return Err(StoreError::Incompatible(format!(
                "keyspace `{}` is at schema version {newest} ({name}), this release knows \
                 versions up to {known}: run a newer release, or use another keyspace",
                config.keyspace
            )));
        }
    }

    let mut done = Vec::new();
    for migration in migrations {
        if let Some(name) = applied.get(&migration.version) {
            if name != migration.file {
                tracing::warn!(
                    keyspace = %config.keyspace,
                    version = migration.version,
                    recorded = %name,
                    file = migration.file,
                    "applied migration recorded under another file name"
                );
            }
            continue;
        }
        for statement in &migration.statements {
            session
                .query_unpaged(ddl(statement.clone()), ())
                .await
                .map_err(|e| {
                    map_execution(ctx, &format!("applying migration {}", migration.file), e)
                })?;
        }
        let version = i32::try_from(migration.version).map_err(|_| {
            StoreError::Backend(format!("migration version {} too large", migration.version))
        })?;
        session
            .query_unpaged(
                "INSERT INTO schema_migrations (version, name, applied_at) \
                 VALUES (?, ?, toTimestamp(now()))",
                (version, migration.file),
            )
            .await
            .map_err(|e| {
                map_execution(ctx, &format!("recording migration {}", migration.file), e)
            })?;
        tracing::info!(
            keyspace = %config.keyspace,
            version = migration.version,
            file = migration.file,
            "schema migration applied"
        );
        done.push(migration.version);
    }
    Ok(done)
}

fn ddl(cql: String) -> Statement {
    let mut statement = Statement::new(cql);
    statement.set_request_timeout(Some(DDL_TIMEOUT));
    statement
}

/// `CREATE KEYSPACE IF NOT EXISTS` with `NetworkTopologyStrategy` and the URL's replication
/// factor in every datacenter. An existing keyspace is left as it is.
pub fn create_keyspace_cql(config: &ScyllaConfig) -> String {
    format!(
        "CREATE KEYSPACE IF NOT EXISTS \"{}\" WITH replication = \
         {{'class': 'NetworkTopologyStrategy', 'replication_factor': {}}}",
        config.keyspace, config.replication_factor
    )
}

async fn applied_versions(
    session: &Session,
    ctx: &Ctx,
) -> Result<BTreeMap<u32, String>, StoreError> {
    const ACTION: &str = "reading table schema_migrations";
    let result = session
        .query_unpaged("SELECT version, name FROM schema_migrations", ())
        .await
        .map_err(|e| map_execution(ctx, ACTION, e))?
        .into_rows_result()
        .map_err(|e| map_rows(ctx, ACTION, e))?;
    let rows = result
        .rows::<(i32, Option<String>)>()
        .map_err(|e| map_rows(ctx, ACTION, e))?;
    let mut applied = BTreeMap::new();
    for row in rows {
        let (version, name) = row.map_err(|e| map_rows(ctx, ACTION, e))?;
        let version = u32::try_from(version).map_err(|_| StoreError::Corrupt {
            key: "schema_migrations".into(),
            reason: format!("negative version {version}"),
        })?;
        applied.insert(version, name.unwrap_or_default());
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_migrations_parse_in_order() {
        let all = all().unwrap();
        assert_eq!(
            all.iter().map(|m| m.version).collect::<Vec<_>>(),
            (1..=FILES.len() as u32).collect::<Vec<_>>()
        );
        for m in &all {
            for s in &m.statements {
                assert!(
                    s.starts_with("CREATE TABLE IF NOT EXISTS"),
                    "{}: {s}",
                    m.file
                );
                assert!(!s.contains("--"), "comment left in {}: {s}", m.file);
            }
        }
        assert!(all[0].statements[0].contains("PRIMARY KEY ((tbl, pk), ck)"));
        assert!(all[0].statements[0].contains("CLUSTERING ORDER BY (ck ASC)"));
        assert!(all[1].statements[0].contains("PRIMARY KEY ((projection), topic, partition)"));
    }

    #[test]
    fn every_file_in_the_folder_is_listed() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/scylla");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        on_disk.sort();
        let listed: Vec<String> = FILES.iter().map(|(f, _)| (*f).to_owned()).collect();
        assert_eq!(on_disk, listed);
        for (file, text) in FILES {
            let on_disk = std::fs::read_to_string(format!("{dir}/{file}")).unwrap();
            assert_eq!(
                &on_disk, text,
                "{file} is listed with the text of another file"
            );
        }
    }

    #[test]
    fn file_names() {
        assert_eq!(parse_file_name("001_rows.cql"), Ok(1));
        assert_eq!(parse_file_name("12_add_index_2.cql"), Ok(12));
        assert_eq!(parse_file_name("0100_x.cql"), Ok(100));
        for bad in [
            "001_rows.sql",
            "001rows.cql",
            "_rows.cql",
            "x01_rows.cql",
            "000_zero.cql",
            "001_.cql",
            "001_Rows.cql",
            "001_ro-ws.cql",
            "99999999999_big.cql",
        ] {
            assert!(parse_file_name(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn versions_must_follow_each_other() {
        let ok = [
            ("001_a.cql", "CREATE TABLE a (k int PRIMARY KEY)"),
            ("002_b.cql", "SELECT 1"),
        ];
        assert_eq!(parse_all(&ok).unwrap().len(), 2);
        let gap = [("001_a.cql", "SELECT 1"), ("003_c.cql", "SELECT 1")];
        assert!(parse_all(&gap).unwrap_err().contains("expected 2"));
        let swapped = [("002_b.cql", "SELECT 1"), ("001_a.cql", "SELECT 1")];
        assert!(parse_all(&swapped).unwrap_err().contains("expected 1"));
        let twice = [("001_a.cql", "SELECT 1"), ("001_b.cql", "SELECT 1")];
        assert!(parse_all(&twice).unwrap_err().contains("expected 2"));
        let empty = [("001_a.cql", "-- nothing\n;;")];
        assert!(parse_all(&empty).unwrap_err().contains("no statement"));
    }

    #[test]
    fn statements_split_on_semicolons_outside_literals() {
        let text = "-- header; not a statement\n\
                    CREATE TABLE a (k int PRIMARY KEY) WITH comment = 'a;b''c'; // trailing; comment\n\
                    /* block; comment */ INSERT INTO \"we;ird\" (k) VALUES (1);\n\
                    CREATE FUNCTION f() RETURNS NULL ON NULL INPUT RETURNS int LANGUAGE lua AS $$ return 1; $$\n\
                    ;  ;\n";
        let statements = split_statements(text).unwrap();
        assert_eq!(
            statements,
            vec![
                "CREATE TABLE a (k int PRIMARY KEY) WITH comment = 'a;b''c'",
                "INSERT INTO \"we;ird\" (k) VALUES (1)",
                "CREATE FUNCTION f() RETURNS NULL ON NULL INPUT RETURNS int LANGUAGE lua AS $$ return 1; $$",
            ]
        );
        // A minus sign or a slash alone is not a comment.
        assert_eq!(
            split_statements("SELECT a - 1, b / 2 FROM t").unwrap(),
            vec!["SELECT a - 1, b / 2 FROM t"]
        );
        assert_eq!(split_statements("SELECT 1").unwrap(), vec!["SELECT 1"]);
        assert!(split_statements("").unwrap().is_empty());
    }

    #[test]
    fn unterminated_literals_and_comments_are_errors() {
        assert!(split_statements("SELECT 'abc").is_err());
        assert!(split_statements("SELECT \"abc").is_err());
        assert!(split_statements("SELECT 1 /* abc").is_err());
        assert!(split_statements("SELECT $$ abc").is_err());
    }

    #[test]
    fn keyspace_statement() {
        let config = ScyllaConfig::parse("scylla://h/fleuve_test?replication_factor=3").unwrap();
        assert_eq!(
            create_keyspace_cql(&config),
            "CREATE KEYSPACE IF NOT EXISTS \"fleuve_test\" WITH replication = \
             {'class': 'NetworkTopologyStrategy', 'replication_factor': 3}"
        );
    }
}
