//! Fuzz target `mount`: any bytes, taken as a flash image, mount cleanly.
//!
//! The first input byte picks the geometry (32 KiB, 4 KiB sectors, 8- or 32-byte program
//! units), the options and up to 3 ECC-bad units (from the next bytes); the rest is the
//! image (padded with erased bytes, or cut to the region). Then, as `tests/mount_fuzz.rs`
//! checks with proptest: mount never panics, makes a bounded number of flash requests and
//! reads at most 4 x the region; after a successful mount, every listed key reads or fails
//! cleanly with `get` agreeing with `get_info`, and a set of a fresh key followed by a
//! remount shows it (unless refused as Full or IndexFull, or ECC-bad units were injected),
//! never programming a unit twice.
#![no_main]

use flash_sim::{FlashSim, Geometry};
use libfuzzer_sys::fuzz_target;
use tdbstore::format::RecordFormat;
use tdbstore::sim::{self, SimStore};
use tdbstore::{Error, IndexEntry, IoError, StoreOptions};

fn with<R>(flash: FlashSim, opts: StoreOptions, f: impl FnOnce(&mut SimStore<'_>) -> R) -> (FlashSim, R) {
    let mut work = vec![0u8; 256];
    let mut index = vec![IndexEntry::default(); 24];
    let mut s = sim::open(flash, opts, &mut work, &mut index).expect("valid geometry");
    let r = f(&mut s);
    (s.into_flash(), r)
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let g = Geometry { program_size: if sel & 1 == 0 { 8 } else { 32 }, ..Geometry::SMALL };
    let opts = StoreOptions {
        format_if_blank: sel & 2 != 0,
        record_format: if sel & 4 == 0 { RecordFormat::Mbed } else { RecordFormat::Compact },
        compact_below: if sel & 8 == 0 { 0 } else { 4096 },
    };
    let n_ecc = ((sel >> 4) & 3) as usize;
    let (ecc, image) = rest.split_at((n_ecc * 2).min(rest.len()));
    let mut img = vec![0xFFu8; g.size as usize];
    let n = image.len().min(img.len());
    img[..n].copy_from_slice(&image[..n]);
    let mut flash = FlashSim::from_image(g, img).expect("image fits");
    for pair in ecc.chunks(2) {
        let at = u32::from(pair[0]) | u32::from(*pair.get(1).unwrap_or(&0)) << 8;
        flash.mark_ecc_bad(at % g.size);
    }
    let injected = !ecc.is_empty();

    let (flash, (mounted, read, requests)) = with(flash, opts, |s| {
        let r = s.mount();
        let st = s.flash().stats();
        (r, st.bytes_read, st.reads + st.programs + st.erases)
    });
    assert!(read <= 4 * u64::from(g.size), "mount read {read} bytes");
    assert!(requests < 200_000, "mount made {requests} requests");
    if mounted.is_err() {
        assert_eq!(flash.stats().programs + flash.stats().erases, 0, "a failed mount wrote");
        return;
    }
    let (flash, ()) = with(flash, opts, |s| {
        s.mount().expect("a mounted image mounts again");
        let mut keys = Vec::new();
        let _ = s.for_each_key(b"", |k| keys.push(k.to_vec()));
        for k in &keys {
            let mut v = [0u8; 64];
            if let (Ok(got), Ok((size, flags))) = (s.get(k, &mut v), s.get_info(k)) {
                assert_eq!((got.size, got.flags), (size, flags), "get and get_info disagree");
            }
        }
    });
    let (flash, set) = with(flash, opts, |s| s.mount().and_then(|_| s.set(b"fuzz-probe", b"v", 0)));
    assert_eq!(flash.stats().double_programs, 0, "a unit was programmed twice");
    match set {
        Ok(()) => {}
        Err(Error::Full | Error::IndexFull | Error::Foreign) => return,
        Err(Error::Io(_, IoError::Ecc)) if injected => return,
        Err(e) => panic!("set after a successful mount failed: {e:?}"),
    }
    let (_, got) = with(flash, opts, |s| {
        s.mount()?;
        let mut v = [0u8; 4];
        s.get(b"fuzz-probe", &mut v).map(|i| v[..i.copied].to_vec())
    });
    match got {
        Ok(v) => assert_eq!(v, b"v"),
        Err(Error::Io(_, IoError::Ecc)) if injected => {}
        Err(e) => panic!("the acknowledged set is unreadable after a remount: {e:?}"),
    }
});
