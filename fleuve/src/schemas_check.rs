//! `fleuve schemas check`: does every `.avsc` under `schemas/avro/` stay compatible with the
//! versions before it?
//!
//! The previous versions come from one of:
//! * `--against git` (default): the file's own history in git, every committed version that
//!   differs from the working tree, newest first (so a breaking change already committed is
//!   still caught in CI, where the working tree equals `HEAD`);
//! * `--against git:<ref>`: the file as it is at `<ref>` (for example `origin/main`);
//! * `--against registry`: the subject's versions in a schema registry, and the registry's
//!   compatibility level for it.
//!
//! The subject of a file is `<topic>-<record full name>` (TopicRecordNameStrategy), the
//! topic being the file's folder. The partner export records of `export/` are registered
//! once per partner, under `export.<partner>.catalog-value` (TopicNameStrategy): against
//! the registry they are checked with every such subject it holds. The level is `--level`,
//! else the registry's for the subject, else BACKWARD.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use apache_avro::Schema;
use fleuve_registry::compatibility::{self, CompatibilityLevel};
use serde::Deserialize;

/// Where the previous versions come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Against {
    GitHistory,
    GitRef(String),
    Registry(String),
}

impl std::str::FromStr for Against {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "git" => Ok(Against::GitHistory),
            "registry" => Ok(Against::Registry(String::new())),
            other => match other.strip_prefix("git:") {
                Some(r) if !r.is_empty() => Ok(Against::GitRef(r.to_owned())),
                _ => Err(format!(
                    "`{other}`: expected `git`, `git:<ref>` or `registry`"
                )),
            },
        }
    }
}

/// The verdict on one file.
#[derive(Debug)]
pub struct Outcome {
    pub file: PathBuf,
    pub subject: String,
    pub level: CompatibilityLevel,
    /// How many earlier versions it was compared with.
    pub compared_with: usize,
    pub problems: Vec<String>,
}

struct SchemaFile {
    path: PathBuf,
    /// Path relative to the repository root (for git).
    relative: PathBuf,
    text: String,
    schema: Schema,
    subject: String,
}

/// Checks every `.avsc` under `dir` (`schemas/avro`).
pub async fn check(
    dir: &Path,
    against: &Against,
    level: Option<CompatibilityLevel>,
) -> Result<Vec<Outcome>> {
    let root = git_root(dir);
    let files = schema_files(dir, root.as_deref())?;
    if files.is_empty() {
        bail!("no .avsc file under {}", dir.display());
    }
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    let mut outcomes = Vec::new();
    for file in files {
        let (previous, registry_level) = match against {
            Against::GitHistory => (git_history(in_git(dir, root.as_deref())?, &file)?, None),
            Against::GitRef(r) => (
                git_at(in_git(dir, root.as_deref())?, &file, r)?
                    .into_iter()
                    .collect(),
                None,
            ),
            Against::Registry(url) if file.subject == EXPORT_SUBJECTS => {
                export_registry_versions(&http, url).await?
            }
            Against::Registry(url) => registry_versions(&http, url, &file.subject).await?,
        };
        let level = level
            .or(registry_level)
            .unwrap_or(CompatibilityLevel::Backward);
        // Oldest first, as the compatibility check expects.
        let mut parsed = Vec::with_capacity(previous.len());
        for (label, text) in previous.iter().rev() {
            let schema = Schema::parse_str(text).with_context(|| {
                format!("{} at {label} is not valid Avro", file.relative.display())
            })?;
            parsed.push(schema);
        }
        let problems = match compatibility::check(level, &file.schema, &parsed) {
            Ok(()) => Vec::new(),
            Err(problems) => problems,
        };
        outcomes.push(Outcome {
            file: file.path,
            subject: file.subject,
            level,
            compared_with: parsed.len(),
            problems,
        });
    }
    Ok(outcomes)
}

/// The repository root, or an error saying to use the registry instead.
fn in_git<'a>(dir: &Path, root: Option<&'a Path>) -> Result<&'a Path> {
    root.with_context(|| {
        format!(
            "{} is not in a git repository: use --against registry",
            dir.display()
        )
    })
}

fn schema_files(dir: &Path, root: Option<&Path>) -> Result<Vec<SchemaFile>> {
    let root = root.unwrap_or(dir);
    let mut out = Vec::new();
    let topics = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    let mut paths = Vec::new();
    for topic in topics {
        let topic = topic?.path();
        if !topic.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(&topic)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "avsc") {
                paths.push(path);
            }
        }
    }
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let schema = Schema::parse_str(&text)
            .map_err(|e| anyhow::anyhow!("{} is not valid Avro: {e}", path.display()))?;
        let Schema::Record(record) = &schema else {
            bail!("{}: an event schema must be a record", path.display());
        };
        let topic = path
            .parent()
            .and_then(Path::file_name)
            .and_then(|t| t.to_str())
            .context("schema file without a topic folder")?;
        let canonical = std::fs::canonicalize(&path)?;
        let relative = canonical
            .strip_prefix(std::fs::canonicalize(root)?)
            .unwrap_or(&canonical)
            .to_path_buf();
        let subject = if topic == EXPORT_FOLDER {
            EXPORT_SUBJECTS.to_owned()
        } else {
            format!("{topic}-{}", record.name.fullname(None))
        };
        out.push(SchemaFile {
            subject,
            path,
            relative,
            text,
            schema,
        });
    }
    Ok(out)
}

/// Folder of the partner export records (`fleuve_schemas::export::FOLDER`).
const EXPORT_FOLDER: &str = "export";
/// The subjects of the export records, one per partner.
const EXPORT_SUBJECTS: &str = "export.<partner>.catalog-value";

/// The versions of every `export.<partner>.catalog-value` subject in the registry (each
/// labelled with its subject), and the level of the first.
async fn export_registry_versions(
    http: &reqwest::Client,
    url: &str,
) -> Result<(Vec<(String, String)>, Option<CompatibilityLevel>)> {
    let base = url.trim_end_matches('/');
    let subjects: Vec<String> = http
        .get(format!("{base}/subjects"))
        .send()
        .await
        .with_context(|| format!("schema registry at {base} unreachable"))?
        .error_for_status()?
        .json()
        .await?;
    let mut all = Vec::new();
    let mut level = None;
    for subject in subjects
        .iter()
        .filter(|s| s.starts_with("export.") && s.ends_with(".catalog-value"))
    {
        let (versions, l) = registry_versions(http, url, subject).await?;
        level = level.or(l);
        all.extend(
            versions
                .into_iter()
                .map(|(label, text)| (format!("{subject} {label}"), text)),
        );
    }
    Ok((all, level))
}

fn git(dir: &Path, args: &[&str]) -> Result<Option<String>> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .context("running git (is it installed?)")?;
    if out.status.success() {
        Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()))
    } else {
        Ok(None)
    }
}

fn git_root(dir: &Path) -> Option<PathBuf> {
    git(dir, &["rev-parse", "--show-toplevel"])
        .ok()
        .flatten()
        .map(|s| PathBuf::from(s.trim()))
}

/// Committed versions of the file that differ from the working tree, newest first, labelled
/// by commit. `root` is the repository's top folder (paths are relative to it).
fn git_history(root: &Path, file: &SchemaFile) -> Result<Vec<(String, String)>> {
    let rel = file.relative.to_string_lossy().into_owned();
    let Some(log) = git(root, &["log", "--format=%h", "--follow", "--", &rel])? else {
        bail!("git log failed in {}", root.display());
    };
    let mut versions: Vec<(String, String)> = Vec::new();
    for commit in log.lines() {
        let Some(text) = git(root, &["show", &format!("{commit}:{rel}")])? else {
            continue; // renamed away at that commit
        };
        let same_as_newer = versions
            .last()
            .map_or(text == file.text, |(_, t)| *t == text);
        if !same_as_newer {
            versions.push((format!("commit {commit}"), text));
        }
    }
    Ok(versions)
}

fn git_at(root: &Path, file: &SchemaFile, reference: &str) -> Result<Option<(String, String)>> {
    if git(
        root,
        &["rev-parse", "--verify", &format!("{reference}^{{commit}}")],
    )?
    .is_none()
    {
        bail!("git ref `{reference}` does not exist");
    }
    let rel = file.relative.to_string_lossy().into_owned();
    Ok(git(root, &["show", &format!("{reference}:{rel}")])?.map(|t| (reference.to_owned(), t)))
}

#[derive(Deserialize)]
struct VersionBody {
    schema: String,
    version: u32,
}

#[derive(Deserialize)]
struct ConfigBody {
    #[serde(rename = "compatibilityLevel")]
    compatibility_level: CompatibilityLevel,
}

/// The subject's versions (newest first) and its compatibility level, from the registry.
async fn registry_versions(
    http: &reqwest::Client,
    url: &str,
    subject: &str,
) -> Result<(Vec<(String, String)>, Option<CompatibilityLevel>)> {
    let base = url.trim_end_matches('/');
    let subject_url = format!("{base}/subjects/{}", subject.replace('/', "%2F"));
    let resp = http
        .get(format!("{subject_url}/versions"))
        .send()
        .await
        .with_context(|| format!("schema registry at {base} unreachable"))?;
    let versions: Vec<u32> = match resp.status().as_u16() {
        200 => resp.json().await?,
        404 => return Ok((Vec::new(), None)), // a new subject
        s => bail!(
            "registry answered {s} for {subject_url}/versions: {}",
            resp.text().await?
        ),
    };
    let mut out = Vec::new();
    for v in versions.iter().rev() {
        let body: VersionBody = http
            .get(format!("{subject_url}/versions/{v}"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        out.push((format!("registry version {}", body.version), body.schema));
    }
    let level = http
        .get(format!(
            "{base}/config/{}?defaultToGlobal=true",
            subject.replace('/', "%2F")
        ))
        .send()
        .await?;
    let level = if level.status().is_success() {
        Some(level.json::<ConfigBody>().await?.compatibility_level)
    } else {
        None
    };
    Ok((out, level))
}
