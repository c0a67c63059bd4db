// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Board file for the Arduino Portenta H7 (STM32H747XI, Cortex-M7 core) with the TDBStore
//! key-value store in flash bank 2.
//!
//! ```text
//!  apps (kv_stats, kv_share, ...)        syscalls: console, LEDs, alarm, KV 0x50003
//! --------------------------------------------------------------------------------
//!  KvSyscallDriver (capsules/tdbstore, upstream's ABI)
//!  -> VirtualKVPermissions -> MuxKVPermissions -> KVStorePermissions       (upstream)
//!  capsules/tdbstore (hil::kv::KV, via its component)
//!  stm32h7::flash::Flash (nor_flash_hil::NorFlash)         bank 2, 0x0810_0000, 1 MiB
//!  stm32h7: RCC 400 MHz, USART1 console, TIM2 alarm, GPIO LEDs   (this file wires)
//! ```
//!
//! Flash: the Arduino bootloader keeps 0x0800_0000..0x0804_0000; the kernel is at
//! 0x0804_0000, apps at 0x0808_0000..0x0810_0000, the store in bank 2 (`kv_region`). RAM:
//! kernel below 0x2402_0000, app memory above (`layout.ld`). Console: USART1 on PA9/PA10 at
//! 115200 8N1, with the process console. LEDs: the RGB LED (PK5 red, PK6 green, PK7 blue,
//! active low). Processes get ShortIds and storage permissions from their TBF headers.

#![no_std]
#![no_main]
#![deny(missing_docs)]

use core::ptr::{addr_of, addr_of_mut};

use capsules_core::virtualizers::virtual_alarm::VirtualMuxAlarm;
use kernel::capabilities;
use kernel::component::Component;
use kernel::debug::PanicResources;
use kernel::hil::gpio::{Configure, Output};
use kernel::hil::led::LedLow;
use kernel::platform::chip::Chip;
use kernel::platform::{KernelResources, SyscallDriverLookup};
use kernel::process::ProcessLoadingAsync;
use kernel::utilities::single_thread_value::SingleThreadValue;
use kernel::{create_capability, debug, static_init};
use nor_flash_hil::NorFlash;
use stm32h7::chip::{Stm32h7, Stm32h747DefaultPeripherals};
use stm32h7::flash::FLASH_BASE;
use stm32h7::gpio::{Pin, Port, Speed};
use stm32h7::pwr::Pwr;
use stm32h7::rcc::Rcc;

mod boot;
/// Panic handler.
pub mod io;
mod kv_region;

/// Process slots.
const NUM_PROCS: usize = 4;

/// Console baud rate (USART1, 8N1).
pub const CONSOLE_BAUD: u32 = 115_200;

type ChipHw = Stm32h7<'static, Stm32h747DefaultPeripherals<'static>>;
type AlarmHw = stm32h7::tim2::Tim2<'static>;
type Led = LedLow<'static, Pin<'static>>;
type ProcessPrinterInUse = capsules_system::process_printer::ProcessPrinterText;
type SchedulerInUse = components::sched::round_robin::RoundRobinComponentType;

/// Resources the panic handler (`io.rs`) reports from.
static PANIC_RESOURCES: SingleThreadValue<PanicResources<ChipHw, ProcessPrinterInUse>> =
    SingleThreadValue::new();

/// A faulting process is stopped and its state printed; the kernel and the other processes
/// keep running (the process console can restart it).
const FAULT_RESPONSE: capsules_system::process_policies::StopWithDebugFaultPolicy =
    capsules_system::process_policies::StopWithDebugFaultPolicy {};

kernel::stack_size! {0x2000}

type FlashHw = stm32h7::chip::FlashDriver<'static>;
type KvStore = capsules_tdbstore::component::TdbStoreComponentType<FlashHw>;
type KvPermissions = components::kv::KVStorePermissionsComponentType<KvStore>;
type VirtualKv = components::kv::VirtualKVPermissionsComponentType<KvPermissions>;
/// This project's KV syscall driver (upstream's ABI) instead of upstream's `KVStoreDriver`,
/// which loses its value buffer when an app dies during a `get` (and more: see
/// `capsules_tdbstore::kv_syscall`).
type KvDriver = capsules_tdbstore::kv_syscall::KvSyscallDriver<'static, VirtualKv>;

/// The system calls this board offers.
struct PortentaH7 {
    console: &'static capsules_core::console::Console<'static>,
    led: &'static capsules_core::led::LedDriver<'static, Led, 3>,
    alarm: &'static capsules_core::alarm::AlarmDriver<'static, VirtualMuxAlarm<'static, AlarmHw>>,
    kv_driver: &'static KvDriver,
    ipc: kernel::ipc::IPC<{ NUM_PROCS as u8 }>,
    scheduler: &'static SchedulerInUse,
    systick: cortexm7::systick::SysTick,
}

impl SyscallDriverLookup for PortentaH7 {
    fn with_driver<F, R>(&self, driver_num: usize, f: F) -> R
    where
        F: FnOnce(Option<&dyn kernel::syscall::SyscallDriver>) -> R,
    {
        match driver_num {
            capsules_core::console::DRIVER_NUM => f(Some(self.console)),
            capsules_core::led::DRIVER_NUM => f(Some(self.led)),
            capsules_core::alarm::DRIVER_NUM => f(Some(self.alarm)),
            capsules_extra::kv_driver::DRIVER_NUM => f(Some(self.kv_driver)),
            kernel::ipc::DRIVER_NUM => f(Some(&self.ipc)),
            _ => f(None),
        }
    }
}

impl KernelResources<ChipHw> for PortentaH7 {
    type SyscallDriverLookup = Self;
    type SyscallFilter = ();
    type ProcessFault = ();
    type Scheduler = SchedulerInUse;
    type SchedulerTimer = cortexm7::systick::SysTick;
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
        &self.systick
    }
    fn watchdog(&self) -> &Self::WatchDog {
        &()
    }
    fn context_switch_callback(&self) -> &Self::ContextSwitchCallback {
        &()
    }
}

impl kernel::process::ProcessLoadingAsyncClient for PortentaH7 {
    fn process_loaded(&self, result: Result<(), kernel::process::ProcessLoadError>) {
        if let Err(e) = result {
            debug!("Process not loaded: {:?}", e);
        }
    }

    fn process_loading_finished(&self) {
        debug!("Processes loaded.");
    }
}

/// Sets up the chip and every capsule. Separate and `inline(never)` so its large stack frame
/// (the `static_init!`s) is gone before the kernel loop runs.
///
/// # Safety
///
/// Call once, from `main`, before anything else touches the chip.
#[inline(never)]
unsafe fn start() -> (&'static kernel::Kernel, &'static PortentaH7, &'static ChipHw) {
    // SAFETY: first thing in `main`, before any driver of the NVIC, MPU or SysTick exists:
    // takes the core over from the bootloader (interrupts masked, MPU cleared, D-cache off,
    // VTOR) and turns the FPU off.
    let handoff = unsafe { stm32h7::init() };
    ChipHw::init();

    kernel::deferred_call::initialize_deferred_call_state::<<ChipHw as Chip>::ThreadIdProvider>();
    let _ = PANIC_RESOURCES.bind_to_thread::<<ChipHw as Chip>::ThreadIdProvider>(PanicResources::new());

    // ---------- CLOCKS ----------
    let rcc = static_init!(Rcc, Rcc::new());
    let pwr = Pwr::new();

    // Boot stages on the RGB LED (boot.rs, the README's table): red = core taken over.
    let red = static_init!(Pin<'static>, Pin::new(Port::K, 5, rcc));
    let green = static_init!(Pin<'static>, Pin::new(Port::K, 6, rcc));
    let blue = static_init!(Pin<'static>, Pin::new(Port::K, 7, rcc));
    let rgb = boot::RgbLed { red, green, blue };
    rgb.init();
    rgb.show(boot::Stage::TookOver);

    // The board's oscillator (25 MHz, or 27 MHz on beta boards) from the bootloader's
    // information block, and what the bootloader left running, before anything changes.
    let clock_plan = boot::clock_plan();
    let (hse_ready, hse_bypass) = rcc.hse_state();
    let clock_found = boot::ClockFound { sysclk: rcc.sysclk_source(), hse_ready, hse_bypass };
    // The 25 MHz MEMS oscillator runs while PH1 is high (Arduino's `enableOscillator`). The
    // bootloader may be clocking the chip from it already: latch the output high before the
    // pin becomes an output, so it never drives low.
    let osc_enable = Pin::new(Port::H, 1, rcc);
    osc_enable.enable_clock();
    osc_enable.set();
    osc_enable.make_output();
    let clock_outcome = match clock_plan.config {
        Some(config) => match rcc.configure(&config) {
            Ok(()) => boot::ClockOutcome::Configured,
            Err(e) => boot::ClockOutcome::Failed(e),
        },
        // Unknown oscillator: never guess (boot.rs); HSI is exact without it.
        None => match rcc.switch_to_hsi() {
            Ok(()) => boot::ClockOutcome::Refused,
            Err(e) => boot::ClockOutcome::Failed(e),
        },
    };
    let clocks = rcc.frequencies(boot::hse_hz(&clock_plan));
    rgb.show(boot::Stage::ClocksSet);

    // ---------- PINS ----------
    // USART1: PA9 TX, PA10 RX, alternate function 7.
    for number in [9, 10] {
        let pin = Pin::new(Port::A, number, rcc);
        pin.enable_clock();
        pin.set_speed(Speed::Medium);
        pin.set_alternate_function(7);
    }

    // ---------- FLASH REGION ----------
    extern "C" {
        /// Beginning of the ROM region containing app images.
        static _sapps: u8;
        /// End of the ROM region containing app images.
        static _eapps: u8;
        /// Beginning of the RAM region for app memory.
        static mut _sappmem: u8;
        /// End of the RAM region for app memory.
        static _eappmem: u8;
    }
    let flash_end = FLASH_BASE + stm32h7::flash::mmio::device_flash_size();
    let kv_region = match kv_region::kv_region(addr_of!(_eapps) as u32, flash_end) {
        Ok(r) => r,
        Err(e) => panic!("no key-value region: {:?}", e),
    };

    // ---------- PERIPHERALS ----------
    let peripherals = static_init!(
        Stm32h747DefaultPeripherals<'static>,
        Stm32h747DefaultPeripherals::new(rcc, &clocks, kv_region)
    );
    peripherals.init();
    peripherals.tim2.start();

    let processes = components::process_array::ProcessArrayComponent::new()
        .finalize(components::process_array_component_static!(NUM_PROCS));
    if let Some(resources) = PANIC_RESOURCES.get() {
        resources.processes.put(processes.as_slice());
    }
    let board_kernel = static_init!(kernel::Kernel, kernel::Kernel::new(processes.as_slice()));

    let chip = static_init!(ChipHw, Stm32h7::new(peripherals));
    if let Some(resources) = PANIC_RESOURCES.get() {
        resources.chip.put(chip);
    }

    // ---------- CONSOLE ----------
    peripherals.usart1.enable_clock();
    let uart_mux = components::console::UartMuxComponent::new(&peripherals.usart1, CONSOLE_BAUD)
        .finalize(components::uart_mux_component_static!());
    let console = components::console::ConsoleComponent::new(
        board_kernel,
        capsules_core::console::DRIVER_NUM,
        uart_mux,
        create_capability!(capabilities::MemoryAllocationCapability),
    )
    .finalize(components::console_component_static!());
    components::debug_writer::DebugWriterComponent::new::<<ChipHw as Chip>::ThreadIdProvider>(
        uart_mux,
        create_capability!(capabilities::SetDebugWriterCapability),
    )
    // 4 KiB (default 2): the boot report is about 1 KiB and must not be cut short.
    .finalize(components::debug_writer_component_static!(4));

    // ---------- LEDS ----------
    // The boot-stage pins, handed to apps once the kernel runs.
    let led = components::led::LedsComponent::new().finalize(components::led_component_static!(
        Led,
        LedLow::new(red),
        LedLow::new(green),
        LedLow::new(blue),
    ));
    // The LED driver turned them off (LedLow::init): show the stage again.
    rgb.show(boot::Stage::ClocksSet);

    // ---------- ALARM ----------
    let mux_alarm = components::alarm::AlarmMuxComponent::new(&peripherals.tim2)
        .finalize(components::alarm_mux_component_static!(AlarmHw));
    let alarm = components::alarm::AlarmDriverComponent::new(
        board_kernel,
        capsules_core::alarm::DRIVER_NUM,
        mux_alarm,
        create_capability!(capabilities::MemoryAllocationCapability),
    )
    .finalize(components::alarm_component_static!(AlarmHw));

    // ---------- PROCESS CONSOLE ----------
    let process_printer = components::process_printer::ProcessPrinterTextComponent::new()
        .finalize(components::process_printer_text_component_static!());
    if let Some(resources) = PANIC_RESOURCES.get() {
        resources.printer.put(process_printer);
    }
    kernel::create_typed_capability!(process_console_cap, ProcessConsoleCap:
        kernel::capabilities::ProcessManagementCapability,
        kernel::capabilities::ProcessStartCapability
    );
    let process_console = components::process_console::ProcessConsoleComponent::new(
        board_kernel,
        uart_mux,
        mux_alarm,
        process_printer,
        Some(cortexm7::support::reset),
        process_console_cap,
    )
    .finalize(components::process_console_component_static!(AlarmHw, ProcessConsoleCap));

    // ---------- SCHEDULER ----------
    let scheduler = components::sched::round_robin::RoundRobinComponent::new(processes)
        .finalize(components::round_robin_component_static!(NUM_PROCS));

    // ---------- BOOT REPORT ----------
    // Queued before the store's mount starts (below): what the bootloader left, what the
    // kernel set, the clocks, then the region and geometry lines and the mount result.
    boot::report(&handoff, &clock_plan, &clock_found, clock_outcome, &clocks, &pwr);
    let geometry = peripherals.flash.geometry();
    debug!("Key-value region: {:#010x}..{:#010x}.", kv_region.base(), kv_region.end());
    debug!(
        "FlashIAP block device size: {}, Readsize: {}, Programsize: {}, Erasesize: {}",
        geometry.size, geometry.read_size, geometry.program_size, geometry.erase_size
    );

    // ---------- KEY-VALUE STORE ----------
    // TDBStore over the bank-2 region, then upstream's permission layer, virtualizer and
    // system call driver (0x50003). The mount runs in the background (formatting a blank
    // region) and prints its outcome; user operations wait for it.
    let kv_store = capsules_tdbstore::component::TdbStoreComponent::new(&peripherals.flash)
        .finalize(capsules_tdbstore::tdbstore_component_static!(FlashHw));
    // Upstream's permission layer reads a 9-byte header from every value without a length
    // check: make shorter (raw, host-provisioned) values read as absent instead of a panic.
    kv_store.set_min_value_len(capsules_extra::kv_store_permissions::HEADER_LENGTH);
    // The option bytes decide whether the region is free (stm32h7::flash::options): the
    // driver refuses every operation otherwise, so no mount is started; apps get errors.
    let options = peripherals.flash.option_bytes();
    debug!(
        "Option bytes: BCM4 {} (Cortex-M4 {} at reset), BOOT_CM4_ADD0 {:#010x}, BOOT_CM4_ADD1 {:#010x}, SWAP_BANK {}.",
        u8::from(options.bcm4),
        if options.bcm4 { "starts" } else { "stays off" },
        options.cm4_boot0,
        options.cm4_boot1,
        u8::from(options.swap_bank),
    );
    match peripherals.flash.refusal() {
        Some(refusal) => debug!(
            "tdbstore: REFUSED, no flash operation on {:#010x}..{:#010x}: {}.",
            kv_region.base(),
            kv_region.end(),
            refusal.explanation()
        ),
        None => {
            if let Err(e) = kv_store.mount() {
                debug!("tdbstore: mount not started: {:?}", e);
            }
        }
    }
    rgb.show(boot::Stage::Running);
    let kv_permissions = components::kv::KVStorePermissionsComponent::new(kv_store)
        .finalize(components::kv_store_permissions_component_static!(KvStore));
    let kv_mux = components::kv::KVPermissionsMuxComponent::new(kv_permissions)
        .finalize(components::kv_permissions_mux_component_static!(KvPermissions));
    let virtual_kv = components::kv::VirtualKVPermissionsComponent::new(kv_mux)
        .finalize(components::virtual_kv_permissions_component_static!(KvPermissions));
    // The virtualizer's only client: every app's request is queued in the syscall driver.
    let kv_driver = capsules_tdbstore::component::KvSyscallComponent::new(
        virtual_kv,
        board_kernel,
        capsules_extra::kv_driver::DRIVER_NUM,
        create_capability!(capabilities::MemoryAllocationCapability),
    )
    .finalize(capsules_tdbstore::kv_syscall_component_static!(VirtualKv));

    // ---------- PROCESSES ----------
    // ShortIds from the TBF headers; storage permissions from the TBF headers' write_id,
    // read_ids and access_ids (upstream's TbfHeaderStoragePermissions). No credential checks.
    let checking_policy = components::appid::checker_null::AppCheckerNullComponent::new()
        .finalize(components::app_checker_null_component_static!());
    let assigner = components::appid::assigner_tbf::AppIdAssignerTbfHeaderComponent::new()
        .finalize(components::appid_assigner_tbf_header_component_static!());
    let checker = components::appid::checker::ProcessCheckerMachineComponent::new(checking_policy)
        .finalize(components::process_checker_machine_component_static!());
    kernel::create_typed_capability!(app_store_cap, AppStoreCap:
        kernel::capabilities::ApplicationStorageCapability
    );
    let storage_permissions_policy =
        components::storage_permissions::tbf_header::StoragePermissionsTbfHeaderComponent::new(app_store_cap)
            .finalize(components::storage_permissions_tbf_header_component_static!(
                ChipHw,
                kernel::process::ProcessStandardDebugFull,
                AppStoreCap,
            ));

    // SAFETY: `_sapps.._eapps` and `_sappmem.._eappmem` are the app flash and app RAM regions
    // of layout.ld / tock_kernel_layout.ld: valid, and used by nothing but the process loader.
    let app_flash =
        core::slice::from_raw_parts(addr_of!(_sapps), addr_of!(_eapps) as usize - addr_of!(_sapps) as usize);
    let app_memory = core::slice::from_raw_parts_mut(
        addr_of_mut!(_sappmem),
        addr_of!(_eappmem) as usize - addr_of!(_sappmem) as usize,
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

    let platform = static_init!(
        PortentaH7,
        PortentaH7 {
            console,
            led,
            alarm,
            kv_driver,
            ipc: kernel::ipc::IPC::new(
                board_kernel,
                kernel::ipc::DRIVER_NUM,
                &create_capability!(capabilities::MemoryAllocationCapability),
            ),
            scheduler,
            systick: cortexm7::systick::SysTick::new_with_calibration(clocks.cpu),
        }
    );
    loader.set_client(platform);
    let _ = process_console.start();

    (board_kernel, platform, chip)
}

/// Entry point after RAM is initialised (`initialize_ram_jump_to_main`).
///
/// # Safety
///
/// Called once by the reset handler; never returns.
#[no_mangle]
pub unsafe fn main() {
    let main_loop_capability = create_capability!(capabilities::MainLoopCapability);
    // SAFETY: called once, here, at boot.
    let (board_kernel, platform, chip) = unsafe { start() };
    board_kernel.kernel_loop(platform, chip, Some(&platform.ipc), &main_loop_capability);
}
