//! Health as the majority sees it. Every voter hears the heartbeats that reach it, so a
//! voter cut off with a minority of the cluster would call the rest of the world Offline
//! and itself Healthy. Only the Raft leader speaks for a majority (it steps down when it
//! stops hearing one), so it sends its verdict on the regions to every process, and every
//! process answers health with the latest verdict it heard, naming the regions the
//! majority cannot reach. A process that has heard no verdict for a while says so
//! instead: it may be the one that is cut off.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::control::{ControlPlane, RegionHealth};
use crate::schema::{NodeId, Timestamp};

/// The Raft leader's verdict on each region, as it sends it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub raft_term: u64,
    pub leader: NodeId,
    /// (region id, health), for every region with a replica.
    pub regions: Vec<(u16, RegionHealth)>,
}

impl Verdict {
    pub fn of(plane: &ControlPlane, now: Timestamp, raft_term: u64, leader: NodeId) -> Self {
        let regions = plane
            .health(now)
            .regions
            .into_iter()
            .map(|r| (r.region.0, r.health))
            .collect();
        Verdict {
            raft_term,
            leader,
            regions,
        }
    }
}

/// The latest verdict this process heard, and when.
#[derive(Debug, Default)]
pub struct LatestVerdict {
    heard: Option<(Verdict, Instant)>,
}

impl LatestVerdict {
    /// Keeps `verdict` unless one of a later Raft term is already held: a deposed leader's
    /// verdict, delayed in the network, must not replace its successor's.
    pub fn hear(&mut self, verdict: Verdict) {
        if let Some((held, _)) = &self.heard
            && held.raft_term > verdict.raft_term
        {
            return;
        }
        self.heard = Some((verdict, Instant::now()));
    }

    /// The verdict as status reports it, or why there is none: no verdict heard within
    /// `stale_after` means this process cannot vouch for what the majority sees.
    pub fn view(&self, stale_after: Duration, region_names: &[String]) -> MajorityView {
        let name = |id: u16| {
            region_names
                .get(id as usize)
                .cloned()
                .unwrap_or_else(|| format!("region {id}"))
        };
        match &self.heard {
            Some((v, at)) if at.elapsed() <= stale_after => MajorityView {
                leader: Some(v.leader.0),
                raft_term: v.raft_term,
                age_ms: at.elapsed().as_millis() as u64,
                regions: v.regions.iter().map(|(r, h)| (name(*r), *h)).collect(),
                unreachable: (v.regions.iter())
                    .filter(|(_, h)| *h == RegionHealth::Offline)
                    .map(|(r, _)| name(*r))
                    .collect(),
                error: None,
            },
            heard => MajorityView {
                error: Some(match heard {
                    Some((_, at)) => format!(
                        "no word from a control-plane leader for {} ms: this node may be \
                         cut off from the majority, and cannot report the majority's view",
                        at.elapsed().as_millis()
                    ),
                    None => "no control-plane leader has been heard from yet: this node \
                             cannot report the majority's view"
                        .into(),
                }),
                ..MajorityView::default()
            },
        }
    }
}

/// Health as the majority sees it, for the status JSON.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MajorityView {
    /// The process whose Raft leadership vouches for the verdict.
    pub leader: Option<u16>,
    pub raft_term: u64,
    /// How old the verdict is.
    pub age_ms: u64,
    /// Each region by name, with its health as the leader hears it.
    pub regions: Vec<(String, RegionHealth)>,
    /// The regions the majority cannot reach (every replica there is silent).
    pub unreachable: Vec<String>,
    /// Set, and everything else empty, when this process cannot report the majority's view.
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(term: u64, offline: bool) -> Verdict {
        let health = if offline {
            RegionHealth::Offline
        } else {
            RegionHealth::Healthy
        };
        Verdict {
            raft_term: term,
            leader: NodeId(1),
            regions: vec![(0, health), (1, RegionHealth::Healthy)],
        }
    }

    fn names() -> Vec<String> {
        vec!["east".into(), "west".into()]
    }

    #[test]
    fn the_view_names_the_regions_the_majority_cannot_reach() {
        let mut latest = LatestVerdict::default();
        latest.hear(verdict(3, true));
        let view = latest.view(Duration::from_secs(60), &names());
        assert_eq!(view.unreachable, vec!["east".to_string()]);
        assert_eq!(view.regions[1], ("west".to_string(), RegionHealth::Healthy));
        assert_eq!(
            (view.leader, view.raft_term, view.error),
            (Some(1), 3, None)
        );
    }

    #[test]
    fn an_older_terms_verdict_does_not_replace_a_newer_one() {
        let mut latest = LatestVerdict::default();
        latest.hear(verdict(4, false));
        latest.hear(verdict(3, true));
        let view = latest.view(Duration::from_secs(60), &names());
        assert!(view.unreachable.is_empty() && view.raft_term == 4);
    }

    #[test]
    fn a_stale_or_missing_verdict_is_reported_as_such() {
        let mut latest = LatestVerdict::default();
        let none = latest.view(Duration::from_secs(60), &names());
        assert!(none.error.is_some_and(|e| e.contains("yet")) && none.leader.is_none());
        latest.hear(verdict(3, false));
        std::thread::sleep(Duration::from_millis(5));
        let stale = latest.view(Duration::from_millis(1), &names());
        assert!(stale.error.is_some_and(|e| e.contains("cut off")) && stale.regions.is_empty());
    }
}
