//! What a bulk read does about an entity whose score cannot be read.

use crate::error::{Result, TidalError};

/// What a bulk read does about an entity whose score cannot be read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ItemErrors {
    /// The whole read fails, naming the first such entity.
    #[default]
    Raise,
    /// That entity's score is NaN; the others are read.
    Nan,
}

impl ItemErrors {
    /// `"raise"` or `"nan"`, as the Python API spells them.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "raise" => Ok(ItemErrors::Raise),
            "nan" => Ok(ItemErrors::Nan),
            other => Err(TidalError::InvalidArgument {
                name: "errors",
                reason: format!("{other:?} is not a policy; pass \"raise\" or \"nan\""),
            }),
        }
    }
}
