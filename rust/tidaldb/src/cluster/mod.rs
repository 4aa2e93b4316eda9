//! Driver-neutral orchestration, between the control plane and the two drivers: what a
//! cluster does with its replicas, whatever clock, network and disk carry it out.

mod membership;

pub use membership::membership_repair;
