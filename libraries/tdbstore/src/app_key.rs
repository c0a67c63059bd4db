//! Keys as Tock apps write them (any bytes), mapped one-to-one onto keys TDBStore accepts.
//!
//! Tock's KV syscall takes a key as arbitrary bytes (upstream's driver passes up to 64 of
//! them, an empty key included); TDBStore keys are 1..=127 bytes without NUL or any of
//! `` */?:;"|<>\`` and never `"TDBS"` ([`format::validate_key`]). This module is the one
//! mapping between the two, used by the Tock capsule (app key to stored key) and the host
//! CLI (both ways), so an image reads the same in both.
//!
//! # The mapping
//!
//! - An app key that is a valid TDBStore key and does not start with `~` ([`ESCAPE`]) is
//!   stored unchanged: `stats` is `stats` in the image, and Mbed OS reads it as such.
//! - Every other app key (empty, a forbidden byte or NUL anywhere, longer than 127 bytes,
//!   `"TDBS"`, or starting with `~`) is stored as `~` followed by the key in unpadded
//!   base64url (RFC 4648 §5: `A-Z a-z 0-9 - _`, none of them forbidden). `"First Key"` plus
//!   seven NULs is stored as `~Rmlyc3QgS2V5AAAAAAAAAA`; the empty key as `~`.
//!
//! Stored keys of the two branches differ in their first byte and base64url is one-to-one,
//! so no two app keys share a stored key, and every stored key is a valid TDBStore key. An
//! escaped key takes `1 + ceil(4n/3)` bytes, so app keys of up to [`MAX_ESCAPED_LEN`] (94)
//! bytes always fit, every key upstream's syscall driver can pass among them; a longer app
//! key that needs escaping, or a valid one longer than 127 bytes, has no stored form
//! ([`TooLong`]: the capsule answers `SIZE`).
//!
//! Decoding ([`app_key`]) is the inverse on every stored key the mapping produces. A stored
//! key starting with `~` that the mapping cannot produce (written by Mbed OS or a host tool:
//! not base64url, non-zero trailing bits, or the encoding of a key that would be stored
//! unchanged) has no app key ([`NotAnAppKey`]): no Tock app can reach it, and tools show it
//! as stored.
use crate::format::{validate_key, MAX_KEY_LEN};

/// First byte of every escaped stored key (and the reason app keys starting with it are
/// escaped too). A printable byte Mbed allows, outside base64url's alphabet.
pub const ESCAPE: u8 = b'~';

/// Longest app key that always has a stored form: `1 + ceil(4 * 94 / 3) = 127`.
pub const MAX_ESCAPED_LEN: usize = 94;

/// base64url's alphabet (RFC 4648 §5).
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The app key has no stored form: it needs escaping and is longer than
/// [`MAX_ESCAPED_LEN`], or it is a valid key longer than [`MAX_KEY_LEN`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooLong;

/// A stored key the mapping never produces (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotAnAppKey;

/// A key of up to [`MAX_KEY_LEN`] bytes in a fixed buffer (no allocation).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Key {
    len: u8,
    bytes: [u8; MAX_KEY_LEN],
}

impl Key {
    const EMPTY: Key = Key { len: 0, bytes: [0; MAX_KEY_LEN] };

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        // `len` never exceeds MAX_KEY_LEN (only `push` grows it, and it checks).
        self.bytes.get(..self.len as usize).unwrap_or(&[])
    }

    fn push(&mut self, b: u8) -> Result<(), TooLong> {
        let slot = self.bytes.get_mut(self.len as usize).ok_or(TooLong)?;
        *slot = b;
        self.len += 1;
        Ok(())
    }

    fn from_slice(s: &[u8]) -> Result<Key, TooLong> {
        let mut k = Key::EMPTY;
        k.bytes.get_mut(..s.len()).ok_or(TooLong)?.copy_from_slice(s);
        k.len = s.len() as u8;
        Ok(k)
    }
}

impl core::fmt::Debug for Key {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Key({:?})", self.as_bytes())
    }
}

/// Whether `app_key` is stored unchanged.
pub fn is_stored_unchanged(app_key: &[u8]) -> bool {
    validate_key(app_key).is_ok() && app_key.first() != Some(&ESCAPE)
}

/// The length of `app_key`'s stored form (which may exceed [`MAX_KEY_LEN`]).
pub fn stored_len(app_key: &[u8]) -> usize {
    if is_stored_unchanged(app_key) {
        app_key.len()
    } else {
        1 + (app_key.len() * 4).div_ceil(3)
    }
}

/// The stored key for an app key.
pub fn stored_key(app_key: &[u8]) -> Result<Key, TooLong> {
    if is_stored_unchanged(app_key) {
        return Key::from_slice(app_key);
    }
    if stored_len(app_key) > MAX_KEY_LEN {
        return Err(TooLong);
    }
    let mut k = Key::EMPTY;
    k.push(ESCAPE)?;
    for chunk in app_key.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        // 3 bytes give 4 symbols, 2 give 3, 1 gives 2 (no padding).
        for i in 0..=chunk.len() {
            k.push(ALPHABET[((n >> (18 - 6 * i)) & 0x3F) as usize])?;
        }
    }
    Ok(k)
}

/// The app key a stored key holds (the inverse of [`stored_key`]).
pub fn app_key(stored: &[u8]) -> Result<Key, NotAnAppKey> {
    let Some((&ESCAPE, symbols)) = stored.split_first() else {
        // Not escaped: the app key is the stored key, if the mapping stores that key
        // unchanged (a foreign image may hold keys Mbed would refuse).
        if !is_stored_unchanged(stored) {
            return Err(NotAnAppKey);
        }
        return Key::from_slice(stored).map_err(|_| NotAnAppKey);
    };
    if symbols.len() % 4 == 1 {
        return Err(NotAnAppKey);
    }
    let mut k = Key::EMPTY;
    for chunk in symbols.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            let v = ALPHABET.iter().position(|&a| a == c).ok_or(NotAnAppKey)? as u32;
            n |= v << (18 - 6 * i);
        }
        let bytes = chunk.len() - 1;
        // The bits after the last whole byte must be zero, or two stored keys would decode
        // to one app key.
        if n & (0xFF_FFFF >> (8 * bytes)) != 0 {
            return Err(NotAnAppKey);
        }
        for i in 0..bytes {
            k.push((n >> (16 - 8 * i)) as u8).map_err(|_| NotAnAppKey)?;
        }
    }
    // An app key that is stored unchanged never appears escaped.
    if is_stored_unchanged(k.as_bytes()) {
        return Err(NotAnAppKey);
    }
    Ok(k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::FORBIDDEN_KEY_BYTES;

    fn stored(k: &[u8]) -> Vec<u8> {
        stored_key(k).unwrap().as_bytes().to_vec()
    }

    #[test]
    fn valid_keys_are_stored_unchanged() {
        for k in [&b"stats"[..], b"a", b"libtock-rs", b"TDB", b"TDBSx", &[0xFF; 127], b"a~", &[0x80, 0x7F]] {
            assert_eq!(stored(k), k);
            assert_eq!(app_key(k).unwrap().as_bytes(), k);
        }
    }

    #[test]
    fn other_keys_are_escaped_base64url() {
        let mut first = b"First Key".to_vec();
        first.resize(16, 0);
        assert_eq!(stored(&first), b"~Rmlyc3QgS2V5AAAAAAAAAA");
        assert_eq!(stored(b""), b"~");
        assert_eq!(stored(b"TDBS"), b"~VERCUw");
        assert_eq!(stored(b"~"), b"~fg");
        assert_eq!(stored(b"a b"), b"~YSBi");
        assert_eq!(stored(&[0xFB, 0xFF, 0]), b"~-_8A");
        for &b in FORBIDDEN_KEY_BYTES {
            assert!(!is_stored_unchanged(&[b'k', b]));
        }
    }

    #[test]
    fn length_limits() {
        assert_eq!(stored_key(&[0; MAX_ESCAPED_LEN]).unwrap().as_bytes().len(), 127);
        assert_eq!(stored_key(&[0; MAX_ESCAPED_LEN + 1]), Err(TooLong));
        assert_eq!(stored_len(&[0; MAX_ESCAPED_LEN + 1]), 128);
        assert!(stored_key(&[b'k'; 127]).is_ok());
        assert_eq!(stored_key(&[b'k'; 128]), Err(TooLong), "valid bytes, too long for TDBStore");
        assert_eq!(stored_key(&[b'~'; 95]), Err(TooLong));
        assert_eq!(app_key(&[b'k'; 128]), Err(NotAnAppKey));
        assert_eq!(app_key(b"TDBS"), Err(NotAnAppKey), "the master record is no app's");
        assert_eq!(app_key(b"a b"), Err(NotAnAppKey), "a foreign key Mbed would refuse");
    }

    /// Every byte value at every length up to the escaped limit, and every pair of bytes:
    /// a valid stored key, decoded back to the app key, never colliding.
    #[test]
    fn every_byte_and_length_round_trips() {
        let mut seen = std::collections::HashSet::new();
        for b in 0..=255u8 {
            // The empty key once.
            for len in usize::from(b != 0)..=MAX_ESCAPED_LEN {
                let k = vec![b; len];
                let s = stored(&k);
                assert!(validate_key(&s).is_ok(), "{k:?} -> {s:?}");
                assert_eq!(app_key(&s).unwrap().as_bytes(), &k[..]);
                assert!(seen.insert(s), "collision for {k:?}");
            }
        }
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                for k in [[a, b], [b'x', a]] {
                    let s = stored(&k);
                    assert!(validate_key(&s).is_ok());
                    assert_eq!(app_key(&s).unwrap().as_bytes(), &k[..]);
                }
            }
        }
    }

    #[test]
    fn stored_keys_the_mapping_never_makes_have_no_app_key() {
        for s in [&b"~a"[..], b"~YQ", b"~YR", b"~abc*", b"~=", b"~YSBiYw==", b"~c3RhdHM"] {
            assert_eq!(app_key(s), Err(NotAnAppKey), "{s:?}");
        }
        // `~c3RhdHM` is base64url of "stats", which is stored unchanged.
        assert_eq!(stored(b"stats"), b"stats");
    }

    proptest::proptest! {
        #[test]
        fn random_keys_round_trip(k in proptest::collection::vec(proptest::num::u8::ANY, 0..=130)) {
            match stored_key(&k) {
                Ok(s) => {
                    proptest::prop_assert!(validate_key(s.as_bytes()).is_ok());
                    proptest::prop_assert_eq!(app_key(s.as_bytes()).unwrap().as_bytes().to_vec(), k);
                }
                Err(TooLong) => proptest::prop_assert!(stored_len(&k) > MAX_KEY_LEN),
            }
        }

        #[test]
        fn decoding_escaped_keys_inverts(s in "~[A-Za-z0-9_-]{0,126}") {
            if let Ok(k) = app_key(s.as_bytes()) {
                proptest::prop_assert_eq!(stored_key(k.as_bytes()).unwrap().as_bytes().to_vec(), s.as_bytes().to_vec());
            }
        }

        #[test]
        fn decoding_any_stored_key_inverts(s in proptest::collection::vec(proptest::num::u8::ANY, 1..=127)) {
            if let Ok(k) = app_key(&s) {
                proptest::prop_assert_eq!(stored_key(k.as_bytes()).unwrap().as_bytes().to_vec(), s);
            }
        }
    }
}
