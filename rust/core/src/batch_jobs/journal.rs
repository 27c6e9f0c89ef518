//! The durable record of batch submissions (a *journal*), written atomically.
//!
//! Before any call that may create something at the provider (an upload, a job), the
//! intent is written to the journal: a unique tag per chunk (one job's rows), the digest of
//! its rows and the time of the attempt; the ids the provider hands back are written as
//! they come. A process killed at any moment leaves a journal that says, per chunk, either
//! "done: job X", "never attempted", or "attempted at T": only the last case needs to ask
//! the provider what happened (see [`super::durable`]).
//!
//! Every write replaces the file atomically (a temporary file in the same directory,
//! fsynced, renamed over the old one, then the directory fsynced), so a kill mid-write
//! leaves the previous version intact, never a torn file. Writers of one journal take turns
//! through a lock file next to it (`<journal>.lock`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Test hook: `DISTILABEL_RS_KILL_AT=<point>` (or `<point>:<n>` for its n-th passage)
/// makes the process end at once at that point, as a SIGKILL would (see [`kill_point`]).
pub const KILL_AT_ENV: &str = "DISTILABEL_RS_KILL_AT";

/// How long a submission waits for another process holding the same journal's lock.
const LOCK_WAIT_LIMIT: Duration = Duration::from_secs(30 * 60);
const LOCK_POLL: Duration = Duration::from_millis(100);

/// Journals kept in the shared directory are forgotten after this long (the providers
/// delete batch results after 29-30 days).
pub const JOURNAL_RETENTION: Duration = Duration::from_secs(35 * 24 * 3600);

/// For tests of kills: ends the process right here when [`KILL_AT_ENV`] names `point`.
///
/// The exit skips every destructor, flush and exit handler of the process (status 137, as a
/// shell reports a SIGKILL); files written so far are what a kill would leave.
pub fn kill_point(point: &str) {
    static PASSAGES: Mutex<BTreeMap<String, u32>> = Mutex::new(BTreeMap::new());
    let Some(wanted) = std::env::var_os(KILL_AT_ENV) else {
        return;
    };
    let wanted = wanted.to_string_lossy();
    let (name, nth) = match wanted.split_once(':') {
        Some((name, nth)) => (name, nth.parse::<u32>().unwrap_or(1)),
        None => (wanted.as_ref(), 1),
    };
    if name != point {
        return;
    }
    let mut passages = PASSAGES.lock().unwrap_or_else(PoisonError::into_inner);
    let count = passages.entry(point.to_owned()).or_insert(0);
    *count += 1;
    if *count == nth {
        eprintln!("distilabel-rs: killed at {point} ({KILL_AT_ENV})");
        std::process::exit(137);
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64())
}

/// A 128-bit FNV-1a digest, as 32 hex digits: identifies a set of rows (not a security
/// measure: nothing here is adversarial).
#[derive(Debug, Clone)]
pub struct Digest(u128);

impl Default for Digest {
    fn default() -> Self {
        Self(0x6c62_272e_07bb_0142_62b8_2175_6295_c58d)
    }
}

impl Digest {
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;

    pub fn update(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u128::from(*byte);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    /// A part of a sequence: its length first, so that `["ab", "c"]` and `["a", "bc"]`
    /// differ.
    pub fn part(&mut self, bytes: &[u8]) {
        self.update(&(bytes.len() as u64).to_le_bytes());
        self.update(bytes);
    }

    pub fn hex(&self) -> String {
        format!("{:032x}", self.0)
    }

    pub fn of_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> String {
        let mut digest = Self::default();
        for part in parts {
            digest.part(part);
        }
        digest.hex()
    }
}

/// A journal: the submissions of one state file (the command's `OUTPUT.batch.json`) or of
/// one set of requests (offline generation, in the shared directory).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    /// The job ids of every submission that completed, in order: the jobs to collect.
    /// (The whole state file of earlier versions.)
    #[serde(default)]
    pub jobs_ids: Vec<String>,
    #[serde(default)]
    pub submissions: Vec<Submission>,
}

/// One call to submit a set of rows: its chunks, one job each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    /// Of the rows as cut into chunks.
    pub digest: String,
    pub started_at: f64,
    pub chunks: Vec<ChunkRecord>,
    /// Every chunk has its job (or, after [`Submission::settled`], was given up).
    #[serde(default)]
    pub complete: bool,
    /// Ended without all its chunks: the jobs found were kept, the rest given up (its rows
    /// are submitted again by whoever computes what is unfinished).
    #[serde(default)]
    pub settled: bool,
}

impl Submission {
    /// The job ids of its chunks that have one, in order.
    pub fn job_ids(&self) -> Vec<String> {
        self.chunks
            .iter()
            .filter_map(|chunk| chunk.job_id.clone())
            .collect()
    }
}

/// One chunk of a submission: the rows of one job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkRecord {
    /// Unique: names this chunk's attempt everywhere (local copies, logs).
    pub tag: String,
    pub digest: String,
    pub rows: usize,
    /// Size of the uploaded file or of the rows (for recognising an upload).
    pub bytes: usize,
    /// Name given to the uploaded file (OpenAI-format APIs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// When an upload was started (its file may exist even if its id is unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_started: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
    /// When the create call was started (a job may exist even if its id is unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_started: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
}

impl ChunkRecord {
    /// Something may have been created at the provider for it, under an id not recorded.
    pub fn interrupted(&self) -> bool {
        self.job_id.is_none() && (self.upload_started.is_some() || self.create_started.is_some())
    }
}

/// Where a submission is recorded.
#[derive(Debug, Clone, PartialEq)]
pub enum JournalAt {
    /// This file (the command's `OUTPUT.batch.json`).
    File(PathBuf),
    /// A file of `dir` named after `scope` and the digest of the rows: one per set of
    /// requests of a pipeline step (offline generation).
    Keyed { dir: PathBuf, scope: String },
}

impl JournalAt {
    /// The journal file for rows of digest `digest`.
    pub fn path(&self, digest: &str) -> PathBuf {
        match self {
            Self::File(path) => path.clone(),
            Self::Keyed { dir, scope } => {
                let key = Digest::of_parts([scope.as_bytes(), digest.as_bytes()]);
                dir.join(format!("{key}.json"))
            }
        }
    }

    pub fn shared_dir(&self) -> Option<&Path> {
        match self {
            Self::File(_) => None,
            Self::Keyed { dir, .. } => Some(dir),
        }
    }
}

/// The shared directory of submission journals: `$XDG_CACHE_HOME/distilabel-rs/
/// batch-submissions`, else `$HOME/.cache/distilabel-rs/batch-submissions`.
pub fn default_journal_dir() -> Option<PathBuf> {
    let set = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    let cache = set("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| set("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(cache.join("distilabel-rs").join("batch-submissions"))
}

/// `path`'s directory (`.` for a bare file name).
fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || "journal".into(),
        |name| name.to_string_lossy().into_owned(),
    )
}

/// Replaces `path` with `content` atomically: a temporary file in the same directory,
/// fsynced, renamed over `path`, then the directory fsynced. A kill at any moment leaves
/// either the old file or the new one (and maybe a stray `.<name>.*.tmp`, removed by the
/// next [`remove_stale_temporaries`] of that name).
pub fn write_atomically(path: &Path, content: &[u8]) -> std::io::Result<()> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = parent(path);
    let temporary = dir.join(format!(
        ".{}.{}-{}.tmp",
        file_name(path),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temporary)?;
        file.write_all(content)?;
        file.sync_all()?;
        drop(file);
        kill_point("mid-state-write");
        std::fs::rename(&temporary, path)?;
        File::open(&dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// Removes the temporary files a killed [`write_atomically`] of `path` left behind (call
/// it only while no other process writes `path`, e.g. under its lock).
pub fn remove_stale_temporaries(path: &Path) {
    let prefix = format!(".{}.", file_name(path));
    let Ok(entries) = std::fs::read_dir(parent(path)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(&prefix) && name.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Errors of journals, each naming the file.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot {action} the batch state file {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the batch state file {} is not a distilabel-rs journal ({reason}); it was edited or \
         written by something else: fix it, or move it away to submit everything again \
         (the jobs it lists would then be paid for twice)",
        path.display()
    )]
    Damaged { path: PathBuf, reason: String },
    #[error(
        "another process has been submitting the same batch for {} minutes (lock {}); \
         wait for it, or remove the lock file if no such process runs",
        LOCK_WAIT_LIMIT.as_secs() / 60,
        path.display()
    )]
    Busy { path: PathBuf },
}

impl Journal {
    /// The journal at `path`; an empty one if there is no file.
    pub fn load(path: &Path) -> Result<Self, JournalError> {
        let content = match std::fs::read(path) {
            Ok(content) => content,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self::default());
            }
            Err(source) => {
                return Err(JournalError::Io {
                    action: "read",
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        serde_json::from_slice(&content).map_err(|e| JournalError::Damaged {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// Writes the journal to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<(), JournalError> {
        let io = |source| JournalError::Io {
            action: "write",
            path: path.to_path_buf(),
            source,
        };
        let content = serde_json::to_vec_pretty(self).map_err(|e| io(std::io::Error::other(e)))?;
        std::fs::create_dir_all(parent(path)).map_err(io)?;
        write_atomically(path, &content).map_err(io)
    }

    /// Every job id it knows of: those of complete submissions and those of chunks still
    /// in limbo.
    pub fn all_job_ids(&self) -> impl Iterator<Item = &String> {
        self.jobs_ids.iter().chain(
            self.submissions
                .iter()
                .flat_map(|submission| submission.chunks.iter())
                .filter_map(|chunk| chunk.job_id.as_ref()),
        )
    }
}

/// The lock of a journal, held until dropped.
#[derive(Debug)]
pub struct JournalLock {
    _file: File,
}

impl JournalLock {
    /// Takes `<journal>.lock` (waiting, at most [`LOCK_WAIT_LIMIT`], for another process
    /// that holds it). Blocking: call it off the async threads.
    pub fn acquire(journal: &Path) -> Result<Self, JournalError> {
        let path = PathBuf::from(format!("{}.lock", journal.display()));
        let io = |source| JournalError::Io {
            action: "lock",
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(parent(&path)).map_err(io)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        let started = std::time::Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Self { _file: file }),
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(source)) => return Err(io(source)),
            }
            if started.elapsed() >= LOCK_WAIT_LIMIT {
                return Err(JournalError::Busy { path });
            }
            std::thread::sleep(LOCK_POLL);
        }
    }
}

/// Removes the journals of `dir` whose every job is among `job_ids` (their results were
/// collected) and those older than [`JOURNAL_RETENTION`]; returns how many were removed.
pub fn forget(dir: &Path, job_ids: &[String]) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|extension| extension != "json") {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|metadata| metadata.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age > JOURNAL_RETENTION);
        let collected = || {
            let Ok(journal) = Journal::load(&path) else {
                return false;
            };
            let complete = journal.submissions.iter().all(|s| s.complete);
            let mut ids = journal.all_job_ids().peekable();
            complete && ids.peek().is_some() && ids.all(|id| job_ids.contains(id))
        };
        if old || collected() {
            if std::fs::remove_file(&path).is_ok() {
                removed += 1;
            }
            let _ = std::fs::remove_file(format!("{}.lock", path.display()));
        }
    }
    removed
}

/// Every job id recorded by the journals of `dir` (to tell another submission's jobs from
/// the one being looked for).
pub fn job_ids_in_dir(dir: &Path) -> BTreeSet<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "json")
        })
        .filter_map(|path| Journal::load(&path).ok())
        .flat_map(|journal| journal.all_job_ids().cloned().collect::<Vec<_>>())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temporary_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "distilabel-rs-journal-{name}-{}-{}",
            std::process::id(),
            unix_now()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }

    #[test]
    fn atomic_writes_replace_the_file_and_leave_no_temporary() {
        let dir = temporary_dir("atomic");
        let path = dir.join("state.json");
        write_atomically(&path, b"one").expect("write");
        write_atomically(&path, b"two").expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .expect("dir")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
        // What a kill between the temporary's write and the rename leaves: removed.
        std::fs::write(dir.join(".state.json.1-0.tmp"), b"torn").expect("write");
        remove_stale_temporaries(&path);
        assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), 1);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn journals_round_trip_and_read_the_old_state_format() {
        let dir = temporary_dir("journal");
        let path = dir.join("out.jsonl.batch.json");
        assert_eq!(Journal::load(&path).expect("missing"), Journal::default());
        std::fs::write(&path, br#"{"jobs_ids": ["batch_1"]}"#).expect("write");
        let old = Journal::load(&path).expect("old format");
        assert_eq!(old.jobs_ids, vec!["batch_1".to_owned()]);
        let mut journal = old;
        journal.submissions.push(Submission {
            digest: "d".into(),
            started_at: 1.0,
            chunks: vec![ChunkRecord {
                tag: "t".into(),
                create_started: Some(2.0),
                ..ChunkRecord::default()
            }],
            complete: false,
            settled: false,
        });
        journal.save(&path).expect("save");
        assert_eq!(Journal::load(&path).expect("load"), journal);
        assert!(journal.submissions[0].chunks[0].interrupted());
        std::fs::write(&path, b"{\"jobs_ids\": [").expect("write");
        let damaged = Journal::load(&path).expect_err("damaged");
        assert!(
            damaged.to_string().contains("out.jsonl.batch.json"),
            "{damaged}"
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn collected_and_old_journals_are_forgotten() {
        let dir = temporary_dir("forget");
        let journal = |ids: &[&str], complete: bool| Journal {
            jobs_ids: if complete {
                ids.iter().map(|id| (*id).to_owned()).collect()
            } else {
                Vec::new()
            },
            submissions: vec![Submission {
                digest: "d".into(),
                started_at: 0.0,
                chunks: ids
                    .iter()
                    .map(|id| ChunkRecord {
                        job_id: Some((*id).to_owned()),
                        ..ChunkRecord::default()
                    })
                    .collect(),
                complete,
                settled: false,
            }],
        };
        journal(&["a", "b"], true)
            .save(&dir.join("1.json"))
            .expect("save");
        journal(&["c"], true)
            .save(&dir.join("2.json"))
            .expect("save");
        journal(&["a"], false)
            .save(&dir.join("3.json"))
            .expect("save");
        assert_eq!(
            job_ids_in_dir(&dir).len(),
            3,
            "every recorded id, complete or not"
        );
        let removed = forget(&dir, &["a".to_owned(), "b".to_owned()]);
        assert_eq!(removed, 1);
        assert!(!dir.join("1.json").exists() && dir.join("2.json").exists());
        assert!(dir.join("3.json").exists(), "an incomplete journal stays");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn digests_separate_parts() {
        assert_ne!(
            Digest::of_parts([b"ab".as_slice(), b"c"]),
            Digest::of_parts([b"a".as_slice(), b"bc"])
        );
        assert_eq!(Digest::of_parts([b"x".as_slice()]).len(), 32);
    }

    #[test]
    fn locks_exclude_each_other() {
        let dir = temporary_dir("lock");
        let path = dir.join("j.json");
        let held = JournalLock::acquire(&path).expect("lock");
        let file = OpenOptions::new()
            .write(true)
            .open(dir.join("j.json.lock"))
            .expect("open");
        assert!(matches!(
            file.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        drop(held);
        assert!(file.try_lock().is_ok());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
