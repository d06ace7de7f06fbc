//! The run's data on the coordinator's disk (`--data-dir`), written as it
//! happens so a coordinator killed mid-run can resume from it:
//!
//! - `runs/<run_id>/run.json`: what the run is (scenario and the files it
//!   references, start instant, members and their share epochs, status),
//!   rewritten atomically whenever it changes;
//! - `runs/<run_id>/intervals.bin`: every worker report accepted, as
//!   received (length-prefixed protobuf), appended and flushed one by one;
//!   replaying it through a fresh merge rebuilds the run exactly, with
//!   redeliveries deduplicated by (worker, interval);
//! - `runs/<run_id>/events.jsonl`: the run's notable events;
//! - `runs/<run_id>/seconds.bin`: every merged second as published to
//!   clients (length-prefixed `IntervalSummary`, with the interval-log
//!   lines), so `volley fetch` writes the same run directory `volley run`
//!   did, after a restart too;
//! - `runs/<run_id>/report.json`: the final report, when there is one.
//!
//! Appends are flushed to the OS at once (a killed process loses nothing);
//! they are not fsynced (a machine crash may lose the last seconds).

use crate::report::Event;
use crate::runs::{RunState, RunStatus, Verdict};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use volley_proto::pb;

/// A share epoch as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMeta {
    pub from_s: f64,
    pub from_k: Option<u64>,
    pub cycle: u64,
    pub slots: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberMeta {
    pub id: String,
    pub weight: u32,
    pub hostname: String,
    pub started: bool,
    pub done: bool,
    pub lost_at_s: Option<f64>,
    #[serde(default)]
    pub left_at_s: Option<f64>,
    pub joined_at_s: Option<f64>,
    pub owned_until_k: Option<u64>,
    pub epochs: Vec<EpochMeta>,
}

/// A file the scenario references (`body_file`, `tls_ca`, data files), as
/// the client sent it. Its bytes sit beside run.json in `files/<path>`
/// (written once: data files reach hundreds of MiB, and run.json is
/// rewritten whenever the run changes); runs stored before that kept them
/// inline, in base64, which is still read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredFile {
    pub name: String,
    #[serde(with = "base64_bytes", default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<u8>,
    /// Under the run's `files/` directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

mod base64_bytes {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(data: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(data))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    pub run_id: String,
    pub scenario_toml: String,
    pub scenario_name: String,
    pub builtin_target_url: String,
    /// The files the scenario references; absent in a run stored before
    /// scenarios could reference files.
    #[serde(default)]
    pub files: Vec<StoredFile>,
    /// `--set` overrides and the client's environment values the scenario
    /// names (absent before templates).
    #[serde(default)]
    pub vars: Vec<(String, String)>,
    #[serde(default)]
    pub env: Vec<(String, String)>,
    pub start_unix_nanos: u64,
    pub members: Vec<MemberMeta>,
    /// "running" | "finished" | "abandoned".
    pub status: String,
    /// The scenario's `name` and planned seconds of load, for `volley runs`
    /// (absent in runs stored before it listed them).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default)]
    pub duration_s: f64,
    /// Once finished: whether it failed (no report of a completed run) and
    /// its report's verdict.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// Once finished: seconds of load it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ran_s: Option<f64>,
}

impl RunMeta {
    /// The run as `volley runs` shows it, when no coordinator runs it now.
    pub fn status(&self) -> RunStatus {
        let scenario = if self.name.is_empty() {
            // Stored before the name was: read it from the scenario.
            toml::from_str::<toml::Table>(&self.scenario_toml)
                .ok()
                .and_then(|t| t.get("name")?.as_str().map(str::to_owned))
                .unwrap_or_else(|| self.scenario_name.clone())
        } else {
            self.name.clone()
        };
        let state = match self.status.as_str() {
            "finished" if self.failed => RunState::Failed,
            "finished" => RunState::Finished,
            _ => RunState::Abandoned,
        };
        RunStatus {
            id: self.run_id.clone(),
            scenario,
            state,
            started_at: (self.start_unix_nanos > 0).then_some(self.start_unix_nanos),
            elapsed_s: self.ran_s.unwrap_or(0.0),
            duration_s: self.duration_s,
            verdict: self.verdict,
        }
    }
}

pub struct RunStore {
    dir: PathBuf,
    intervals: BufWriter<File>,
    events: BufWriter<File>,
    seconds: BufWriter<File>,
}

fn run_dir(data_dir: &Path, run_id: &str) -> PathBuf {
    data_dir.join("runs").join(run_id)
}

impl RunStore {
    /// Opens (creating if needed) the run's directory for appending.
    pub fn open(data_dir: &Path, run_id: &str) -> io::Result<RunStore> {
        let dir = run_dir(data_dir, run_id);
        std::fs::create_dir_all(&dir)?;
        let append = |name: &str| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(name))
        };
        Ok(RunStore {
            intervals: BufWriter::new(append("intervals.bin")?),
            events: BufWriter::new(append("events.jsonl")?),
            seconds: BufWriter::new(append("seconds.bin")?),
            dir,
        })
    }

    pub fn save_meta(&self, meta: &RunMeta) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(meta).map_err(io::Error::other)?;
        crate::output::write_atomic(&self.dir.join("run.json"), &json)
    }

    /// Appends one accepted worker report.
    pub fn append_interval(&mut self, slot: usize, report: &pb::IntervalReport) -> io::Result<()> {
        let bytes = prost::Message::encode_to_vec(report);
        self.intervals
            .write_all(&(bytes.len() as u32).to_be_bytes())?;
        self.intervals.write_all(&(slot as u32).to_be_bytes())?;
        self.intervals.write_all(&bytes)?;
        self.intervals.flush()
    }

    /// Appends one merged second as clients got it.
    pub fn append_second(&mut self, s: &pb::IntervalSummary) -> io::Result<()> {
        let bytes = prost::Message::encode_to_vec(s);
        self.seconds
            .write_all(&(bytes.len() as u32).to_be_bytes())?;
        self.seconds.write_all(&bytes)?;
        self.seconds.flush()
    }

    pub fn append_event(&mut self, e: &Event) -> io::Result<()> {
        serde_json::to_writer(&mut self.events, e).map_err(io::Error::other)?;
        self.events.write_all(b"\n")?;
        self.events.flush()
    }

    /// Writes the scenario's files beside run.json, once, and returns how
    /// run.json names them.
    pub fn save_files(
        &self,
        files: &std::collections::BTreeMap<String, Vec<u8>>,
    ) -> io::Result<Vec<StoredFile>> {
        let dir = self.dir.join("files");
        std::fs::create_dir_all(&dir)?;
        let mut out = Vec::with_capacity(files.len());
        for (i, (name, data)) in files.iter().enumerate() {
            let path = i.to_string();
            let target = dir.join(&path);
            if std::fs::metadata(&target).map(|m| m.len()).ok() != Some(data.len() as u64) {
                crate::output::write_atomic(&target, data)?;
            }
            out.push(StoredFile {
                name: name.clone(),
                data: Vec::new(),
                path: Some(path),
            });
        }
        Ok(out)
    }

    pub fn save_report(&self, json: &str) -> io::Result<()> {
        crate::output::write_atomic(&self.dir.join("report.json"), json.as_bytes())
    }
}

/// The bytes of the files a stored run references, by name.
pub fn load_files(
    data_dir: &Path,
    meta: &RunMeta,
) -> io::Result<std::collections::BTreeMap<String, Vec<u8>>> {
    let dir = run_dir(data_dir, &meta.run_id).join("files");
    let mut out = std::collections::BTreeMap::new();
    for f in &meta.files {
        let data = match &f.path {
            Some(p) if !p.contains(['/', '\\']) && !p.starts_with('.') => {
                std::fs::read(dir.join(p))?
            }
            Some(p) => return Err(io::Error::other(format!("bad stored file path {p:?}"))),
            None => f.data.clone(),
        };
        out.insert(f.name.clone(), data);
    }
    Ok(out)
}

/// The stored run `run_id` (its id checked by the caller), if any.
pub fn read_meta(data_dir: &Path, run_id: &str) -> Option<RunMeta> {
    let bytes = std::fs::read(run_dir(data_dir, run_id).join("run.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Every stored run, newest first.
pub fn all_runs(data_dir: &Path) -> Vec<RunMeta> {
    let Ok(entries) = std::fs::read_dir(data_dir.join("runs")) else {
        return Vec::new();
    };
    let mut out: Vec<RunMeta> = entries
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read(e.path().join("run.json")).ok())
        .filter_map(|b| serde_json::from_slice::<RunMeta>(&b).ok())
        .collect();
    out.sort_by(|a, b| b.run_id.cmp(&a.run_id));
    out
}

/// The stored report of run `run_id`, if it has one.
pub fn read_report(data_dir: &Path, run_id: &str) -> Option<String> {
    std::fs::read_to_string(run_dir(data_dir, run_id).join("report.json")).ok()
}

/// The merged seconds of run `run_id` as they were published, each once
/// (a resumed run publishes again the seconds it replayed), in order. A
/// torn last record is ignored; a missing file is no seconds.
pub fn read_seconds(data_dir: &Path, run_id: &str) -> Vec<pb::IntervalSummary> {
    let Ok(bytes) = std::fs::read(run_dir(data_dir, run_id).join("seconds.bin")) else {
        return Vec::new();
    };
    let mut out: Vec<pb::IntervalSummary> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut at = 0;
    while at + 4 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let Some(body) = bytes.get(at + 4..at + 4 + len) else {
            break;
        };
        match <pb::IntervalSummary as prost::Message>::decode(body) {
            Ok(s) => {
                if seen.insert(s.t_s) {
                    out.push(s);
                }
            }
            Err(_) => break,
        }
        at += 4 + len;
    }
    out.sort_by_key(|s| s.t_s);
    out
}

/// Runs left `running` by a coordinator that died, oldest first.
pub fn unfinished(data_dir: &Path) -> Vec<RunMeta> {
    let mut out: Vec<RunMeta> = all_runs(data_dir)
        .into_iter()
        .filter(|m| m.status == "running")
        .collect();
    out.reverse();
    out
}

/// Every stored report of a run, in arrival order, cutting off a torn last
/// record (the process died mid-write) so that appends continue cleanly.
pub fn recover_intervals(
    data_dir: &Path,
    run_id: &str,
) -> io::Result<Vec<(usize, pb::IntervalReport)>> {
    let (records, valid) = read_intervals(data_dir, run_id)?;
    let f = OpenOptions::new()
        .write(true)
        .open(run_dir(data_dir, run_id).join("intervals.bin"))?;
    f.set_len(valid as u64)?;
    Ok(records)
}

/// Every stored report of a run, in arrival order, and the length of the
/// valid prefix. A torn last record is ignored; a corrupt one ends the
/// replay.
pub fn read_intervals(
    data_dir: &Path,
    run_id: &str,
) -> io::Result<(Vec<(usize, pb::IntervalReport)>, usize)> {
    let mut bytes = Vec::new();
    File::open(run_dir(data_dir, run_id).join("intervals.bin"))?.read_to_end(&mut bytes)?;
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let slot = u32::from_be_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
        let Some(body) = bytes.get(at + 8..at + 8 + len) else {
            break;
        };
        match <pb::IntervalReport as prost::Message>::decode(body) {
            Ok(r) => out.push((slot, r)),
            Err(_) => break,
        }
        at += 8 + len;
    }
    Ok((out, at))
}

pub fn read_events(data_dir: &Path, run_id: &str) -> Vec<Event> {
    std::fs::read_to_string(run_dir(data_dir, run_id).join("events.jsonl"))
        .map(|t| {
            t.lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(status: &str) -> RunMeta {
        RunMeta {
            run_id: "r1".into(),
            scenario_toml: "x".into(),
            scenario_name: "s.toml".into(),
            builtin_target_url: String::new(),
            files: vec![StoredFile {
                name: "body.bin".into(),
                data: vec![0, 1, 2, 255],
                path: None,
            }],
            vars: vec![],
            env: vec![],
            start_unix_nanos: 7,
            members: vec![MemberMeta {
                id: "w".into(),
                weight: 1,
                hostname: "h".into(),
                started: true,
                done: false,
                lost_at_s: None,
                left_at_s: None,
                joined_at_s: None,
                owned_until_k: None,
                epochs: vec![EpochMeta {
                    from_s: 0.0,
                    from_k: Some(0),
                    cycle: 1,
                    slots: vec![0],
                }],
            }],
            status: status.into(),
            name: String::new(),
            duration_s: 0.0,
            failed: false,
            verdict: None,
            ran_s: None,
        }
    }

    #[test]
    fn a_run_survives_a_restart_on_disk() {
        let dir = std::env::temp_dir().join(format!("volley-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut s = RunStore::open(&dir, "r1").unwrap();
        s.save_meta(&meta("running")).unwrap();
        for i in 0..3u32 {
            let r = pb::IntervalReport {
                run_id: "r1".into(),
                index: i,
                ok: u64::from(i),
                ..Default::default()
            };
            s.append_interval(i as usize % 2, &r).unwrap();
        }
        s.append_event(&Event {
            t_s: 1.0,
            level: "warn".into(),
            text: "x".into(),
        })
        .unwrap();
        drop(s);
        // A torn tail, as if the process died mid-append.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.join("runs/r1/intervals.bin"))
            .unwrap();
        f.write_all(&[0, 0, 0, 50, 0, 0, 0, 1, 8]).unwrap();
        assert_eq!(unfinished(&dir), vec![meta("running")]);
        let back = recover_intervals(&dir, "r1").unwrap();
        assert_eq!(
            back.iter().map(|(s, r)| (*s, r.index)).collect::<Vec<_>>(),
            vec![(0, 0), (1, 1), (0, 2)]
        );
        assert_eq!(read_events(&dir, "r1").len(), 1);
        // Appending again after recovery continues the same file cleanly.
        let mut s = RunStore::open(&dir, "r1").unwrap();
        let r = pb::IntervalReport {
            run_id: "r1".into(),
            index: 3,
            ..Default::default()
        };
        s.append_interval(1, &r).unwrap();
        assert_eq!(read_intervals(&dir, "r1").unwrap().0.len(), 4);
        s.save_meta(&meta("finished")).unwrap();
        assert!(unfinished(&dir).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn files_are_stored_in_base64_and_may_be_absent() {
        let json = serde_json::to_string(&meta("running")).unwrap();
        assert!(
            json.contains(r#""files":[{"name":"body.bin","data":"AAEC/w=="}]"#),
            "{json}"
        );
        assert_eq!(
            serde_json::from_str::<RunMeta>(&json).unwrap(),
            meta("running")
        );
        let mut old: serde_json::Value = serde_json::from_str(&json).unwrap();
        old.as_object_mut().unwrap().remove("files");
        let back: RunMeta = serde_json::from_value(old).unwrap();
        assert!(back.files.is_empty());
    }

    #[test]
    fn files_sit_beside_run_json_once_and_come_back_after_a_restart() {
        let dir = std::env::temp_dir().join(format!("volley-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = RunStore::open(&dir, "r1").unwrap();
        let mut files = std::collections::BTreeMap::new();
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        files.insert("users.csv".to_owned(), big.clone());
        files.insert("body.bin".to_owned(), vec![0, 1, 2]);
        let stored = s.save_files(&files).unwrap();
        let mut m = meta("running");
        m.files = stored;
        s.save_meta(&m).unwrap();
        let json = std::fs::read_to_string(dir.join("runs/r1/run.json")).unwrap();
        assert!(
            json.len() < 10_000,
            "run.json names the files, it does not hold them"
        );
        // A restarted coordinator reads them back, and old inline files too.
        let back = unfinished(&dir).pop().unwrap();
        let loaded = load_files(&dir, &back).unwrap();
        assert_eq!(loaded["users.csv"], big);
        assert_eq!(loaded["body.bin"], vec![0, 1, 2]);
        assert_eq!(
            load_files(&dir, &meta("running")).unwrap()["body.bin"],
            vec![0, 1, 2, 255]
        );
        // A stored path cannot leave the run's directory.
        let mut evil = back.clone();
        evil.files[0].path = Some("../../etc/passwd".into());
        assert!(load_files(&dir, &evil).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn seconds_come_back_once_each_in_order_and_a_run_lists_under_its_name() {
        let dir = std::env::temp_dir().join(format!("volley-seconds-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut s = RunStore::open(&dir, "r1").unwrap();
        let second = |t: u32, ok: u64| pb::IntervalSummary {
            t_s: t,
            ok,
            hlog_line: format!("line {t}"),
            ..Default::default()
        };
        // A resumed run publishes its replayed seconds again.
        for (t, ok) in [(0, 1), (1, 2), (0, 99), (1, 99), (2, 3)] {
            s.append_second(&second(t, ok)).unwrap();
        }
        let back = read_seconds(&dir, "r1");
        assert_eq!(
            back.iter().map(|s| (s.t_s, s.ok)).collect::<Vec<_>>(),
            vec![(0, 1), (1, 2), (2, 3)]
        );
        assert!(read_seconds(&dir, "nope").is_empty());

        let mut m = meta("finished");
        m.scenario_toml = "name = \"from the toml\"\n".into();
        m.verdict = Some(Verdict::Pass);
        m.ran_s = Some(5.0);
        s.save_meta(&m).unwrap();
        let listed = all_runs(&dir);
        assert_eq!(listed.len(), 1);
        let st = listed[0].status();
        assert_eq!(st.scenario, "from the toml", "an old run.json without name");
        assert_eq!(st.state, RunState::Finished);
        assert_eq!(st.verdict, Some(Verdict::Pass));
        m.name = "peak".into();
        m.failed = true;
        s.save_meta(&m).unwrap();
        let st = read_meta(&dir, "r1").unwrap().status();
        assert_eq!((st.scenario.as_str(), st.state), ("peak", RunState::Failed));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
