//! Region names in messages. The core numbers regions; a Python user named them, so a
//! message from a cluster call says `region "eu-west"` where the core said `region 1`.

use tidaldb::TidalError;

/// `text` with every `region N` (N a region of `names`) written as `region "name"`.
pub fn rename_regions(text: &str, names: &[String]) -> String {
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
            .and_then(|i| names.get(i))
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
pub fn with_region_names(err: TidalError, names: &[String]) -> TidalError {
    use TidalError::*;
    match err {
        NotFound(m) => NotFound(rename_regions(&m, names)),
        Unavailable(m) => Unavailable(rename_regions(&m, names)),
        Timeout(m) => Timeout(rename_regions(&m, names)),
        Conflict(m) => Conflict(rename_regions(&m, names)),
        InvalidArgument { name, reason } => InvalidArgument {
            name,
            reason: rename_regions(&reason, names),
        },
        other => other,
    }
}
