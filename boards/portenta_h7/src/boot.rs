// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Boot stages on the RGB LED and the boot report on the console: what the Arduino bootloader
//! left, what the kernel set, and the clock set-up for the board's oscillator.
//!
//! ```text
//! main.rs start() -> boot (this file) -> stm32h7::{handoff, bootinfo, rcc, pwr}
//!                                     -> RGB LED (PK5/PK6/PK7, active low), debug! console
//! ```
//!
//! The LED tells a user with a silent console how far the kernel got (the board's README
//! has the table): the bootloader leaves green on; the kernel shows red as soon as it has
//! taken the core over, yellow once the clocks are set, blue once the console, the boot
//! report and the store's mount are under way. A panic blinks red (`io.rs`).

use core::sync::atomic::{AtomicU32, Ordering};

use kernel::debug;
use kernel::hil::gpio::{Configure, Output};
use stm32h7::bootinfo::{board_hse, BootloaderInfo, Hse};
use stm32h7::gpio::Pin;
use stm32h7::handoff::{systick_state, Handoff};
use stm32h7::pwr::Pwr;
use stm32h7::rcc::{ClockConfig, ClockError, Frequencies, SysclkSource};

/// How far the boot got, shown on the RGB LED.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Red: the core is taken over from the bootloader; the clocks are next.
    TookOver,
    /// Yellow (red + green): the clocks are set (or refused); the console is next.
    ClocksSet,
    /// Blue: console up, boot report queued, store mounting, processes loading.
    Running,
}

/// The RGB LED's three pins (red, green, blue; active low).
pub struct RgbLed<'a> {
    /// PK5.
    pub red: &'a Pin<'a>,
    /// PK6.
    pub green: &'a Pin<'a>,
    /// PK7.
    pub blue: &'a Pin<'a>,
}

impl RgbLed<'_> {
    /// Makes the pins outputs, all off (high) first so nothing flashes.
    pub fn init(&self) {
        for pin in [self.red, self.green, self.blue] {
            pin.enable_clock();
            pin.set();
            pin.make_output();
        }
    }

    /// Shows `stage`.
    pub fn show(&self, stage: Stage) {
        let (r, g, b) = match stage {
            Stage::TookOver => (true, false, false),
            Stage::ClocksSet => (true, true, false),
            Stage::Running => (false, false, true),
        };
        for (pin, on) in [(self.red, r), (self.green, g), (self.blue, b)] {
            if on {
                pin.clear();
            } else {
                pin.set();
            }
        }
    }
}

/// What the board's clock decision was.
#[derive(Clone, Copy, Debug)]
pub struct ClockPlan {
    /// The bootloader's information block.
    pub info: BootloaderInfo,
    /// The HSE it implies.
    pub hse: Hse,
    /// The set-up for that HSE, if there is one.
    pub config: Option<ClockConfig>,
}

/// Reads the bootloader's information block and picks the clock set-up for the board's HSE
/// (`stm32h7::bootinfo`: 25 MHz production boards, 27 MHz beta boards, otherwise none).
pub fn clock_plan() -> ClockPlan {
    let info = BootloaderInfo::read();
    let hse = board_hse(&info);
    let config = match hse {
        Hse::Known { hz, .. } => ClockConfig::for_hse(hz),
        Hse::Unknown(_) => None,
    };
    ClockPlan { info, hse, config }
}

/// The HSE frequency to compute frequencies with: the plan's, or 25 MHz when unknown (then
/// nothing runs from HSE, so the value is not used). Remembered for the panic handler.
pub fn hse_hz(plan: &ClockPlan) -> u32 {
    let hz = match plan.config {
        Some(c) => c.hse_hz,
        None => ClockConfig::PORTENTA_H7.hse_hz,
    };
    BOARD_HSE_HZ.store(hz, Ordering::Relaxed);
    hz
}

/// The board's HSE as decided at boot, for the panic handler (which must not depend on more
/// than it has to): 25 MHz until `hse_hz` ran.
static BOARD_HSE_HZ: AtomicU32 = AtomicU32::new(25_000_000);

/// The HSE frequency decided at boot (`hse_hz`).
pub fn board_hse_hz() -> u32 {
    BOARD_HSE_HZ.load(Ordering::Relaxed)
}

/// Why the clocks are not what the plan wanted.
#[derive(Clone, Copy, Debug)]
pub enum ClockOutcome {
    /// PLL1 from HSE as planned.
    Configured,
    /// The set-up failed; the system runs from HSI.
    Failed(ClockError),
    /// No set-up for this board's HSE: refused, the system runs from HSI.
    Refused,
}

/// State read before the kernel changed the clocks.
#[derive(Clone, Copy, Debug)]
pub struct ClockFound {
    /// SYSCLK source the bootloader left.
    pub sysclk: SysclkSource,
    /// HSE ready, and in bypass mode.
    pub hse_ready: bool,
    /// HSE in bypass mode.
    pub hse_bypass: bool,
}

/// Queues the boot report on the debug console: before, after, clocks.
pub fn report(
    handoff: &Handoff,
    plan: &ClockPlan,
    found: &ClockFound,
    outcome: ClockOutcome,
    clocks: &Frequencies,
    pwr: &Pwr,
) {
    let f = &handoff.found;
    debug!("Arduino Portenta H7 (STM32H747, Cortex-M7), Tock kernel at {:#010x}.", handoff.set.vtor);
    debug!(
        "Bootloader left: VTOR {:#010x}, I-cache {}, D-cache {}, MPU {} (CTRL {:#x}, regions enabled {:#06x} of {}), PRIMASK {}, BASEPRI {:#x}, NVIC {} enabled/{} pending, SysTick {}, fault handlers {:#x}.",
        f.vtor,
        on_off(f.icache),
        on_off(f.dcache),
        on_off(f.mpu_ctrl & 1 != 0),
        f.mpu_ctrl,
        f.mpu_enabled_regions,
        f.mpu_regions,
        u8::from(f.primask),
        f.basepri,
        f.nvic_enabled,
        f.nvic_pending,
        systick_state(f.systick_csr),
        f.fault_enables >> 16,
    );
    debug!(
        "Bootloader left: CFSR {:#010x}, HFSR {:#010x}, SCR {:#x}, flash banks unlocked {:#04b} (bit 0 bank 1); kernel cleared the fault status, SCR = 0, both banks locked.",
        f.cfsr, f.hfsr, f.scr, f.flash_unlocked,
    );
    debug!(
        "Bootloader left: SYSCLK from {:?}, HSE {}{}; supply {:?} (PWR_CR3 {:#x}, never changed by the kernel).",
        found.sysclk,
        if found.hse_ready { "ready" } else { "off" },
        if found.hse_bypass { " (bypass)" } else { "" },
        pwr.supply_config(),
        pwr.cr3(),
    );
    let i = &plan.info;
    debug!(
        "Bootloader info at 0x0801f000: magic {:#04x}, version {}, extclock {} -> HSE {:?}.",
        i.magic, i.version, i.extclock, plan.hse
    );
    let s = &handoff.set;
    debug!(
        "Kernel set: VTOR {:#010x}, I-cache {}, D-cache {} (process regions: Normal, non-cacheable), MPU {} with {} regions cleared, PRIMASK {} (masked during the take-over), BASEPRI {:#x}, NVIC lines {:?} only, SysTick off.",
        s.vtor,
        on_off(s.icache),
        on_off(s.dcache),
        on_off(s.mpu_ctrl & 1 != 0),
        s.mpu_regions_cleared,
        u8::from(s.primask),
        s.basepri,
        stm32h7::nvic::ENABLED,
    );
    let acr = stm32h7::rcc::Rcc::new().flash_access_control();
    match outcome {
        ClockOutcome::Configured => debug!(
            "Clocks: SYSCLK {} Hz (PLL1 from HSE {} MHz), HCLK {} Hz, FLASH_ACR LATENCY {} WRHIGHFREQ {}.",
            clocks.sysclk,
            hse_hz(plan) / 1_000_000,
            clocks.hclk,
            acr & 0xF,
            (acr >> 4) & 0x3
        ),
        ClockOutcome::Failed(e) => debug!(
            "Clocks: set-up failed ({:?}); running from HSI, SYSCLK {} Hz, HCLK {} Hz.",
            e, clocks.sysclk, clocks.hclk
        ),
        ClockOutcome::Refused => debug!(
            "Clocks: refused to start PLL1 from HSE {:?}; running from HSI, SYSCLK {} Hz, HCLK {} Hz.",
            plan.hse, clocks.sysclk, clocks.hclk
        ),
    }
}

const fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}
