//! The repository's own checks, run by `make test` (`xtask check`): the module layering of each crate
//! ([`layers`]), the codemap of `ARCHITECTURE.md` ([`codemap`]), the generated option reference ([`docs`]) and
//! the length of every function ([`functions`]). Each check returns its problems as messages that
//! start with the file and line they are about; an empty list is a pass.

pub mod codemap;
pub mod docs;
pub mod functions;
pub mod layers;
pub mod source;
pub mod workspace;

#[cfg(test)]
mod testing;

use std::path::Path;

/// One check: its name on the command line and its function.
pub struct Check {
    pub name: &'static str,
    pub run: fn(&Path) -> Vec<String>,
}

/// Every check; `xtask check` runs them all, in this order.
pub const CHECKS: &[Check] = &[
    Check { name: "layers", run: layers::check },
    Check { name: "codemap", run: codemap::check },
    Check { name: "docs", run: docs::check },
    Check { name: "functions", run: functions::check },
];

/// The nearest folder at or above `start` whose `Cargo.toml` has a `[workspace]` table.
pub fn workspace_root(start: &Path) -> Option<&Path> {
    start.ancestors().find(|dir| {
        std::fs::read_to_string(dir.join("Cargo.toml"))
            .ok()
            .and_then(|text| text.parse::<toml::Table>().ok())
            .is_some_and(|manifest| manifest.contains_key("workspace"))
    })
}
