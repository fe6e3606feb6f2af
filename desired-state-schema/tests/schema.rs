//! The committed JSON Schema must equal the one generated from the types. After changing the
//! types, run `UPDATE_SNAPSHOTS=1 cargo test -p desired-state-schema --test schema`.

use desired_state_schema::schema::{json_schema_text, SCHEMA_FILE};

#[test]
fn committed_schema_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(SCHEMA_FILE);
    let generated = json_schema_text();
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale: regenerate it with UPDATE_SNAPSHOTS=1 cargo test -p desired-state-schema --test schema, and commit it",
        path.display()
    );
}

#[test]
fn schema_names_every_kind() {
    let s = desired_state_schema::schema::json_schema();
    for kind in ["Container", "PassengerApp", "NixosSystem"] {
        let doc = &s["$defs"][format!("{kind}Document")];
        assert_eq!(doc["properties"]["kind"]["const"], kind);
        assert_eq!(doc["properties"]["apiVersion"]["const"], "driftless/v1");
    }
    // Overlays require nothing: any subset of the spec may be set.
    assert!(s["$defs"]["ContainerSpecOverlay"].get("required").is_none());
    assert!(s["$defs"]["ContainerSpec"]["required"].as_array().is_some_and(|r| r.iter().any(|k| k == "image")));
}
