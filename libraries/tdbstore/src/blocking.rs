//! A blocking driver for the engine over `embedded-storage`'s NOR-flash traits.
//!
//! Host tools, tests and benchmarks use this; the Tock capsule drives the same engine from
//! flash interrupts instead. Each method runs one operation to completion, performing the
//! engine's requests on the flash and on the caller's buffers.

use embedded_storage::nor_flash::{NorFlash, NorFlashError, NorFlashErrorKind};

#[cfg(feature = "reserved-data")]
use crate::engine::ReservedData;
#[cfg(feature = "iteration")]
use crate::engine::{Cursor, NextKey};
use crate::engine::{
    Error, IoError, KeyInfo, MountInfo, Op, Output, Request, SetWhen, Step, Store, StoreOptions, Value,
};
use crate::geometry::{Geometry, GeometryError};
use crate::index::IndexEntry;

/// Maps a driver error to what the engine needs to know about it.
pub type ErrorMap<E> = fn(&E) -> IoError;

/// The default map: by `NorFlashErrorKind` (alignment and range errors mean "protected").
pub fn map_by_kind<E: NorFlashError>(e: &E) -> IoError {
    match e.kind() {
        NorFlashErrorKind::NotAligned | NorFlashErrorKind::OutOfBounds => IoError::Protected,
        _ => IoError::Other,
    }
}

/// Metadata of a value read by [`BlockingStore::get`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueInfo {
    /// Full value length.
    pub size: usize,
    /// Stored flags.
    pub flags: u32,
    /// Bytes copied into the caller's buffer.
    pub copied: usize,
}

/// The engine bound to a flash device.
pub struct BlockingStore<'w, F: NorFlash> {
    store: Store<'w>,
    flash: F,
    map_err: ErrorMap<F::Error>,
}

impl<'w, F: NorFlash> BlockingStore<'w, F> {
    /// A store on `flash` with an explicit geometry (which must be at least as coarse as the
    /// flash's own read/write/erase units and fit its capacity).
    pub fn new(
        flash: F,
        geometry: Geometry,
        options: StoreOptions,
        work: &'w mut [u8],
        index: &'w mut [IndexEntry],
    ) -> Result<Self, GeometryError> {
        let fits = |unit: u32, min: usize| min > 0 && (unit as usize).is_multiple_of(min);
        if !fits(geometry.read_size, F::READ_SIZE)
            || !fits(geometry.program_size, F::WRITE_SIZE)
            || !fits(geometry.erase_size, F::ERASE_SIZE)
        {
            return Err(GeometryError::UnitsNotNested);
        }
        if (geometry.size as usize) > flash.capacity() {
            return Err(GeometryError::AreaSize);
        }
        let store = Store::new(geometry, options, work, index)?;
        Ok(BlockingStore { store, flash, map_err: map_by_kind::<F::Error> })
    }

    /// Replaces how driver errors are classified (e.g. to tell ECC errors and power loss apart).
    pub fn with_error_map(mut self, map: ErrorMap<F::Error>) -> Self {
        self.map_err = map;
        self
    }

    /// The engine (for [`Store::info`]).
    pub fn store(&self) -> &Store<'w> {
        &self.store
    }

    /// The flash device.
    pub fn flash(&self) -> &F {
        &self.flash
    }

    /// The flash device, mutably (e.g. to cut power in a simulator).
    pub fn flash_mut(&mut self) -> &mut F {
        &mut self.flash
    }

    /// Gives the flash device back.
    pub fn into_flash(self) -> F {
        self.flash
    }

    /// Runs one operation to completion and returns its result as `T`, the operation's
    /// [`Output`] type (`Err(Error::Internal)` if `T` is not). `input` feeds
    /// [`Request::Fill`], `output` receives [`Request::Deliver`].
    pub fn run<T: Output>(&mut self, op: Op<'_>, input: &[u8], output: &mut [u8]) -> Result<T, Error> {
        self.drive(op, input, output);
        self.store.finish()
    }

    /// Performs the operation's requests until it ends.
    fn drive(&mut self, op: Op<'_>, input: &[u8], output: &mut [u8]) {
        let mut step = self.store.start(op);
        loop {
            let req = match step {
                Step::Done => return,
                Step::Io(req) => req,
            };
            let map = self.map_err;
            let buf = self.store.io_buf();
            let result = match req {
                Request::Read { addr, .. } => self.flash.read(addr, buf).map_err(|e| map(&e)),
                Request::Program { addr, .. } => self.flash.write(addr, buf).map_err(|e| map(&e)),
                Request::Erase { addr, len } => self.flash.erase(addr, addr + len).map_err(|e| map(&e)),
                Request::Fill { offset, len } => match input.get(offset as usize..(offset + len) as usize) {
                    Some(src) => {
                        buf.copy_from_slice(src);
                        Ok(())
                    }
                    None => Err(IoError::Other),
                },
                Request::Deliver { offset, len } => {
                    match output.get_mut(offset as usize..(offset + len) as usize) {
                        Some(dst) => {
                            dst.copy_from_slice(buf);
                            Ok(())
                        }
                        None => Err(IoError::Other),
                    }
                }
            };
            step = self.store.resume(result);
        }
    }

    /// Mounts (formatting a blank region if the options allow).
    pub fn mount(&mut self) -> Result<MountInfo, Error> {
        self.run(Op::Mount, &[], &mut [])
    }

    /// Makes the region an empty store.
    pub fn format(&mut self, full: bool) -> Result<MountInfo, Error> {
        self.run(Op::Format { full }, &[], &mut [])
    }

    /// Reads `key` into `out` (truncating if it is short; see [`ValueInfo::copied`]).
    pub fn get(&mut self, key: &[u8], out: &mut [u8]) -> Result<ValueInfo, Error> {
        let out_len = out.len().min(u32::MAX as usize) as u32;
        let Value { size, flags, copied } = self.run(Op::Get { key, out_len }, &[], out)?;
        Ok(ValueInfo { size: size as usize, flags, copied: copied as usize })
    }

    /// Size and flags of `key`.
    pub fn get_info(&mut self, key: &[u8]) -> Result<(usize, u32), Error> {
        let KeyInfo { size, flags } = self.run(Op::GetInfo { key }, &[], &mut [])?;
        Ok((size as usize, flags))
    }

    /// Writes `value` under `key` with `flags`.
    pub fn set(&mut self, key: &[u8], value: &[u8], flags: u32) -> Result<(), Error> {
        self.set_if(key, value, flags, SetWhen::Always)
    }

    /// Writes `value` under `key` if `when` holds: [`SetWhen::Absent`] creates only
    /// ([`Error::Exists`] otherwise), [`SetWhen::Present`] replaces only ([`Error::NotFound`]).
    pub fn set_if(&mut self, key: &[u8], value: &[u8], flags: u32, when: SetWhen) -> Result<(), Error> {
        let len = u32::try_from(value.len()).map_err(|_| Error::ValueTooLarge)?;
        self.run(Op::Set { key, len, flags, when }, value, &mut [])
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &[u8]) -> Result<(), Error> {
        self.run(Op::Remove { key }, &[], &mut [])
    }

    /// Removes every key.
    pub fn reset(&mut self) -> Result<(), Error> {
        self.run(Op::Reset, &[], &mut [])
    }

    /// Begins an incremental set.
    #[cfg(feature = "incremental")]
    pub fn set_start(&mut self, key: &[u8], len: u32, flags: u32) -> Result<(), Error> {
        self.run(Op::SetStart { key, len, flags }, &[], &mut [])
    }

    /// Adds data to the open incremental set.
    #[cfg(feature = "incremental")]
    pub fn set_add_data(&mut self, data: &[u8]) -> Result<(), Error> {
        let len = u32::try_from(data.len()).map_err(|_| Error::SizeMismatch)?;
        self.run(Op::SetData { len }, data, &mut [])
    }

    /// Commits the open incremental set.
    #[cfg(feature = "incremental")]
    pub fn set_finalize(&mut self) -> Result<(), Error> {
        self.run(Op::SetFinalize, &[], &mut [])
    }

    /// Abandons the open incremental set.
    #[cfg(feature = "incremental")]
    pub fn set_abort(&mut self) -> Result<(), Error> {
        self.run(Op::SetAbort, &[], &mut [])
    }

    /// The next key with `prefix` after `cursor`, copied into `out`: `(key length, next cursor)`.
    #[cfg(feature = "iteration")]
    pub fn next_key(
        &mut self,
        prefix: &[u8],
        cursor: Cursor,
        out: &mut [u8],
    ) -> Result<Option<(usize, Cursor)>, Error> {
        let out_len = out.len().min(u32::MAX as usize) as u32;
        let found: Option<NextKey> = self.run(Op::Next { prefix, cursor, out_len }, &[], out)?;
        Ok(found.map(|k| (k.len as usize, k.next)))
    }

    /// Calls `f` with every key starting with `prefix`, in Mbed's iteration order.
    #[cfg(feature = "iteration")]
    pub fn for_each_key(&mut self, prefix: &[u8], mut f: impl FnMut(&[u8])) -> Result<(), Error> {
        let mut cursor = Cursor::default();
        let mut key = [0u8; crate::format::MAX_KEY_LEN];
        while let Some((len, next)) = self.next_key(prefix, cursor, &mut key)? {
            f(&key[..len]);
            cursor = next;
        }
        Ok(())
    }

    /// Sets the write-once reserved data (at most 64 bytes).
    #[cfg(feature = "reserved-data")]
    pub fn reserved_data_set(&mut self, data: &[u8]) -> Result<(), Error> {
        let len = u32::try_from(data.len()).map_err(|_| Error::ValueTooLarge)?;
        self.run(Op::ReservedSet { len }, data, &mut [])
    }

    /// Reads the reserved data into `out`; returns its length.
    #[cfg(feature = "reserved-data")]
    pub fn reserved_data_get(&mut self, out: &mut [u8]) -> Result<usize, Error> {
        let out_len = out.len().min(crate::format::RESERVED_LEN) as u32;
        let ReservedData { len, .. } = self.run(Op::ReservedGet { out_len }, &[], out)?;
        Ok(len as usize)
    }

    /// One step of background work; returns whether more is pending.
    pub fn maintain(&mut self) -> Result<bool, Error> {
        self.run(Op::Maintain, &[], &mut [])
    }

    /// Background work until none is left (bounded by the number of sectors plus one).
    pub fn maintain_all(&mut self) -> Result<(), Error> {
        let limit = 2 * (self.store.info().area_size / self.store.info().geometry.erase_size) + 4;
        for _ in 0..limit {
            if !self.maintain()? {
                break;
            }
        }
        Ok(())
    }

    /// Compacts now.
    pub fn compact(&mut self) -> Result<(), Error> {
        self.run(Op::Compact, &[], &mut [])
    }
}
