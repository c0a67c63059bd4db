// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! The KV syscall driver on its own: processes and the KV layer below are fakes the test
//! drives step by step (allows swapped or revoked, processes dying and restarting, each
//! operation completed by hand), and every upcall is checked for its status and length.
//!
//! ```text
//! test: spawn/kill/restart, allow, subscribe, command ... complete, run deferred calls
//! FakeApps --Apps--> KvSyscallDriver (under test) --KVPermissions--> FakeKv
//! ```

// The scenarios name their apps a, b, c as the issue and the docs do.
#![allow(clippy::many_single_char_names)]

mod common;
mod driver_fake;

use capsules_tdbstore::kv_syscall::{AppOp, GC_PATIENCE, KEY_LEN, VALUE_BUF_LEN};
use common::setup;
use driver_fake::{cmd, driver, run_deferred, status, Call, Driver, FakeKv, Pid, Upcall};
use kernel::ErrorCode;

/// Upstream's `KVStorePermissions` header.
const HEADER: usize = 9;
/// The longest value an app can pass.
const MAX_VALUE: usize = VALUE_BUF_LEN - HEADER;

struct Rig {
    kv: &'static FakeKv,
    d: &'static Driver<FakeKv>,
}

impl Rig {
    fn new() -> Rig {
        let kv = FakeKv::new(HEADER);
        Rig { kv, d: driver(kv) }
    }

    fn spawn(&self) -> Pid {
        self.d.apps().spawn()
    }

    fn apps(&self) -> &driver_fake::FakeApps {
        self.d.apps()
    }

    fn command(&self, pid: Pid, n: usize) -> Result<(), ErrorCode> {
        self.d.app_command(n, pid)
    }

    /// Allows `key` (and `value`), then issues `n`.
    fn issue(&self, pid: Pid, n: usize, key: &[u8], value: &[u8]) -> Result<(), ErrorCode> {
        self.apps().allow_key(pid, key);
        self.apps().allow_value(pid, value);
        self.command(pid, n)
    }

    fn upcalls(&self) -> Vec<Upcall> {
        self.apps().take_upcalls()
    }

    /// The one upcall since the last look, as (pid, status, len).
    fn upcall(&self) -> (Pid, usize, usize) {
        let u = self.upcalls();
        assert_eq!(u.len(), 1, "expected one upcall, got {u:?}");
        (u[0].pid, u[0].status, u[0].len)
    }

    fn no_upcall(&self) {
        assert_eq!(self.upcalls(), vec![]);
    }

    /// Completes the running operation and runs the deferred call that starts the next.
    fn complete(&self, r: Result<(), ErrorCode>) {
        self.kv.complete(r);
        run_deferred();
    }

    fn complete_get(&self, r: Result<(), ErrorCode>, found: &[u8]) {
        self.kv.complete_with(r, found);
        run_deferred();
    }

    /// The one call made on the KV layer since the last look.
    fn call(&self) -> Call {
        let c = self.kv.take_calls();
        assert_eq!(c.len(), 1, "expected one KV call, got {c:?}");
        c.into_iter().next().unwrap()
    }

    fn no_call(&self) {
        assert_eq!(self.kv.take_calls(), vec![]);
    }

    /// Whether `pid`'s next command is accepted (it is then completed and its upcall taken).
    fn accepts_next(&self, pid: Pid) -> bool {
        let ok = self.issue(pid, cmd::DELETE, b"next", b"").is_ok();
        if ok {
            run_deferred();
            assert_eq!(self.kv.pending(), Some(AppOp::Delete));
            self.complete(Ok(()));
            assert_eq!(self.upcall(), (pid, 0, 0));
            self.kv.take_calls();
        }
        ok
    }
}

fn ok() -> usize {
    status(Ok(()))
}

fn err(e: ErrorCode) -> usize {
    status(Err(e))
}

// ------------------------------------------------------------------------------------------
// Each command, its call below and its upcall.

#[test]
fn every_command_reaches_the_layer_below_and_answers_status_and_length() {
    let _g = setup();
    let r = Rig::new();
    let a = r.spawn();
    let write_id = r.apps().storage_permissions(a).unwrap().get_write_id();
    assert_eq!(r.command(a, cmd::EXISTS), Ok(()));
    r.no_call();
    for (n, op) in [(cmd::SET, AppOp::Set), (cmd::ADD, AppOp::Add), (cmd::UPDATE, AppOp::Update)] {
        assert_eq!(r.issue(a, n, b"key", b"hello"), Ok(()));
        assert_eq!(r.call(), Call { op, key: b"key".to_vec(), value: b"hello".to_vec(), write_id });
        r.no_upcall();
        r.complete(Ok(()));
        assert_eq!(r.upcall(), (a, ok(), 0));
    }
    assert_eq!(r.issue(a, cmd::DELETE, b"key", b"ignored"), Ok(()));
    assert_eq!(r.call(), Call { op: AppOp::Delete, key: b"key".to_vec(), value: vec![], write_id });
    r.complete(Ok(()));
    assert_eq!(r.upcall(), (a, ok(), 0));

    r.apps().allow_rw(a, 8);
    assert_eq!(r.issue(a, cmd::GET, b"key", b"ignored"), Ok(()));
    assert_eq!(r.call(), Call { op: AppOp::Get, key: b"key".to_vec(), value: vec![], write_id });
    r.complete_get(Ok(()), b"hello");
    assert_eq!(r.upcall(), (a, ok(), 5));
    assert_eq!(r.apps().rw(a), b"hello\xEE\xEE\xEE");

    assert_eq!(r.issue(a, cmd::GC, &[0; 100], b""), Ok(()), "a collection ignores the key");
    assert_eq!(r.call().op, AppOp::GarbageCollect);
    r.complete(Ok(()));
    assert_eq!(r.upcall(), (a, ok(), 0));
    assert_eq!(r.d.queued_count(), 0);
}

#[test]
fn an_empty_key_and_an_empty_value_are_passed_as_such() {
    let _g = setup();
    let r = Rig::new();
    let a = r.spawn();
    assert_eq!(r.issue(a, cmd::SET, b"", b""), Ok(()));
    let c = r.call();
    assert_eq!((c.key, c.value), (vec![], vec![]));
    r.complete(Ok(()));
    assert_eq!(r.upcall(), (a, ok(), 0));
    r.apps().allow_rw(a, 4);
    assert_eq!(r.issue(a, cmd::GET, b"k", b""), Ok(()));
    r.complete_get(Ok(()), b"");
    assert_eq!(r.upcall(), (a, ok(), 0));
    assert_eq!(r.apps().rw(a), [0xEE; 4], "nothing written for an empty value");
}

#[test]
fn completion_errors_reach_the_app_with_length_zero() {
    let _g = setup();
    let r = Rig::new();
    let a = r.spawn();
    let errors = [ErrorCode::NOSUPPORT, ErrorCode::FAIL, ErrorCode::NOMEM, ErrorCode::SIZE, ErrorCode::INVAL];
    for (n, e) in [cmd::SET, cmd::ADD, cmd::UPDATE, cmd::DELETE, cmd::GC].into_iter().zip(errors) {
        assert_eq!(r.issue(a, n, b"key", b"v"), Ok(()));
        r.complete(Err(e));
        assert_eq!(r.upcall(), (a, err(e), 0), "command {n}");
    }
    r.apps().allow_rw(a, 8);
    assert_eq!(r.issue(a, cmd::GET, b"key", b""), Ok(()));
    // The layer below failed: whatever is in its buffer is not the app's.
    r.complete_get(Err(ErrorCode::NOSUPPORT), b"stale");
    assert_eq!(r.upcall(), (a, err(ErrorCode::NOSUPPORT), 0));
    assert_eq!(r.apps().rw(a), [0xEE; 8]);
    assert!(r.accepts_next(a));
}

// ------------------------------------------------------------------------------------------
// A get whose value does not fit.

#[test]
fn a_get_into_a_short_buffer_reports_size_and_the_full_length() {
    let _g = setup();
    let r = Rig::new();
    let a = r.spawn();
    let value: Vec<u8> = (0..MAX_VALUE as u32).map(|i| i as u8).collect();
    r.apps().allow_rw(a, 10);
    assert_eq!(r.issue(a, cmd::GET, b"big", b""), Ok(()));
    r.complete_get(Ok(()), &value);
    assert_eq!(r.upcall(), (a, err(ErrorCode::SIZE), 503));
    assert_eq!(r.apps().rw(a), value[..10], "the value's first bytes");

    // Exactly the value's length fits.
    r.apps().allow_rw(a, 503);
    assert_eq!(r.issue(a, cmd::GET, b"big", b""), Ok(()));
    r.complete_get(Ok(()), &value);
    assert_eq!(r.upcall(), (a, ok(), 503));
    assert_eq!(r.apps().rw(a), value);

    // One byte short.
    r.apps().allow_rw(a, 502);
    assert_eq!(r.issue(a, cmd::GET, b"big", b""), Ok(()));
    r.complete_get(Ok(()), &value);
    assert_eq!(r.upcall(), (a, err(ErrorCode::SIZE), 503));
}

#[test]
fn a_get_without_a_buffer_reports_size_and_the_length() {
    let _g = setup();
    let r = Rig::new();
    let a = r.spawn();
    assert_eq!(r.issue(a, cmd::GET, b"k", b""), Ok(()));
    r.complete_get(Ok(()), b"abc");
    assert_eq!(r.upcall(), (a, err(ErrorCode::SIZE), 3));
}

// ------------------------------------------------------------------------------------------
// Refused at the call.

#[test]
fn commands_refused_at_the_call_leave_nothing_behind() {
    let _g = setup();
    let r = Rig::new();
    let a = r.spawn();
    assert_eq!(r.command(a, 7), Err(ErrorCode::NOSUPPORT));
    assert_eq!(r.command(a, usize::MAX), Err(ErrorCode::NOSUPPORT));
    for n in [cmd::GET, cmd::SET, cmd::DELETE, cmd::ADD, cmd::UPDATE] {
        assert_eq!(r.issue(a, n, &[b'k'; KEY_LEN + 1], b"v"), Err(ErrorCode::SIZE), "command {n}");
    }
    for n in [cmd::SET, cmd::ADD, cmd::UPDATE] {
        assert_eq!(r.issue(a, n, b"k", &vec![0; MAX_VALUE + 1]), Err(ErrorCode::SIZE), "command {n}");
    }
    r.no_call();
    r.no_upcall();

    // The limits themselves are accepted; get and delete ignore the value allow.
    let key = [b'k'; KEY_LEN];
    let value = vec![7; MAX_VALUE];
    for n in [cmd::SET, cmd::ADD, cmd::UPDATE] {
        assert_eq!(r.issue(a, n, &key, &value), Ok(()));
        let c = r.call();
        assert_eq!((c.key, c.value), (key.to_vec(), value.clone()));
        r.complete(Ok(()));
        r.upcall();
    }
    for n in [cmd::GET, cmd::DELETE] {
        assert_eq!(r.issue(a, n, &key, &[0; VALUE_BUF_LEN + 1]), Ok(()));
        assert_eq!(r.call().key, key.to_vec());
        r.complete(Ok(()));
        r.upcall();
    }
    assert!(r.accepts_next(a));
}

#[test]
fn an_app_without_storage_permissions_gets_inval_and_nothing_runs() {
    let _g = setup();
    let r = Rig::new();
    let a = r.apps().spawn_without_permissions();
    for n in [cmd::GET, cmd::SET, cmd::DELETE, cmd::ADD, cmd::UPDATE, cmd::GC] {
        assert_eq!(r.issue(a, n, b"k", b"v"), Err(ErrorCode::INVAL), "command {n}");
    }
    assert_eq!(r.command(a, cmd::EXISTS), Ok(()));
    r.no_call();
    r.no_upcall();
    // Also while another app's operation runs (queued commands are checked the same way).
    let b = r.spawn();
    assert_eq!(r.issue(b, cmd::GC, b"", b""), Ok(()));
    assert_eq!(r.issue(a, cmd::SET, b"k", b"v"), Err(ErrorCode::INVAL));
    r.complete(Ok(()));
    assert_eq!(r.upcall(), (b, ok(), 0));
    assert_eq!(r.kv.take_calls().len(), 1);
}

#[test]
fn a_second_command_while_the_first_is_outstanding_gets_nomem() {
    let _g = setup();
    let r = Rig::new();
    let (a, b) = (r.spawn(), r.spawn());
    assert_eq!(r.issue(a, cmd::SET, b"k", b"v"), Ok(()));
    assert_eq!(r.issue(a, cmd::GET, b"k", b""), Err(ErrorCode::NOMEM), "running");
    assert_eq!(r.issue(b, cmd::SET, b"k", b"v"), Ok(()));
    assert_eq!(r.issue(b, cmd::GC, b"", b""), Err(ErrorCode::NOMEM), "queued");
    r.complete(Ok(()));
    assert_eq!(r.upcall(), (a, ok(), 0));
    r.complete(Ok(()));
    assert_eq!(r.upcall(), (b, ok(), 0));
    assert_eq!(r.kv.take_calls().len(), 2, "the refused commands never ran");
}

#[test]
fn a_call_the_layer_below_refuses_is_answered_at_once_and_leaves_nothing_pending() {
    let _g = setup();
    let r = Rig::new();
    let a = r.spawn();
    for n in [cmd::GET, cmd::SET, cmd::DELETE, cmd::ADD, cmd::UPDATE, cmd::GC] {
        r.kv.refuse_next.set(Some(ErrorCode::BUSY));
        assert_eq!(r.issue(a, n, b"k", b"v"), Err(ErrorCode::BUSY), "command {n}");
        assert_eq!(r.kv.pending(), None);
        run_deferred();
        r.no_upcall();
        // The buffers came back: the next command runs with the same key.
        assert_eq!(r.issue(a, n, b"k", b"v"), Ok(()));
        r.complete(Ok(()));
        r.upcalls();
    }
    assert_eq!(r.kv.take_calls().len(), 12);
}

#[test]
fn a_dead_app_cannot_issue_commands() {
    let _g = setup();
    let r = Rig::new();
    let a = r.spawn();
    r.apps().kill(a);
    assert!(r.command(a, cmd::SET).is_err());
    r.no_call();
}

// ------------------------------------------------------------------------------------------
// Queueing, order and fairness.

#[test]
fn a_command_while_another_app_runs_is_queued_and_started_after_it() {
    let _g = setup();
    let r = Rig::new();
    let (a, b) = (r.spawn(), r.spawn());
    assert_eq!(r.issue(a, cmd::SET, b"ka", b"va"), Ok(()));
    assert_eq!(r.issue(b, cmd::SET, b"kb", b"vb"), Ok(()));
    assert_eq!(r.d.queued_count(), 1);
    assert_eq!(r.call().key, b"ka");
    r.kv.complete(Ok(()));
    // Not started inside the completion: from a deferred call.
    r.no_call();
    assert_eq!(r.upcall(), (a, ok(), 0));
    run_deferred();
    assert_eq!(
        r.call(),
        Call {
            op: AppOp::Set,
            key: b"kb".to_vec(),
            value: b"vb".to_vec(),
            write_id: r.apps().storage_permissions(b).unwrap().get_write_id()
        }
    );
    r.complete(Ok(()));
    assert_eq!(r.upcall(), (b, ok(), 0));
}

#[test]
fn a_command_between_a_completion_and_the_next_start_queues_behind_the_waiting_ones() {
    let _g = setup();
    let r = Rig::new();
    let (a, b, c) = (r.spawn(), r.spawn(), r.spawn());
    assert_eq!(r.issue(a, cmd::DELETE, b"a", b""), Ok(()));
    assert_eq!(r.issue(b, cmd::DELETE, b"b", b""), Ok(()));
    r.kv.take_calls();
    r.kv.complete(Ok(()));
    // Nothing runs now, but b waits: c must not overtake it.
    assert_eq!(r.issue(c, cmd::DELETE, b"c", b""), Ok(()));
    r.no_call();
    run_deferred();
    assert_eq!(r.call().key, b"b");
    r.complete(Ok(()));
    assert_eq!(r.call().key, b"c");
    r.complete(Ok(()));
    let order: Vec<Pid> = r.upcalls().iter().map(|u| u.pid).collect();
    assert_eq!(order, [a, b, c]);
}

/// Runs operations until none is left, returning whose ran in order.
fn drain(r: &Rig) -> Vec<Vec<u8>> {
    let mut ran = Vec::new();
    while r.kv.pending().is_some() {
        ran.push(r.call().key);
        r.complete(Ok(()));
    }
    ran
}

#[test]
fn queued_apps_are_served_round_robin_after_the_app_served_last() {
    let _g = setup();
    let r = Rig::new();
    let p: Vec<Pid> = (0..4).map(|_| r.spawn()).collect();
    // Process 2 runs; 0, 3 and 1 queue (in that order).
    assert_eq!(r.issue(p[2], cmd::DELETE, b"2", b""), Ok(()));
    for i in [0, 3, 1] {
        assert_eq!(r.issue(p[i], cmd::DELETE, &[b'0' + i as u8], b""), Ok(()));
    }
    assert_eq!(r.call().key, b"2");
    r.complete(Ok(()));
    // After 2: 3, then round to 0 and 1.
    assert_eq!(r.call().key, b"3");
    // While 3 runs, 2 queues again: it comes after 0 and 1, not before.
    assert_eq!(r.issue(p[2], cmd::DELETE, b"2", b""), Ok(()));
    r.complete(Ok(()));
    assert_eq!(drain(&r), [b"0".to_vec(), b"1".to_vec(), b"2".to_vec()]);
}

#[test]
fn an_app_that_keeps_requesting_does_not_starve_the_others() {
    let _g = setup();
    let r = Rig::new();
    let (a, b, c) = (r.spawn(), r.spawn(), r.spawn());
    assert_eq!(r.issue(b, cmd::DELETE, b"b", b""), Ok(()));
    assert_eq!(r.issue(c, cmd::DELETE, b"c", b""), Ok(()));
    assert_eq!(r.issue(a, cmd::DELETE, b"a", b""), Ok(()));
    let mut order = Vec::new();
    for _ in 0..9 {
        order.push(r.call().key[0]);
        r.complete(Ok(()));
        // Each app asks again as soon as it is answered.
        for u in r.upcalls() {
            let k = [if u.pid == a {
                b'a'
            } else if u.pid == b {
                b'b'
            } else {
                b'c'
            }];
            assert_eq!(r.issue(u.pid, cmd::DELETE, &k, b""), Ok(()));
        }
        run_deferred();
    }
    assert_eq!(order, b"bcabcabca");
}

#[test]
fn a_queued_collection_lets_gc_patience_other_operations_go_first() {
    let _g = setup();
    let r = Rig::new();
    let (a, b, g) = (r.spawn(), r.spawn(), r.spawn());
    assert_eq!(r.issue(a, cmd::DELETE, b"a", b""), Ok(()));
    assert_eq!(r.issue(g, cmd::GC, b"", b""), Ok(()));
    assert_eq!(r.issue(b, cmd::DELETE, b"b", b""), Ok(()));
    let mut others = 0;
    // a and b ask again each time they are answered; the collection waits.
    let gc_ran_after = |r: &Rig, others: &mut u32| loop {
        let c = r.call();
        if c.op == AppOp::GarbageCollect {
            r.complete(Ok(()));
            return *others;
        }
        *others += 1;
        r.complete(Ok(()));
        for u in r.upcalls() {
            assert_eq!(r.issue(u.pid, cmd::DELETE, if u.pid == a { b"a" } else { b"b" }, b""), Ok(()));
        }
        run_deferred();
        assert!(*others < 100, "the collection never ran");
    };
    // The first operation (a's) started before the collection was queued.
    assert_eq!(gc_ran_after(&r, &mut others), 1 + GC_PATIENCE);
    assert!(r.upcalls().contains(&Upcall { pid: g, sub: 1, status: 0, len: 0 }));
    // The count starts again for the next collection.
    assert_eq!(r.issue(g, cmd::GC, b"", b""), Ok(()));
    others = 0;
    run_deferred();
    // a or b may already be running; the collection waits GC_PATIENCE more starts.
    let n = gc_ran_after(&r, &mut others);
    assert!(n == GC_PATIENCE || n == GC_PATIENCE + 1, "{n}");
}

#[test]
fn a_collection_alone_does_not_wait() {
    let _g = setup();
    let r = Rig::new();
    let (a, g) = (r.spawn(), r.spawn());
    assert_eq!(r.issue(a, cmd::DELETE, b"a", b""), Ok(()));
    assert_eq!(r.issue(g, cmd::GC, b"", b""), Ok(()));
    r.kv.take_calls();
    r.complete(Ok(()));
    assert_eq!(r.call().op, AppOp::GarbageCollect);
    // Two more collections queued: both run, round robin after g (h, then a).
    let h = r.spawn();
    assert_eq!(r.issue(a, cmd::GC, b"", b""), Ok(()));
    assert_eq!(r.issue(h, cmd::GC, b"", b""), Ok(()));
    r.complete(Ok(()));
    assert_eq!(r.call().op, AppOp::GarbageCollect);
    r.complete(Ok(()));
    assert_eq!(r.call().op, AppOp::GarbageCollect);
    r.complete(Ok(()));
    let order: Vec<Pid> = r.upcalls().iter().map(|u| u.pid).collect();
    assert_eq!(order, [a, g, h, a]);
}

// ------------------------------------------------------------------------------------------
// A queued operation that cannot start.

#[test]
fn a_queued_set_whose_key_grew_too_long_is_answered_once_and_not_left_pending() {
    let _g = setup();
    let r = Rig::new();
    let (a, b) = (r.spawn(), r.spawn());
    // B holds the driver; A queues a set with a good key, then allows a 65-byte key.
    assert_eq!(r.issue(b, cmd::GC, b"", b""), Ok(()));
    assert_eq!(r.issue(a, cmd::SET, b"good", b"v"), Ok(()));
    r.apps().allow_key(a, &[b'k'; KEY_LEN + 1]);
    r.kv.take_calls();
    r.complete(Ok(()));
    let u = r.upcalls();
    assert_eq!(u.len(), 2, "{u:?}");
    assert_eq!((u[0].pid, u[0].status), (b, ok()));
    assert_eq!((u[1].pid, u[1].status, u[1].len), (a, err(ErrorCode::SIZE), 0));
    r.no_call();
    assert_eq!(r.kv.pending(), None, "nothing written");
    // A is free again: its next command is accepted and runs, and nothing else does.
    assert!(r.accepts_next(a));
    run_deferred();
    r.no_call();
    r.no_upcall();
}

#[test]
fn a_queued_set_whose_value_grew_too_long_is_answered_with_size() {
    let _g = setup();
    let r = Rig::new();
    let (a, b) = (r.spawn(), r.spawn());
    assert_eq!(r.issue(b, cmd::GC, b"", b""), Ok(()));
    assert_eq!(r.issue(a, cmd::UPDATE, b"k", b"v"), Ok(()));
    r.apps().allow_value(a, &vec![0; MAX_VALUE + 1]);
    r.kv.take_calls();
    r.complete(Ok(()));
    assert_eq!(r.upcalls()[1], Upcall { pid: a, sub: 1, status: err(ErrorCode::SIZE), len: 0 });
    r.no_call();
    assert!(r.accepts_next(a));
}

#[test]
fn a_queued_operation_refused_below_is_answered_and_the_next_one_starts() {
    let _g = setup();
    let r = Rig::new();
    let (a, b, c) = (r.spawn(), r.spawn(), r.spawn());
    assert_eq!(r.issue(a, cmd::GC, b"", b""), Ok(()));
    assert_eq!(r.issue(b, cmd::SET, b"b", b"v"), Ok(()));
    assert_eq!(r.issue(c, cmd::SET, b"c", b"v"), Ok(()));
    r.kv.take_calls();
    r.kv.refuse_next.set(Some(ErrorCode::NOMEM));
    r.complete(Ok(()));
    // b's set was refused when it started: answered; c's started in the same deferred call.
    let u = r.upcalls();
    assert_eq!(
        u.iter().map(|u| (u.pid, u.status, u.len)).collect::<Vec<_>>(),
        [(a, ok(), 0), (b, err(ErrorCode::NOMEM), 0)]
    );
    let calls = r.kv.take_calls();
    assert_eq!(calls.iter().map(|c| c.key.clone()).collect::<Vec<_>>(), [b"b".to_vec(), b"c".to_vec()]);
    assert_eq!(r.kv.pending(), Some(AppOp::Set));
    r.complete(Ok(()));
    assert_eq!(r.upcall(), (c, ok(), 0));
    assert!(r.accepts_next(b));
}

#[test]
fn many_queued_operations_that_cannot_start_are_all_answered() {
    let _g = setup();
    let r = Rig::new();
    let g = r.spawn();
    let apps: Vec<Pid> = (0..10).map(|_| r.spawn()).collect();
    assert_eq!(r.issue(g, cmd::GC, b"", b""), Ok(()));
    for &p in &apps {
        assert_eq!(r.issue(p, cmd::SET, b"k", b"v"), Ok(()));
        r.apps().allow_key(p, &[0; KEY_LEN + 1]);
    }
    r.complete(Ok(()));
    let u = r.upcalls();
    assert_eq!(u.len(), 11);
    assert!(u[1..].iter().all(|u| u.status == err(ErrorCode::SIZE)));
    for &p in &apps {
        assert!(r.accepts_next(p));
    }
}

// ------------------------------------------------------------------------------------------
// Allows swapped or revoked.

#[test]
fn a_running_operation_keeps_the_key_and_value_it_started_with() {
    let _g = setup();
    let r = Rig::new();
    let a = r.spawn();
    assert_eq!(r.issue(a, cmd::SET, b"first", b"one"), Ok(()));
    r.apps().allow_key(a, &[b'x'; KEY_LEN + 1]);
    r.apps().revoke(a);
    r.complete(Ok(()));
    assert_eq!(r.upcall(), (a, ok(), 0));
    let c = r.call();
    assert_eq!((c.key, c.value), (b"first".to_vec(), b"one".to_vec()));
}

#[test]
fn a_get_fills_the_buffer_allowed_when_it_completes() {
    let _g = setup();
    let r = Rig::new();
    let a = r.spawn();
    r.apps().allow_rw(a, 2);
    assert_eq!(r.issue(a, cmd::GET, b"k", b""), Ok(()));
    // Swapped for a bigger one before the value arrives.
    r.apps().allow_rw(a, 6);
    r.complete_get(Ok(()), b"abcd");
    assert_eq!(r.upcall(), (a, ok(), 4));
    assert_eq!(r.apps().rw(a), b"abcd\xEE\xEE");
    // Revoked before the value arrives: SIZE with the length.
    assert_eq!(r.issue(a, cmd::GET, b"k", b""), Ok(()));
    r.apps().revoke(a);
    r.complete_get(Ok(()), b"abcd");
    assert_eq!(r.upcall(), (a, err(ErrorCode::SIZE), 4));
}

#[test]
fn a_queued_operation_reads_the_allows_when_it_starts_and_answers_the_subscription_it_finds() {
    // The ABI, the same as upstream's driver: a queued operation takes the app's key and
    // value from the allows in place when it starts, and its upcall goes to whatever the
    // app has subscribed when it completes. An app (libtock) whose call gave up, revoked
    // its buffers and started a new call while the old operation was still queued has the
    // old operation run with the new call's key and answer the new call's subscription;
    // the new call's command meanwhile gets NOMEM.
    let _g = setup();
    let r = Rig::new();
    let (a, b) = (r.spawn(), r.spawn());
    assert_eq!(r.issue(b, cmd::GC, b"", b""), Ok(()));
    // Call 1: delete "old", queued behind b's collection.
    assert_eq!(r.issue(a, cmd::DELETE, b"old", b""), Ok(()));
    // The app revokes call 1's buffers and starts call 2: a set of "new".
    r.apps().revoke(a);
    let sub2 = r.apps().subscribe(a);
    assert_eq!(r.issue(a, cmd::SET, b"new", b"value"), Err(ErrorCode::NOMEM));
    r.kv.take_calls();
    r.complete(Ok(()));
    // The queued delete ran with call 2's key...
    assert_eq!(
        r.call(),
        Call {
            op: AppOp::Delete,
            key: b"new".to_vec(),
            value: vec![],
            write_id: r.apps().storage_permissions(a).unwrap().get_write_id()
        }
    );
    r.upcalls();
    r.complete(Ok(()));
    // ...and its upcall went to call 2's subscription.
    assert_eq!(r.upcalls(), [Upcall { pid: a, sub: sub2, status: ok(), len: 0 }]);
}

// ------------------------------------------------------------------------------------------
// Apps that die.

#[test]
fn an_app_that_dies_during_its_get_frees_the_driver_for_the_others() {
    let _g = setup();
    let r = Rig::new();
    let (a, b) = (r.spawn(), r.spawn());
    r.apps().allow_rw(a, 8);
    assert_eq!(r.issue(a, cmd::GET, b"a", b""), Ok(()));
    assert_eq!(r.issue(b, cmd::SET, b"b", b"v"), Ok(()));
    r.apps().kill(a);
    r.kv.take_calls();
    r.complete_get(Ok(()), b"value");
    r.no_upcall();
    // b's queued set started with the driver's buffers back.
    assert_eq!(r.call().key, b"b");
    r.complete(Ok(()));
    assert_eq!(r.upcall(), (b, ok(), 0));
    // And the driver still serves: b again, at once.
    assert!(r.accepts_next(b));
}

#[test]
fn an_app_that_dies_alone_during_an_operation_leaves_the_driver_idle() {
    let _g = setup();
    let r = Rig::new();
    for op in [cmd::GET, cmd::SET, cmd::DELETE, cmd::GC] {
        let a = r.spawn();
        assert_eq!(r.issue(a, op, b"a", b"v"), Ok(()));
        r.apps().kill(a);
        r.complete_get(Ok(()), b"");
        r.no_upcall();
        // The next app's command starts at once, not queued behind a dead one.
        let b = r.spawn();
        let queued = r.d.queued_count();
        assert!(r.accepts_next(b));
        assert_eq!(r.d.queued_count(), queued, "command {op}: queued behind a dead app");
    }
}

#[test]
fn an_app_restarted_during_its_operation_starts_afresh_and_hears_nothing_of_the_old_one() {
    let _g = setup();
    let r = Rig::new();
    let a = r.spawn();
    assert_eq!(r.issue(a, cmd::SET, b"old", b"v"), Ok(()));
    let a2 = r.apps().restart(a);
    // The new process's first command is accepted (its state is fresh) and waits.
    assert_eq!(r.issue(a2, cmd::DELETE, b"new", b""), Ok(()));
    r.kv.take_calls();
    r.complete(Ok(()));
    r.no_upcall();
    assert_eq!(r.call().key, b"new");
    r.complete(Ok(()));
    assert_eq!(r.upcall(), (a2, ok(), 0));
}

#[test]
fn a_dead_apps_queued_operation_is_dropped() {
    let _g = setup();
    let r = Rig::new();
    let (a, b, c) = (r.spawn(), r.spawn(), r.spawn());
    assert_eq!(r.issue(a, cmd::GC, b"", b""), Ok(()));
    assert_eq!(r.issue(b, cmd::SET, b"b", b"v"), Ok(()));
    assert_eq!(r.issue(c, cmd::SET, b"c", b"v"), Ok(()));
    r.apps().kill(b);
    let b2 = r.apps().restart(c); // c restarts too: its queued set goes with it.
    r.kv.take_calls();
    r.complete(Ok(()));
    assert_eq!(r.upcall(), (a, ok(), 0));
    r.no_call();
    assert!(r.accepts_next(b2));
}
