//! Settings precedence: defaults < configuration file < FLEUVE_* environment < flags, shown by
//! `fleuve config`; mistakes in the file are named.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on the first unexpected error"
)]

use std::path::Path;
use std::process::{Command, Output};

fn fleuve(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fleuve"));
    cmd.current_dir(dir).env_clear();
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    cmd.envs(env.iter().copied()).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn file_then_environment_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("fleuve.toml"),
        "brokers = \"file:9092\"\npartitions = 7\nquery_addr = \"0.0.0.0:9000\"\n\
         jwt_hs256_secret = \"a-secret-from-the-file-of-at-least-32-bytes\"\n",
    )
    .unwrap();

    let defaults = stdout(&fleuve(dir.path(), &[], &["config"]));
    assert!(
        defaults.contains("brokers = \"127.0.0.1:9092\""),
        "{defaults}"
    );
    assert!(defaults.contains("partitions = 3"), "{defaults}");

    let file = stdout(&fleuve(
        dir.path(),
        &[],
        &["--config", "fleuve.toml", "config"],
    ));
    assert!(file.contains("brokers = \"file:9092\""), "{file}");
    assert!(file.contains("partitions = 7"), "{file}");
    assert!(file.contains("query_addr = \"0.0.0.0:9000\""), "{file}");
    assert!(
        file.contains("jwt_hs256_secret = \"(set, hidden)\""),
        "{file}"
    );
    assert!(
        !file.contains("a-secret-from-the-file"),
        "secret printed: {file}"
    );

    let env = [
        ("FLEUVE_CONFIG", "fleuve.toml"),
        ("FLEUVE_BROKERS", "env:9092"),
    ];
    let from_env = stdout(&fleuve(dir.path(), &env, &["config"]));
    assert!(from_env.contains("brokers = \"env:9092\""), "{from_env}");
    assert!(from_env.contains("partitions = 7"), "{from_env}");

    let from_flag = stdout(&fleuve(
        dir.path(),
        &env,
        &["config", "--brokers", "flag:9092"],
    ));
    assert!(from_flag.contains("brokers = \"flag:9092\""), "{from_flag}");
    assert!(from_flag.contains("partitions = 7"), "{from_flag}");
}

#[test]
fn mistakes_in_the_file_are_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("typo.toml"), "brokres = \"x\"\n").unwrap();
    std::fs::write(dir.path().join("bad.toml"), "partitions = \"many\"\n").unwrap();
    let cases = [
        ("typo.toml", "unknown key `brokres`"),
        (
            "missing.toml",
            "reading the configuration file missing.toml",
        ),
        ("bad.toml", "invalid value 'many' for '--partitions"),
    ];
    for (file, expected) in cases {
        let out = fleuve(dir.path(), &[], &["--config", file, "config"]);
        assert!(!out.status.success(), "{file} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{file}: {err}");
    }
}

#[test]
fn process_refuses_unknown_processor_names() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fleuve"))
        .args(["process", "user_progress", "nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown processor `nope`")
            && stderr.contains(
                "user_progress, bookmarks, catalog, orders, inventory, exports, or `all`"
            ),
        "{stderr}"
    );
}
