//! Behaviour tests of the flash model against its documented contract.

use embedded_storage::nor_flash::{NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash};
use flash_sim::{
    check_geometry, Cut, FlashSim, Geometry, GeometryError, ImageError, OpKind, SimError, TimeModel,
    UnitError, UnitState,
};

const S: Geometry = Geometry::SMALL; // program 8, sector 4096, 8 sectors

fn read_vec(sim: &mut FlashSim, addr: u32, len: usize) -> Result<Vec<u8>, SimError> {
    let mut buf = vec![0u8; len];
    sim.read(addr, &mut buf).map(|()| buf)
}

#[test]
fn builtin_geometries_are_valid_and_as_specified() {
    for g in [Geometry::PORTENTA, Geometry::QSPI, Geometry::SMALL] {
        assert_eq!(check_geometry(&g), Ok(()));
    }
    assert_eq!(Geometry::PORTENTA.sector_count(), 12);
    assert_eq!(Geometry::PORTENTA.program_size, 32);
    assert_eq!(Geometry::SMALL.sector_count(), 8);
    assert_eq!(Geometry::SMALL.unit_count(), 4096);
    assert_eq!(Geometry::QSPI.size, 2 << 20);
}

#[test]
fn invalid_geometries_are_rejected() {
    let bad = |f: fn(&mut Geometry)| {
        let mut g = S;
        f(&mut g);
        check_geometry(&g)
    };
    assert_eq!(bad(|g| g.size = 0), Err(GeometryError::ZeroSize));
    assert_eq!(bad(|g| g.program_size = 0), Err(GeometryError::Units(UnitError::Zero("program_size"))));
    assert_eq!(
        bad(|g| g.program_size = 12),
        Err(GeometryError::Units(UnitError::NotPowerOfTwo("program_size")))
    );
    assert_eq!(bad(|g| g.size = 4096 * 3 + 8), Err(GeometryError::SizeNotMultipleOfErase));
    assert_eq!(bad(|g| g.program_size = 8192), Err(GeometryError::Units(UnitError::NotNested)));
    assert_eq!(bad(|g| g.read_size = 16), Err(GeometryError::Units(UnitError::NotNested)));
    // A non-power-of-two total size is fine (the Portenta's 1.5 MiB).
    assert_eq!(bad(|g| g.size = 4096 * 3), Ok(()));
    let mut g = S;
    g.erase_size = 0;
    assert_eq!(
        FlashSim::from_image(g, vec![0xFF; 32768]).err(),
        Some(ImageError::Geometry(GeometryError::Units(UnitError::Zero("erase_size"))))
    );
    assert_eq!(
        GeometryError::Units(UnitError::NotPowerOfTwo("erase_size")).to_string(),
        "geometry: erase_size is not a power of two"
    );
}

#[test]
fn new_flash_is_erased() {
    let mut sim = FlashSim::new(S);
    assert!(sim.image().iter().all(|&b| b == 0xFF));
    assert!(sim.is_unit_erased(0) && sim.is_unit_erased(S.size - 1));
    assert_eq!(read_vec(&mut sim, 100, 50).unwrap(), vec![0xFF; 50]);
    assert_eq!(sim.unit_state(S.size), None);
}

#[test]
fn program_stores_bytes_not_and() {
    let mut sim = FlashSim::new(S);
    sim.program(16, &[0x0F; 8]).unwrap();
    assert_eq!(read_vec(&mut sim, 16, 8).unwrap(), vec![0x0F; 8]);
    // All-0xFF data still makes the unit programmed.
    sim.program(24, &[0xFF; 8]).unwrap();
    assert_eq!(sim.unit_state(24), Some(UnitState::Programmed));
    assert!(!sim.is_unit_erased(24));
    assert_eq!(sim.stats().double_programs, 0);
    // With erase_value 0x00 an AND model would read back zeros.
    let mut g = S;
    g.erase_value = 0x00;
    let mut sim = FlashSim::new(g);
    sim.program(0, &[0x5A; 8]).unwrap();
    assert_eq!(read_vec(&mut sim, 0, 9).unwrap(), [[0x5A; 8].as_slice(), &[0]].concat());
}

#[test]
fn second_program_corrupts_unit_and_counts_violation() {
    let mut sim = FlashSim::new(S);
    let data = [1, 2, 3, 4, 5, 6, 7, 8];
    sim.program(8, &data).unwrap();
    // Identical data is still a violation; the call itself succeeds.
    sim.program(8, &data).unwrap();
    assert!(sim.is_unit_ecc_bad(8));
    assert_eq!(sim.stats().double_programs, 1);
    assert_eq!(read_vec(&mut sim, 8, 8), Err(SimError::Ecc { addr: 8 }));
    // Any read touching the unit fails, reporting the unit start.
    assert_eq!(read_vec(&mut sim, 4, 6), Err(SimError::Ecc { addr: 8 }));
    assert_eq!(read_vec(&mut sim, 15, 1), Err(SimError::Ecc { addr: 8 }));
    assert_eq!(sim.stats().ecc_reads, 3);
    // Neighbours are fine.
    assert_eq!(read_vec(&mut sim, 0, 8).unwrap(), vec![0xFF; 8]);
    assert_eq!(read_vec(&mut sim, 16, 8).unwrap(), vec![0xFF; 8]);
    // Re-programming 0xFF over an all-0xFF programmed unit is a violation too.
    sim.program(24, &[0xFF; 8]).unwrap();
    sim.program(24, &[0xFF; 8]).unwrap();
    assert!(sim.is_unit_ecc_bad(24));
    assert_eq!(sim.stats().double_programs, 2);
    // A multi-unit program counts one violation per non-erased unit.
    sim.program(0, &[0u8; 40]).unwrap();
    assert_eq!(sim.stats().double_programs, 4);
    assert_eq!(sim.unit_state(0), Some(UnitState::Programmed));
    assert!(sim.is_unit_ecc_bad(8) && sim.is_unit_ecc_bad(24));
    // Erase clears ECC-bad.
    sim.erase(0, 4096).unwrap();
    assert_eq!(read_vec(&mut sim, 0, 64).unwrap(), vec![0xFF; 64]);
}

#[test]
fn strict_mode_rejects_double_program_without_change() {
    let mut sim = FlashSim::new(S);
    sim.set_strict(true);
    sim.program(8, &[7; 8]).unwrap();
    let before = sim.image().to_vec();
    let stats = sim.stats().clone();
    assert_eq!(sim.program(0, &[1; 24]), Err(SimError::DoubleProgram { addr: 8 }));
    assert_eq!(sim.image(), &before[..]);
    assert_eq!(sim.stats(), &stats);
    assert!(sim.is_unit_erased(0) && sim.is_unit_erased(16));
    assert_eq!(read_vec(&mut sim, 8, 8).unwrap(), vec![7; 8]);
    sim.set_strict(false);
    sim.program(8, &[7; 8]).unwrap();
    assert!(sim.is_unit_ecc_bad(8));
}

#[test]
fn torn_multi_unit_program() {
    let mut sim = FlashSim::new(S);
    let data: Vec<u8> = (0..32).collect(); // 4 units
    sim.cut_power_at(0, Cut::Halfway);
    assert_eq!(sim.program(64, &data), Err(SimError::PowerLost));
    assert!(!sim.is_powered());
    assert_eq!(read_vec(&mut sim, 64, 16), Err(SimError::PowerLost));
    sim.power_on();
    assert_eq!(read_vec(&mut sim, 64, 16).unwrap(), data[..16]);
    assert!(sim.is_unit_ecc_bad(80));
    assert_eq!(read_vec(&mut sim, 80, 8), Err(SimError::Ecc { addr: 80 }));
    assert!(sim.is_unit_erased(88));
    assert_eq!(read_vec(&mut sim, 88, 8).unwrap(), vec![0xFF; 8]);
    // Odd unit count: 3 units -> 1 programmed, 1 torn, 1 erased.
    sim.cut_power_at(1, Cut::Halfway);
    assert_eq!(sim.program(256, &[0xAA; 24]), Err(SimError::PowerLost));
    sim.power_on();
    let states: Vec<_> = (0..3).map(|i| sim.unit_state(256 + 8 * i).unwrap()).collect();
    assert_eq!(states, [UnitState::Programmed, UnitState::EccBad, UnitState::Erased]);
    assert_eq!(sim.stats().programs, 2);
}

#[test]
fn torn_single_unit_program_is_ecc_bad_and_deterministic() {
    let run = |seed: u64| {
        let mut sim = FlashSim::new(S);
        sim.set_seed(seed);
        sim.cut_power_at(0, Cut::Halfway);
        assert_eq!(sim.program(0, &[0; 8]), Err(SimError::PowerLost));
        sim.power_on();
        assert!(sim.is_unit_ecc_bad(0));
        assert!(sim.is_unit_erased(8));
        assert_eq!(read_vec(&mut sim, 0, 1), Err(SimError::Ecc { addr: 0 }));
        sim.image()[..8].to_vec()
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

#[test]
fn torn_program_byte_units() {
    let mut sim = FlashSim::new(Geometry::QSPI);
    sim.cut_power_at(0, Cut::Halfway);
    assert_eq!(sim.program(10, &[0x11; 5]), Err(SimError::PowerLost));
    sim.power_on();
    assert_eq!(read_vec(&mut sim, 10, 2).unwrap(), vec![0x11; 2]);
    assert!(sim.is_unit_ecc_bad(12));
    assert_eq!(read_vec(&mut sim, 13, 2).unwrap(), vec![0xFF; 2]);
    assert_eq!(read_vec(&mut sim, 9, 5), Err(SimError::Ecc { addr: 12 }));
}

#[test]
fn cut_before_changes_nothing_then_power_lost_until_power_on() {
    let mut sim = FlashSim::new(S);
    sim.program(0, &[1; 8]).unwrap(); // op 0
                                      // Rejected calls do not count as mutating ops.
    assert_eq!(sim.program(3, &[1; 8]), Err(SimError::NotAligned));
    assert_eq!(sim.erase(S.size, 4096), Err(SimError::OutOfBounds));
    sim.program(8, &[]).unwrap();
    assert_eq!(sim.mutating_ops(), 1);
    sim.cut_power_at(2, Cut::Before);
    assert_eq!(sim.pending_cut(), Some((2, Cut::Before)));
    sim.program(8, &[2; 8]).unwrap(); // op 1
    let snapshot = sim.image().to_vec();
    assert_eq!(sim.erase(0, 4096), Err(SimError::PowerLost)); // op 2: cut
    assert_eq!(sim.image(), &snapshot[..]);
    assert_eq!(sim.pending_cut(), None);
    assert_eq!(sim.program(16, &[3; 8]), Err(SimError::PowerLost));
    assert_eq!(sim.erase(0, 4096), Err(SimError::PowerLost));
    assert_eq!(read_vec(&mut sim, 0, 8), Err(SimError::PowerLost));
    assert_eq!(sim.image(), &snapshot[..]);
    assert_eq!(sim.mutating_ops(), 3);
    assert_eq!(sim.stats().erases, 0);
    sim.power_on();
    assert_eq!(read_vec(&mut sim, 0, 16).unwrap(), [[1u8; 8], [2; 8]].concat());
    sim.program(16, &[3; 8]).unwrap();
    assert_eq!(sim.mutating_ops(), 4);
    sim.reset_op_counter();
    assert_eq!(sim.mutating_ops(), 0);
    sim.cut_power_at(0, Cut::Before);
    sim.cancel_cut();
    sim.program(24, &[4; 8]).unwrap();
    assert!(sim.is_powered());
}

#[test]
fn torn_erase_leaves_mix_and_clean_erase_recovers() {
    let run = |seed: u64| {
        let mut sim = FlashSim::new(S);
        sim.set_seed(seed);
        sim.program(4096, &[0x00; 4096]).unwrap();
        sim.program(8192, &[0x00; 8]).unwrap();
        sim.cut_power_at(2, Cut::Halfway);
        assert_eq!(sim.erase(4096, 4096), Err(SimError::PowerLost));
        assert_eq!(read_vec(&mut sim, 0, 1), Err(SimError::PowerLost));
        sim.power_on();
        (sim.image().to_vec(), sim)
    };
    let (img, mut sim) = run(7);
    let count = |st| (4096..8192).step_by(8).filter(|&a| sim.unit_state(a) == Some(st)).count();
    let (e, p, b) = (count(UnitState::Erased), count(UnitState::Programmed), count(UnitState::EccBad));
    assert_eq!(e + p + b, 512);
    assert!(e > 50 && p > 50 && b > 50, "mix: {e} erased, {p} unchanged, {b} ECC-bad");
    for a in (4096..8192).step_by(8) {
        let unit = &img[a as usize..a as usize + 8];
        match sim.unit_state(a).unwrap() {
            UnitState::Erased => assert_eq!(unit, [0xFF; 8]),
            UnitState::Programmed => assert_eq!(unit, [0x00; 8]),
            UnitState::EccBad => {
                assert_eq!(read_vec(&mut sim, a, 8), Err(SimError::Ecc { addr: a }))
            }
        }
    }
    // Other sectors untouched.
    assert_eq!(read_vec(&mut sim, 8192, 8).unwrap(), vec![0; 8]);
    assert!(sim.image()[..4096].iter().all(|&b| b == 0xFF));
    assert_eq!(sim.stats().erases, 1);
    assert_eq!(sim.stats().erases_per_sector[1], 1);
    // Deterministic per seed.
    assert_eq!(run(7).0, img);
    assert_ne!(run(8).0, img);
    // A clean erase makes the sector fully usable again.
    sim.erase(4096, 4096).unwrap();
    assert_eq!(read_vec(&mut sim, 4096, 4096).unwrap(), vec![0xFF; 4096]);
    sim.program(4096, &[5; 4096]).unwrap();
    assert_eq!(read_vec(&mut sim, 4096, 4096).unwrap(), vec![5; 4096]);
    assert_eq!(sim.stats().erases_per_sector[1], 2);
    assert_eq!(sim.stats().double_programs, 0);
}

#[test]
fn torn_multi_sector_erase() {
    let mut sim = FlashSim::new(S);
    sim.program(0, &[0; 32768]).unwrap();
    sim.cut_power_at(1, Cut::Halfway);
    assert_eq!(sim.erase(0, 4 * 4096), Err(SimError::PowerLost));
    sim.power_on();
    assert!(sim.image()[..8192].iter().all(|&b| b == 0xFF));
    assert!((0..8192).step_by(8).all(|a| sim.is_unit_erased(a)));
    assert!((12288..32768).step_by(8).all(|a| sim.unit_state(a) == Some(UnitState::Programmed)));
    assert_eq!(sim.stats().erases_per_sector, vec![1, 1, 1, 0, 0, 0, 0, 0]);
}

#[test]
fn counters_and_time() {
    let mut sim = FlashSim::new(Geometry::PORTENTA);
    let t = sim.time_model();
    assert_eq!(t, TimeModel::default());
    assert_eq!(t.program_unit_ns, 100_000);
    assert_eq!(t.erase_sector_ns, 1_100_000_000);
    assert_eq!(t.read_byte_ns, 1);
    sim.program(0, &[0; 96]).unwrap();
    sim.erase(131_072, 2 * 131_072).unwrap();
    sim.erase(131_072, 131_072).unwrap();
    read_vec(&mut sim, 5, 100).unwrap();
    read_vec(&mut sim, 0, 0).unwrap();
    let s = sim.stats().clone();
    assert_eq!((s.reads, s.bytes_read), (2, 100));
    assert_eq!((s.programs, s.bytes_programmed), (1, 96));
    assert_eq!(s.erases, 2);
    assert_eq!(s.erases_per_sector, vec![0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(s.time_ns, 3 * 100_000 + 3 * 1_100_000_000 + 100);
    // Torn ops count the units reached, the torn one included.
    sim.cut_power_at(sim.mutating_ops(), Cut::Halfway);
    let _ = sim.program(1024, &[0; 128]);
    assert_eq!(sim.stats().bytes_programmed, 96 + 3 * 32);
    sim.reset_stats();
    assert_eq!(sim.stats().erases_per_sector, vec![0; 12]);
    assert_eq!(sim.stats().time_ns, 0);
    sim.power_on();
    sim.set_time_model(TimeModel { program_unit_ns: 1, erase_sector_ns: 10, read_byte_ns: 0 });
    sim.program(2048, &[0; 64]).unwrap();
    sim.erase(0, 131_072).unwrap();
    read_vec(&mut sim, 0, 10).unwrap();
    assert_eq!(sim.stats().time_ns, 12);
}

#[test]
fn time_model_scales_with_geometry() {
    let q = TimeModel::for_geometry(&Geometry::QSPI);
    assert_eq!(q.program_unit_ns, 3125);
    assert_eq!(q.erase_sector_ns, 34_375_000);
    let s = TimeModel::for_geometry(&Geometry::SMALL);
    assert_eq!(s.program_unit_ns, 25_000);
}

#[test]
fn alignment_and_bounds_errors() {
    let mut sim = FlashSim::new(S);
    assert_eq!(sim.program(4, &[0; 8]), Err(SimError::NotAligned));
    assert_eq!(sim.program(0, &[0; 12]), Err(SimError::NotAligned));
    assert_eq!(sim.program(S.size - 8, &[0; 16]), Err(SimError::OutOfBounds));
    assert_eq!(sim.program(u32::MAX - 7, &[0; 8]), Err(SimError::OutOfBounds));
    assert_eq!(sim.erase(2048, 4096), Err(SimError::NotAligned));
    assert_eq!(sim.erase(0, 100), Err(SimError::NotAligned));
    assert_eq!(sim.erase(S.size - 4096, 8192), Err(SimError::OutOfBounds));
    assert_eq!(sim.erase(u32::MAX, u32::MAX), Err(SimError::OutOfBounds));
    assert_eq!(read_vec(&mut sim, S.size - 1, 2), Err(SimError::OutOfBounds));
    assert_eq!(read_vec(&mut sim, S.size - 1, 1).unwrap(), vec![0xFF]);
    assert_eq!(sim.mutating_ops(), 0);
    assert!(sim.image().iter().all(|&b| b == 0xFF));
    let mut g = S;
    g.read_size = 4;
    let mut sim = FlashSim::new(g);
    assert_eq!(read_vec(&mut sim, 2, 4), Err(SimError::NotAligned));
    assert_eq!(read_vec(&mut sim, 4, 4).unwrap(), vec![0xFF; 4]);
}

#[test]
fn from_image_classifies_units() {
    let mut img = vec![0xFF; S.size as usize];
    img[8] = 0xFE; // unit 1 programmed
    img[16..24].fill(0); // unit 2 programmed
    let mut sim = FlashSim::from_image(S, img.clone()).unwrap();
    assert_eq!(sim.image(), &img[..]);
    assert!(sim.is_unit_erased(0));
    assert_eq!(sim.unit_state(15), Some(UnitState::Programmed));
    assert_eq!(sim.unit_state(16), Some(UnitState::Programmed));
    assert!(sim.is_unit_erased(24));
    sim.program(8, &[0; 8]).unwrap();
    assert_eq!(sim.stats().double_programs, 1);
    sim.program(0, &[0; 8]).unwrap();
    assert_eq!(sim.stats().double_programs, 1);
    assert_eq!(
        FlashSim::from_image(S, vec![0xFF; 100]).err(),
        Some(ImageError::Size { expected: S.size, actual: 100 })
    );
    // Round trip through image().
    let again = FlashSim::from_image(S, sim.clone().into_image()).unwrap();
    assert_eq!(again.image(), sim.image());
    let mut g = S;
    g.erase_value = 0x00;
    let zero = FlashSim::from_image(g, vec![0; S.size as usize]).unwrap();
    assert!(zero.is_unit_erased(0));
}

#[test]
fn op_log_records_mutating_ops() {
    let mut sim = FlashSim::new(S);
    sim.program(0, &[0; 8]).unwrap();
    sim.enable_op_log(true);
    sim.program(8, &[0; 16]).unwrap();
    sim.cut_power_at(2, Cut::Halfway);
    let _ = sim.erase(4096, 4096);
    sim.power_on();
    let _ = sim.program(1, &[0; 8]);
    let log = sim.op_log();
    assert_eq!(log.len(), 2);
    assert_eq!((log[0].index, log[0].kind, log[0].addr, log[0].len), (1, OpKind::Program, 8, 16));
    assert_eq!(log[0].cut, None);
    assert_eq!((log[1].index, log[1].kind, log[1].addr), (2, OpKind::Erase, 4096));
    assert_eq!(log[1].cut, Some(Cut::Halfway));
    sim.clear_op_log();
    assert!(sim.op_log().is_empty());
}

fn generic_roundtrip<F: NorFlash>(f: &mut F, sector: u32) -> Result<Vec<u8>, F::Error> {
    f.erase(sector, 2 * sector)?;
    f.write(sector, &[0x42; 64])?;
    let mut buf = [0u8; 64];
    f.read(sector, &mut buf)?;
    Ok(buf.to_vec())
}

#[test]
fn embedded_storage_traits() {
    let mut sim = FlashSim::new(S);
    assert_eq!(<FlashSim as ReadNorFlash>::READ_SIZE, 1);
    assert_eq!(<FlashSim as NorFlash>::WRITE_SIZE, 1);
    assert_eq!(<FlashSim as NorFlash>::ERASE_SIZE, 1);
    assert_eq!(ReadNorFlash::capacity(&sim), S.size as usize);
    assert_eq!(generic_roundtrip(&mut sim, 4096).unwrap(), vec![0x42; 64]);
    // Via &mut FlashSim too (blanket impl).
    assert_eq!(generic_roundtrip(&mut &mut sim, 4096).unwrap(), vec![0x42; 64]);
    assert_eq!(sim.stats().erases_per_sector[1], 2);
    // The geometry's granularity is enforced at run time.
    let e = NorFlash::write(&mut sim, 4, &[0; 8]).unwrap_err();
    assert_eq!(e.kind(), NorFlashErrorKind::NotAligned);
    let e = NorFlash::erase(&mut sim, 0, 100).unwrap_err();
    assert_eq!(e.kind(), NorFlashErrorKind::NotAligned);
    let e = NorFlash::erase(&mut sim, 8192, 4096).unwrap_err();
    assert_eq!(e.kind(), NorFlashErrorKind::OutOfBounds);
    let e = NorFlash::erase(&mut sim, 0, S.size + 4096).unwrap_err();
    assert_eq!(e.kind(), NorFlashErrorKind::OutOfBounds);
    NorFlash::erase(&mut sim, 0, 0).unwrap();
    NorFlash::write(&mut sim, 4096, &[0; 8]).unwrap();
    let mut buf = [0u8; 8];
    let e = ReadNorFlash::read(&mut sim, 4096, &mut buf).unwrap_err();
    assert_eq!(e, SimError::Ecc { addr: 4096 });
    assert_eq!(e.kind(), NorFlashErrorKind::Other);
    sim.cut_power_at(sim.mutating_ops(), Cut::Before);
    assert_eq!(NorFlash::write(&mut sim, 0, &[0; 8]).unwrap_err().kind(), NorFlashErrorKind::Other);
    assert_eq!(NorFlash::erase(&mut sim, 8192, 4096), Err(SimError::PowerLost));
    assert_eq!(SimError::DoubleProgram { addr: 0 }.kind(), NorFlashErrorKind::Other);
}

#[test]
fn mark_ecc_bad_injects_fault() {
    let mut sim = FlashSim::new(S);
    sim.program(32, &[9; 8]).unwrap();
    sim.mark_ecc_bad(35);
    sim.mark_ecc_bad(S.size + 100); // ignored
    assert_eq!(sim.image()[32..40], [9; 8]);
    assert_eq!(read_vec(&mut sim, 32, 8), Err(SimError::Ecc { addr: 32 }));
}

/// Random valid workload against a shadow copy: as long as the program-once
/// rule is respected, the flash reads back exactly what a plain array would.
#[test]
fn random_workload_matches_shadow() {
    let mut x: u64 = 0x1234_5678_9ABC_DEF1;
    let mut rnd = move |n: u32| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % u64::from(n)) as u32
    };
    let mut sim = FlashSim::new(S);
    sim.set_strict(true);
    let mut shadow = vec![0xFFu8; S.size as usize];
    let mut erased = vec![true; S.unit_count() as usize];
    for _ in 0..3000 {
        match rnd(10) {
            0 => {
                let s = rnd(S.sector_count());
                sim.erase(s * 4096, 4096).unwrap();
                shadow[(s * 4096) as usize..][..4096].fill(0xFF);
                erased[(s * 512) as usize..][..512].fill(true);
            }
            1..=5 => {
                let u = rnd(S.unit_count() - 4);
                let n = 1 + rnd(4);
                let data: Vec<u8> = (0..n * 8).map(|_| rnd(256) as u8).collect();
                let ok = (u..u + n).all(|i| erased[i as usize]);
                let r = sim.program(u * 8, &data);
                if ok {
                    r.unwrap();
                    shadow[(u * 8) as usize..][..data.len()].copy_from_slice(&data);
                    erased[u as usize..(u + n) as usize].fill(false);
                } else {
                    assert!(matches!(r, Err(SimError::DoubleProgram { .. })));
                }
            }
            _ => {
                let a = rnd(S.size - 64);
                let len = rnd(64) as usize;
                assert_eq!(read_vec(&mut sim, a, len).unwrap(), shadow[a as usize..][..len]);
            }
        }
    }
    assert_eq!(sim.image(), &shadow[..]);
    for u in 0..S.unit_count() {
        assert_eq!(sim.is_unit_erased(u * 8), erased[u as usize]);
    }
}

#[test]
fn splitmix64_known_sequence() {
    // Reference values of SplitMix64 seeded with 0.
    let mut r = flash_sim::SplitMix64::new(0);
    assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
    assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
}
