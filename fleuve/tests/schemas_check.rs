//! `fleuve schemas check`: a breaking change to an .avsc fails, with the reason, against
//! the file's git history and against the registry (which refuses it with 409 too); a
//! compatible change passes.
#![expect(
    clippy::unwrap_used,
    reason = "a test stops at the first unexpected error"
)]

use std::path::Path;
use std::process::{Command, Output};

use fleuve_testkit::Kafka;
use serde_json::{json, Value};

const V1: &str = r#"{"type":"record","name":"Thing","namespace":"fleuve.test","fields":[
  {"name":"id","type":"string"},
  {"name":"size","type":"long"}]}"#;
/// A new field without a default: breaks BACKWARD (new readers cannot read old data).
const BREAKING: &str = r#"{"type":"record","name":"Thing","namespace":"fleuve.test","fields":[
  {"name":"id","type":"string"},
  {"name":"size","type":"long"},
  {"name":"colour","type":"string"}]}"#;
/// The same field with a default: compatible.
const COMPATIBLE: &str = r#"{"type":"record","name":"Thing","namespace":"fleuve.test","fields":[
  {"name":"id","type":"string"},
  {"name":"size","type":"long"},
  {"name":"colour","type":"string","default":"none"}]}"#;

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleuve"))
        .current_dir(dir)
        .args(["schemas", "check", "--dir", "schemas/avro"])
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args(args)
        .status()
        .unwrap()
        .success();
    assert!(ok, "git {args:?}");
}

fn write(dir: &Path, schema: &str) {
    let folder = dir.join("schemas/avro/things");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("Thing.avsc"), schema).unwrap();
}

#[test]
fn git_history_catches_a_breaking_change_even_once_committed() {
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path();
    git(dir, &["init", "-q"]);
    write(dir, V1);
    git(dir, &["add", "."]);
    git(dir, &["commit", "-qm", "v1"]);
    let first = run(dir, &[]);
    assert!(first.status.success(), "{}", text(&first));
    assert!(
        text(&first).contains("ok    things-fleuve.test.Thing (BACKWARD, 0 earlier version(s))"),
        "{}",
        text(&first)
    );

    write(dir, BREAKING);
    let out = run(dir, &[]);
    assert!(
        !out.status.success(),
        "breaking change accepted:\n{}",
        text(&out)
    );
    let t = text(&out);
    assert!(
        t.contains("FAIL  things-fleuve.test.Thing (BACKWARD)"),
        "{t}"
    );
    assert!(
        t.contains("colour"),
        "the reason should name the field: {t}"
    );
    // Committed, as CI sees it: the history still holds v1.
    git(dir, &["commit", "-qam", "break"]);
    let out = run(dir, &[]);
    assert!(
        !out.status.success(),
        "committed breaking change accepted:\n{}",
        text(&out)
    );
    // Against an explicit ref, and under a level that allows it.
    assert!(!run(dir, &["--against", "git:HEAD~1"]).status.success());
    assert!(run(dir, &["--against", "git:HEAD~1", "--level", "FORWARD"])
        .status
        .success());
    assert!(run(dir, &["--level", "NONE"]).status.success());

    git(dir, &["reset", "-q", "--hard", "HEAD~1"]);
    write(dir, COMPATIBLE);
    let out = run(dir, &[]);
    assert!(
        out.status.success(),
        "compatible change refused:\n{}",
        text(&out)
    );
    assert!(
        text(&out).contains("1 earlier version(s)"),
        "{}",
        text(&out)
    );
}

#[test]
fn bad_arguments_get_clear_errors() {
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path();
    let out = run(dir, &[]);
    assert!(!out.status.success());
    assert!(text(&out).contains("schemas/avro"), "{}", text(&out));
    write(dir, "{not json");
    let out = run(dir, &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("Thing.avsc is not valid Avro"),
        "{}",
        text(&out)
    );
    write(dir, V1);
    let out = run(dir, &["--against", "svn"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("expected `git`, `git:<ref>` or `registry`"),
        "{}",
        text(&out)
    );
    let out = run(dir, &["--level", "SOMETIMES"]);
    assert!(!out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_and_the_check_refuse_the_same_change() {
    let kafka = Kafka::start().await;
    let http = reqwest::Client::new();
    let subject_url = format!(
        "{}/subjects/things-fleuve.test.Thing/versions",
        kafka.registry_url
    );
    let register = |schema: &str| {
        let http = http.clone();
        let url = subject_url.clone();
        let body = json!({ "schema": schema });
        async move {
            let r = http.post(url).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(register(V1).await.0, 200);

    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path().to_path_buf();
    let registry_url = kafka.registry_url.clone();
    let check = move |schema: &'static str| {
        let dir = dir.clone();
        let url = registry_url.clone();
        tokio::task::spawn_blocking(move || {
            write(&dir, schema);
            run(&dir, &["--against", "registry", "--registry-url", &url])
        })
    };

    let out = check(BREAKING).await.unwrap();
    assert!(
        !out.status.success(),
        "check accepted a change the registry refuses:\n{}",
        text(&out)
    );
    assert!(text(&out).contains("colour"), "{}", text(&out));
    let (status, body) = register(BREAKING).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error_code"], 409);

    let out = check(COMPATIBLE).await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("1 earlier version(s)"),
        "{}",
        text(&out)
    );
    let (status, body) = register(COMPATIBLE).await;
    assert_eq!(status, 200, "{body}");
}
