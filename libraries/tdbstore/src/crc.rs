//! The CRC-32 that Mbed's TDBStore uses for record checksums, key hashes and reserved data.
//!
//! Mbed computes `MbedCRC<POLY_32BIT_ANSI, 32>` with reflected input but an unreflected
//! remainder and no final XOR (`docs/format.md` §3). That equals the bit-reversed "JAM" CRC-32
//! (zlib's CRC without the final inversion). The running state is kept as the reflected
//! register so a CRC can be fed in chunks across flash reads; [`Crc32::value`] converts it.

/// Reflected CRC-32 table (polynomial 0xEDB88320), built at compile time.
const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// An in-progress Mbed TDBStore CRC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crc32 {
    reg: u32,
}

impl Default for Crc32 {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32 {
    /// A CRC started with Mbed's initial value 0xFFFF_FFFF.
    pub const fn new() -> Self {
        // Mbed reflects the initial value into the register; 0xFFFFFFFF is its own reflection.
        Crc32 { reg: 0xFFFF_FFFF }
    }

    /// Feeds `data`.
    pub fn update(&mut self, data: &[u8]) {
        let mut reg = self.reg;
        for &b in data {
            reg = TABLE[((reg ^ b as u32) & 0xFF) as usize] ^ (reg >> 8);
        }
        self.reg = reg;
    }

    /// The value Mbed stores (what `calc_crc` returns).
    pub const fn value(&self) -> u32 {
        self.reg.reverse_bits()
    }

    /// One-shot CRC of `data`.
    pub fn of(data: &[u8]) -> u32 {
        let mut c = Self::new();
        c.update(data);
        c.value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_bitreversed_jamcrc() {
        let jam = crc::Crc::<u32>::new(&crc::CRC_32_JAMCRC);
        for data in [&b""[..], b"stats", b"123456789", &[0xFFu8; 100][..]] {
            assert_eq!(Crc32::of(data), jam.checksum(data).reverse_bits());
        }
    }

    #[test]
    fn chains_across_chunks() {
        let mut c = Crc32::new();
        c.update(b"1234");
        c.update(b"56789");
        assert_eq!(c.value(), Crc32::of(b"123456789"));
    }

    #[test]
    fn master_record_example_from_the_format_notes() {
        // Header of a version-1 master record (crc field excluded), key "TDBS", data.
        let mut c = Crc32::new();
        c.update(&[0x83, 0x66, 0x68, 0x54, 0x18, 0, 1, 0, 0, 0, 0, 0, 4, 0, 0, 0, 8, 0, 0, 0]);
        c.update(b"TDBS");
        c.update(&[1, 0, 1, 0, 0, 0, 0, 0]);
        assert_eq!(c.value(), 0xb8da_2073);
    }
}
