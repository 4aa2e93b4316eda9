//! Pure data types with merge laws: the clock, decay accumulators, the hide register, and
//! the general-purpose PN counter and last-writer-wins register, and the bounded counter
//! that keeps a tenant's hard caps across replicas.

mod bounded_counter;
mod counter;
mod decay;
mod exp2;
mod hard_negative;
mod hlc;
mod lww;

pub use bounded_counter::BoundedCounter;
pub use counter::PNCounter;
pub use decay::{CrdtSignalState, ExpAccumulator, HalfLife, LinearState, Partial, Seq48};
pub use exp2::exp2;
pub use hard_negative::{HideRegister, HideStamp};
pub use hlc::{HlcTimestamp, HybridClock};
pub use lww::LWWRegister;
