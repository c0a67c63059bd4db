//! The commands: each mounts the store on the simulated image, does one thing, and describes
//! the result twice, as text for a person and as one JSON object for a script.
//!
//! The image is written back only when a command that writes succeeds and the flash was
//! actually programmed or erased (or the image is new), so refused operations leave the file
//! byte-identical and untouched.

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::PathBuf;
use std::time::Instant;

use flash_sim::FlashSim;
use serde::Serialize;
use serde_json::Value;
use tdbstore::format::RecordFormat;
use tdbstore::sim::SimStore;
use tdbstore::{
    Error as EngineError, IndexEntry, MountInfo, Store, StoreOptions, REQUIRE_CONFIDENTIALITY,
    REQUIRE_REPLAY_PROTECTION, WRITE_ONCE,
};

use crate::cli::{self, Cli, Command, ResolvedGeometry, ValueFormat, ValueSource};
use crate::error::{engine_exit_code, CliError, EXIT_CORRUPT};
use crate::image;
use crate::stats;

/// Bytes of engine work buffer: the size a device port would likely give it.
pub const WORK_LEN: usize = 4096;
/// Keys the RAM index holds; more make mount or set fail with `IndexFull`.
pub const INDEX_KEYS: usize = 4096;

/// What a command produced.
pub struct Output {
    /// The JSON object printed with `--json`.
    pub json: Value,
    /// The bytes printed otherwise.
    pub text: Vec<u8>,
    /// A failure found by a command that still has a full report to print (`check`).
    pub failure: Option<CliError>,
}

impl Output {
    pub(crate) fn new(report: &impl Serialize, text: impl Into<Vec<u8>>) -> Output {
        Output {
            // Serializing these plain structs cannot fail; Null would only hide a bug in a
            // report type, never lose user data.
            json: serde_json::to_value(report).unwrap_or(Value::Null),
            text: text.into(),
            failure: None,
        }
    }
}

/// What commands need besides the store.
pub struct Ctx {
    /// The geometry in use.
    pub geo: ResolvedGeometry,
    /// The image path, as given.
    pub image: PathBuf,
    /// When the tool started (the tutorial's `millis()` counts from boot).
    pub started: Instant,
}

/// Runs the command line's command.
pub fn run(cli: &Cli, started: Instant) -> Result<Output, CliError> {
    let raw = match &cli.command {
        Command::Get { format, .. } | Command::ReservedGet { format } => format.raw,
        _ => false,
    };
    if raw && cli.json {
        return Err(CliError::Usage("--raw writes the bare value, --json one JSON object: pick one".into()));
    }
    let geo = cli.geometry.resolve()?;
    let writes = cli.command.writes();
    let loaded = image::load(&cli.image, &geo, writes)?;
    let flash = FlashSim::from_image(geo.geometry, loaded.bytes)
        .map_err(|e| CliError::Usage(format!("unusable image: {e}")))?;
    // Never refuse a geometry for want of buffer: a program unit over 4 KiB needs more.
    let mut work = vec![0u8; WORK_LEN.max(Store::min_work_len(&geo.geometry))];
    let mut index = vec![IndexEntry::default(); INDEX_KEYS];
    let options = StoreOptions {
        record_format: cli.record_format.map_or(RecordFormat::Mbed, |f| f.format()),
        ..StoreOptions::default()
    };
    let mut store = tdbstore::sim::open(flash, options, &mut work, &mut index)
        .map_err(|e| CliError::Usage(format!("unusable geometry: {}", cli::geometry_message(e))))?;
    if let (Some(want), false) = (cli.record_format, matches!(cli.command, Command::Format { .. })) {
        // The option shapes new stores only; an existing store is never converted.
        let m = store.mount()?;
        let have = store.store().layout().format;
        if !m.formatted && have != want.format() {
            return Err(CliError::Usage(format!(
                "the image holds a {}-record store; --record-format {} applies only to `format` \
                 and to blank images",
                cli::format_name(have),
                cli::format_name(want.format())
            )));
        }
    }
    let ctx = Ctx { geo, image: cli.image.clone(), started };
    let out = dispatch(&cli.command, &mut store, &ctx)?;
    if writes {
        let flash = store.into_flash();
        let s = flash.stats();
        // The simulator ANDs such a program in and marks the unit ECC-bad, as the STM32H7
        // would: never save what the real part would corrupt.
        if s.double_programs > 0 {
            return Err(CliError::DoubleProgram(s.double_programs));
        }
        if !loaded.existed || s.programs > 0 || s.erases > 0 {
            image::save(&cli.image, flash.image())?;
        }
    }
    Ok(out)
}

fn dispatch(cmd: &Command, store: &mut SimStore<'_>, ctx: &Ctx) -> Result<Output, CliError> {
    match cmd {
        Command::Info => {
            let m = store.mount()?;
            let r = info_report(store, ctx, m.formatted);
            let text = info_text(&r);
            Ok(Output::new(&r, text))
        }
        Command::Ls { prefix, prefix_hex } => {
            let prefix = match (prefix, prefix_hex) {
                (None, None) => Vec::new(),
                (p, h) => cli::key_bytes(p.as_deref(), h.as_deref())?,
            };
            ls(store, &prefix)
        }
        Command::Get { key, format } => get(store, &key.bytes()?, *format),
        Command::Set { key, key_hex, value, write_once, confidential, replay_protected } => {
            // With --key-hex the one positional argument is the value.
            let (key, value) = match (key, key_hex, &value.value) {
                (Some(v), Some(h), None) => {
                    (cli::parse_hex(h)?, ValueSource { value: Some(v.clone()), ..value.clone() })
                }
                (Some(_), Some(_), Some(_)) => {
                    return Err(CliError::Usage(
                        "--key-hex names the key: give the value alone (or with --hex or --file)".into(),
                    ))
                }
                (k, h, _) => (cli::key_bytes(k.as_deref(), h.as_deref())?, value.clone()),
            };
            let key = &key;
            let mut flags = 0;
            if *write_once {
                flags |= WRITE_ONCE;
            }
            if *confidential {
                flags |= REQUIRE_CONFIDENTIALITY;
            }
            if *replay_protected {
                flags |= REQUIRE_REPLAY_PROTECTION;
            }
            // Mounted first: the largest value depends on the record format the store uses.
            store.mount()?;
            let value = read_value(&value, store_max_value(store, key))?;
            set(store, key, &value, flags)
        }
        Command::Rm { key } => {
            let key = key.bytes()?;
            store.mount()?;
            let shown = show_key(&key);
            store.remove(&key).map_err(|e| CliError::key(&shown, e))?;
            let r = serde_json::json!({ "removed": shown, "key_hex": hex::encode(&key) });
            Ok(Output::new(&r, format!("removed {}\n", quoted(&shown))))
        }
        Command::Check => check(store),
        Command::Format { full } => format(store, ctx, *full),
        Command::ReservedGet { format } => reserved_get(store, *format),
        Command::ReservedSet { text, hex } => {
            let data = match (hex, text) {
                (Some(h), _) => cli::parse_hex(h)?,
                (None, Some(t)) => t.as_bytes().to_vec(),
                (None, None) => return Err(CliError::Usage("no reserved data given".into())),
            };
            reserved_set(store, &data)
        }
        Command::Compact => compact(store),
        Command::StatsCycle => stats::cycle(store, ctx.started),
    }
}

// ------------------------------------------------------------------------------------------
// Presentation helpers.

/// Names of the set flag bits (unknown bits in hex, so nothing is hidden).
fn flag_names(flags: u32) -> Vec<String> {
    let mut names = Vec::new();
    let known = [
        (WRITE_ONCE, "write-once"),
        (REQUIRE_CONFIDENTIALITY, "confidential"),
        (REQUIRE_REPLAY_PROTECTION, "replay-protected"),
    ];
    let mut rest = flags;
    for (bit, name) in known {
        if flags & bit != 0 {
            names.push(name.to_owned());
            rest &= !bit;
        }
    }
    if rest != 0 {
        names.push(format!("{rest:#x}"));
    }
    names
}

fn flags_text(flags: u32) -> String {
    let n = flag_names(flags);
    if n.is_empty() {
        "-".into()
    } else {
        n.join(",")
    }
}

/// A key as a person can read it and the other commands take it back: UTF-8 as is,
/// anything else escaped (Mbed images may hold keys that are not UTF-8, and control bytes
/// must not reach the terminal). The escapes are `escape_ascii`'s, which
/// [`cli::unescape_key`] decodes; a key never holds a backslash, so they are unambiguous.
fn show_key(k: &[u8]) -> String {
    match std::str::from_utf8(k) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_owned(),
        _ => k.escape_ascii().to_string(),
    }
}

/// A shown key in double quotes for messages (a key holds no `"`, and its escapes stay as
/// they are, so what is between the quotes is what the commands take).
fn quoted(shown: &str) -> String {
    format!("\"{shown}\"")
}

/// The value as text, if it is UTF-8 without control characters other than line breaks
/// and tabs.
fn printable(v: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(v).ok()?;
    s.chars().all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t')).then_some(s)
}

/// Renders a value in the requested text form.
fn value_text(v: &[u8], format: ValueFormat) -> Vec<u8> {
    if format.raw {
        return v.to_vec();
    }
    let mut s = match printable(v) {
        Some(t) if !format.hex => t.to_owned(),
        _ => hex::encode(v),
    };
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s.into_bytes()
}

/// A value in JSON.
#[derive(Serialize)]
struct ValueReport {
    key: String,
    key_hex: String,
    size: usize,
    flags: u32,
    flag_names: Vec<String>,
    hex: String,
    text: Option<String>,
}

// ------------------------------------------------------------------------------------------
// info and format.

#[derive(Serialize)]
struct GeometryReport {
    name: &'static str,
    size: u32,
    read_size: u32,
    program_size: u32,
    erase_size: u32,
    erase_value: u8,
}

/// Offsets within an area; they depend on the format and program size only, so they hold
/// on the real device too.
#[derive(Serialize)]
struct LayoutReport {
    /// "mbed" (readable by Mbed OS) or "compact" (this engine's opt-in short headers).
    record_format: &'static str,
    /// What Mbed OS does with the store ([`mbed_os_text`]).
    mbed_os: &'static str,
    master_record_offset: u32,
    master_record_size: u32,
    first_record_offset: u32,
    header_span: u32,
}

#[derive(Serialize)]
struct InfoReport {
    image: String,
    geometry: GeometryReport,
    area_size: u32,
    area_addresses: [u32; 2],
    layout: LayoutReport,
    /// The region was blank: no store yet (the first write formats it).
    blank: bool,
    active_area: u8,
    version: u16,
    keys: u32,
    key_capacity: u32,
    free_offset: u32,
    free_bytes: u32,
    live_bytes: u32,
    reserved_data_len: Option<u8>,
    torn_tail: bool,
}

fn info_report(store: &SimStore<'_>, ctx: &Ctx, blank: bool) -> InfoReport {
    let i = store.store().info();
    let lay = store.store().layout();
    let g = ctx.geo.geometry;
    InfoReport {
        image: ctx.image.display().to_string(),
        geometry: GeometryReport {
            name: ctx.geo.name,
            size: g.size,
            read_size: g.read_size,
            program_size: g.program_size,
            erase_size: g.erase_size,
            erase_value: g.erase_value,
        },
        area_size: i.area_size,
        area_addresses: [0, i.area_size],
        layout: LayoutReport {
            record_format: cli::format_name(lay.format),
            mbed_os: mbed_os_text(cli::format_name(lay.format)),
            master_record_offset: lay.master_offset,
            master_record_size: lay.master_size,
            first_record_offset: lay.first_record(),
            header_span: lay.header_span,
        },
        blank,
        active_area: i.active_area,
        version: i.version,
        keys: i.keys,
        key_capacity: i.key_capacity,
        free_offset: i.free_offset,
        free_bytes: lay.log_limit().saturating_sub(i.free_offset),
        live_bytes: i.live_bytes,
        reserved_data_len: i.reserved_len,
        torn_tail: i.torn_tail,
    }
}

fn info_text(r: &InfoReport) -> String {
    let g = &r.geometry;
    let l = &r.layout;
    let mut t = String::new();
    let _ = writeln!(t, "image:          {}", r.image);
    let _ = writeln!(
        t,
        "geometry:       {}: {} bytes, read {}, program {}, erase {}, erased value {:#04x}",
        g.name, g.size, g.read_size, g.program_size, g.erase_size, g.erase_value
    );
    let _ = writeln!(
        t,
        "areas:          2 x {} bytes ({} sectors each), at {} and {}",
        r.area_size,
        r.area_size / g.erase_size.max(1),
        r.area_addresses[0],
        r.area_addresses[1]
    );
    let _ = writeln!(
        t,
        "layout:         master record at {} ({} bytes), first record at {}, {} records",
        l.master_record_offset, l.master_record_size, l.first_record_offset, l.record_format
    );
    let _ = writeln!(t, "record format:  {}", format_text(l.record_format));
    let _ = writeln!(t, "Mbed OS:        {}", l.mbed_os);
    if r.blank {
        let _ = writeln!(t, "state:          blank (no store yet; the first write formats it)");
    } else {
        let _ = writeln!(t, "state:          TDBStore, active area {}, version {}", r.active_area, r.version);
    }
    let _ = writeln!(t, "keys:           {} (index holds {})", r.keys, r.key_capacity);
    let _ = writeln!(t, "free offset:    {} ({} bytes free in the active area)", r.free_offset, r.free_bytes);
    let _ = writeln!(t, "live bytes:     {}", r.live_bytes);
    match r.reserved_data_len {
        Some(n) => {
            let _ = writeln!(t, "reserved data:  {n} bytes");
        }
        None => {
            let _ = writeln!(t, "reserved data:  none");
        }
    }
    let _ = writeln!(
        t,
        "torn tail:      {}",
        if r.torn_tail { "yes (a write was cut short; the next write compacts it away)" } else { "no" }
    );
    t
}

/// A record format, as `info` and `check` say it.
fn format_text(name: &str) -> &'static str {
    if name == "compact" {
        "compact (this engine's 12-byte headers)"
    } else {
        "mbed (Mbed OS TDBStore reads and writes it)"
    }
}

/// What Mbed OS's TDBStore does with a store in this record format. Mbed's init checks no
/// revision (`docs/format.md` §7, §11.1): it mounts a compact-record store as an empty one (its scan
/// stops at the first compact header), and its first set programs over those records,
/// fails its read-back, and garbage-collects into the other area without them (§9, §17).
fn mbed_os_text(name: &str) -> &'static str {
    if name == "compact" {
        "not an Mbed OS image: Mbed OS mounts it as an empty store, and its first write \
         overwrites these records; every value is lost"
    } else {
        "an Mbed OS image: Mbed OS reads every key and can keep writing and compacting it"
    }
}

fn format(store: &mut SimStore<'_>, ctx: &Ctx, full: bool) -> Result<Output, CliError> {
    #[derive(Serialize)]
    struct FormatReport {
        formatted: bool,
        full: bool,
        #[serde(flatten)]
        info: InfoReport,
    }
    store.format(full)?;
    let info = info_report(store, ctx, false);
    let how = if full { "erased every sector" } else { "erased the area heads" };
    let text = format!(
        "formatted ({how}): empty store, {} records, version {} in area {}\n",
        info.layout.record_format, info.version, info.active_area
    );
    Ok(Output::new(&FormatReport { formatted: true, full, info }, text))
}

// ------------------------------------------------------------------------------------------
// Keys and values.

/// Every key with `prefix`, in iteration order.
fn keys(store: &mut SimStore<'_>, prefix: &[u8]) -> Result<Vec<Vec<u8>>, CliError> {
    let mut keys = Vec::new();
    store.for_each_key(prefix, |k| keys.push(k.to_vec()))?;
    Ok(keys)
}

fn ls(store: &mut SimStore<'_>, prefix: &[u8]) -> Result<Output, CliError> {
    #[derive(Serialize)]
    struct Entry {
        /// The stored key (what `get`, `set` and `rm` take).
        key: String,
        key_hex: String,
        /// The key as a Tock app wrote it ([`tdbstore::app_key`]); `null` for a stored key
        /// the mapping never produces (no app can reach it).
        app_key: Option<String>,
        app_key_hex: Option<String>,
        size: usize,
        flags: u32,
        flag_names: Vec<String>,
    }
    #[derive(Serialize)]
    struct LsReport {
        count: usize,
        keys: Vec<Entry>,
    }
    store.mount()?;
    let mut entries = Vec::new();
    for k in keys(store, prefix)? {
        let (size, flags) = store.get_info(&k).map_err(|e| CliError::key(&show_key(&k), e))?;
        let app_key = tdbstore::app_key::app_key(&k).ok();
        entries.push(Entry {
            key: show_key(&k),
            key_hex: hex::encode(&k),
            app_key: app_key.map(|a| show_key(a.as_bytes())),
            app_key_hex: app_key.map(|a| hex::encode(a.as_bytes())),
            size,
            flags,
            flag_names: flag_names(flags),
        });
    }
    // Keys as apps wrote them; an escaped one also shows its stored form, which the other
    // commands take.
    let shown = |e: &Entry| match &e.app_key {
        Some(a) if *a == e.key => a.clone(),
        Some(a) => format!("{a} (stored as {})", e.key),
        None => e.key.clone(),
    };
    let width = entries.iter().map(|e| shown(e).chars().count()).max().unwrap_or(0);
    let mut t = String::new();
    for e in &entries {
        let _ = writeln!(t, "{:<width$}  {:>8}  {}", shown(e), e.size, flags_text(e.flags));
    }
    Ok(Output::new(&LsReport { count: entries.len(), keys: entries }, t))
}

/// Reads a whole value.
fn read_value_of(store: &mut SimStore<'_>, key: &[u8]) -> Result<(Vec<u8>, u32), EngineError> {
    let (size, _) = store.get_info(key)?;
    let mut buf = vec![0u8; size];
    let v = store.get(key, &mut buf)?;
    // The size cannot change between the two calls (nothing else runs), but a short copy
    // must never pass as the whole value.
    buf.truncate(v.copied.min(v.size));
    Ok((buf, v.flags))
}

fn get(store: &mut SimStore<'_>, key: &[u8], format: ValueFormat) -> Result<Output, CliError> {
    store.mount()?;
    let (value, flags) = read_value_of(store, key).map_err(|e| CliError::key(&show_key(key), e))?;
    let r = ValueReport {
        key: show_key(key),
        key_hex: hex::encode(key),
        size: value.len(),
        flags,
        flag_names: flag_names(flags),
        hex: hex::encode(&value),
        text: printable(&value).map(str::to_owned),
    };
    Ok(Output::new(&r, value_text(&value, format)))
}

/// The value to set; a file is read only up to one byte past `max`, the most that could
/// ever fit, so `--file /dev/zero` fails fast instead of filling memory.
fn read_value(src: &ValueSource, max: u32) -> Result<Vec<u8>, CliError> {
    match (&src.value, &src.hex, &src.file) {
        (_, Some(h), _) => cli::parse_hex(h),
        (_, _, Some(path)) => {
            let file = std::fs::File::open(path).map_err(|e| CliError::io(path, e))?;
            let mut v = Vec::new();
            file.take(u64::from(max) + 1).read_to_end(&mut v).map_err(|e| CliError::io(path, e))?;
            if v.len() > max as usize {
                let len = std::fs::metadata(path).map_or(v.len(), |m| m.len() as usize).max(v.len());
                return Err(CliError::ValueTooLarge { len, max });
            }
            Ok(v)
        }
        (Some(v), _, _) => Ok(v.as_bytes().to_vec()),
        (None, None, None) => Err(CliError::Usage("no value given".into())),
    }
}

/// Sets `key` on the mounted store.
fn set(store: &mut SimStore<'_>, key: &[u8], value: &[u8], flags: u32) -> Result<Output, CliError> {
    let shown = show_key(key);
    store.set(key, value, flags).map_err(|e| match e {
        EngineError::ValueTooLarge => {
            CliError::ValueTooLarge { len: value.len(), max: store_max_value(store, key) }
        }
        other => CliError::key(&shown, other),
    })?;
    let r = serde_json::json!({
        "key": shown,
        "key_hex": hex::encode(key),
        "size": value.len(),
        "flags": flags,
        "flag_names": flag_names(flags),
    });
    let mut t = format!("set {}: {} bytes", quoted(&shown), value.len());
    if flags != 0 {
        let _ = write!(t, ", {}", flags_text(flags));
    }
    t.push('\n');
    Ok(Output::new(&r, t))
}

fn store_max_value(store: &SimStore<'_>, key: &[u8]) -> u32 {
    let key_len = u32::try_from(key.len()).unwrap_or(u32::MAX);
    store.store().layout().max_value_len(key_len.min(tdbstore::format::MAX_KEY_LEN as u32))
}

// ------------------------------------------------------------------------------------------
// check.

fn check(store: &mut SimStore<'_>) -> Result<Output, CliError> {
    #[derive(Serialize)]
    struct Bad {
        key: String,
        key_hex: String,
        error: String,
    }
    #[derive(Serialize)]
    struct CheckReport {
        ok: bool,
        blank: bool,
        active_area: u8,
        version: u16,
        keys: usize,
        values_ok: usize,
        value_bytes: u64,
        corrupt: Vec<Bad>,
        /// Intact records cut off from the log by a damaged one (see [`unreachable_records`]).
        unreachable: Vec<Unreachable>,
        reserved_data_len: Option<usize>,
        torn_tail: bool,
        /// "mbed" or "compact".
        record_format: &'static str,
        /// What Mbed OS does with the store ([`mbed_os_text`]).
        mbed_os: &'static str,
        /// Records the real Mbed TDBStore would not read (see [`mbed_unreadable`]): a
        /// warning, not a failure, since this engine reads them.
        mbed_unreadable: Vec<MbedUnreadable>,
    }
    let m: MountInfo = store.mount()?;
    let record_format = cli::format_name(store.store().layout().format);
    let mbed_unreadable = mbed_unreadable(store);
    let all = keys(store, b"")?;
    let (mut values_ok, mut value_bytes, mut corrupt) = (0, 0u64, Vec::new());
    for k in &all {
        match read_value_of(store, k) {
            Ok((v, _)) => {
                values_ok += 1;
                value_bytes += v.len() as u64;
            }
            // Damage is what check is for: note it and go on to the next key.
            Err(e) if engine_exit_code(e) == EXIT_CORRUPT => corrupt.push(Bad {
                key: show_key(k),
                key_hex: hex::encode(k),
                error: CliError::key(&show_key(k), e).to_string(),
            }),
            Err(e) => return Err(CliError::key(&show_key(k), e)),
        }
    }
    let mut reserved = [0u8; tdbstore::format::RESERVED_LEN];
    let reserved_data_len = match store.reserved_data_get(&mut reserved) {
        Ok(n) => Some(n),
        Err(EngineError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    let unreachable = unreachable_records(store);
    let r = CheckReport {
        ok: corrupt.is_empty() && unreachable.is_empty(),
        blank: m.formatted,
        active_area: m.active_area,
        version: m.version,
        keys: all.len(),
        values_ok,
        value_bytes,
        corrupt,
        unreachable,
        reserved_data_len,
        torn_tail: m.torn_tail,
        record_format,
        mbed_os: mbed_os_text(record_format),
        mbed_unreadable,
    };
    let mut t = String::new();
    let _ = writeln!(t, "check:          {}", if r.ok { "ok" } else { "FAILED" });
    let _ = writeln!(t, "record format:  {}", format_text(r.record_format));
    let _ = writeln!(t, "Mbed OS:        {}", r.mbed_os);
    for u in &r.mbed_unreadable {
        let _ = writeln!(
            t,
            "warning:        Mbed OS would not read the record of key {:?} at area offset {} ({}); \
             its scan stops there, so it misses this and every later record",
            u.key, u.offset, u.why
        );
    }
    if r.blank {
        let _ = writeln!(t, "state:          blank (no store yet)");
    } else {
        let _ = writeln!(t, "state:          active area {}, version {}", r.active_area, r.version);
    }
    let _ =
        writeln!(t, "keys:           {} ({} values verified, {} bytes)", r.keys, r.values_ok, r.value_bytes);
    for b in &r.corrupt {
        let _ = writeln!(t, "corrupt:        {}", b.error);
    }
    for u in &r.unreachable {
        let _ = writeln!(
            t,
            "unreachable:    intact record of key {:?} at area offset {}, after the damaged end of the log",
            u.key, u.offset
        );
    }
    match r.reserved_data_len {
        Some(n) => {
            let _ = writeln!(t, "reserved data:  {n} bytes, checksum ok");
        }
        None => {
            let _ = writeln!(t, "reserved data:  none");
        }
    }
    let tail = match (r.torn_tail, r.unreachable.is_empty()) {
        (false, _) => "no",
        (true, true) => "yes (a write was cut short, as by a power cut; the next write compacts it away)",
        (true, false) => "yes (a damaged record ends the log; the records after it are lost to mount)",
    };
    let _ = writeln!(t, "torn tail:      {tail}");
    let failure = (!r.ok).then(|| CliError::CheckFailed {
        keys: r.keys,
        corrupt: r.corrupt.len(),
        unreachable: r.unreachable.len(),
    });
    let mut out = Output::new(&r, t);
    out.failure = failure;
    Ok(out)
}

/// A record of the log that the real Mbed TDBStore would reject.
#[derive(Serialize)]
struct MbedUnreadable {
    offset: u32,
    key: String,
    key_hex: String,
    why: &'static str,
}

/// Records of an Mbed-format log that Mbed's `read_record` rejects although this engine
/// reads them: one whose last byte is the area's last byte (Mbed checks `>=`, `docs/format.md`
/// B2; this engine never writes one, but Mbed-CE and older versions of this engine do).
/// Mbed's mount scan stops at the first, so it loses that record and every one after it.
fn mbed_unreadable(store: &SimStore<'_>) -> Vec<MbedUnreadable> {
    let info = store.store().info();
    let lay = store.store().layout();
    if lay.format != RecordFormat::Mbed {
        return Vec::new();
    }
    let base = info.active_area as usize * lay.area_size as usize;
    let Some(area) = store.flash().image().get(base..base + lay.area_size as usize) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut off = lay.first_record();
    while off < info.free_offset {
        let Some(rest) = area.get(off as usize..) else { break };
        let Some(h) = lay.parse_header(rest) else { break };
        let Some(size) = lay.record_extent(off, &h).filter(|&s| s > 0) else { break };
        if !lay.mbed_reads(off, &h) {
            let key = rest.get(lay.body_offset as usize..(lay.body_offset as usize + h.key_len as usize));
            let key = key.unwrap_or_default();
            found.push(MbedUnreadable {
                offset: off,
                key: show_key(key),
                key_hex: hex::encode(key),
                why: "it ends exactly at the area end",
            });
        }
        off += size;
    }
    found
}

/// An intact record found after the end of the log.
#[derive(Serialize)]
struct Unreachable {
    offset: u32,
    key: String,
    key_hex: String,
    size: u32,
}

/// Intact records chained after the end of the log in the active area.
///
/// Mount ends the log at the first record that does not verify, which is right for a write
/// cut short by a power cut (the header is programmed last, so nothing follows it) but
/// silently drops every later record when a committed record is damaged, or when Mbed wrote
/// over a torn tail (`docs/format.md` §17, B4). Walking on from the log end by each record's own
/// length, and finding records whose checksums match, tells the two apart: those records
/// were committed and are now invisible. Stale records of an earlier pass through the area
/// are never reached, since they lie behind erased space that stops the walk.
fn unreachable_records(store: &SimStore<'_>) -> Vec<Unreachable> {
    let info = store.store().info();
    let lay = store.store().layout();
    let base = info.active_area as usize * lay.area_size as usize;
    let Some(area) = store.flash().image().get(base..base + lay.area_size as usize) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut off = info.free_offset;
    while let Some(rest) = area.get(off as usize..) {
        let Some(h) = lay.parse_header(rest) else { break };
        let Some(size) = lay.record_extent(off, &h) else { break };
        let body_start = lay.body_offset as usize;
        let body_end = body_start + h.key_len as usize + h.data_len as usize;
        let Some(body) = rest.get(body_start..body_end) else { break };
        let mut crc = lay.crc_start(&h);
        crc.update(body);
        let key = &body[..h.key_len as usize];
        if crc.value() == h.crc && key != tdbstore::format::MASTER_KEY {
            found.push(Unreachable { offset: off, key: show_key(key), key_hex: hex::encode(key), size });
        }
        if size == 0 {
            break;
        }
        off += size;
    }
    found
}

// ------------------------------------------------------------------------------------------
// Reserved data and compaction.

fn reserved_get(store: &mut SimStore<'_>, format: ValueFormat) -> Result<Output, CliError> {
    store.mount()?;
    let mut buf = [0u8; tdbstore::format::RESERVED_LEN];
    let n = store.reserved_data_get(&mut buf).map_err(|e| match e {
        EngineError::NotFound => CliError::NoReservedData,
        other => other.into(),
    })?;
    let data = &buf[..n.min(buf.len())];
    let r = serde_json::json!({
        "size": data.len(),
        "hex": hex::encode(data),
        "text": printable(data),
    });
    Ok(Output::new(&r, value_text(data, format)))
}

fn reserved_set(store: &mut SimStore<'_>, data: &[u8]) -> Result<Output, CliError> {
    store.mount()?;
    store.reserved_data_set(data).map_err(|e| match e {
        EngineError::WriteProtected => CliError::ReservedDataSet,
        EngineError::ValueTooLarge => CliError::ReservedTooLarge(data.len()),
        other => other.into(),
    })?;
    let r = serde_json::json!({ "reserved_data_len": data.len(), "hex": hex::encode(data) });
    Ok(Output::new(&r, format!("reserved data set: {} bytes\n", data.len())))
}

fn compact(store: &mut SimStore<'_>) -> Result<Output, CliError> {
    #[derive(Serialize)]
    struct Side {
        active_area: u8,
        version: u16,
        free_offset: u32,
        live_bytes: u32,
    }
    let side = |s: &SimStore<'_>| {
        let i = s.store().info();
        Side {
            active_area: i.active_area,
            version: i.version,
            free_offset: i.free_offset,
            live_bytes: i.live_bytes,
        }
    };
    store.mount()?;
    let before = side(store);
    store.compact()?;
    let after = side(store);
    let t = format!(
        "compacted: area {} -> {}, version {} -> {}, free offset {} -> {}\n",
        before.active_area,
        after.active_area,
        before.version,
        after.version,
        before.free_offset,
        after.free_offset
    );
    let r = serde_json::json!({ "before": before, "after": after });
    Ok(Output::new(&r, t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_text_forms() {
        assert_eq!(flags_text(0), "-");
        assert_eq!(flags_text(WRITE_ONCE | REQUIRE_REPLAY_PROTECTION), "write-once,replay-protected");
        assert_eq!(flag_names(0x14), vec!["0x14".to_owned()]);
        assert_eq!(show_key(b"a\x01"), "a\\x01");
        assert_eq!(show_key(&[0xC3, 0xA9]), "\u{e9}");
        let plain = ValueFormat { hex: false, raw: false };
        assert_eq!(value_text(b"hi", plain), b"hi\n");
        assert_eq!(value_text(&[0, 1], plain), b"0001\n");
        assert_eq!(value_text(b"hi", ValueFormat { hex: true, raw: false }), b"6869\n");
        assert_eq!(value_text(&[0, 1], ValueFormat { hex: false, raw: true }), [0, 1]);
    }
}
