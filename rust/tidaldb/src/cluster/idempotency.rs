//! Idempotency keys as clients give them: an integer is the key itself; text or bytes
//! are hashed to one with 64-bit FNV-1a, which is stable across processes and versions,
//! so a retry from a restarted client still matches its first attempt.

use crate::event::{ClientTag, IdempotencyKey};

/// An idempotency key as a client wrote it.
#[derive(Clone, Copy, Debug)]
pub enum KeyInput<'a> {
    Int(u64),
    Text(&'a str),
    Bytes(&'a [u8]),
}

/// The client tag a write carries for `key`. Text hashes as its UTF-8 bytes, so `"k"` and
/// `b"k"` are the same key.
pub fn idempotency_tag(key: KeyInput<'_>) -> ClientTag {
    let k = match key {
        KeyInput::Int(k) => k,
        KeyInput::Text(s) => fnv1a(s.as_bytes()),
        KeyInput::Bytes(b) => fnv1a(b),
    };
    ClientTag::Key(IdempotencyKey(k))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: KeyInput<'_>) -> u64 {
        match idempotency_tag(k) {
            ClientTag::Key(IdempotencyKey(k)) => k,
            other => panic!("not a key: {other:?}"),
        }
    }

    #[test]
    fn hashes_match_the_published_fnv1a_vectors() {
        // The FNV-1a 64-bit test vectors of draft-eastlake-fnv: "", "a", "foobar".
        assert_eq!(key(KeyInput::Bytes(b"")), 0xcbf2_9ce4_8422_2325);
        assert_eq!(key(KeyInput::Text("a")), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(key(KeyInput::Text("foobar")), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn ints_are_keys_and_text_equals_its_bytes() {
        assert_eq!(key(KeyInput::Int(42)), 42);
        assert_eq!(
            key(KeyInput::Text("é")),
            key(KeyInput::Bytes("é".as_bytes()))
        );
        assert_ne!(key(KeyInput::Text("a")), key(KeyInput::Text("b")));
    }
}
