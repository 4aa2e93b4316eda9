//! How a signal loses value over time, and the windows it is counted in.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Result, TidalError};

/// How the value of one event falls with its age.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DecaySpec {
    /// `w · 2^(-age / half_life)`.
    Exponential { half_life: Duration },
    /// `w · max(0, 1 - age / lifetime)`.
    Linear { lifetime: Duration },
    /// `w`, for ever.
    Permanent,
}

impl DecaySpec {
    pub fn is_decaying(&self) -> bool {
        !matches!(self, DecaySpec::Permanent)
    }
}

/// A sliding window for counts.
///
/// A window is a fixed number of coarse time granules: the count at time `t` covers every
/// event whose granule lies in the `granules()` granules ending with the one holding `t`.
/// Granules keep window state small and integer, so that it merges exactly; the price is
/// that a window's leading edge moves in steps of one granule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Window {
    OneHour,
    TwentyFourHours,
    SevenDays,
    ThirtyDays,
    AllTime,
}

const MINUTE: i64 = 60_000_000_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

impl Window {
    /// `(granule length in ns, number of granules)`, or `None` for `AllTime`.
    pub const fn granulation(self) -> Option<(i64, u32)> {
        match self {
            Window::OneHour => Some((MINUTE, 60)),
            Window::TwentyFourHours => Some((HOUR, 24)),
            Window::SevenDays => Some((6 * HOUR, 28)),
            Window::ThirtyDays => Some((DAY, 30)),
            Window::AllTime => None,
        }
    }

    /// The nominal length, or `None` for `AllTime`.
    pub fn length(self) -> Option<Duration> {
        self.granulation()
            .map(|(g, n)| Duration::from_nanos(g as u64 * n as u64))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Window::OneHour => "1h",
            Window::TwentyFourHours => "24h",
            Window::SevenDays => "7d",
            Window::ThirtyDays => "30d",
            Window::AllTime => "all",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "1h" => Ok(Window::OneHour),
            "24h" | "1d" => Ok(Window::TwentyFourHours),
            "7d" | "1w" => Ok(Window::SevenDays),
            "30d" => Ok(Window::ThirtyDays),
            "all" | "all_time" => Ok(Window::AllTime),
            other => Err(TidalError::InvalidArgument {
                name: "window",
                reason: format!(
                    "unknown window {other:?}; use \"1h\", \"24h\", \"7d\", \"30d\" or \"all\""
                ),
            }),
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
