//! raft-rs logs through slog; this forwards its records to `tracing`, where the rest of
//! tidaldb logs, under the target `raft`.

use slog::{Drain, Level, Never, OwnedKVList, Record};

struct ToTracing;

impl Drain for ToTracing {
    type Ok = ();
    type Err = Never;

    fn log(&self, record: &Record<'_>, _values: &OwnedKVList) -> Result<(), Never> {
        match record.level() {
            Level::Critical | Level::Error => tracing::error!(target: "raft", "{}", record.msg()),
            Level::Warning => tracing::warn!(target: "raft", "{}", record.msg()),
            Level::Info => tracing::debug!(target: "raft", "{}", record.msg()),
            Level::Debug | Level::Trace => tracing::trace!(target: "raft", "{}", record.msg()),
        }
        Ok(())
    }
}

pub fn logger(voter: u64) -> slog::Logger {
    slog::Logger::root(ToTracing, slog::o!("voter" => voter))
}
