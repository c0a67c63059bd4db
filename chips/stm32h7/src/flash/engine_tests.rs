// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Host tests: the TDBStore engine driving this FLASH driver over the register model, on the
//! Portenta's region (bank 2, 8 sectors): what the capsule does on the board, minus Tock.
//!
//! ```text
//! engine_tests (this file): tdbstore::Store -> flash::Flash -> model::FlashModel
//! ```

use kernel::ErrorCode;
use nor_flash_hil::NorFlash;
use tdbstore::{Error, IndexEntry, IoError, Op, Output, Request, Step, Store, StoreOptions, Value};

use super::model::WordState;
use super::tests::{rig, Rig, REGION_BASE};

/// The capsule's mapping from the HIL's errors to the engine's.
fn io_error(e: ErrorCode) -> IoError {
    match e {
        ErrorCode::FAIL => IoError::Ecc,
        ErrorCode::RESERVE | ErrorCode::INVAL => IoError::Protected,
        _ => IoError::Other,
    }
}

fn store(r: &Rig) -> Store<'static> {
    let geometry = r.flash.geometry();
    let work: &'static mut [u8] = Box::leak(vec![0u8; 512].into_boxed_slice());
    let index: &'static mut [IndexEntry] =
        Box::leak(vec![IndexEntry { hash: 0, offset: 0 }; 64].into_boxed_slice());
    Store::new(geometry, StoreOptions::default(), work, index).unwrap()
}

/// Runs one engine operation to its end, performing every request through the driver.
fn run<T: Output>(
    r: &Rig,
    s: &mut Store<'_>,
    op: Op<'_>,
    input: &[u8],
    output: &mut [u8],
) -> Result<T, Error> {
    let mut step = s.start(op);
    loop {
        let req = match step {
            Step::Done => return s.finish(),
            Step::Io(req) => req,
        };
        let result = match req {
            Request::Read { addr, len } => {
                r.read(addr, len as usize).map(|data| s.io_buf().copy_from_slice(&data))
            }
            Request::Program { addr, .. } => {
                let data = s.io_buf().to_vec();
                r.program(addr, &data)
            }
            Request::Erase { addr, .. } => r.erase(addr),
            Request::Fill { offset, len } => {
                s.io_buf().copy_from_slice(&input[offset as usize..(offset + len) as usize]);
                Ok(())
            }
            Request::Deliver { offset, len } => {
                output[offset as usize..(offset + len) as usize].copy_from_slice(s.io_buf());
                Ok(())
            }
        };
        step = s.resume(result.map_err(io_error));
        r.assert_quiescent();
    }
}

fn mount(r: &Rig) -> (Store<'static>, tdbstore::MountInfo) {
    let mut s = store(r);
    match run(r, &mut s, Op::Mount, &[], &mut []) {
        Ok(m) => (s, m),
        Err(e) => panic!("mount: {e:?}"),
    }
}

fn get(r: &Rig, s: &mut Store<'_>, key: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = [0u8; 256];
    let Value { copied, .. } = run(r, s, Op::Get { key, out_len: out.len() as u32 }, &[], &mut out)?;
    Ok(out[..copied as usize].to_vec())
}

fn set(r: &Rig, s: &mut Store<'_>, key: &[u8], value: &[u8]) -> Result<(), Error> {
    run(
        r,
        s,
        Op::Set { key, len: value.len() as u32, flags: 0, when: tdbstore::SetWhen::Always },
        value,
        &mut [],
    )
}

#[test]
fn tdbstore_formats_sets_and_remounts_over_the_driver() {
    let r = rig();
    let (mut s, m) = mount(&r);
    assert!(m.formatted, "a blank region is formatted");
    let stats = b"startup 3, random 2779430415, runs 1";
    assert_eq!(set(&r, &mut s, b"stats", stats), Ok(()));
    assert_eq!(get(&r, &mut s, b"stats"), Ok(stats.to_vec()));
    assert_eq!(set(&r, &mut s, b"stats", b"runs 2"), Ok(()));

    // A reboot: a fresh engine over the same flash.
    let (mut s, m) = mount(&r);
    assert!(!m.formatted);
    assert_eq!(m.keys, 1);
    assert_eq!(get(&r, &mut s, b"stats"), Ok(b"runs 2".to_vec()));
    assert_eq!(r.model.double_programs(), 0, "no flash word programmed twice");
}

#[test]
fn a_torn_word_after_the_log_mounts_as_a_torn_tail_and_is_never_overwritten() {
    let r = rig();
    let (mut s, _) = mount(&r);
    assert_eq!(set(&r, &mut s, b"stats", b"runs 1"), Ok(()));
    let info = s.info();
    // A program cut by a reset: the next word of the log is ECC-bad.
    let end = info.active_area as u32 * info.area_size + info.free_offset;
    let torn = REGION_BASE + end.div_ceil(32) * 32;
    r.model.corrupt_word(torn);

    let (mut s, m) = mount(&r);
    assert!(m.torn_tail, "the ECC error reads as the end of the log");
    assert_eq!(get(&r, &mut s, b"stats"), Ok(b"runs 1".to_vec()));
    // The next write compacts into the other area rather than writing over the torn word.
    assert_eq!(set(&r, &mut s, b"stats", b"runs 2"), Ok(()));
    assert_eq!(get(&r, &mut s, b"stats"), Ok(b"runs 2".to_vec()));
    assert_eq!(r.model.double_programs(), 0);
    let (mut s, _) = mount(&r);
    assert_eq!(get(&r, &mut s, b"stats"), Ok(b"runs 2".to_vec()));
}

#[test]
fn the_store_fills_and_compacts_within_its_region() {
    let r = rig();
    let (mut s, _) = mount(&r);
    let value = [0x5Au8; 200];
    // Enough rewrites to fill an area (512 KiB) several times over.
    for i in 0..6000u32 {
        let key = [b'k', b'0' + (i % 8) as u8];
        assert_eq!(set(&r, &mut s, &key, &value[..(i % 200) as usize + 1]), Ok(()), "set {i}");
    }
    assert!(s.info().compactions >= 1);
    assert_eq!(r.model.double_programs(), 0);
    // Nothing outside bank 2 was touched (the model's bank 1 is still locked and erased).
    assert_eq!(r.model.word_state(REGION_BASE - 32), WordState::Erased);
    let (mut s, m) = mount(&r);
    assert_eq!(m.keys, 8);
    assert_eq!(get(&r, &mut s, b"k7").map(|v| v.len()), Ok(200));
}
