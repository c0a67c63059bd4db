// SPDX-License-Identifier: Apache-2.0 OR MIT
//! kv_share against kv_stats on one fake store, under the TAB's permissions and under the
//! other configurations a board could give it.

use std::rc::Rc;

use fake_kv::{command, Clock, KeyValue, Permissions, Rng, RngMode, Store};
use libtock_platform::ErrorCode;
use libtock_unittest::fake;

use super::*;

/// kv_stats's TAB: `--short-id 1 --write_id 1 --read_ids 1 --access_ids 1`.
fn kv_stats_tab() -> Permissions {
    Permissions::from_tbf(1, 1, &[1], &[1])
}

/// kv_share's TAB: `--short-id 2 --write_id 2 --read_ids 1,2 --access_ids 2`.
fn granted() -> Permissions {
    Permissions::from_tbf(2, 2, &[1, 2], &[2])
}

/// kv_share without read access to kv_stats (`kv_share-noread.tab`: `--read_ids 2`).
fn not_granted() -> Permissions {
    Permissions::from_tbf(2, 2, &[2], &[2])
}

/// A wrong configuration: kv_share may modify kv_stats's keys.
fn modify_granted() -> Permissions {
    Permissions::from_tbf(2, 2, &[1, 2], &[1, 2])
}

const HZ: u32 = 1_000;

/// Fast timing for the tests (the fake clock fires alarms at once anyway).
const CONFIG: Config = Config { settle_ms: 500, read_attempts: 3, retry_ms: 200 };

struct Boot<T> {
    result: T,
    console: String,
    ops: Vec<fake_kv::Op>,
    /// Milliseconds the app slept.
    slept_ms: u32,
}

fn boot<T>(store: &Rc<Store>, permissions: Permissions, app: impl FnOnce() -> T) -> Boot<T> {
    let kernel = fake::Kernel::new();
    let console = fake::Console::new();
    let kv = KeyValue::new(store, permissions);
    let clock = Clock::new(HZ, 0);
    kernel.add_driver(&console);
    kernel.add_driver(&kv);
    kernel.add_driver(&clock);
    kernel.add_driver(&Rng::new(RngMode::Counter(1)));
    let result = app();
    drop(kernel);
    Boot {
        result,
        console: String::from_utf8(console.take_bytes()).unwrap(),
        ops: kv.take_log(),
        slept_ms: clock.now() * (1000 / HZ),
    }
}

fn kv_stats_boot(store: &Rc<Store>) -> String {
    let b = boot(store, kv_stats_tab(), kv_stats::run::<fake::Syscalls>);
    assert!(b.result.is_ok(), "{}", b.console);
    b.console
}

fn kv_share_boot(store: &Rc<Store>, permissions: Permissions) -> Boot<Report> {
    boot(store, permissions, || run::<fake::Syscalls>(CONFIG))
}

/// kv_share never issues `set` (nor add, nor delete) on kv_stats's key.
fn assert_stats_only_read_or_updated(ops: &[fake_kv::Op]) {
    for op in ops.iter().filter(|o| o.key == KEY) {
        assert!(op.command == command::GET || op.command == command::UPDATE, "{op:?}");
    }
}

#[test]
fn with_the_tab_permissions_it_reads_stats_cannot_overwrite_them_and_keeps_its_own_key() {
    let store = Store::new();
    kv_stats_boot(&store);
    let stats_before = store.get(KEY).unwrap();

    let b = kv_share_boot(&store, granted());
    assert_eq!(
        b.console,
        "kv_share: read stats: allowed (run count 1)\n\
         kv_share: overwrite stats: denied\n\
         kv_share: own key: ok\n"
    );
    let run_count_1 = SketchStats::from_bytes(&stats_before.value).unwrap();
    assert_eq!(
        b.result,
        Report { read: Read::Allowed(run_count_1), overwrite: Overwrite::Denied, own: Own::Ok(1) }
    );
    assert_eq!(store.get(KEY).unwrap(), stats_before, "stats untouched, still kv_stats's");
    let own = store.get(OWN_KEY).unwrap();
    assert_eq!((own.write_id, own.value.as_slice()), (2, &1u32.to_le_bytes()[..]));
    assert_stats_only_read_or_updated(&b.ops);
    // It waited for kv_stats before reading, and read once.
    assert_eq!(b.slept_ms, CONFIG.settle_ms);
    assert_eq!(b.ops.iter().filter(|o| o.key == KEY && o.command == command::GET).count(), 1);

    // Next boot: both apps again; kv_share sees the new run count and its counter goes on.
    kv_stats_boot(&store);
    let b = kv_share_boot(&store, granted());
    assert_eq!(
        b.console,
        "kv_share: read stats: allowed (run count 2)\n\
         kv_share: overwrite stats: denied\n\
         kv_share: own key: ok\n"
    );
    assert_eq!(b.result.own, Own::Ok(2));
    // And kv_stats is unaffected by kv_share's key.
    assert!(kv_stats_boot(&store).contains("    Run Count: 3\n"));
}

#[test]
fn without_read_access_stats_are_denied_after_the_retries() {
    let store = Store::new();
    kv_stats_boot(&store);
    let stats_before = store.get(KEY).unwrap();

    let b = kv_share_boot(&store, not_granted());
    assert_eq!(
        b.console,
        "kv_share: read stats: denied\n\
         kv_share: overwrite stats: denied\n\
         kv_share: own key: ok\n"
    );
    assert_eq!(b.result, Report { read: Read::Denied, overwrite: Overwrite::Denied, own: Own::Ok(1) });
    assert_eq!(store.get(KEY).unwrap(), stats_before);
    assert_eq!(b.ops.iter().filter(|o| o.key == KEY && o.command == command::GET).count(), 3);
    assert_eq!(b.slept_ms, CONFIG.settle_ms + 2 * CONFIG.retry_ms);
    // The update wrote zeros, not anything it could not read, and was refused.
    assert_stats_only_read_or_updated(&b.ops);
}

#[test]
fn missing_stats_look_denied_and_are_never_created() {
    let store = Store::new();
    let b = kv_share_boot(&store, granted());
    assert_eq!(
        b.console,
        "kv_share: read stats: denied\n\
         kv_share: overwrite stats: denied\n\
         kv_share: own key: ok\n"
    );
    assert!(store.get(KEY).is_none(), "update never creates the key");
    // kv_stats then starts from scratch as usual.
    assert!(kv_stats_boot(&store).contains("No previous data was found.\n"));
}

#[test]
fn a_board_granting_modify_access_lets_it_take_over_stats() {
    // The reason kv_share's access_ids must not include 1: an allowed update re-stamps the
    // record with kv_share's id, after which kv_stats can neither read nor replace it.
    let store = Store::new();
    kv_stats_boot(&store);
    let b = kv_share_boot(&store, modify_granted());
    assert_eq!(
        b.console,
        "kv_share: read stats: allowed (run count 1)\n\
         kv_share: overwrite stats: allowed (kv_share's access_ids grant id 1)\n\
         kv_share: own key: ok\n"
    );
    assert_eq!(b.result.overwrite, Overwrite::Allowed);
    let stats = store.get(KEY).unwrap();
    assert_eq!(stats.write_id, 2);
    assert_eq!(SketchStats::from_bytes(&stats.value).unwrap().run_count, 1, "same bytes written back");

    let b = boot(&store, kv_stats_tab(), kv_stats::run::<fake::Syscalls>);
    assert!(b.console.contains("No previous data was found.\n"));
    assert!(b.console.ends_with("Error while saving to key-value store: set stats: NOSUPPORT\n"));
}

#[test]
fn own_key_needs_write_permission() {
    let store = Store::new();
    let b = kv_share_boot(&store, Permissions::from_tbf(2, 0, &[1, 2], &[2]));
    assert!(b.console.ends_with("kv_share: own key: failed (set: INVALID)\n"));
    assert_eq!(b.result.own, Own::Failed("set", ErrorCode::Invalid));
    // The refused update on stats is also INVALID at the command (no write id at all).
    assert_eq!(b.result.overwrite, Overwrite::Error(ErrorCode::Invalid));
}

#[test]
fn own_key_needs_its_id_in_both_lists() {
    // Own id missing from read_ids: the write works, reading it back does not.
    let store = Store::new();
    let b = kv_share_boot(&store, Permissions::from_tbf(2, 2, &[1], &[2]));
    assert!(b.console.ends_with("kv_share: own key: failed (read back: NOSUPPORT)\n"));
    // Own id missing from access_ids: the first write creates the key, the next boot's
    // write is refused.
    let store = Store::new();
    let perms = Permissions::from_tbf(2, 2, &[1, 2], &[]);
    assert_eq!(kv_share_boot(&store, perms.clone()).result.own, Own::Ok(1));
    assert_eq!(kv_share_boot(&store, perms).result.own, Own::Failed("set", ErrorCode::NoSupport));
}

#[test]
fn a_stats_value_that_is_not_the_struct_is_reported() {
    let store = Store::new();
    store.insert(KEY, 1, b"short");
    let b = kv_share_boot(&store, granted());
    assert!(b.console.starts_with("kv_share: read stats: allowed (but 5 bytes, not a SketchStats)\n"));
}

#[test]
fn store_errors_are_reported_not_mistaken_for_denial() {
    let store = Store::new();
    kv_stats_boot(&store);
    let kernel = fake::Kernel::new();
    let console = fake::Console::new();
    let kv = KeyValue::new(&store, granted());
    kv.fail_next(command::GET, fake_kv::Failure::Upcall(ErrorCode::Fail));
    kv.fail_next(command::UPDATE, fake_kv::Failure::Command(ErrorCode::Busy));
    kernel.add_driver(&console);
    kernel.add_driver(&kv);
    kernel.add_driver(&Clock::new(HZ, 0));
    let report = run::<fake::Syscalls>(CONFIG);
    drop(kernel);
    assert_eq!(report.read, Read::Error(ErrorCode::Fail));
    assert_eq!(report.overwrite, Overwrite::Error(ErrorCode::Busy));
    assert_eq!(
        String::from_utf8(console.take_bytes()).unwrap(),
        "kv_share: read stats: error (FAIL)\n\
         kv_share: overwrite stats: error (BUSY)\n\
         kv_share: own key: ok\n"
    );
}
