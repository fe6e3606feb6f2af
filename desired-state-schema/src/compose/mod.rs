//! Compose files as desired state: a `compose.yaml`, `compose.yml`, `docker-compose.yaml` or
//! `docker-compose.yml` becomes `driftless/v1` Container documents, one per service, with the
//! file's networks, volumes and secrets — what `agentctl convert` prints, and what the loader
//! then types and checks like any other document. Positions point back into the compose file.
//!
//! What the compose specification says holds (its text is the reference): interpolation of
//! `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?err}`, `${VAR?err}`, `${VAR:+alt}`,
//! `${VAR+alt}`, `$VAR` and `$$` from the `.env` beside the file — never from the agent's own
//! environment; an unset variable without a default becomes empty, with a warning; short and
//! long syntax of ports, volumes and `depends_on`; relative paths relative to the compose
//! file's folder; `profiles`; `x-` extension fields; YAML anchors and merge keys. A key
//! Driftless does not support is refused with its position and what to write instead: nothing
//! is silently ignored. `x-driftless: { health, environments }` on a service adds health
//! checks and per-environment overlays.
//!
//! Names: a service's Container is named after the service (or its `container_name`); the
//! file's networks and volumes get compose's names (`<project>_<key>`, or their `name:`), the
//! project being `name:` or the compose file's folder name.
//!
//! Layout, one responsibility per file, lowest first (a file uses only those before it):
//! `paths` joins and rebases paths; `interpolate` expands `${…}`; `dotenv` reads `.env`
//! files; `merge` merges a file with its override; `converted` holds what a conversion
//! makes; `cx` is the conversion context `Cx` every part reports through; `values` applies
//! merge keys, interpolation and casts to a tree; `engine` converts the keys that map onto
//! engine fields (GPUs, blkio, hooks); `extends` resolves `extends`; `top` reads the
//! top-level networks, volumes and secrets; `service` converts each service; `convert`
//! owns the entry points (`convert_files`, and which files of a folder compose reads:
//! `project`).
//!
//! Architecture Invariant: this file only wires — no part imports it (`tests/layers.rs`).

mod convert;
mod converted;
mod cx;
pub mod dotenv;
mod engine;
mod extends;
pub mod interpolate;
pub mod merge;
mod paths;
mod service;
mod top;
mod values;

pub use convert::*;
pub use converted::*;
pub use interpolate::{interpolate, InterpolationError};
pub use values::shell_words;
