//! Figures of an earlier version of the engine and capsule, kept as data so that the report
//! can show them beside this run's: the engine's per-operation flash costs ([`crate::ops`]) and
//! the capsule's footprint on the Portenta H7 ([`Footprint`]).
//!
//! A baseline file is written by this benchmark itself (`--write-baseline`), run on the older
//! source: `tools/bench/scripts/before.sh` checks out the older commit in a temporary git
//! worktree, puts this benchmark's sources there with the smallest glue the older engine
//! needs, runs the per-operation measurement, builds and measures that commit's Portenta
//! kernel, and writes the file. Nothing in it is typed in by hand, and the code holds no
//! figures: "after" is always the current run, "before" is whatever the file says, with the
//! commit and the commands that produced it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::footprint::Footprint;
use crate::ops::{OpRow, OpsConfigNote, OpsSetup};

/// The baseline the report compares against, relative to the crate's directory.
pub const BEFORE_FILE: &str = "results/before-59fd729.json";

/// One stored set of "before" figures.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Baseline {
    /// The source commit measured (full hash).
    pub commit: String,
    /// Its subject line.
    #[serde(default)]
    pub subject: String,
    /// How the figures were produced: the commands, and what was changed in the older tree
    /// to run this benchmark there.
    pub how: String,
    /// The benchmark run's own provenance line (command, commit, date).
    #[serde(default)]
    pub provenance: String,
    /// How the per-operation table was made.
    pub ops_setup: Option<OpsSetup>,
    /// The configurations measured.
    #[serde(default)]
    pub ops_configs: Vec<OpsConfigNote>,
    /// The per-operation rows.
    #[serde(default)]
    pub ops: Vec<OpRow>,
    /// The capsule's footprint as `kv_footprint.py` measured it in that commit's kernel.
    pub footprint: Option<Footprint>,
}

impl Baseline {
    /// Reads the baseline at `path`: `Err` says why there is none (missing, unreadable or
    /// not a baseline), for the report.
    pub fn load(path: &Path) -> Result<Baseline, String> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        serde_json::from_str(&text).map_err(|e| format!("not a baseline file ({e})"))
    }

    /// The commit, abbreviated as in the file name.
    pub fn short_commit(&self) -> &str {
        self.commit.get(..7).unwrap_or(&self.commit)
    }

    /// The JSON rendering.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("baseline serializes") + "\n"
    }
}

/// What the report has of the "before" figures.
#[derive(Clone, Debug, Default, Serialize)]
pub enum Before {
    /// Loaded from this file (path as given).
    Loaded {
        /// Where it was read from.
        path: String,
        /// The figures.
        baseline: Box<Baseline>,
    },
    /// None: why.
    Missing(String),
    /// Not asked for (the report shows no comparison).
    #[default]
    NotAsked,
}

impl Before {
    /// Reads `path` (named in the report relative to the repository when it is inside
    /// this crate).
    pub fn load(path: &Path) -> Before {
        let shown = match path.strip_prefix(env!("CARGO_MANIFEST_DIR")) {
            Ok(rel) => format!("tools/bench/{}", rel.display()),
            Err(_) => path.display().to_string(),
        };
        match Baseline::load(path) {
            Ok(b) => Before::Loaded { path: shown, baseline: Box::new(b) },
            Err(why) => Before::Missing(format!("{shown}: {why}")),
        }
    }

    /// The figures, if loaded.
    pub fn baseline(&self) -> Option<&Baseline> {
        match self {
            Before::Loaded { baseline, .. } => Some(baseline),
            _ => None,
        }
    }
}
