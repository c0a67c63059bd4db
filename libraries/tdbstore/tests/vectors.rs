//! Golden vectors written by the real Mbed TDBStore mount here with the same contents, and
//! the store keeps working on them without ever programming a unit twice.

mod common;

use common::*;
use flash_sim::FlashSim;
use tdbstore::sim::sim_geometry;

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
        let flash = strict(FlashSim::from_image(sim_geometry(&g), image).unwrap());
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
        // value survives a remount (Mbed loses the first write after a torn tail, §9).
        match s.set(b"probe", b"after-mbed", 0) {
            Ok(()) => {}
            Err(tdbstore::Error::Full) => {
                // Only acceptable when the live data really leaves no room.
                let i = s.store().info();
                let lay = s.store().layout();
                let need = lay.first_record() + i.live_bytes + lay.record_size(5, 10).unwrap();
                assert!(need > i.area_size, "{name}: Full with room to spare");
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
        checked += 1;
    }
    println!("checked {checked} golden vectors");
}
