//! Replays: each deterministic golden scenario, re-run on a blank simulated device with this
//! engine, yields the same logical contents as the real Mbed TDBStore did, and the image we
//! write decodes the same way in the independent Python decoder.

mod common;

use common::*;
use serde_json::Value;
use tdbstore::{Error, Geometry, REQUIRE_CONFIDENTIALITY, REQUIRE_REPLAY_PROTECTION, WRITE_ONCE};

/// The tutorial's stats value for run `run` (format of the `stats_*` vectors).
fn stats_value(run: u32, lcg: &mut u32) -> [u8; 12] {
    *lcg = lcg.wrapping_mul(1_103_515_245).wrapping_add(12_345);
    let random = (*lcg >> 16) & 0x7fff;
    let mut v = [0u8; 12];
    v[0..4].copy_from_slice(&(1000 + 17 * run).to_le_bytes());
    v[4..8].copy_from_slice(&random.to_le_bytes());
    v[8..12].copy_from_slice(&run.to_le_bytes());
    v
}

fn expected(m: &Value) -> Contents {
    manifest_keys(&m["expected_keys"])
}

/// Runs `scenario` on a blank device and checks the result against the manifest.
fn replay(g: Geometry, m: &Value, name: &str) {
    let mut b = Bufs::new(512);
    let mut s = b.open(blank(&g));
    s.mount().unwrap();
    let want = expected(m);
    let scenario = m["scenario"].as_str().unwrap();
    match scenario {
        s_ if s_.starts_with("stats_") => {
            let runs: u32 = s_["stats_".len()..].parse().unwrap();
            // Every run of the sketch is a boot: remount, read, write. Long replays boot once
            // per batch of runs, to keep the test fast.
            let batch = if runs > 200 { 500 } else { 1 };
            let mut lcg = 1u32;
            let mut flash = Some(s.into_flash());
            let mut run = 1;
            while run <= runs {
                let mut b = Bufs::new(16);
                let mut st = b.open(flash.take().unwrap());
                st.mount().unwrap();
                let mut prev = [0u8; 12];
                match st.get(b"stats", &mut prev) {
                    Ok(_) => assert_eq!(u32::from_le_bytes(prev[8..12].try_into().unwrap()), run - 1),
                    Err(Error::NotFound) => assert_eq!(run, 1),
                    Err(e) => panic!("{name}: get: {e:?}"),
                }
                for _ in 0..batch {
                    if run > runs {
                        break;
                    }
                    st.set(b"stats", &stats_value(run, &mut lcg), 0).unwrap();
                    run += 1;
                }
                flash = Some(st.into_flash());
            }
            let f = flash.unwrap();
            return finish(g, f, &want, None, name);
        }
        "keys200" | "keys200_remove_every_third" => {
            let order = m["insertion_order"].as_array().unwrap();
            for (i, k) in order.iter().enumerate() {
                let k = k.as_str().unwrap().as_bytes();
                // Removed keys' values are not in the manifest; any value will do for them.
                let v = want.get(k).map(|(_, v)| v.clone()).unwrap_or_else(|| vec![i as u8; i % 97]);
                s.set(k, &v, 0).unwrap();
            }
            if scenario != "keys200" {
                for (i, k) in order.iter().enumerate() {
                    if i % 3 == 2 {
                        s.remove(k.as_str().unwrap().as_bytes()).unwrap();
                    }
                }
            }
        }
        "incremental_5000" => {
            let v = &want[&b"blob".to_vec()].1;
            s.set_start(b"blob", 5000, 0).unwrap();
            let mut at = 0;
            for c in [1, 7, 100, 1000, 2000, 1892] {
                s.set_add_data(&v[at..at + c]).unwrap();
                at += c;
            }
            s.set_finalize().unwrap();
        }
        "reserved16" | "reserved16_after_gc" => {
            let r: Vec<u8> = (0xA0..=0xAF).collect();
            s.reserved_data_set(&r).unwrap();
            assert_eq!(s.reserved_data_set(&r), Err(Error::WriteProtected), "{name}: second reserved set");
            s.set(b"after_reserved", &[1, 2, 3], 0).unwrap();
            if scenario == "reserved16_after_gc" {
                let filler = &want[&b"filler".to_vec()].1;
                let start = s.store().info().compactions;
                while s.store().info().compactions == start {
                    s.set(b"filler", &vec![0x5A; filler.len()], 0).unwrap();
                }
                s.set(b"filler", filler, 0).unwrap();
            }
            let f = s.into_flash();
            return finish(g, f, &want, Some(r), name);
        }
        "write_once_flags" => {
            let v = |k: &str| want[&k.as_bytes().to_vec()].1.clone();
            s.set(b"wo1", &v("wo1"), WRITE_ONCE).unwrap();
            s.set(b"wo2", &v("wo2"), WRITE_ONCE | REQUIRE_CONFIDENTIALITY).unwrap();
            s.set(b"conf", &[0x44], REQUIRE_CONFIDENTIALITY).unwrap();
            s.set(b"rp", &v("rp"), REQUIRE_REPLAY_PROTECTION).unwrap();
            s.set(b"all3", &v("all3"), WRITE_ONCE | REQUIRE_CONFIDENTIALITY | REQUIRE_REPLAY_PROTECTION)
                .unwrap();
            assert_eq!(s.set(b"bad", &[1], 1 << 2), Err(Error::InvalidFlags));
            assert_eq!(s.set(b"wo1", &[9], 0), Err(Error::WriteProtected));
            assert_eq!(s.remove(b"wo1"), Err(Error::WriteProtected));
            s.set(b"conf", &v("conf"), 0).unwrap();
            assert_eq!(s.remove(b"missing"), Err(Error::NotFound));
            let start = s.store().info().compactions;
            let plain = v("plain");
            while s.store().info().compactions == start {
                s.set(b"plain", &plain[..100], 0).unwrap();
            }
            s.set(b"plain", &plain, 0).unwrap();
            assert_eq!(s.set(b"wo2", &[0], 0), Err(Error::WriteProtected));
        }
        "overwrite_gc" => {
            // Round-robin overwrites until four compactions, then the final values.
            let keys: Vec<Vec<u8>> = (0..8).map(|i| format!("ow{i}").into_bytes()).collect();
            let mut i = 0usize;
            while s.store().info().compactions < 4 {
                s.set(&keys[i % 8], &vec![i as u8; 1 + (i * 389) % 3000], 0).unwrap();
                i += 1;
            }
            for k in &keys {
                s.set(k, &want[k].1, 0).unwrap();
            }
            assert_eq!(s.store().info().version, 5);
        }
        _ => return,
    }
    let f = s.into_flash();
    finish(g, f, &want, None, name)
}

fn finish(g: Geometry, f: flash_sim::FlashSim, want: &Contents, reserved: Option<Vec<u8>>, name: &str) {
    assert_eq!(f.stats().double_programs, 0, "{name}");
    let image = f.image().to_vec();
    let mut b = Bufs::new(512);
    let mut s = b.open(f);
    s.mount().unwrap();
    assert_same(&contents(&mut s), want, &format!("{name}: replayed contents"));
    let mut r = [0u8; 64];
    match reserved {
        Some(data) => {
            let n = s.reserved_data_get(&mut r).unwrap();
            assert_eq!(&r[..n], &data[..], "{name}: reserved");
        }
        None => assert_eq!(s.reserved_data_get(&mut r), Err(Error::NotFound)),
    }
    assert_tdbparse_agrees(&image, &g, want);
    println!("replayed {name}: {} keys", want.len());
}

#[test]
fn deterministic_scenarios_replay_to_the_same_contents() {
    let Some(root) = vectors_dir() else { return };
    let mut n = 0;
    for dir in vector_dirs(&root) {
        let name = dir.strip_prefix(&root).unwrap().display().to_string();
        let scenario = dir.file_name().unwrap().to_str().unwrap();
        let replayable = scenario.starts_with("stats_")
            || matches!(
                scenario,
                "keys200"
                    | "keys200_remove_every_third"
                    | "incremental_5000"
                    | "reserved16"
                    | "reserved16_after_gc"
                    | "write_once_flags"
                    | "overwrite_gc"
            );
        if !replayable {
            continue;
        }
        let m = manifest(&dir);
        replay(geometry_of(&m), &m, &name);
        n += 1;
    }
    assert!(n >= 20, "replayed only {n} scenarios");
}
