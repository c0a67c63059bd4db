//! The key-value capsule's flash and RAM as built for the Portenta H7: read from the JSON
//! that `make -C boards/portenta_h7 kv-footprint` writes (`tools/bench/scripts/kv_footprint.py`
//! over the release kernel ELF), which `make bench` produces before it runs the benchmark.
//! Nothing here is estimated: a figure the build did not yield is reported as missing, with
//! the reason the script or the Makefile gave.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::numbers::thousands;

/// Flash bytes of code and constants, by the owner of each symbol.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct FlashByOwner {
    /// `capsules_tdbstore` but its syscall driver: the store capsule (`TdbStoreKv`, its
    /// component).
    pub capsule: u64,
    /// `capsules_tdbstore::kv_syscall` (the syscall driver that replaces upstream's). Figures
    /// measured before it was counted apart have it inside `capsule` and 0 here.
    #[serde(default)]
    pub syscall_driver: u64,
    /// `tdbstore` (the engine).
    pub engine: u64,
    /// `stm32h7::flash` (the FLASH driver), for scale.
    pub flash_driver: u64,
    /// Every sized code and constant symbol of the kernel.
    pub symbols: u64,
}

/// The whole kernel.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Kernel {
    /// Flash bytes (text, constants, exception index, storage, data image).
    pub flash: u64,
    /// RAM bytes (stack, data, bss; app memory excluded).
    pub ram: u64,
}

/// One static the board allocates (a `static_buf!`).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct RamItem {
    /// `tdbstore_kv` (the capsule and its buffers), `kv_syscall` (the syscall driver and its
    /// buffers) or `upstream` (Tock's permission and virtualizer layers between them).
    pub layer: String,
    /// Its type, in full.
    #[serde(rename = "type")]
    pub ty: String,
    /// Its type, shortened for the table.
    pub short: String,
    /// Bytes of the value.
    pub bytes: u64,
    /// Bytes of the static (with `static_buf!`'s flag and padding).
    pub static_bytes: u64,
    /// Where the board allocates it.
    pub site: String,
}

/// A struct's size.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct TypeSize {
    /// Type.
    #[serde(rename = "type")]
    pub ty: String,
    /// Bytes.
    pub bytes: u64,
}

/// RAM of the capsule's statics, from the ELF's debug info.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Ram {
    /// Why the RAM could not be measured, if it could not.
    pub unavailable: Option<String>,
    /// The statics.
    #[serde(default)]
    pub items: Vec<RamItem>,
    /// The engine's state (`tdbstore::…::Store`), which lives inside the capsule struct.
    pub engine_state: Option<TypeSize>,
}

/// What `kv_footprint.py` reports.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Footprint {
    /// Board.
    #[serde(default)]
    pub board: String,
    /// Target triple.
    #[serde(default)]
    pub target: String,
    /// Why nothing could be measured (no kernel build), if so.
    pub unavailable: Option<String>,
    /// The kernel's totals.
    pub kernel: Option<Kernel>,
    /// Flash by owner.
    pub flash: Option<FlashByOwner>,
    /// RAM.
    pub ram: Option<Ram>,
}

impl Footprint {
    /// Reads the JSON at `path`; a file that is missing or unreadable becomes an
    /// "unavailable" footprint saying so.
    pub fn load(path: &Path) -> Footprint {
        let unavailable = |why: String| Footprint { unavailable: Some(why), ..Footprint::default() };
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
                unavailable(format!("{} is not a footprint report ({e})", path.display()))
            }),
            Err(e) => unavailable(format!("{}: {e}", path.display())),
        }
    }

    /// Static RAM of one layer.
    pub fn layer_ram(&self, layer: &str) -> u64 {
        self.ram
            .as_ref()
            .map_or(0, |r| r.items.iter().filter(|i| i.layer == layer).map(|i| i.static_bytes).sum())
    }

    /// The capsule's RAM: `TdbStoreKv` and `KvSyscallDriver` with their static buffers.
    pub fn capsule_ram(&self) -> Option<u64> {
        let r = self.ram.as_ref()?;
        (r.unavailable.is_none() && !r.items.is_empty())
            .then(|| self.layer_ram("tdbstore_kv") + self.layer_ram("kv_syscall"))
    }

    /// The Markdown section.
    pub fn markdown(this: Option<&Footprint>) -> String {
        let mut s = String::from("## Capsule footprint on the Portenta H7\n\n");
        let Some(f) = this else {
            s.push_str(
                "Not measured in this run: the footprint comes from the Portenta kernel build, which \
                 `make bench` does first (`make -C boards/portenta_h7 kv-footprint`); this run was started \
                 without it.\n\n",
            );
            return s;
        };
        if let Some(why) = &f.unavailable {
            s.push_str(&format!("Not measured in this run: {why}.\n\n"));
            return s;
        }
        s.push_str(&format!(
            "The `{}` release kernel for `{}`, built from this tree (`make bench` builds it first), measured by \
             `tools/bench/scripts/kv_footprint.py`.\n\n",
            f.board, f.target
        ));
        match &f.flash {
            Some(fl) => s.push_str(&format!(
                "- **Flash**: engine (`tdbstore`) {} B + store capsule (`TdbStoreKv` and its component) {} B = \
                 **{} B** (budget 16,384 B); the KV syscall driver (`capsules_tdbstore::kv_syscall`) {} B more, \
                 {} B in all; by the owner of each code and constant symbol as `make -C boards/portenta_h7 \
                 size` counts them (code inlined into another crate's functions counts there). For scale: \
                 the STM32H7 FLASH driver {} B{}.\n",
                thousands(fl.engine),
                thousands(fl.capsule),
                thousands(fl.engine + fl.capsule),
                thousands(fl.syscall_driver),
                thousands(fl.engine + fl.capsule + fl.syscall_driver),
                thousands(fl.flash_driver),
                f.kernel.as_ref().map_or(String::new(), |k| format!(
                    ", the whole kernel {} B of flash and {} B of RAM",
                    thousands(k.flash),
                    thousands(k.ram)
                )),
            )),
            None => s.push_str("- **Flash**: not measured.\n"),
        }
        match &f.ram {
            Some(r) if r.unavailable.is_none() && !r.items.is_empty() => {
                s.push_str(&format!(
                    "- **RAM**: **{} B** of statics for the capsule (`TdbStoreKv` {} B with the index and buffers its \
                     component allocates; `KvSyscallDriver` {} B with its key and value buffers){}; Tock's permission \
                     and virtualizer layers between them take {} B more. Sizes from the ELF's debug info; a \
                     static is its value plus `static_buf!`'s flag and padding. Not included: the stack \
                     during an operation, and each app's grant for the syscall driver.\n\n",
                    thousands(f.capsule_ram().unwrap_or(0)),
                    thousands(f.layer_ram("tdbstore_kv")),
                    thousands(f.layer_ram("kv_syscall")),
                    r.engine_state.as_ref().map_or(String::new(), |e| format!(
                        "; the engine's state (`{}`, {} B) is inside `TdbStoreKv`",
                        e.ty, e.bytes
                    )),
                    thousands(f.layer_ram("upstream")),
                ));
                s.push_str(
                    "| layer | static | value (B) | static (B) | allocated at |\n|---|---|---:|---:|---|\n",
                );
                for i in &r.items {
                    s.push_str(&format!(
                        "| {} | `{}` | {} | {} | {} |\n",
                        i.layer,
                        i.short,
                        thousands(i.bytes),
                        thousands(i.static_bytes),
                        i.site
                    ));
                }
                s.push('\n');
            }
            Some(r) => s.push_str(&format!(
                "- **RAM**: not measured: {}.\n\n",
                r.unavailable.as_deref().unwrap_or("no capsule statics found in the ELF's debug info")
            )),
            None => s.push_str("- **RAM**: not measured.\n\n"),
        }
        s
    }
}
