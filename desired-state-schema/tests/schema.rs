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
    for kind in ["Container", "PassengerApp", "NixosSystem", "Volume"] {
        let doc = &s["$defs"][format!("{kind}Document")];
        assert_eq!(doc["properties"]["kind"]["const"], kind);
        assert_eq!(doc["properties"]["apiVersion"]["const"], "driftless/v1");
    }
    // Overlays require nothing: any subset of the spec may be set.
    assert!(s["$defs"]["ContainerSpecOverlay"].get("required").is_none());
    // `image` or `build`: either may stand alone (the check says so with file:line:column).
    assert!(s["$defs"]["ContainerSpec"]["properties"]["build"].is_object());
}

/// docs/desired-state.md documents every key and every enumerated value of the format, as the
/// schema generated from the types has them (so a new field without a doc row fails here).
#[test]
fn docs_name_every_key_and_value() {
    let docs =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/desired-state.md"))
            .unwrap_or_default();
    let s = desired_state_schema::schema::json_schema();
    let mut missing = Vec::new();
    let mut seen = 0;
    fn walk(v: &serde_json::Value, docs: &str, missing: &mut Vec<String>, seen: &mut usize, at: &str) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::Object(props)) = m.get("properties") {
                    for key in props.keys() {
                        *seen += 1;
                        if !docs.contains(&format!("`{key}`")) && !docs.contains(&format!("`{key}.")) {
                            missing.push(format!("key `{key}` (in {at})"));
                        }
                    }
                }
                for word in ["enum", "const"] {
                    let values = match m.get(word) {
                        Some(serde_json::Value::Array(a)) => a.clone(),
                        Some(v) => vec![v.clone()],
                        None => vec![],
                    };
                    for value in values.iter().filter_map(|v| v.as_str()) {
                        *seen += 1;
                        if !docs.contains(&format!("`{value}`")) {
                            missing.push(format!("value `{value}` (in {at})"));
                        }
                    }
                }
                for (k, child) in m {
                    walk(child, docs, missing, seen, if at.is_empty() || k == "$defs" { k } else { at });
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|c| walk(c, docs, missing, seen, at)),
            _ => {}
        }
    }
    walk(&s, &docs, &mut missing, &mut seen, "");
    assert!(seen > 40, "the walk found only {seen} keys and values");
    assert!(missing.is_empty(), "docs/desired-state.md does not document: {missing:#?}");
}
