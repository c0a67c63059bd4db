// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The sketch's cycle on the fake kernel: two boots against one store, the sketch's error
//! paths, the permission model as kv_stats sees it, and the RNG fallbacks.

use std::rc::Rc;

use fake_kv::{
    command, Clock, Completion, Failure as Inject, KeyValue, Op, Permissions, Rng, RngMode, Store,
};
use libtock_platform::ErrorCode;
use libtock_unittest::fake;

use super::time::{RandomSource, RngTrouble};
use super::*;

/// kv_stats's TBF permissions: `--short-id 1 --write_id 1 --read_ids 1 --access_ids 1`.
fn kv_stats_permissions() -> Permissions {
    Permissions::from_tbf(1, 1, &[1], &[1])
}

/// What the simulated board has besides the console.
struct Board {
    kv: Option<Rc<KeyValue>>,
    /// Alarm frequency and the tick count at boot.
    clock: Option<(u32, u32)>,
    rng: Option<RngMode>,
}

impl Board {
    fn new(store: &Rc<Store>) -> Board {
        Board {
            kv: Some(KeyValue::new(store, kv_stats_permissions())),
            clock: Some((1_000_000, 1_234_567)),
            rng: Some(RngMode::Counter(0x10)),
        }
    }
}

struct Boot {
    result: Result<Cycle, Failure>,
    console: String,
    ops: Vec<Op>,
}

/// Boots the board once and runs the app.
fn boot(board: Board) -> Boot {
    let kernel = fake::Kernel::new();
    let console = fake::Console::new();
    kernel.add_driver(&console);
    if let Some(kv) = &board.kv {
        kernel.add_driver(kv);
    }
    if let Some((hz, now)) = board.clock {
        kernel.add_driver(&Clock::new(hz, now));
    }
    if let Some(mode) = board.rng {
        kernel.add_driver(&Rng::new(mode));
    }
    let result = run::<fake::Syscalls>();
    drop(kernel);
    Boot {
        result,
        console: String::from_utf8(console.take_bytes()).expect("UTF-8 console output"),
        ops: board.kv.map(|kv| kv.take_log()).unwrap_or_default(),
    }
}

/// The RNG fake's `Counter(0x10)` bytes as a little-endian u32.
const RANDOM: u32 = u32::from_le_bytes([0x10, 0x11, 0x12, 0x13]);

fn stored_stats(store: &Store) -> SketchStats {
    let r = store.get(KEY).expect("stats stored");
    assert_eq!(r.write_id, 1, "stored under kv_stats's id");
    assert_eq!(r.value.len(), 12);
    SketchStats::from_bytes(&r.value).unwrap()
}

#[test]
fn first_boot_finds_nothing_and_writes_run_count_1_then_second_boot_continues() {
    let store = Store::new();

    let first = boot(Board::new(&store));
    let expected = format!(
        "Retrieving Sketch Stats\n\
         No previous data was found.\n\
         Sketch Stats updated\n\
         Current Stats\n    \
             Startup Time: 1234\n    \
             Random Value: {RANDOM}\n    \
             Run Count: 1\n"
    );
    assert_eq!(first.console, expected);
    let written = SketchStats { startup_time: 1234, random_value: RANDOM, run_count: 1 };
    assert_eq!(first.result, Ok(Cycle { previous: None, current: written, random: RandomSource::Rng }));
    assert_eq!(stored_stats(&store), written);
    // One get, one set, both on `stats`.
    let cmds: Vec<(u32, &[u8])> = first.ops.iter().map(|o| (o.command, o.key.as_slice())).collect();
    assert_eq!(cmds, [(command::GET, KEY), (command::SET, KEY)]);
    assert_eq!(first.ops[0].completion, Completion::Upcall { status: Err(ErrorCode::NoSupport), len: 0 });

    // Reboot: same store, later clock, other random bytes.
    let mut board = Board::new(&store);
    board.clock = Some((32_768, 32_768 * 2));
    board.rng = Some(RngMode::Counter(0xA0));
    let second = boot(board);
    let random2 = u32::from_le_bytes([0xA0, 0xA1, 0xA2, 0xA3]);
    let expected = format!(
        "Retrieving Sketch Stats\n\
         Previous Stats\n    \
             Startup Time: 1234\n    \
             Random Value: {RANDOM}\n    \
             Run Count: 1\n\
         Sketch Stats updated\n\
         Current Stats\n    \
             Startup Time: 2000\n    \
             Random Value: {random2}\n    \
             Run Count: 2\n"
    );
    assert_eq!(second.console, expected);
    assert_eq!(stored_stats(&store).run_count, 2);

    // And a third.
    let third = boot(Board::new(&store));
    assert!(third.console.contains("Previous Stats\n    Startup Time: 2000\n"));
    assert_eq!(stored_stats(&store).run_count, 3);
}

#[test]
fn longer_value_is_read_by_its_first_12_bytes_like_the_sketchs_memcpy() {
    let store = Store::new();
    let mut value = SketchStats { startup_time: 5, random_value: 6, run_count: 41 }.to_bytes().to_vec();
    value.extend_from_slice(b"trailing bytes");
    store.insert(KEY, 1, &value);
    let b = boot(Board::new(&store));
    assert!(b
        .console
        .contains("Previous Stats\n    Startup Time: 5\n    Random Value: 6\n    Run Count: 41\n"));
    // The kernel said SIZE with the full length; the app used what was copied.
    assert_eq!(b.ops[0].completion, Completion::Upcall { status: Err(ErrorCode::Size), len: 26 });
    assert_eq!(stored_stats(&store).run_count, 42);
}

#[test]
fn short_value_prints_the_error_and_stops() {
    let store = Store::new();
    store.insert(KEY, 1, &[1, 2, 3, 4, 5]);
    let b = boot(Board::new(&store));
    assert_eq!(
        b.console,
        "Retrieving Sketch Stats\n\
         Error reading data from key-value store: stats holds 5 bytes, expected 12\n"
    );
    assert_eq!(b.result, Err(Failure::TooShort(5)));
    assert_eq!(b.result.unwrap_err().error_code(), ErrorCode::Size);
    assert_eq!(b.ops.len(), 1, "nothing written after the failure");
    assert_eq!(store.get(KEY).unwrap().value, [1, 2, 3, 4, 5]);
}

#[test]
fn read_error_prints_what_failed_and_stops() {
    let store = Store::new();
    store.insert(KEY, 1, &SketchStats { startup_time: 1, random_value: 2, run_count: 3 }.to_bytes());
    let board = Board::new(&store);
    board.kv.as_ref().unwrap().fail_next(command::GET, Inject::Upcall(ErrorCode::Fail));
    let b = boot(board);
    assert_eq!(
        b.console,
        "Retrieving Sketch Stats\nError reading data from key-value store: get stats: FAIL\n"
    );
    assert_eq!(b.result, Err(Failure::Read(ErrorCode::Fail)));
    assert_eq!(b.ops.len(), 1);
    assert_eq!(stored_stats(&store).run_count, 3);
}

#[test]
fn write_error_prints_what_failed_and_stops() {
    let store = Store::new();
    store.set_capacity(Some(8)); // too small for any record
    let b = boot(Board::new(&store));
    assert_eq!(
        b.console,
        "Retrieving Sketch Stats\n\
         No previous data was found.\n\
         Error while saving to key-value store: set stats: NOMEM\n"
    );
    assert_eq!(b.result, Err(Failure::Write(ErrorCode::NoMem)));
    assert!(store.get(KEY).is_none());
}

#[test]
fn no_kv_driver_is_a_read_error() {
    let store = Store::new();
    let mut board = Board::new(&store);
    board.kv = None;
    let b = boot(board);
    assert_eq!(
        b.console,
        "Retrieving Sketch Stats\nError reading data from key-value store: get stats: NODEVICE\n"
    );
    assert_eq!(b.result, Err(Failure::Read(ErrorCode::NoDevice)));
}

#[test]
fn stats_written_by_an_app_it_may_not_modify_cannot_be_replaced() {
    // Someone else's `stats` (id 2, not in kv_stats's read or access ids) is invisible to
    // kv_stats (NOSUPPORT, as if absent), and set refuses to overwrite it.
    let store = Store::new();
    store.insert(KEY, 2, &SketchStats { startup_time: 0, random_value: 0, run_count: 99 }.to_bytes());
    let b = boot(Board::new(&store));
    assert_eq!(
        b.console,
        "Retrieving Sketch Stats\n\
         No previous data was found.\n\
         Error while saving to key-value store: set stats: NOSUPPORT\n"
    );
    assert_eq!(store.get(KEY).unwrap().write_id, 2);
}

#[test]
fn without_write_permission_the_set_is_refused() {
    let store = Store::new();
    let mut board = Board::new(&store);
    board.kv = Some(KeyValue::new(&store, Permissions::null()));
    let b = boot(board);
    assert!(b.console.ends_with("Error while saving to key-value store: set stats: INVALID\n"));
    assert_eq!(b.ops[1].completion, Completion::Refused(ErrorCode::Invalid));
}

#[test]
fn run_count_wraps_like_the_sketchs_uint32() {
    let store = Store::new();
    store.insert(KEY, 1, &SketchStats { startup_time: 0, random_value: 0, run_count: u32::MAX }.to_bytes());
    let b = boot(Board::new(&store));
    assert!(b.console.ends_with("    Run Count: 0\n"));
    assert_eq!(stored_stats(&store).run_count, 0);
}

/// Runs with the given RNG and returns the console line about it and the random value.
fn random_with(rng: Option<RngMode>) -> (Option<String>, u32, RandomSource) {
    let store = Store::new();
    let mut board = Board::new(&store);
    board.rng = rng;
    let b = boot(board);
    let note = b.console.lines().find(|l| l.starts_with("Note:")).map(str::to_owned);
    let cycle = b.result.expect("cycle completes");
    (note, cycle.current.random_value, cycle.random)
}

#[test]
fn missing_rng_falls_back_to_the_alarm_ticks_and_says_so() {
    let (note, value, source) = random_with(None);
    assert_eq!(
        note.as_deref(),
        Some("Note: RNG unavailable (NODEVICE); random value derived from the alarm ticks")
    );
    assert_eq!(source, RandomSource::AlarmTicks(RngTrouble::Error(ErrorCode::NoDevice)));
    assert_ne!(value, 0);
    assert_ne!(value, 1_234_567);
}

#[test]
fn refusing_rng_falls_back() {
    let (note, _, source) = random_with(Some(RngMode::Refuse(ErrorCode::Busy)));
    assert_eq!(source, RandomSource::AlarmTicks(RngTrouble::Error(ErrorCode::Busy)));
    assert!(note.unwrap().contains("(BUSY)"));
}

#[test]
fn stalled_rng_times_out_and_falls_back() {
    let (note, _, source) = random_with(Some(RngMode::Stalled));
    assert_eq!(source, RandomSource::AlarmTicks(RngTrouble::TimedOut));
    assert_eq!(
        note.as_deref(),
        Some("Note: RNG unavailable (no answer); random value derived from the alarm ticks")
    );
}

#[test]
fn without_an_alarm_startup_time_is_0_and_said_so() {
    let store = Store::new();
    let mut board = Board::new(&store);
    board.clock = None;
    let b = boot(board);
    assert!(b.console.contains("Note: no alarm driver (NODEVICE); startup time 0\n"));
    assert!(b.console.contains("    Startup Time: 0\n"));
    assert_eq!(b.result.unwrap().random, RandomSource::Rng);
}

#[test]
fn millis_is_exact_at_any_frequency() {
    for (hz, ticks, ms) in
        [(32_768, 32_768 * 3, 3_000), (10_000_000, 123_456_789, 12_345), (1_000, 17, 17), (100, 250, 2_500)]
    {
        let kernel = fake::Kernel::new();
        kernel.add_driver(&Clock::new(hz, ticks));
        assert_eq!(time::millis::<fake::Syscalls>(), Ok(ms), "{hz} Hz");
        drop(kernel);
    }
}
