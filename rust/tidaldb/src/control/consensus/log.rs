//! The Raft log of the control plane, as raft-rs reads it, and the records that make it
//! durable.
//!
//! raft-rs's own `MemStorage` keeps no snapshot data and panics on some misuse; this log
//! keeps the control plane's snapshot bytes beside the entries, and every change to it is
//! also handed out as a [`ControlRecord`] for the driver to persist. Replaying the records
//! in order ([`ControlLog::recover`]) rebuilds the same log after a restart.

use raft::prelude::{ConfState, Entry, EntryType, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// One durable change to the control plane's Raft log, in the order made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlRecord {
    /// Entries appended from `entries[0].index` on; any held at or past it are replaced.
    Entries(Vec<StoredEntry>),
    HardState {
        term: u64,
        vote: u64,
        commit: u64,
    },
    /// Everything up to `index` as one state; earlier entries are gone.
    Snapshot(StoredSnapshot),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEntry {
    pub index: u64,
    pub term: u64,
    /// raft-rs's entry type: normal, configuration change, or joint configuration change.
    pub kind: i32,
    pub data: Vec<u8>,
    pub context: Vec<u8>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSnapshot {
    pub index: u64,
    pub term: u64,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    pub voters_outgoing: Vec<u64>,
    pub learners_next: Vec<u64>,
    pub auto_leave: bool,
    /// The control plane's committed state at `index`, encoded by the voter.
    pub data: Vec<u8>,
}

impl StoredEntry {
    pub fn from_entry(e: &Entry) -> Self {
        StoredEntry {
            index: e.index,
            term: e.term,
            kind: e.get_entry_type() as i32,
            data: e.data.to_vec(),
            context: e.context.to_vec(),
        }
    }

    pub fn to_entry(&self) -> Result<Entry> {
        let mut e = Entry {
            index: self.index,
            term: self.term,
            data: self.data.clone().into(),
            context: self.context.clone().into(),
            ..Entry::default()
        };
        e.set_entry_type(entry_type(self.kind)?);
        Ok(e)
    }
}

fn entry_type(kind: i32) -> Result<EntryType> {
    match kind {
        0 => Ok(EntryType::EntryNormal),
        1 => Ok(EntryType::EntryConfChange),
        2 => Ok(EntryType::EntryConfChangeV2),
        other => Err(super::corrupt(
            0,
            format!("unknown raft entry type {other}"),
        )),
    }
}

impl StoredSnapshot {
    pub fn from_snapshot(s: &Snapshot) -> Self {
        let m = s.get_metadata();
        let cs = m.get_conf_state();
        StoredSnapshot {
            index: m.index,
            term: m.term,
            voters: cs.voters.clone(),
            learners: cs.learners.clone(),
            voters_outgoing: cs.voters_outgoing.clone(),
            learners_next: cs.learners_next.clone(),
            auto_leave: cs.auto_leave,
            data: s.data.to_vec(),
        }
    }

    pub fn conf_state(&self) -> ConfState {
        ConfState {
            voters: self.voters.clone(),
            learners: self.learners.clone(),
            voters_outgoing: self.voters_outgoing.clone(),
            learners_next: self.learners_next.clone(),
            auto_leave: self.auto_leave,
            ..ConfState::default()
        }
    }

    pub fn to_snapshot(&self) -> Snapshot {
        let mut s = Snapshot::default();
        let m = s.mut_metadata();
        m.index = self.index;
        m.term = self.term;
        m.set_conf_state(self.conf_state());
        s.data = self.data.clone().into();
        s
    }
}

/// The Raft log: a snapshot, the entries after it, and the hard state.
#[derive(Clone, Debug)]
pub struct ControlLog {
    hard_state: HardState,
    /// The configuration as of the last applied configuration change or snapshot.
    conf_state: ConfState,
    snapshot: StoredSnapshot,
    /// Consecutive entries from `snapshot.index + 1` on.
    entries: Vec<Entry>,
}

impl ControlLog {
    /// A new log whose first configuration is `voters`, with `learners` following the
    /// log without a vote.
    pub fn bootstrap(voters: &[u64], learners: &[u64]) -> Self {
        let snapshot = StoredSnapshot {
            voters: voters.to_vec(),
            learners: learners.to_vec(),
            ..StoredSnapshot::default()
        };
        ControlLog {
            hard_state: HardState::default(),
            conf_state: snapshot.conf_state(),
            snapshot,
            entries: Vec::new(),
        }
    }

    /// The log the records describe, replayed onto the bootstrap log of `voters` and
    /// `learners`.
    pub fn recover(voters: &[u64], learners: &[u64], records: &[ControlRecord]) -> Result<Self> {
        let mut log = ControlLog::bootstrap(voters, learners);
        for record in records {
            log.apply_record(record)?;
        }
        Ok(log)
    }

    /// Carries out one record, as the voter did when it made it.
    pub fn apply_record(&mut self, record: &ControlRecord) -> Result<()> {
        match record {
            ControlRecord::Entries(entries) => {
                let entries: Vec<Entry> = entries
                    .iter()
                    .map(StoredEntry::to_entry)
                    .collect::<Result<_>>()?;
                self.append(&entries)
            }
            ControlRecord::HardState { term, vote, commit } => {
                self.hard_state = HardState {
                    term: *term,
                    vote: *vote,
                    commit: *commit,
                    ..HardState::default()
                };
                Ok(())
            }
            ControlRecord::Snapshot(s) => {
                self.install(s.clone());
                Ok(())
            }
        }
    }

    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    pub fn set_hard_state(&mut self, hs: HardState) {
        self.hard_state = hs;
    }

    pub fn set_conf_state(&mut self, cs: ConfState) {
        self.conf_state = cs;
    }

    /// The entries after the snapshot.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn stored_snapshot(&self) -> &StoredSnapshot {
        &self.snapshot
    }

    /// Appends `entries`, replacing any held from the first one's index on. A gap after
    /// the last entry is refused: it would mean a record was lost.
    pub fn append(&mut self, entries: &[Entry]) -> Result<()> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let first_index = self.snapshot.index + 1;
        if first.index < first_index {
            // Already covered by the snapshot: keep only what is past it.
            let skip = (first_index - first.index) as usize;
            return self.append(entries.get(skip..).unwrap_or(&[]));
        }
        let next = first_index + self.entries.len() as u64;
        if first.index > next {
            return Err(super::corrupt(
                first.index,
                format!("entries start here but the log ends before {next}: a record is missing"),
            ));
        }
        self.entries.truncate((first.index - first_index) as usize);
        self.entries.extend_from_slice(entries);
        debug_assert!(
            self.entries
                .windows(2)
                .all(|w| w[1].index == w[0].index + 1),
            "the control log's entries are consecutive"
        );
        Ok(())
    }

    /// Replaces everything up to the snapshot's index with it.
    pub fn install(&mut self, snapshot: StoredSnapshot) {
        let keep_from = snapshot.index + 1;
        self.entries.retain(|e| e.index >= keep_from);
        // Entries past the snapshot survive only if they continue it.
        if self.entries.first().is_some_and(|e| e.index != keep_from) {
            self.entries.clear();
        }
        self.hard_state.commit = self.hard_state.commit.max(snapshot.index);
        self.hard_state.term = self.hard_state.term.max(snapshot.term);
        self.conf_state = snapshot.conf_state();
        self.snapshot = snapshot;
    }

    fn term_of(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.snapshot.index {
            return Ok(self.snapshot.term);
        }
        if idx < self.snapshot.index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        self.entries
            .get((idx - self.snapshot.index - 1) as usize)
            .map(|e| e.term)
            .ok_or(raft::Error::Store(StorageError::Unavailable))
    }
}

impl raft::Storage for ControlLog {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let first = self.snapshot.index + 1;
        if low < first {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        let last = self.snapshot.index + self.entries.len() as u64;
        if high > last + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let mut out = self.entries[(low - first) as usize..(high - first) as usize].to_vec();
        raft::util::limit_size(&mut out, max_size.into());
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.term_of(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.snapshot.index + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.snapshot.index + self.entries.len() as u64)
    }

    fn snapshot(&self, _request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        Ok(self.snapshot.to_snapshot())
    }
}
