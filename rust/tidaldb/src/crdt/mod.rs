//! Pure data types with merge laws: the clock, decay accumulators, the hide register.

mod decay;
mod hard_negative;
mod hlc;

pub use decay::{CrdtSignalState, ExpAccumulator, HalfLife, LinearState, Partial};
pub use hard_negative::HideRegister;
pub use hlc::{HlcTimestamp, HybridClock};
