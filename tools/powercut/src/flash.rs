//! The flash every campaign store runs on: the simulator, plus optional injected faults.
//!
//! [`Flash`] wraps a [`FlashSim`] and forwards every request to it unchanged, so a store
//! opened with [`open`] behaves exactly like one from `tdbstore::sim::open` (same geometry,
//! same error classification). The wrapper exists for the campaign's self-tests: a
//! [`Fault`] makes the flash misbehave in a way a correct checker must notice (a program
//! that is acknowledged but never happens, a unit programmed twice). With no fault armed it
//! adds nothing.

use embedded_storage::nor_flash::{ErrorType, NorFlash, ReadNorFlash};
use flash_sim::{FlashSim, SimError};
use tdbstore::blocking::BlockingStore;
use tdbstore::{IndexEntry, StoreOptions};

/// A store on the campaign's flash.
pub type Store<'w> = BlockingStore<'w, Flash>;

/// A deliberate misbehaviour of the flash, to prove the checks can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The first program call made once the simulator's mutating-op counter has reached
    /// this value is acknowledged but not performed (a lost write).
    DropProgram(u64),
    /// The first program call made once the counter has reached this value programs its
    /// first unit a second time (a double program: the simulator counts an ECC violation).
    Reprogram(u64),
}

/// The simulator with an optional [`Fault`].
#[derive(Clone, Debug)]
pub struct Flash {
    /// The simulated device.
    pub sim: FlashSim,
    fault: Option<Fault>,
}

impl Flash {
    /// A fault-free wrapper around `sim`.
    pub fn new(sim: FlashSim) -> Self {
        Flash { sim, fault: None }
    }

    /// Arms (or with `None` disarms) a fault.
    pub fn set_fault(&mut self, fault: Option<Fault>) {
        self.fault = fault;
    }
}

impl ErrorType for Flash {
    type Error = SimError;
}

impl ReadNorFlash for Flash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), SimError> {
        self.sim.read(offset, bytes)
    }

    fn capacity(&self) -> usize {
        self.sim.geometry().size as usize
    }
}

impl NorFlash for Flash {
    const WRITE_SIZE: usize = 1;
    const ERASE_SIZE: usize = 1;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), SimError> {
        NorFlash::erase(&mut self.sim, from, to)
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), SimError> {
        let at = self.sim.mutating_ops();
        match self.fault {
            Some(Fault::DropProgram(i)) if at >= i && self.sim.is_powered() => {
                self.fault = None;
                Ok(())
            }
            Some(Fault::Reprogram(i)) if at >= i && self.sim.is_powered() => {
                self.fault = None;
                self.sim.program(offset, bytes)?;
                let unit = self.sim.geometry().program_size as usize;
                match bytes.get(..unit) {
                    Some(first) => {
                        let first = first.to_vec();
                        // The second program is the violation; its error (if any) is moot.
                        let _ = self.sim.program(offset, &first);
                        Ok(())
                    }
                    None => Ok(()),
                }
            }
            _ => self.sim.program(offset, bytes),
        }
    }
}

/// Opens (does not mount) a store over the whole device, like `tdbstore::sim::open`.
///
/// # Panics
/// If the simulator's geometry is one the engine refuses or `work` is too small; the
/// campaign's configurations are all valid, so this is a bug in the caller.
pub fn open<'w>(
    flash: Flash,
    options: StoreOptions,
    work: &'w mut [u8],
    index: &'w mut [IndexEntry],
) -> Store<'w> {
    let g = flash.sim.geometry();
    match BlockingStore::new(flash, g, options, work, index) {
        Ok(s) => s.with_error_map(tdbstore::sim::classify),
        Err(e) => panic!("campaign configuration refused by the engine: {e:?}"),
    }
}
