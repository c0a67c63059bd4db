// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Board file for QEMU's `virt` machine (rv32) with the TDBStore key-value store on the
//! machine's CFI parallel flash: the whole system without hardware.
//!
//! ```text
//!  apps (kv_stats, kv_share, ...)            syscalls: console, alarm, RNG, KV 0x50003, IPC
//! ----------------------------------------------------------------------------------
//!  KvSyscallDriver (capsules/tdbstore, upstream's ABI)
//!  -> VirtualKVPermissions -> MuxKVPermissions -> KVStorePermissions       (upstream)
//!  capsules/tdbstore (hil::kv::KV, via its component)
//!  CfiFlash (nor_flash_hil::NorFlash, lib `cfi_flash`)   pflash bank 1, 0x2200_0000
//!  qemu_rv32_virt_chip: 16550 UART, CLINT, PLIC, VirtIO RNG          (this file wires)
//! ```
//!
//! Modeled on upstream Tock's `boards/qemu_rv32_virt`, trimmed to what the store needs, with
//! three differences: the kernel's MMIO PMP region is widened to cover the flash; processes
//! are loaded with TBF-header ShortIds and TBF storage permissions (the same policy as the
//! Portenta board, so apps get exactly what their `write_id`/`read_ids`/`access_ids` say);
//! and the kernel ends the emulation once every process has exited (`shutdown`).

#![no_std]
#![no_main]

use capsules_core::virtualizers::virtual_alarm::{MuxAlarm, VirtualMuxAlarm};
use kernel::capabilities;
use kernel::component::Component;
use kernel::debug::PanicResources;
use kernel::deferred_call::DeferredCallClient;
use kernel::hil;
use kernel::hil::time::Alarm;
use kernel::platform::{KernelResources, SyscallDriverLookup};
use kernel::process::ProcessLoadingAsync;
use kernel::utilities::registers::interfaces::ReadWriteable;
use kernel::utilities::single_thread_value::SingleThreadValue;
use kernel::{create_capability, debug, static_init};
use qemu_rv32_virt_chip::chip::{QemuRv32VirtChip, QemuRv32VirtClint, QemuRv32VirtDefaultPeripherals};
use qemu_rv32_virt_kv::cfi_flash::{CfiFlash, CfiRegion, MmioBank, PFLASH1_BASE};
use qemu_rv32_virt_kv::shutdown::{ExitWhenDone, QemuTestDevice, TEST_DEVICE_BASE};
use rv32i::csr;
use rv32i::dma_fence::RiscvCoherentDmaFence;

mod io;

/// Process slots (also the IPC driver's: one upcall and one shared buffer per peer). Twelve:
/// the end-to-end stress test runs ten apps at once (`e2e/kv_stress`); the apps' RAM slots
/// (64 KiB each from 0x8030_0000) have room for sixteen.
const NUM_PROCS: usize = 12;

/// How long the emulated flash takes per operation (`flash_latency`): short next to the
/// STM32H7's (about 16 us per 32-byte word read at most, 100 us per word program, a second
/// and more per erase) so runs stay short, long enough for apps to run in between.
const FLASH_DELAYS: qemu_rv32_virt_kv::flash_latency::Delays =
    qemu_rv32_virt_kv::flash_latency::Delays { read_us: 200, program_us: 200, erase_us: 5000 };

/// Restarts per process before a faulting app is stopped (`fault_policy`).
const FAULT_RESTARTS: usize = 100;

/// Erase blocks (256 KiB each) of the key-value region at the start of pflash bank 1:
/// 1.5 MiB, the size of the Portenta board's region, split by TDBStore into two areas of three
/// blocks.
const KV_BLOCKS: u32 = 6;

type ChipHw = QemuRv32VirtChip<'static, QemuRv32VirtDefaultPeripherals<'static>>;
type AlarmHw = QemuRv32VirtClint<'static>;
type ProcessPrinter = capsules_system::process_printer::ProcessPrinterText;
type SchedulerTimerHw = components::virtual_scheduler_timer::VirtualSchedulerTimerComponentType<AlarmHw>;
type Scheduler = qemu_rv32_virt_kv::fair_sched::YieldRotates<
    components::sched::cooperative::CooperativeComponentType,
    SchedCap,
>;
type RngHw =
    qemu_rv32_virt_chip::virtio::devices::virtio_rng::VirtIORng<'static, 'static, RiscvCoherentDmaFence>;
type RngDriver = components::rng::RngRandomComponentType<RngHw>;
type CfiHw = CfiFlash<'static, MmioBank>;
type Flash = qemu_rv32_virt_kv::flash_latency::Latency<'static, CfiHw, VirtualMuxAlarm<'static, AlarmHw>>;
type KvStore = capsules_tdbstore::component::TdbStoreComponentType<Flash>;
type KvPermissions = components::kv::KVStorePermissionsComponentType<KvStore>;
type VirtualKv = components::kv::VirtualKVPermissionsComponentType<KvPermissions>;
/// This project's KV syscall driver (upstream's ABI) instead of upstream's `KVStoreDriver`,
/// which loses its value buffer when an app dies during a `get` (and more: see
/// `capsules_tdbstore::kv_syscall`).
type KvDriver = capsules_tdbstore::kv_syscall::KvSyscallDriver<'static, VirtualKv>;
type ExitMonitor = ExitWhenDone<'static, VirtualMuxAlarm<'static, AlarmHw>, ExitCap>;

kernel::define_capability_type!(ExitCap: kernel::capabilities::ProcessManagementCapability);
kernel::define_capability_type!(SchedCap: kernel::capabilities::ProcessManagementCapability);

/// Resources for the panic handler (`io.rs`).
static PANIC_RESOURCES: SingleThreadValue<PanicResources<ChipHw, ProcessPrinter>> = SingleThreadValue::new();

/// How the kernel responds to a process fault: print a line and restart the process, up to
/// FAULT_RESTARTS times, then stop it (never a kernel panic); a stopped process makes the
/// shutdown monitor end the run with a failure status.
const FAULT_RESPONSE: qemu_rv32_virt_kv::fault_policy::RestartThenStop =
    qemu_rv32_virt_kv::fault_policy::RestartThenStop::new(FAULT_RESTARTS);

kernel::stack_size! {0x8000}

/// The system calls this board offers.
struct Platform {
    console: &'static capsules_core::console::Console<'static>,
    alarm: &'static capsules_core::alarm::AlarmDriver<'static, VirtualMuxAlarm<'static, AlarmHw>>,
    lldb: &'static capsules_core::low_level_debug::LowLevelDebug<
        'static,
        capsules_core::virtualizers::virtual_uart::UartDevice<'static>,
    >,
    rng: Option<&'static RngDriver>,
    kv: &'static KvDriver,
    /// Inter-process communication (service discovery and notifications), as upstream boards
    /// offer it: userspace services and test runners that report over IPC need it. Its grant
    /// (NUM_PROCS upcalls and shared buffers) is only allocated in processes that use it.
    ipc: kernel::ipc::IPC<{ NUM_PROCS as u8 }>,
    scheduler: &'static Scheduler,
    scheduler_timer: &'static SchedulerTimerHw,
}

impl SyscallDriverLookup for Platform {
    fn with_driver<F, R>(&self, driver_num: usize, f: F) -> R
    where
        F: FnOnce(Option<&dyn kernel::syscall::SyscallDriver>) -> R,
    {
        match driver_num {
            capsules_core::console::DRIVER_NUM => f(Some(self.console)),
            capsules_core::alarm::DRIVER_NUM => f(Some(self.alarm)),
            capsules_core::low_level_debug::DRIVER_NUM => f(Some(self.lldb)),
            capsules_core::rng::DRIVER_NUM => match self.rng {
                Some(rng) => f(Some(rng)),
                None => f(None),
            },
            capsules_extra::kv_driver::DRIVER_NUM => f(Some(self.kv)),
            kernel::ipc::DRIVER_NUM => f(Some(&self.ipc)),
            _ => f(None),
        }
    }
}

impl KernelResources<ChipHw> for Platform {
    type SyscallDriverLookup = Self;
    type SyscallFilter = ();
    type ProcessFault = ();
    type Scheduler = Scheduler;
    type SchedulerTimer = SchedulerTimerHw;
    type WatchDog = ();
    type ContextSwitchCallback = ();

    fn syscall_driver_lookup(&self) -> &Self::SyscallDriverLookup {
        self
    }
    fn syscall_filter(&self) -> &Self::SyscallFilter {
        &()
    }
    fn process_fault(&self) -> &Self::ProcessFault {
        &()
    }
    fn scheduler(&self) -> &Self::Scheduler {
        self.scheduler
    }
    fn scheduler_timer(&self) -> &Self::SchedulerTimer {
        self.scheduler_timer
    }
    fn watchdog(&self) -> &Self::WatchDog {
        &()
    }
    fn context_switch_callback(&self) -> &Self::ContextSwitchCallback {
        &()
    }
}

// Symbols of the linker script (`layout.ld` and Tock's kernel layout).
extern "C" {
    static _sapps: u8;
    static _eapps: u8;
    static mut _sappmem: u8;
    static _eappmem: u8;
    static _stext: u8;
    static _etext: u8;
    static _sflash: u8;
    static _eflash: u8;
    static _ssram: u8;
    static _esram: u8;
}

/// The kernel's ePMP: flash (kernel and apps) and RAM as upstream, MMIO from 0 to 1 GiB. The
/// upstream board's MMIO region ends at 0x2000_0000; the CFI flash banks are at
/// 0x2000_0000..0x2400_0000, so the region is doubled to the next power of two (NAPOT).
unsafe fn kernel_epmp() -> rv32i::pmp::kernel_protection_mml_epmp::KernelProtectionMMLEPMP<16, 5> {
    use rv32i::pmp::kernel_protection_mml_epmp::{
        FlashRegion, KernelProtectionMMLEPMP, KernelTextRegion, MMIORegion, RAMRegion,
    };
    use rv32i::pmp::{NAPOTRegionSpec, TORRegionSpec};
    KernelProtectionMMLEPMP::new(
        FlashRegion(
            NAPOTRegionSpec::from_start_end(core::ptr::addr_of!(_sflash), core::ptr::addr_of!(_eflash))
                .unwrap(),
        ),
        RAMRegion(
            NAPOTRegionSpec::from_start_end(core::ptr::addr_of!(_ssram), core::ptr::addr_of!(_esram))
                .unwrap(),
        ),
        MMIORegion(NAPOTRegionSpec::from_start_size(core::ptr::null::<u8>(), 0x4000_0000).unwrap()),
        KernelTextRegion(
            TORRegionSpec::from_start_end(core::ptr::addr_of!(_stext), core::ptr::addr_of!(_etext)).unwrap(),
        ),
    )
    .unwrap()
}

/// Main function called after RAM initialized.
///
/// # Safety
///
/// Called once, by the RISC-V start-up code, with RAM initialized and nothing else running.
#[no_mangle]
pub unsafe fn main() {
    // ---------- BASIC INITIALIZATION ----------
    let _ = PANIC_RESOURCES
        .bind_to_thread::<<ChipHw as kernel::platform::chip::Chip>::ThreadIdProvider>(PanicResources::new());
    rv32i::configure_trap_handler();
    kernel::deferred_call::initialize_deferred_call_state::<
        <ChipHw as kernel::platform::chip::Chip>::ThreadIdProvider,
    >();
    // Memory protection right after the trap handler, so most of the set-up runs under it.
    let epmp = kernel_epmp();

    let processes = components::process_array::ProcessArrayComponent::new()
        .finalize(components::process_array_component_static!(NUM_PROCS));
    if let Some(resources) = PANIC_RESOURCES.get() {
        resources.processes.put(processes.as_slice());
    }
    let board_kernel = static_init!(kernel::Kernel, kernel::Kernel::new(processes.as_slice()));

    // ---------- PERIPHERALS ----------
    let peripherals = static_init!(QemuRv32VirtDefaultPeripherals, QemuRv32VirtDefaultPeripherals::new());

    let uart_mux = components::console::UartMuxComponent::new(&peripherals.uart0, 115200)
        .finalize(components::uart_mux_component_static!());

    let hardware_timer =
        static_init!(QemuRv32VirtClint, QemuRv32VirtClint::new(&qemu_rv32_virt_chip::clint::CLINT_BASE));
    let mux_alarm = static_init!(MuxAlarm<'static, QemuRv32VirtClint>, MuxAlarm::new(hardware_timer));
    hil::time::Alarm::set_alarm_client(hardware_timer, mux_alarm);

    let alarm = components::alarm::AlarmDriverComponent::new(
        board_kernel,
        capsules_core::alarm::DRIVER_NUM,
        mux_alarm,
        create_capability!(capabilities::MemoryAllocationCapability),
    )
    .finalize(components::alarm_component_static!(QemuRv32VirtClint));

    // VirtIO EntropySource (`-device virtio-rng-device`), if QEMU provides one.
    let virtio_rng = virtio_rng(peripherals);

    // ---------- CHIP, INTERRUPTS ----------
    let chip = static_init!(ChipHw, QemuRv32VirtChip::new(peripherals, hardware_timer, epmp));
    if let Some(resources) = PANIC_RESOURCES.get() {
        resources.chip.put(chip);
    }
    chip.enable_plic_interrupts();
    csr::CSR.mie.modify(csr::mie::mie::mext::SET + csr::mie::mie::msoft::SET + csr::mie::mie::mtimer::SET);
    csr::CSR.mstatus.modify(csr::mstatus::mstatus::mie::SET);

    // ---------- CONSOLE, DEBUG ----------
    // No process console: its prompt would land in the middle of the apps' lines, which
    // `make run` shows and the end-to-end tests parse.
    let process_printer = components::process_printer::ProcessPrinterTextComponent::new()
        .finalize(components::process_printer_text_component_static!());
    if let Some(resources) = PANIC_RESOURCES.get() {
        resources.printer.put(process_printer);
    }

    let console = components::console::ConsoleComponent::new(
        board_kernel,
        capsules_core::console::DRIVER_NUM,
        uart_mux,
        create_capability!(capabilities::MemoryAllocationCapability),
    )
    .finalize(components::console_component_static!());
    components::debug_writer::DebugWriterComponent::new::<
        <ChipHw as kernel::platform::chip::Chip>::ThreadIdProvider,
    >(uart_mux, create_capability!(capabilities::SetDebugWriterCapability))
    .finalize(components::debug_writer_component_static!());

    let lldb = components::lldb::LowLevelDebugComponent::new(
        board_kernel,
        capsules_core::low_level_debug::DRIVER_NUM,
        uart_mux,
        create_capability!(capabilities::MemoryAllocationCapability),
    )
    .finalize(components::low_level_debug_component_static!());

    let rng = virtio_rng.map(|rng| {
        components::rng::RngRandomComponent::new(
            board_kernel,
            capsules_core::rng::DRIVER_NUM,
            rng,
            create_capability!(capabilities::MemoryAllocationCapability),
        )
        .finalize(components::rng_random_component_static!(RngHw))
    });

    // ---------- KEY-VALUE STORE ----------
    // SAFETY: pflash bank 1 of QEMU virt is at PFLASH1_BASE, inside the kernel's MMIO PMP
    // region, and this driver is its only user.
    let bank = MmioBank::new(PFLASH1_BASE);
    let cfi = static_init!(
        CfiHw,
        CfiFlash::new(
            CfiRegion::new(bank, KV_BLOCKS).expect("KV_BLOCKS: an even number of blocks in the bank")
        )
    );
    cfi.register();
    // Completions arrive after a delay (`flash_latency`), so apps run while a KV operation
    // is in flight, as on real flash.
    let flash_alarm = static_init!(VirtualMuxAlarm<'static, AlarmHw>, VirtualMuxAlarm::new(mux_alarm));
    flash_alarm.setup();
    let flash =
        static_init!(Flash, qemu_rv32_virt_kv::flash_latency::Latency::new(cfi, flash_alarm, FLASH_DELAYS));
    nor_flash_hil::NorFlash::set_client(cfi, flash);
    flash_alarm.set_alarm_client(flash);

    // TDBStore over the flash, then upstream's permission layer, virtualizer and driver.
    let kv_store = capsules_tdbstore::component::TdbStoreComponent::new(flash)
        .finalize(capsules_tdbstore::tdbstore_component_static!(Flash));
    // Mounts in the background (formatting a blank region); user operations wait for it.
    // Upstream's permission layer reads a 9-byte header from every value without a length
    // check: make shorter (raw, host-provisioned) values read as absent instead of a panic.
    kv_store.set_min_value_len(capsules_extra::kv_store_permissions::HEADER_LENGTH);
    let _ = kv_store.mount();
    let kv_permissions = components::kv::KVStorePermissionsComponent::new(kv_store)
        .finalize(components::kv_store_permissions_component_static!(KvStore));
    let kv_mux = components::kv::KVPermissionsMuxComponent::new(kv_permissions)
        .finalize(components::kv_permissions_mux_component_static!(KvPermissions));
    let virtual_kv = components::kv::VirtualKVPermissionsComponent::new(kv_mux)
        .finalize(components::virtual_kv_permissions_component_static!(KvPermissions));
    // The syscall driver is the virtualizer's only client: every app's request is queued in
    // the driver (one per app, round robin), so upstream's MuxKVPermissions, whose answer to a
    // second client (queued or BUSY) depends on which client was set up first
    // (capsules/extra/src/virtualizers/virtual_kv.rs `do_next_op`), never sees two.
    let kv = capsules_tdbstore::component::KvSyscallComponent::new(
        virtual_kv,
        board_kernel,
        capsules_extra::kv_driver::DRIVER_NUM,
        create_capability!(capabilities::MemoryAllocationCapability),
    )
    .finalize(capsules_tdbstore::kv_syscall_component_static!(VirtualKv));

    // ---------- SCHEDULER ----------
    // Upstream's cooperative scheduler, with a yielding process always giving up its turn
    // (`fair_sched`): without that, one app's KV operations keep it at the head of the queue.
    let cooperative = components::sched::cooperative::CooperativeComponent::new(processes)
        .finalize(components::cooperative_component_static!(NUM_PROCS));
    let scheduler = static_init!(
        Scheduler,
        qemu_rv32_virt_kv::fair_sched::YieldRotates::new(
            cooperative,
            board_kernel,
            kernel::mint_defined_capability!(SchedCap)
        )
    );
    let scheduler_timer = components::virtual_scheduler_timer::VirtualSchedulerTimerComponent::new(mux_alarm)
        .finalize(components::virtual_scheduler_timer_component_static!(AlarmHw));

    let ipc = kernel::ipc::IPC::new(
        board_kernel,
        kernel::ipc::DRIVER_NUM,
        &create_capability!(capabilities::MemoryAllocationCapability),
    );
    let platform =
        static_init!(Platform, Platform { console, alarm, lldb, rng, kv, ipc, scheduler, scheduler_timer });

    debug!("QEMU RISC-V 32-bit \"virt\" machine with the TDBStore key-value store, initialization complete.");

    // ---------- PROCESSES ----------
    // ShortIds from the TBF headers; storage permissions from the TBF headers' write_id,
    // read_ids and access_ids (upstream's policy: a process may write when it has a write_id,
    // its records are stored under its ShortId, and it reads and modifies exactly the ids
    // listed). No credential checking.
    let checking_policy = components::appid::checker_null::AppCheckerNullComponent::new()
        .finalize(components::app_checker_null_component_static!());
    let assigner = components::appid::assigner_tbf::AppIdAssignerTbfHeaderComponent::new()
        .finalize(components::appid_assigner_tbf_header_component_static!());
    let checker = components::appid::checker::ProcessCheckerMachineComponent::new(checking_policy)
        .finalize(components::process_checker_machine_component_static!());

    #[derive(Clone)]
    struct AppStoreCap;
    // SAFETY: a capability type; only the storage-permissions policy below holds it.
    unsafe impl capabilities::ApplicationStorageCapability for AppStoreCap {}
    let storage_permissions_policy =
        components::storage_permissions::tbf_header::StoragePermissionsTbfHeaderComponent::new(AppStoreCap)
            .finalize(components::storage_permissions_tbf_header_component_static!(
                ChipHw,
                kernel::process::ProcessStandardDebugFull,
                AppStoreCap
            ));

    let app_flash = core::slice::from_raw_parts(
        core::ptr::addr_of!(_sapps),
        core::ptr::addr_of!(_eapps) as usize - core::ptr::addr_of!(_sapps) as usize,
    );
    let app_memory = core::slice::from_raw_parts_mut(
        core::ptr::addr_of_mut!(_sappmem),
        core::ptr::addr_of!(_eappmem) as usize - core::ptr::addr_of!(_sappmem) as usize,
    );
    let loader = components::loader::sequential::ProcessLoaderSequentialComponent::new(
        checker,
        board_kernel,
        chip,
        &FAULT_RESPONSE,
        assigner,
        storage_permissions_policy,
        app_flash,
        app_memory,
        create_capability!(capabilities::ProcessManagementCapability),
    )
    .finalize(components::process_loader_sequential_component_static!(
        ChipHw,
        kernel::process::ProcessStandardDebugFull,
        NUM_PROCS
    ));

    // End the emulation once every process has exited.
    let exit_alarm = static_init!(VirtualMuxAlarm<'static, AlarmHw>, VirtualMuxAlarm::new(mux_alarm));
    exit_alarm.setup();
    // SAFETY: QEMU virt's test device is at TEST_DEVICE_BASE, inside the MMIO PMP region.
    let exit_monitor = static_init!(
        ExitMonitor,
        ExitWhenDone::new(
            exit_alarm,
            board_kernel,
            kernel::mint_defined_capability!(ExitCap),
            QemuTestDevice::new(TEST_DEVICE_BASE),
        )
    );
    exit_alarm.set_alarm_client(exit_monitor);
    loader.set_client(exit_monitor);

    board_kernel.kernel_loop(
        platform,
        chip,
        Some(&platform.ipc),
        &create_capability!(capabilities::MainLoopCapability),
    );
}

/// Finds QEMU's VirtIO EntropySource among the eight VirtIO MMIO transports and starts its
/// driver; `None` without one.
unsafe fn virtio_rng(
    peripherals: &'static QemuRv32VirtDefaultPeripherals<'static>,
) -> Option<&'static RngHw> {
    use qemu_rv32_virt_chip::virtio::devices::virtio_rng::VirtIORng;
    use qemu_rv32_virt_chip::virtio::devices::VirtIODeviceType;
    use qemu_rv32_virt_chip::virtio::queues::split_queue::{
        SplitVirtqueue, VirtqueueAvailableRing, VirtqueueDescriptors, VirtqueueUsedRing,
    };
    use qemu_rv32_virt_chip::virtio::queues::Virtqueue;
    use qemu_rv32_virt_chip::virtio::transports::VirtIOTransport;

    let transport = peripherals
        .virtio_mmio
        .iter()
        .rposition(|dev| matches!(dev.query(), Ok(VirtIODeviceType::EntropySource)))?;
    let transport = &peripherals.virtio_mmio[transport];

    let descriptors = static_init!(VirtqueueDescriptors<1>, VirtqueueDescriptors::default());
    let available_ring = static_init!(VirtqueueAvailableRing<1>, VirtqueueAvailableRing::default());
    let used_ring = static_init!(VirtqueueUsedRing<1>, VirtqueueUsedRing::default());
    let queue = static_init!(
        SplitVirtqueue<1, RiscvCoherentDmaFence>,
        SplitVirtqueue::new(descriptors, available_ring, used_ring, RiscvCoherentDmaFence::new())
    );
    queue.set_transport(transport);

    let rng = static_init!(RngHw, VirtIORng::new(queue));
    rng.register();
    queue.set_client(rng);
    let queues = static_init!([&'static dyn Virtqueue; 1], [queue; 1]);
    transport.initialize(rng, queues).ok()?;
    rng.provide_buffer(static_init!([u8; 64], [0; 64])).ok()?;
    Some(rng)
}
