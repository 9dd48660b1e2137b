//! The configuration file: the layer between the built-in defaults and the environment.
//!
//! Precedence, lowest first: defaults < file < `FLEUVE_*` environment variables < flags.
//! The file is TOML, named by `--config FILE` or `FLEUVE_CONFIG`; each key is a setting's
//! flag name with `_` for `-` (`brokers`, `registry_url`, `query_addr`, …) or one of the
//! JWT settings (`jwt_hs256_secret`, `jwt_rs256_public_key_file`, `jwt_jwks_file`,
//! `jwt_issuer`, `jwt_audience`, `jwt_leeway_secs`); `exports_partners` names the partners
//! file of the `exports` processor (`docs/exports.md`):
//!
//! ```toml
//! brokers = "kafka-0.kafka:9092,kafka-1.kafka:9092"
//! registry_url = "http://registry:8081"
//! store = "embedded:///data/projections"
//! partitions = 12
//! query_addr = "0.0.0.0:8080"
//! processor_batch_max_events = 1000
//! processor_batch_max_wait_ms = 0
//! ```
//!
//! The file's values become the defaults of the command line's settings ([`install`]):
//! clap then takes a flag over its `FLEUVE_*` variable over that default, so the precedence
//! holds without touching the process environment. The JWT keys, which are not flags, are
//! read through [`variable`]: the environment variable, else the file's key. A key that a
//! command does not use is ignored by that command. Unknown keys and values that are not
//! strings, integers or booleans are errors naming the key and file; a value a setting
//! refuses is clap's error naming the flag.
//!
//! (figment was considered for these layers: it would read every `FLEUVE_*` variable a
//! second time beside clap, which already reads them with the flags, and the help would
//! lose each setting's default and variable; one layer, the file, was missing, and clap's
//! defaults are that layer.)

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};

/// Keys the file accepts (each is also read from `FLEUVE_<KEY>`).
pub const KEYS: &[&str] = &[
    "brokers",
    "registry_url",
    "store",
    "partitions",
    "delivery_timeout_ms",
    "no_auth",
    "query_position_wait_ms",
    "query_request_timeout_ms",
    "query_max_lag_events",
    "query_addr",
    "registry_addr",
    "ingest_addr",
    "processor_addr",
    "processor_batch_max_events",
    "processor_batch_max_wait_ms",
    "processor_membership",
    "processor_group_instance_id",
    "processor_stall_after_ms",
    "query_stall_after_ms",
    "exports_partners",
    "jwt_hs256_secret",
    "jwt_rs256_public_key_file",
    "jwt_jwks_file",
    "jwt_issuer",
    "jwt_audience",
    "jwt_leeway_secs",
];

/// The file named by `--config FILE` / `--config=FILE` in `args`, else by `FLEUVE_CONFIG`.
pub fn path_from(args: &[String]) -> Option<PathBuf> {
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(p) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(p));
        }
    }
    std::env::var_os("FLEUVE_CONFIG").map(PathBuf::from)
}

/// The file's values, once [`install`]ed.
static FILE: OnceLock<Vec<(String, String)>> = OnceLock::new();

/// The `(key, value)` pairs of the file.
pub fn read(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the configuration file {}", path.display()))?;
    parse(&text).with_context(|| format!("in the configuration file {}", path.display()))
}

fn parse(text: &str) -> Result<Vec<(String, String)>> {
    let table: toml::Table = text.parse().context("not valid TOML")?;
    let mut out = Vec::with_capacity(table.len());
    for (key, value) in table {
        if !KEYS.contains(&key.as_str()) {
            bail!("unknown key `{key}`; known keys: {}", KEYS.join(", "));
        }
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => bail!(
                "`{key}` must be a string, an integer or a boolean, not {}",
                other.type_str()
            ),
        };
        out.push((key, value));
    }
    Ok(out)
}

/// Makes the file's values the defaults of the settings of `command` and of its
/// subcommands, and keeps them for [`variable`].
pub fn install(mut command: clap::Command, values: Vec<(String, String)>) -> clap::Command {
    for (key, value) in &values {
        // Once per key and per process: clap keeps `'static` defaults.
        let value: &'static str = Box::leak(value.clone().into_boxed_str());
        command = with_default(command, key, value);
    }
    let _first = FILE.set(values);
    command
}

fn with_default(mut command: clap::Command, id: &str, value: &'static str) -> clap::Command {
    if command.get_arguments().any(|a| a.get_id() == id) {
        command = command.mut_arg(id, |a| a.default_value(value));
    }
    let names: Vec<String> = command
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .collect();
    for name in names {
        command = command.mut_subcommand(name, |c| with_default(c, id, value));
    }
    command
}

/// The value of the setting read from `FLEUVE_<KEY>`: the environment variable when set,
/// else the file's `<key>`.
pub fn variable(name: &str) -> Option<String> {
    if let Ok(value) = std::env::var(name) {
        return Some(value);
    }
    let key = name.strip_prefix("FLEUVE_")?.to_ascii_lowercase();
    FILE.get()?
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_read_as_text() {
        let vars = parse("brokers = \"k:9092\"\npartitions = 12\nno_auth = true\n").unwrap();
        assert_eq!(
            vars,
            [
                ("brokers".to_owned(), "k:9092".to_owned()),
                ("no_auth".to_owned(), "true".to_owned()),
                ("partitions".to_owned(), "12".to_owned()),
            ]
        );
    }

    #[test]
    fn processor_batch_settings_are_keys() {
        let vars =
            parse("processor_batch_max_events = 200\nprocessor_batch_max_wait_ms = 20\n").unwrap();
        assert_eq!(
            vars,
            [
                ("processor_batch_max_events".to_owned(), "200".to_owned()),
                ("processor_batch_max_wait_ms".to_owned(), "20".to_owned()),
            ]
        );
    }

    #[test]
    fn mistakes_are_named() {
        let e = format!("{:#}", parse("brokrs = \"x\"").unwrap_err());
        assert!(e.contains("unknown key `brokrs`"), "{e}");
        let e = format!("{:#}", parse("partitions = [1]").unwrap_err());
        assert!(e.contains("`partitions` must be a string"), "{e}");
        let e = format!("{:#}", parse("brokers = ").unwrap_err());
        assert!(e.contains("not valid TOML"), "{e}");
    }

    #[test]
    fn the_path_comes_from_the_flag() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            path_from(&args(&["fleuve", "--config", "a.toml", "run"])),
            Some("a.toml".into())
        );
        assert_eq!(
            path_from(&args(&["fleuve", "--config=b.toml"])),
            Some("b.toml".into())
        );
    }
}
