//! End-to-end tests of the `tdbstore` binary: real processes on image files in temporary
//! directories, checking output, exit codes and, above all, that refused commands leave the
//! image byte-identical.

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;
use tempfile::TempDir;

const SMALL_SIZE: usize = 32768;
const PORTENTA_SIZE: usize = 1_572_864;

fn tool() -> Command {
    Command::cargo_bin("tdbstore").expect("binary built")
}

/// The tool on `image` with the small geometry (fast) and `args`.
fn small(image: &Path, args: &[&str]) -> Command {
    let mut c = tool();
    c.arg("--geometry").arg("small").arg(image).args(args);
    c
}

fn json_of(out: &[u8]) -> Value {
    let s = std::str::from_utf8(out).expect("UTF-8 output");
    assert_eq!(s.trim_end().lines().count(), 1, "one JSON object on one line: {s}");
    serde_json::from_str(s).expect("valid JSON")
}

fn setup() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = dir.path().join("store.bin");
    (dir, img)
}

/// Deterministic noise (no valid master record can appear by chance).
fn noise(len: usize) -> Vec<u8> {
    let mut s: u64 = 0x1234_5678_9abc_def1;
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (s >> 56) as u8
        })
        .collect()
}

#[test]
fn set_creates_the_image_and_get_reads_it_back() {
    let (_d, img) = setup();
    small(&img, &["set", "greeting", "hello world"])
        .assert()
        .success()
        .stdout("set \"greeting\": 11 bytes\n");
    assert_eq!(fs::read(&img).expect("image").len(), SMALL_SIZE);
    small(&img, &["get", "greeting"]).assert().success().stdout("hello world\n");
    small(&img, &["get", "greeting", "--hex"]).assert().success().stdout("68656c6c6f20776f726c64\n");
    small(&img, &["set", "bin", "--hex", "00ff10"]).assert().success();
    small(&img, &["get", "bin"]).assert().success().stdout("00ff10\n");
    small(&img, &["get", "bin", "--raw"]).assert().success().stdout(predicate::eq(&[0x00u8, 0xff, 0x10][..]));

    let file = img.with_file_name("value.dat");
    fs::write(&file, b"from a file").expect("write");
    let file_arg = file.to_str().expect("UTF-8 path");
    small(&img, &["set", "f", "--file", file_arg]).assert().success();
    small(&img, &["get", "f"]).assert().success().stdout("from a file\n");
}

#[test]
fn ls_lists_keys_with_size_and_flags() {
    let (_d, img) = setup();
    small(&img, &["set", "alpha", "1"]).assert().success();
    small(&img, &["set", "alpine", "22", "--write-once", "--confidential"]).assert().success();
    small(&img, &["set", "beta", "333", "--replay-protected"]).assert().success();
    let out = small(&img, &["ls"]).assert().success().get_output().stdout.clone();
    let text = String::from_utf8(out).expect("UTF-8");
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["alpha", "1", "-"]));
    assert!(text
        .lines()
        .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["alpine", "2", "write-once,confidential"]));
    assert!(text
        .lines()
        .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["beta", "3", "replay-protected"]));

    let out = small(&img, &["ls", "alp"]).assert().success().get_output().stdout.clone();
    let text = String::from_utf8(out).expect("UTF-8");
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(!text.contains("beta"));
}

#[test]
fn rm_removes_and_missing_keys_exit_2() {
    let (_d, img) = setup();
    small(&img, &["set", "k", "v"]).assert().success();
    small(&img, &["rm", "k"]).assert().success().stdout("removed \"k\"\n");
    small(&img, &["get", "k"]).assert().code(2).stderr(predicate::str::contains("key \"k\" not found"));
    let before = fs::read(&img).expect("image");
    small(&img, &["rm", "k"]).assert().code(2);
    assert_eq!(fs::read(&img).expect("image"), before);
    small(&img, &["ls"]).assert().success().stdout("");
}

#[test]
fn write_once_keys_and_reserved_data_are_protected() {
    let (_d, img) = setup();
    small(&img, &["set", "serial", "SN-1", "--write-once"]).assert().success();
    let before = fs::read(&img).expect("image");
    small(&img, &["set", "serial", "SN-2"]).assert().code(3).stderr(predicate::str::contains("write-once"));
    small(&img, &["rm", "serial"]).assert().code(3);
    assert_eq!(fs::read(&img).expect("image"), before);

    small(&img, &["reserved-get"]).assert().code(2);
    small(&img, &["reserved-set", "--hex", "0011223344"]).assert().success();
    small(&img, &["reserved-get"]).assert().success().stdout("0011223344\n");
    small(&img, &["reserved-set", "again"]).assert().code(3);
    let big = "x".repeat(65);
    let (_d2, img2) = setup();
    small(&img2, &["reserved-set", &big]).assert().code(3);
    assert!(!img2.exists(), "a refused first write creates no image");
}

/// The "Run Count: N" of a stats block (`which` = "Previous Stats" or "Current Stats").
fn run_count(out: &str, which: &str) -> Option<u32> {
    let block = out.split(which).nth(1)?;
    let line = block.lines().find(|l| l.trim_start().starts_with("Run Count:"))?;
    line.split(':').nth(1)?.trim().parse().ok()
}

#[test]
fn stats_cycle_counts_runs_like_the_tutorial() {
    let (_d, img) = setup();
    let first = tool().arg(&img).arg("stats-cycle").assert().success().get_output().stdout.clone();
    let first = String::from_utf8(first).expect("UTF-8");
    let lines: Vec<&str> = first.lines().collect();
    assert_eq!(lines[0], "Retrieving Sketch Stats");
    assert_eq!(lines[1], "No previous data was found.");
    assert_eq!(lines[2], "Sketch Stats updated");
    assert_eq!(lines[3], "Current Stats");
    assert!(lines[4].starts_with("    Startup Time: "));
    assert!(lines[5].starts_with("    Random Value: "));
    assert_eq!(lines[6], "    Run Count: 1");
    assert_eq!(fs::read(&img).expect("image").len(), PORTENTA_SIZE);

    let second = tool().arg(&img).arg("stats-cycle").assert().success().get_output().stdout.clone();
    let second = String::from_utf8(second).expect("UTF-8");
    assert!(second.starts_with("Retrieving Sketch Stats\nPrevious Stats\n"), "{second}");
    assert!(!second.contains("No previous data"));
    assert_eq!(run_count(&second, "Previous Stats"), Some(1));
    assert_eq!(run_count(&second, "Current Stats"), Some(2));
    // The previous block repeats the first run's values exactly.
    let first_current = first.split("Current Stats\n").nth(1).expect("block");
    let second_previous = second
        .split("Previous Stats\n")
        .nth(1)
        .and_then(|b| b.split("Sketch Stats updated").next())
        .expect("block");
    assert_eq!(first_current, second_previous);

    // The stored value is the tutorial's 12-byte little-endian struct.
    let out = tool().arg(&img).args(["get", "stats", "--hex"]).assert().success().get_output().stdout.clone();
    let hex = String::from_utf8(out).expect("UTF-8");
    assert_eq!(hex.trim().len(), 24);
    assert!(hex.trim().ends_with("02000000"), "{hex}");

    let out = tool().arg(&img).args(["--json", "stats-cycle"]).assert().success().get_output().stdout.clone();
    let v = json_of(&out);
    assert_eq!(v["previous"]["run_count"], 2);
    assert_eq!(v["current"]["run_count"], 3);
}

#[test]
fn json_output_is_one_object_per_command() {
    let (_d, img) = setup();
    let run = |args: &[&str], code: i32| -> Value {
        let mut c = small(&img, args);
        c.arg("--json");
        json_of(&c.assert().code(code).get_output().stdout.clone())
    };
    let v = run(&["set", "k", "v"], 0);
    assert_eq!(v["key"], "k");
    assert_eq!(v["size"], 1);
    let v = run(&["get", "k"], 0);
    assert_eq!((v["hex"].as_str(), v["text"].as_str()), (Some("76"), Some("v")));
    let v = run(&["ls"], 0);
    assert_eq!(v["count"], 1);
    assert_eq!(v["keys"][0]["key"], "k");
    let v = run(&["info"], 0);
    assert_eq!(v["geometry"]["size"], SMALL_SIZE);
    assert_eq!(v["layout"]["master_record_offset"], 72);
    assert_eq!(v["layout"]["first_record_offset"], 112);
    assert_eq!(v["keys"], 1);
    assert_eq!(v["torn_tail"], false);
    let v = run(&["check"], 0);
    assert_eq!(v["ok"], true);
    let v = run(&["compact"], 0);
    assert_eq!(v["after"]["version"], 2);
    let v = run(&["get", "nope"], 2);
    assert!(v["error"].as_str().is_some_and(|e| e.contains("not found")));
    assert_eq!(v["exit_code"], 2);
    let v = run(&["rm", "k"], 0);
    assert_eq!(v["removed"], "k");
    // Usage errors too.
    let v = run(&["set", "k", "--hex", "zz"], 1);
    assert!(v["error"].is_string());
    let v = run(&["frobnicate"], 1);
    assert!(v["error"].is_string());
}

#[test]
fn wrong_size_image_is_refused_and_untouched() {
    let (_d, img) = setup();
    let data = noise(SMALL_SIZE + 1);
    fs::write(&img, &data).expect("write");
    for args in [&["info"][..], &["set", "k", "v"], &["format"], &["stats-cycle"], &["rm", "k"]] {
        small(&img, args)
            .assert()
            .code(4)
            .stderr(predicate::str::contains("32769 bytes").and(predicate::str::contains("32768")));
        assert_eq!(fs::read(&img).expect("image"), data, "{args:?} changed the image");
    }
    // The default (portenta) geometry refuses a small image the same way.
    let (_d2, img2) = setup();
    small(&img2, &["set", "k", "v"]).assert().success();
    let before = fs::read(&img2).expect("image");
    tool().arg(&img2).args(["set", "k", "w"]).assert().code(4);
    assert_eq!(fs::read(&img2).expect("image"), before);
}

#[test]
fn foreign_image_is_refused_until_formatted() {
    let (_d, img) = setup();
    let data = noise(SMALL_SIZE);
    fs::write(&img, &data).expect("write");
    for args in [&["set", "k", "v"][..], &["get", "k"], &["info"], &["check"], &["compact"]] {
        small(&img, args)
            .assert()
            .code(4)
            .stderr(predicate::str::contains("no TDBStore").and(predicate::str::contains("format")));
        assert_eq!(fs::read(&img).expect("image"), data, "{args:?} changed the image");
    }
    small(&img, &["format"]).assert().success();
    assert_ne!(fs::read(&img).expect("image"), data);
    small(&img, &["set", "k", "v"]).assert().success();
    small(&img, &["get", "k"]).assert().success().stdout("v\n");
    small(&img, &["check"]).assert().success();

    fs::write(&img, &data).expect("write");
    small(&img, &["format", "--full"]).assert().success();
    small(&img, &["check"]).assert().success();
    small(&img, &["ls"]).assert().success().stdout("");
}

#[test]
fn invalid_keys_exit_3_and_leave_the_image_identical() {
    let (_d, img) = setup();
    small(&img, &["set", "ok", "1"]).assert().success();
    let before = fs::read(&img).expect("image");
    let long = "k".repeat(128);
    for (key, why) in [
        ("a b", "space"),
        ("TDBS", "master record"),
        (long.as_str(), "longer than 127"),
        ("a/b", "forbidden"),
        ("", "empty"),
    ] {
        small(&img, &["set", key, "v"]).assert().code(3).stderr(predicate::str::contains(why));
        small(&img, &["rm", key]).assert().code(3);
        small(&img, &["get", key]).assert().code(3);
        assert_eq!(fs::read(&img).expect("image"), before, "key {key:?}");
    }
    // 127 bytes is the real limit.
    small(&img, &["set", &"k".repeat(127), "v"]).assert().success();
    // A refused write on a missing image creates nothing.
    let (_d2, img2) = setup();
    small(&img2, &["set", "a b", "v"]).assert().code(3);
    assert!(!img2.exists());
}

#[test]
fn oversize_values_are_refused() {
    let (_d, img) = setup();
    small(&img, &["set", "k", "v"]).assert().success();
    let before = fs::read(&img).expect("image");
    let file = img.with_file_name("big.dat");
    fs::write(&file, vec![0xA5; 20_000]).expect("write");
    small(&img, &["set", "big", "--file", file.to_str().expect("UTF-8 path")])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("value too large").and(predicate::str::contains("20000")));
    assert_eq!(fs::read(&img).expect("image"), before);
    // Fits in an area (at most 16,197 bytes under a 3-byte key: the last 8-byte unit of
    // the area stays free, and 40 bytes for the master record Mbed's own collection copies)
    // but not beside what is there: full, not too large.
    fs::write(&file, vec![0xA5; 16_190]).expect("write");
    small(&img, &["set", "big", "--file", file.to_str().expect("UTF-8 path")])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("full"));
    assert_eq!(fs::read(&img).expect("image"), before);
}

#[test]
fn check_passes_on_a_fresh_store_and_read_only_commands_need_an_image() {
    let (_d, img) = setup();
    for args in [&["check"][..], &["info"], &["ls"], &["get", "k"], &["reserved-get"]] {
        small(&img, args).assert().code(5).stderr(predicate::str::contains("does not exist"));
        assert!(!img.exists());
    }
    small(&img, &["format"]).assert().success();
    small(&img, &["check"]).assert().success().stdout(predicate::str::contains("check:          ok"));
    // A blank region is a fresh device: readable, reported as blank, left blank.
    fs::write(&img, vec![0xFF; SMALL_SIZE]).expect("write");
    small(&img, &["check"]).assert().success();
    small(&img, &["info"]).assert().success().stdout(predicate::str::contains("blank"));
    assert_eq!(fs::read(&img).expect("image"), vec![0xFF; SMALL_SIZE]);
}

#[test]
fn check_finds_records_cut_off_by_a_damaged_one() {
    let (_d, img) = setup();
    for (k, v) in [("a", "AAAAAAAA"), ("b", "BBBBBBBB"), ("c", "CCC")] {
        small(&img, &["set", k, v]).assert().success();
    }
    small(&img, &["check"]).assert().success();
    let mut data = fs::read(&img).expect("image");
    let at = data.windows(8).position(|w| w == b"AAAAAAAA").expect("value of a");
    data[at] ^= 1;
    fs::write(&img, &data).expect("write");
    // Mount ends the log at "a", so "b" and "c" vanish; check must not call that healthy.
    small(&img, &["ls"]).assert().success().stdout("");
    let out = small(&img, &["check", "--json"]).assert().code(4).get_output().stdout.clone();
    let v = json_of(&out);
    assert_eq!(v["ok"], false);
    assert_eq!(v["torn_tail"], true);
    let lost: Vec<&str> =
        v["unreachable"].as_array().expect("array").iter().filter_map(|u| u["key"].as_str()).collect();
    assert_eq!(lost, ["b", "c"]);
    small(&img, &["check"]).assert().code(4).stderr(predicate::str::contains("beyond a damaged end"));
    assert_eq!(fs::read(&img).expect("image"), data, "check never writes");
}

#[test]
fn compact_keeps_the_live_values() {
    let (_d, img) = setup();
    for i in 0..20 {
        small(&img, &["set", "counter", &i.to_string()]).assert().success();
    }
    small(&img, &["set", "other", "x"]).assert().success();
    small(&img, &["compact"]).assert().success().stdout(predicate::str::contains("area 0 -> 1"));
    small(&img, &["get", "counter"]).assert().success().stdout("19\n");
    small(&img, &["get", "other"]).assert().success().stdout("x\n");
    small(&img, &["check"]).assert().success();
}

#[test]
fn usage_errors_exit_1_and_help_documents_exit_codes() {
    let (_d, img) = setup();
    small(&img, &["set", "k", "--hex", "abc"]).assert().code(1);
    small(&img, &["set", "k"]).assert().code(1);
    small(&img, &["set", "k", "v", "--hex", "00"]).assert().code(1);
    tool().arg(&img).args(["--erase-size", "3000", "info"]).assert().code(1);
    small(&img, &["get", "k", "--raw", "--json"]).assert().code(1);
    assert!(!img.exists());
    tool()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Exit codes").and(predicate::str::contains("IndexFull")));
}

// ------------------------------------------------------------------------------------------
// Golden vectors written by the real Mbed TDBStore (read from copies, never in place).

fn vectors_dir() -> PathBuf {
    match std::env::var_os("TDBSTORE_VECTORS") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors"),
    }
}

/// A copy of a golden image in a temporary directory, or `None` (with a note) if absent.
fn golden_copy(rel: &str) -> Option<(TempDir, PathBuf)> {
    let src = vectors_dir().join(rel);
    if !src.is_file() {
        eprintln!("skipped: golden vector {} not found (set TDBSTORE_VECTORS)", src.display());
        return None;
    }
    let (dir, img) = setup();
    fs::copy(&src, &img).expect("copy");
    Some((dir, img))
}

#[test]
fn golden_portenta_stats_14() {
    let Some((_d, img)) = golden_copy("g1_portenta_internal/stats_14/image.bin") else {
        return;
    };
    let before = fs::read(&img).expect("image");
    let out = tool().arg(&img).args(["info", "--json"]).assert().success().get_output().stdout.clone();
    let v = json_of(&out);
    assert_eq!(v["keys"], 1);
    assert_eq!(v["layout"]["master_record_offset"], 96);
    assert_eq!(v["layout"]["first_record_offset"], 160);
    assert_eq!(v["free_offset"], 1056);
    tool()
        .arg(&img)
        .arg("ls")
        .assert()
        .success()
        .stdout(predicate::str::contains("stats").and(predicate::str::contains("12")));
    tool().arg(&img).arg("check").assert().success();
    tool().arg(&img).args(["get", "stats", "--hex"]).assert().success().stdout("d60400001c2f00000e000000\n");
    assert_eq!(fs::read(&img).expect("image"), before, "read-only commands never write");
    let out = tool().arg(&img).arg("stats-cycle").assert().success().get_output().stdout.clone();
    let text = String::from_utf8(out).expect("UTF-8");
    assert_eq!(run_count(&text, "Previous Stats"), Some(14));
    assert_eq!(run_count(&text, "Current Stats"), Some(15));
}

#[test]
fn golden_small_write_once_flags() {
    let Some((_d, img)) = golden_copy("g2_small/write_once_flags/image.bin") else {
        return;
    };
    let before = fs::read(&img).expect("image");
    small(&img, &["info"]).assert().success().stdout(predicate::str::contains("active area 1, version 2"));
    let out = small(&img, &["ls", "--json"]).assert().success().get_output().stdout.clone();
    let v = json_of(&out);
    let keys: Vec<&str> =
        v["keys"].as_array().expect("array").iter().filter_map(|k| k["key"].as_str()).collect();
    // Mbed's iteration order, less its visible "TDBS".
    assert_eq!(keys, ["conf", "wo1", "all3", "rp", "plain", "wo2"]);
    let all3 = &v["keys"][2];
    assert_eq!(all3["flags"], 11);
    small(&img, &["check"]).assert().success();
    small(&img, &["set", "wo1", "x"]).assert().code(3);
    assert_eq!(fs::read(&img).expect("image"), before);
}

/// `ls` shows keys as Tock apps wrote them (`tdbstore::app_key`), with the stored form of
/// escaped ones, which `get`, `set` and `rm` take.
#[test]
fn ls_shows_keys_as_apps_wrote_them() {
    let (_d, img) = setup();
    // What the Tock capsule stores for "First Key" padded with NULs to 16 bytes, for an
    // empty key, for `stats`, and a `~` key the mapping never makes (no app's).
    for k in ["~Rmlyc3QgS2V5AAAAAAAAAA", "~", "stats", "~a"] {
        small(&img, &["set", k, "v"]).assert().success();
    }
    let out = small(&img, &["ls"]).assert().success().get_output().stdout.clone();
    let text = String::from_utf8(out).expect("UTF-8");
    assert_eq!(text.lines().count(), 4, "{text}");
    let line = |start: &str| text.lines().find(|l| l.starts_with(start)).map(str::to_owned);
    assert!(
        line("First Key\\x00\\x00\\x00\\x00\\x00\\x00\\x00 (stored as ~Rmlyc3QgS2V5AAAAAAAAAA)").is_some(),
        "{text}"
    );
    assert!(line(" (stored as ~)").is_some(), "the empty key: {text}");
    assert!(line("stats ").is_some() && !text.contains("stats (stored"), "{text}");
    assert!(line("~a ").is_some(), "{text}");
    let mut c = small(&img, &["ls"]);
    c.arg("--json");
    let v = json_of(&c.assert().success().get_output().stdout.clone());
    let keys = v["keys"].as_array().expect("array");
    let entry = |stored: &str| keys.iter().find(|k| k["key"] == stored).expect(stored).clone();
    assert_eq!(entry("~Rmlyc3QgS2V5AAAAAAAAAA")["app_key_hex"], "4669727374204b657900000000000000");
    assert_eq!(entry("~")["app_key_hex"], "");
    assert_eq!(entry("stats")["app_key"], "stats");
    assert!(entry("~a")["app_key"].is_null());
}

/// `--record-format compact` (alias `--format`) creates compact-record stores, which the
/// other commands then edit; `info` and `check` say which format an image is in, and an
/// existing store is never silently taken for the other format.
#[test]
fn record_format_option_creates_and_edits_compact_stores() {
    let (_d, img) = setup();
    small(&img, &["--record-format", "compact", "format"])
        .assert()
        .success()
        .stdout(predicate::str::contains("compact records"));
    small(&img, &["set", "stats", "twelve bytes"]).assert().success();
    small(&img, &["--format", "compact", "set", "other", "v"]).assert().success();
    small(&img, &["get", "stats"]).assert().success().stdout("twelve bytes\n");
    small(&img, &["info"]).assert().success().stdout(predicate::str::contains("record format:  compact"));
    let mut c = small(&img, &["info"]);
    c.arg("--json");
    assert_eq!(
        json_of(&c.assert().success().get_output().stdout.clone())["layout"]["record_format"],
        "compact"
    );
    let mut c = small(&img, &["check"]);
    c.arg("--json");
    let v = json_of(&c.assert().success().get_output().stdout.clone());
    assert_eq!((v["record_format"].as_str(), v["keys"].as_u64()), (Some("compact"), Some(2)));
    // A compact store is not an Mbed one: refused, image untouched.
    let before = fs::read(&img).expect("image");
    small(&img, &["--record-format", "mbed", "set", "x", "y"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("compact-record store"));
    assert_eq!(fs::read(&img).expect("image"), before);
    // `format` converts, explicitly.
    small(&img, &["--record-format", "mbed", "format"]).assert().success();
    small(&img, &["info"]).assert().success().stdout(predicate::str::contains("record format:  mbed"));
    small(&img, &["--record-format", "bogus", "info"]).assert().code(1);
}

/// `check` warns about a record Mbed OS would not read: one ending exactly at the area end
/// (written here by hand; Mbed-CE and older versions of this engine wrote such records).
#[test]
fn check_warns_about_records_mbed_would_not_read() {
    use tdbstore::format::{Header, Layout};
    let (_d, img) = setup();
    small(&img, &["set", "k0", "x"]).assert().success();
    small(&img, &["check"]).assert().success().stdout(predicate::str::contains("warning").not());
    let mut c = small(&img, &["info"]);
    c.arg("--json");
    let free =
        json_of(&c.assert().success().get_output().stdout.clone())["free_offset"].as_u64().expect("free");
    let (area, free) = (16_384usize, free as usize);
    let lay = Layout::new(8, area as u32);
    let key = b"end";
    let data = vec![0x5A; area - free - 24 - key.len()];
    let mut h = Header { flags: 0, key_len: key.len() as u16, data_len: data.len() as u32, crc: 0 };
    let mut crc = lay.crc_start(&h);
    crc.update(key);
    crc.update(&data);
    h.crc = crc.value();
    let mut bytes = fs::read(&img).expect("image");
    h.encode(&mut bytes[free..free + 24]);
    bytes[free + 24..free + 24 + key.len()].copy_from_slice(key);
    bytes[free + 24 + key.len()..area].copy_from_slice(&data);
    fs::write(&img, &bytes).expect("write");
    small(&img, &["get", "end", "--hex"]).assert().success();
    small(&img, &["check"])
        .assert()
        .success()
        .stdout(predicate::str::contains("warning:        Mbed OS would not read the record of key \"end\""));
    let mut c = small(&img, &["check"]);
    c.arg("--json");
    let v = json_of(&c.assert().success().get_output().stdout.clone());
    assert_eq!(v["mbed_unreadable"][0]["offset"].as_u64(), Some(free as u64));
}

/// Mbed keys are bytes: every byte value but NUL and ` */?:;"|<>\` can be in one. Each such
/// key is set through `--key-hex`, listed by `ls` in a form that `get` and `rm` take back
/// as their KEY argument, and read back through `--key-hex` too; each forbidden byte is
/// refused as an invalid key, leaving the image as it was.
#[test]
fn every_byte_value_names_a_key_through_the_cli() {
    const FORBIDDEN: &[u8] = b" */?:;\"|<>\\\0";
    let (_d, img) = setup();
    small(&img, &["format"]).assert().success();
    let allowed: Vec<u8> = (0..=255u8).filter(|b| !FORBIDDEN.contains(b)).collect();
    assert_eq!(allowed.len(), 244);
    for &b in &allowed {
        let key_hex = hex::encode([b'k', b]);
        small(&img, &["set", "--key-hex", &key_hex, "--hex", &hex::encode([b])]).assert().success();
    }
    for &b in FORBIDDEN {
        let before = fs::read(&img).expect("image");
        let key_hex = hex::encode([b'k', b]);
        small(&img, &["set", "--key-hex", &key_hex, "v"]).assert().code(3);
        small(&img, &["get", "--key-hex", &key_hex]).assert().code(3);
        assert_eq!(fs::read(&img).expect("image"), before, "byte {b:#04x}");
    }
    let out = small(&img, &["ls"]).assert().success().get_output().stdout.clone();
    let text = String::from_utf8(out).expect("ls prints UTF-8");
    let shown: Vec<String> =
        text.lines().map(|l| l.split_whitespace().next().expect("a key").to_owned()).collect();
    assert_eq!(shown.len(), allowed.len());
    let json = json_of(&small(&img, &["ls", "--json"]).assert().success().get_output().stdout);
    let listed: Vec<(String, String)> = json["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| (k["key"].as_str().expect("key").to_owned(), k["key_hex"].as_str().expect("hex").to_owned()))
        .collect();
    for (shown, (key, key_hex)) in shown.iter().zip(&listed) {
        assert_eq!(shown, key, "the text and JSON listings name the key alike");
        let value = &key_hex[2..];
        // Back in through the printed form, and through hex.
        small(&img, &["get", shown, "--hex"]).assert().success().stdout(format!("{value}\n"));
        small(&img, &["get", "--key-hex", key_hex, "--hex"]).assert().success().stdout(format!("{value}\n"));
        small(&img, &["rm", shown]).assert().success();
        small(&img, &["get", "--key-hex", key_hex]).assert().code(2);
    }
    small(&img, &["ls"]).assert().success().stdout("");
}

#[test]
fn key_arguments_that_name_no_key_are_usage_errors() {
    let (_d, img) = setup();
    small(&img, &["set", "k", "v"]).assert().success();
    let before = fs::read(&img).expect("image");
    for args in [
        &["get", "a\\q"][..],
        &["get", "a\\x4"],
        &["rm", "a\\"],
        &["get", "--key-hex", "zz"],
        &["set", "--key-hex", "41", "a", "b"],
        &["set", "--key-hex", "41"],
        &["get", "k", "--key-hex", "6b"],
    ] {
        small(&img, args).assert().code(1);
        assert_eq!(fs::read(&img).expect("image"), before, "{args:?}");
    }
    // A backslash escape names the byte: "\x6b" is "k".
    small(&img, &["get", "\\x6b"]).assert().success().stdout("v\n");
    small(&img, &["ls", "\\x6b"]).assert().success();
    small(&img, &["ls", "--prefix-hex", "6b"]).assert().success().stdout(predicate::str::starts_with("k "));
}

/// `info` and `check` say what Mbed OS does with the image: a compact-record store is not an
/// Mbed OS image, and Mbed's first write loses every value in it.
#[test]
fn info_and_check_say_what_mbed_os_does_with_the_image() {
    let (_d, img) = setup();
    small(&img, &["--record-format", "compact", "set", "k", "v"]).assert().success();
    for cmd in ["info", "check"] {
        small(&img, &[cmd]).assert().success().stdout(
            predicate::str::contains("Mbed OS:        not an Mbed OS image")
                .and(predicate::str::contains("every value is lost")),
        );
        let j = json_of(&small(&img, &[cmd, "--json"]).assert().success().get_output().stdout);
        let said = if cmd == "info" { &j["layout"]["mbed_os"] } else { &j["mbed_os"] };
        assert!(said.as_str().is_some_and(|s| s.starts_with("not an Mbed OS image")), "{cmd}: {j}");
    }
    let (_d, img) = setup();
    small(&img, &["set", "k", "v"]).assert().success();
    for cmd in ["info", "check"] {
        small(&img, &[cmd])
            .assert()
            .success()
            .stdout(predicate::str::contains("Mbed OS:        an Mbed OS image"));
    }
}
