//! The JSON Schema of `driftless/v1`, generated from the Rust types (schemars). The committed
//! copy, `driftless-v1.schema.json`, is checked against this by a test, so it never goes stale.

use schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};

use crate::types::{ContainerSpec, Kind, Metadata, NixosSystemSpec, PassengerAppSpec, VolumeSpec};

/// Where the committed schema lives, relative to this crate.
pub const SCHEMA_FILE: &str = "driftless-v1.schema.json";

/// The schema as a JSON value.
pub fn json_schema() -> Value {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let metadata = generator.subschema_for::<Metadata>().to_value();
    let specs = [
        (Kind::Container, generator.subschema_for::<ContainerSpec>().to_value()),
        (Kind::PassengerApp, generator.subschema_for::<PassengerAppSpec>().to_value()),
        (Kind::NixosSystem, generator.subschema_for::<NixosSystemSpec>().to_value()),
        (Kind::Volume, generator.subschema_for::<VolumeSpec>().to_value()),
    ];
    let mut defs: Map<String, Value> = generator.take_definitions(true);
    let mut one_of = Vec::new();
    for (kind, spec_ref) in specs {
        let spec_name = spec_ref["$ref"].as_str().and_then(|r| r.rsplit('/').next()).unwrap_or_default().to_string();
        // An overlay may set any subset of the spec: the same schema with nothing required.
        let mut patch = defs.get(&spec_name).cloned().unwrap_or(json!({}));
        if let Some(obj) = patch.as_object_mut() {
            obj.remove("required");
            obj.insert(
                "description".into(),
                json!(format!("Any subset of a {kind} spec, deep-merged over `spec` when the agent's environment matches: mappings merge key by key, lists and scalars replace.")),
            );
        }
        let patch_name = format!("{spec_name}Overlay");
        defs.insert(patch_name.clone(), patch);
        let doc_name = format!("{kind}Document");
        defs.insert(
            doc_name.clone(),
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["apiVersion", "kind", "metadata", "spec"],
                "properties": {
                    "apiVersion": { "const": crate::types::API_VERSION },
                    "kind": { "const": kind.as_str() },
                    "metadata": metadata,
                    "spec": spec_ref,
                    "environments": {
                        "description": "Per-environment overlays, keyed by the agent's `environment`.",
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "additionalProperties": false,
                            "properties": { "spec": { "$ref": format!("#/$defs/{patch_name}") } }
                        }
                    },
                    "hosts": {
                        "description": "Per-host overlays, keyed by the agent's `host`; merged after the environment's.",
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "additionalProperties": false,
                            "properties": { "spec": { "$ref": format!("#/$defs/{patch_name}") } }
                        }
                    }
                }
            }),
        );
        one_of.push(json!({ "$ref": format!("#/$defs/{doc_name}") }));
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://driftless.invalid/schemas/driftless-v1.schema.json",
        "title": "Driftless desired state, driftless/v1",
        "description": "One document of a Driftless desired-state repository. Generated from the Rust types; do not edit by hand.",
        "oneOf": one_of,
        "$defs": defs,
    })
}

/// The schema as the committed file's text (pretty JSON, trailing newline).
pub fn json_schema_text() -> String {
    let mut s = serde_json::to_string_pretty(&json_schema()).unwrap_or_default();
    s.push('\n');
    s
}
