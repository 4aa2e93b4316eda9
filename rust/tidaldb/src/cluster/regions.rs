//! Region names. The core numbers regions (`RegionId(i)`); users name them. This table
//! turns one into the other, and writes `region N` in a message as the name the user gave.

use std::sync::Arc;

use crate::error::{Result, TidalError};
use crate::schema::RegionId;

/// The regions a cluster is built with unless the caller names others.
pub const DEFAULT_REGIONS: [&str; 3] = ["us-east", "eu-west", "ap-south"];

/// At most this many regions: a region id is small, and a cluster of more is not one
/// the simulator or the control plane is sized for.
pub const MAX_REGIONS: usize = 64;

/// Region names in `RegionId` order: `RegionId(i)` is called `names[i]`. Cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionNames(Arc<[String]>);

impl Default for RegionNames {
    fn default() -> Self {
        RegionNames(DEFAULT_REGIONS.iter().map(|s| (*s).to_owned()).collect())
    }
}

impl RegionNames {
    /// Between 1 and [`MAX_REGIONS`] names, none empty, none given twice; otherwise
    /// `InvalidArgument` naming `regions`.
    pub fn new(names: Vec<String>) -> Result<Self> {
        if names.is_empty() || names.len() > MAX_REGIONS {
            return Err(invalid(format!(
                "give between 1 and {MAX_REGIONS} region names"
            )));
        }
        for (i, n) in names.iter().enumerate() {
            let problem = if n.is_empty() {
                "a region name is empty"
            } else if names[..i].contains(n) {
                "is given twice"
            } else {
                continue;
            };
            return Err(invalid(format!("{n:?}: {problem}; name each region once")));
        }
        debug_assert!(names.len() <= usize::from(u16::MAX));
        Ok(RegionNames(names.into()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The names, in `RegionId` order.
    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// Every region's id, in order.
    pub fn ids(&self) -> Vec<RegionId> {
        (0..self.0.len()).map(|i| RegionId(i as u16)).collect()
    }

    /// The region called `name`, or `NotFound` listing the cluster's regions.
    pub fn id(&self, name: &str) -> Result<RegionId> {
        self.0
            .iter()
            .position(|n| n == name)
            .map(|i| RegionId(i as u16))
            .ok_or_else(|| {
                TidalError::NotFound(format!(
                    "region {name:?} is not in this cluster; its regions are {:?}",
                    self.0
                ))
            })
    }

    /// The name of `region`; `region N` for an id outside the table.
    pub fn name(&self, region: RegionId) -> String {
        self.0
            .get(usize::from(region.0))
            .cloned()
            .unwrap_or_else(|| format!("region {}", region.0))
    }

    /// `text` with every `region N` (N a region of the table) written as `region "name"`.
    pub fn rename(&self, text: &str) -> String {
        const WORD: &str = "region ";
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find(WORD) {
            let (before, after) = rest.split_at(at + WORD.len());
            out.push_str(before);
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            match after[..digits]
                .parse::<usize>()
                .ok()
                .and_then(|i| self.0.get(i))
            {
                Some(name) => out.push_str(&format!("{name:?}")),
                None => out.push_str(&after[..digits]),
            }
            rest = &after[digits..];
        }
        out.push_str(rest);
        out
    }

    /// `err` with region numbers in its message replaced by names, for the variants whose
    /// message is free text.
    pub fn rename_error(&self, err: TidalError) -> TidalError {
        use TidalError::*;
        match err {
            NotFound(m) => NotFound(self.rename(&m)),
            Unavailable(m) => Unavailable(self.rename(&m)),
            Timeout(m) => Timeout(self.rename(&m)),
            Conflict(m) => Conflict(self.rename(&m)),
            InvalidArgument { name, reason } => InvalidArgument {
                name,
                reason: self.rename(&reason),
            },
            PartlyWritten {
                written,
                total,
                cause,
            } => PartlyWritten {
                written,
                total,
                cause: Box::new(self.rename_error(*cause)),
            },
            other => other,
        }
    }
}

fn invalid(reason: String) -> TidalError {
    TidalError::InvalidArgument {
        name: "regions",
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Result<RegionNames> {
        RegionNames::new(list.iter().map(|s| (*s).to_owned()).collect())
    }

    fn is_invalid_regions(r: &Result<RegionNames>) -> bool {
        matches!(
            r,
            Err(TidalError::InvalidArgument {
                name: "regions",
                ..
            })
        )
    }

    #[test]
    fn refuses_no_regions_too_many_empty_and_repeated_names() {
        assert!(is_invalid_regions(&names(&[])));
        let many: Vec<String> = (0..=MAX_REGIONS).map(|i| format!("r{i}")).collect();
        assert!(is_invalid_regions(&RegionNames::new(many)));
        assert!(is_invalid_regions(&names(&["a", ""])));
        assert!(is_invalid_regions(&names(&["a", "b", "a"])));
        let exactly: Vec<String> = (0..MAX_REGIONS).map(|i| format!("r{i}")).collect();
        assert_eq!(RegionNames::new(exactly).unwrap().len(), MAX_REGIONS);
    }

    #[test]
    fn looks_regions_up_both_ways() {
        let r = names(&["x", "y"]).unwrap();
        assert_eq!(r.id("y").unwrap(), RegionId(1));
        assert_eq!(r.name(RegionId(0)), "x");
        assert_eq!(r.name(RegionId(7)), "region 7");
        assert_eq!(r.ids(), vec![RegionId(0), RegionId(1)]);
        assert!(matches!(r.id("z"), Err(TidalError::NotFound(m)) if m.contains("\"z\"")));
        assert_eq!(
            RegionNames::default().names(),
            ["us-east", "eu-west", "ap-south"]
        );
    }

    #[test]
    fn renames_known_region_numbers_and_leaves_the_rest() {
        let r = names(&["us", "eu"]).unwrap();
        assert_eq!(
            r.rename("region 1 lags region 0; region 9 and regions 1 stay"),
            "region \"eu\" lags region \"us\"; region 9 and regions 1 stay"
        );
        assert_eq!(r.rename("region "), "region ");
        let nested = TidalError::PartlyWritten {
            written: 1,
            total: 2,
            cause: Box::new(TidalError::Timeout("region 0 is cut off".into())),
        };
        let renamed = r.rename_error(nested).to_string();
        assert!(renamed.contains("region \"us\" is cut off"), "{renamed}");
    }
}
