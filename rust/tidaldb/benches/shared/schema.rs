//! The signal every benchmark writes, shared so that their figures compare.

use std::time::Duration;

use tidaldb::schema::SignalBuilder;
use tidaldb::{DecaySpec, EntityKind, Schema, Window};

/// "view": exponential decay with a 7-day half-life, 1h and 24h windows. Add more signals,
/// then `.add().build()`.
pub fn view_signal() -> SignalBuilder {
    Schema::builder()
        .signal(
            "view",
            EntityKind::Item,
            DecaySpec::Exponential {
                half_life: Duration::from_secs(7 * 86_400),
            },
        )
        .windows(&[Window::OneHour, Window::TwentyFourHours])
}
