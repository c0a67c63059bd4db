//! Golden vectors written by the real Mbed TDBStore mount here with the same contents, and
//! the store keeps working on them without ever programming a unit twice.

mod common;

use common::*;
use flash_sim::FlashSim;

#[test]
fn every_golden_vector_mounts_with_its_contents() {
    let Some(root) = vectors_dir() else { return };
    let dirs = vector_dirs(&root);
    assert!(dirs.len() > 100, "expected the full vector set, found {}", dirs.len());
    let mut checked = 0;
    for dir in dirs {
        let name = dir.strip_prefix(&root).unwrap().display().to_string();
        let m = manifest(&dir);
        let g = geometry_of(&m);
        let image = std::fs::read(dir.join("image.bin")).unwrap();
        let flash = strict(FlashSim::from_image(g, image).unwrap());
        let mut b = Bufs::new(512);
        let mut s = b.open(flash);
        let info = s.mount().unwrap_or_else(|e| panic!("{name}: mount failed: {e:?}"));
        let ri = &m["reboot_init"];
        let expected = if name.contains("torn_") {
            manifest_keys(&ri["keys"])
        } else {
            manifest_keys(&m["expected_keys"])
        };
        assert_same(&contents(&mut s), &expected, &format!("{name}: contents"));
        // The independent Mbed reader the model tests and the power-cut campaign use as their
        // oracle sees exactly what the real Mbed TDBStore saw at reboot, "TDBS" included.
        mbed_reader_matches_mbed(&name, &g, &flash_image(&s), ri);
        assert_eq!(info.active_area as u64, ri["active_area"].as_u64().unwrap(), "{name}: active area");
        assert_eq!(info.version as u64, ri["active_area_version"].as_u64().unwrap(), "{name}: version");
        assert_eq!(info.free_offset as u64, ri["free_space_offset"].as_u64().unwrap(), "{name}: log end");
        // Mbed iterates by descending key hash; so do we (without the "TDBS" quirk).
        let order: Vec<Vec<u8>> = ri["iteration_order"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().as_bytes().to_vec())
            .filter(|k| k != b"TDBS")
            .collect();
        assert_eq!(key_order(&mut s), order, "{name}: iteration order");
        let mut r = [0u8; 64];
        match ri.get("reserved_data_hex").and_then(|v| v.as_str()) {
            Some(hex) => {
                let n = s.reserved_data_get(&mut r).unwrap();
                assert_eq!(hex::encode(&r[..n]), hex, "{name}: reserved data");
            }
            None => assert_eq!(s.reserved_data_get(&mut r), Err(tdbstore::Error::NotFound), "{name}"),
        }
        // Keep writing on Mbed's image: never over a programmed unit (strict sim), and the
        // value survives a remount (Mbed loses the first write after a torn tail, `docs/format.md` §17, B4).
        match s.set(b"probe", b"after-mbed", 0) {
            Ok(()) => {}
            Err(tdbstore::Error::Full) => {
                // Only acceptable when the live data really leaves no room.
                let i = s.store().info();
                let lay = s.store().layout();
                let need = lay.first_record() + i.live_bytes + lay.record_size(5, 10).unwrap();
                assert!(need > lay.log_limit(), "{name}: Full with room to spare");
                checked += 1;
                continue;
            }
            Err(e) => panic!("{name}: probe set: {e:?}"),
        }
        let flash = s.into_flash();
        assert_eq!(flash.stats().double_programs, 0, "{name}: programmed a unit twice");
        let mut b2 = Bufs::new(512);
        let mut s2 = b2.open(flash);
        s2.mount().unwrap();
        let mut v = [0u8; 16];
        let got = s2.get(b"probe", &mut v).unwrap();
        assert_eq!(&v[..got.copied], b"after-mbed", "{name}: probe after remount");
        let mut expected_after = expected.clone();
        expected_after.insert(b"probe".to_vec(), (0, b"after-mbed".to_vec()));
        assert_eq!(contents(&mut s2), expected_after, "{name}: contents after probe");
        // And Mbed reads our write on its image back.
        assert_same(
            &mbed_keys(s2.flash().image(), &g),
            &expected_after,
            &format!("{name}: Mbed after probe"),
        );
        checked += 1;
    }
    println!("checked {checked} golden vectors");
}

fn flash_image(s: &tdbstore::sim::SimStore<'_>) -> Vec<u8> {
    s.flash().image().to_vec()
}

/// Checks the Mbed reader against a manifest's `reboot_init` (what Mbed's init found).
fn mbed_reader_matches_mbed(name: &str, g: &tdbstore::Geometry, image: &[u8], ri: &serde_json::Value) {
    let m = mbed_reader::Image::new(image, g.program_size, g.erase_size).mount();
    let mbed_reader::Mount::Store(st) = m else { panic!("{name}: the Mbed reader found no store: {m:?}") };
    assert_eq!(st.active as u64, ri["active_area"].as_u64().unwrap(), "{name}: Mbed reader's active area");
    assert_eq!(
        st.version as u64,
        ri["active_area_version"].as_u64().unwrap(),
        "{name}: Mbed reader's version"
    );
    assert_eq!(
        st.free_offset as u64,
        ri["free_space_offset"].as_u64().unwrap(),
        "{name}: Mbed reader's log end"
    );
    let mut want = Contents::new();
    for (k, e) in ri["keys"].as_object().unwrap() {
        let bytes = hex::decode(e["hex"].as_str().unwrap()).unwrap();
        want.insert(k.as_bytes().to_vec(), (e["flags"].as_u64().unwrap() as u32, bytes));
    }
    let got: Contents = st.keys.clone().into_iter().collect();
    assert_same(&got, &want, &format!("{name}: Mbed reader's keys (TDBS included)"));
    let reserved = ri.get("reserved_data_hex").and_then(|v| v.as_str()).map(|h| hex::decode(h).unwrap());
    assert_eq!(st.reserved.map(|(_, d)| d), reserved, "{name}: Mbed reader's reserved data");
}

/// What Mbed reads in an image this engine wrote on; Mbed's own garbage collection of it
/// must fit too (B10).
fn mbed_keys(image: &[u8], g: &tdbstore::Geometry) -> Contents {
    let img = mbed_reader::Image::new(image, g.program_size, g.erase_size);
    match img.mount() {
        mbed_reader::Mount::Store(st) => {
            if let Some(why) = mbed_gc_trap(&img, &st) {
                panic!("{why}");
            }
            st.user_keys().into_iter().collect()
        }
        m => panic!("the Mbed reader found no store: {m:?}"),
    }
}
