//! Write concerns as users name them: `"local"`, `"majority"`, `"all"`, or a number of
//! other replicas to wait for, bounded by the replicas each shard has.

use crate::error::{Result, TidalError};

/// How many replicas a client write waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteConcernChoice {
    /// The local log append.
    Local,
    /// This many other replicas, whatever group serves the write.
    Replicated(u8),
    /// A majority of the group that serves each write, the writer included.
    Majority,
    /// Every other replica of the group that serves each write (a tenant kept in one
    /// region has none, so this is then the local append).
    All,
}

impl WriteConcernChoice {
    /// `"local"`, `"majority"` or `"all"`.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "local" => Ok(WriteConcernChoice::Local),
            "majority" => Ok(WriteConcernChoice::Majority),
            "all" => Ok(WriteConcernChoice::All),
            other => Err(invalid(format!(
                "unknown write concern {other:?}; use \"local\", \"majority\", \"all\" or \
                 the number of other replicas to wait for"
            ))),
        }
    }

    /// Wait for `k` other replicas in a cluster of `regions` regions (each shard has a
    /// replica in every region, so at most `regions - 1` others). 0 is the local append.
    pub fn replicas(k: u64, regions: usize) -> Result<Self> {
        let others = regions.saturating_sub(1);
        match u8::try_from(k) {
            Ok(0) => Ok(WriteConcernChoice::Local),
            Ok(k) if usize::from(k) <= others => Ok(WriteConcernChoice::Replicated(k)),
            _ => Err(invalid(format!(
                "{k} other replicas requested, but each shard has only {others}"
            ))),
        }
    }
}

fn invalid(reason: String) -> TidalError {
    TidalError::InvalidArgument {
        name: "write_concern",
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(r: Result<WriteConcernChoice>) -> bool {
        matches!(
            r,
            Err(TidalError::InvalidArgument {
                name: "write_concern",
                ..
            })
        )
    }

    #[test]
    fn parses_the_named_concerns() {
        assert_eq!(
            WriteConcernChoice::parse("local").unwrap(),
            WriteConcernChoice::Local
        );
        assert_eq!(
            WriteConcernChoice::parse("majority").unwrap(),
            WriteConcernChoice::Majority
        );
        assert_eq!(
            WriteConcernChoice::parse("all").unwrap(),
            WriteConcernChoice::All
        );
        assert!(refused(WriteConcernChoice::parse("quorum")));
        assert!(refused(WriteConcernChoice::parse("")));
    }

    #[test]
    fn a_count_is_bounded_by_the_other_replicas() {
        use WriteConcernChoice::*;
        assert_eq!(WriteConcernChoice::replicas(0, 3).unwrap(), Local);
        assert_eq!(WriteConcernChoice::replicas(2, 3).unwrap(), Replicated(2));
        assert!(refused(WriteConcernChoice::replicas(3, 3)));
        assert!(refused(WriteConcernChoice::replicas(1, 1)));
        assert_eq!(WriteConcernChoice::replicas(0, 1).unwrap(), Local);
        assert!(refused(WriteConcernChoice::replicas(256, 64)));
        assert!(refused(WriteConcernChoice::replicas(u64::MAX, 64)));
    }
}
