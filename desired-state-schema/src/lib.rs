//! The `driftless/v1` desired-state format: what a repository of desired state may say, and
//! how it is read. This crate owns the typed documents (`types`), loading them from files with
//! precise positions (`load`, `source_map`), the semantic rules (`checks`), and the generated
//! JSON Schema (`schema`). It does no I/O beyond reading a folder when asked to, and knows
//! nothing of Git, Docker, Passenger or Nix.

pub mod checks;
pub mod compose;
pub mod diagnostic;
pub mod duration;
pub mod emit;
pub mod fuzzing;
pub mod limits;
pub mod load;
pub mod schema;
pub mod source_map;
pub mod types;

pub use duration::Duration;
pub use load::{
    diagnostic_at, parse, parse_single, parse_with, read_dir_files, read_one_file, DesiredState, Diagnostic, Invalid,
    Loaded, ParseOptions, ReadError, ReadOther, Skipped, SourceFile,
};
pub use source_map::{DocMap, Seg, YamlPath};
pub use types::*;

/// Load the effective desired state for `environment` from in-memory files.
pub fn load(files: &[SourceFile], environment: Option<&str>) -> Result<DesiredState, Invalid> {
    parse(files).build(environment)
}
