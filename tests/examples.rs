//! Every bundled example is valid: its agent config passes `agentd --check`, its desired state
//! passes `agentctl validate` in every environment, and the repository folders it names exist.

mod common;
use common::*;

#[test]
fn every_example_is_valid() {
    let examples = root().join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let dir = entry.unwrap().path();
        let cfg = dir.join("agent.yaml");
        if !cfg.is_file() {
            continue;
        }
        seen += 1;
        let r = run(agentd().arg("--config").arg(&cfg).arg("--check"));
        assert_eq!(r.code, 0, "{}: {}", cfg.display(), r.stderr);

        let config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
        let state = dir.join(config["source"]["path"].as_str().unwrap());
        let r = run(agentctl().args(["validate", "--json", "--render"]).arg(&state));
        assert_eq!(r.code, 0, "{}: {}{}", state.display(), r.stdout, r.stderr);
        let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        for res in report["resources"].as_array().unwrap() {
            for key in ["source", "flake"] {
                if let Some(p) = res["spec"][key].as_str() {
                    assert!(dir.join(p).is_dir(), "{}: {key} {p} does not exist in the example", state.display());
                }
            }
        }
    }
    assert_eq!(seen, 4, "containers, data, passenger and nixos");
}
