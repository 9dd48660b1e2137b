//! Crash safety of the embedded backend: a child process applies batches and is killed with
//! SIGKILL mid-stream; every batch whose `apply` had returned must be there after reopening,
//! and no batch may be half there (rows and checkpoint are one atomic write).
//!
//! The child is this same test binary, re-run with `FLEUVE_CRASH_CHILD_DIR` set.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use fleuve_projections::{open, Checkpoint, Write, WriteBatch};

const ROWS_PER_BATCH: i64 = 50;

fn batch(n: i64) -> WriteBatch {
    WriteBatch {
        projection: "user_progress".into(),
        writes: (0..ROWS_PER_BATCH)
            .map(|i| Write::Put {
                table: "progress",
                pk: format!("u{}", i % 7),
                ck: format!("b{n}-c{i}"),
                value: n.to_string().into_bytes(),
                ts: n * ROWS_PER_BATCH + i,
            })
            .collect::<Vec<_>>()
            .into(),
        checkpoints: vec![Checkpoint {
            topic: "user-activity".into(),
            partition: 0,
            next_offset: n + 1,
        }],
    }
}

/// The child: applies batches forever, reporting each one after `apply` returned.
#[tokio::test]
async fn crash_child_writer() {
    let Ok(dir) = std::env::var("FLEUVE_CRASH_CHILD_DIR") else {
        return; // Only meaningful when started by `applied_batches_survive_kill_9`.
    };
    let store = open(&format!("embedded://{dir}")).await.unwrap();
    for n in 0.. {
        store.apply(batch(n)).await.unwrap();
        println!("applied {n}");
    }
}

#[test]
fn applied_batches_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FLEUVE_CRASH_CHILD_DIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut last_applied = -1i64;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("applied ") {
            last_applied = n.trim().parse().unwrap();
            if last_applied >= 40 {
                break;
            }
        }
    }
    // SIGKILL: no destructor, no flush, no fsync.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(last_applied >= 40, "child stopped early");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = open(&format!("embedded://{}", dir.path().display()))
            .await
            .unwrap();
        let next = store
            .checkpoint("user_progress", "user-activity", 0)
            .await
            .unwrap()
            .unwrap();
        // Every reported batch is there (the child may have applied one more unreported).
        assert!(
            next > last_applied,
            "checkpoint {next} behind the last applied batch {last_applied}"
        );
        // Exactly the batches 0..next are there, each complete: rows match the checkpoint.
        let mut total = 0usize;
        let mut after: Option<(String, String)> = None;
        loop {
            let rows = store
                .scan_table(
                    "progress",
                    after.as_ref().map(|(p, c)| (p.as_str(), c.as_str())),
                    500,
                )
                .await
                .unwrap();
            let Some(last) = rows.last() else { break };
            after = Some((last.pk.clone(), last.ck.clone()));
            for r in &rows {
                let n: i64 = std::str::from_utf8(&r.value).unwrap().parse().unwrap();
                assert!(n < next, "row of batch {n} beyond checkpoint {next}");
            }
            total += rows.len();
        }
        assert_eq!(
            total as i64,
            next * ROWS_PER_BATCH,
            "a batch is partially applied"
        );
    });
}
