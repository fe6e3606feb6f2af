//! Static addresses and subnets, judged on whole documents as `validate` judges them: an
//! address in its network's subnet, no address held by two containers, positions kept for
//! a compose file's (issue 35).

use desired_state_schema::{parse, SourceFile};

fn errors(path: &str, text: &str) -> String {
    match parse(&[SourceFile { path: path.into(), text: text.into() }]).build(None) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn an_address_outside_its_subnet_or_held_twice_is_refused() {
    let doc = |extra: &str| {
        format!(
            "apiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: aa }}\nspec:\n  image: x\n  networks: [{{ name: n, aliases: [], ipv4_address: {extra} }}]\n  network_options: {{ n: {{ subnets: [{{ subnet: 172.28.0.0/16, gateway: 172.28.0.1 }}] }} }}\n---\napiVersion: driftless/v1\nkind: Container\nmetadata: {{ name: bb }}\nspec:\n  image: x\n  networks: [{{ name: n, aliases: [], ipv4_address: 172.28.0.10 }}]\n  network_options: {{ n: {{ subnets: [{{ subnet: 172.28.0.0/16 }}] }} }}\n"
        )
    };
    assert_eq!(errors("a.yaml", &doc("172.28.0.20")), "");
    let e = errors("a.yaml", &doc("172.29.0.20"));
    assert!(e.contains("a.yaml:6:") && e.contains("172.29.0.20 is not in a subnet of network \"n\""), "{e}");
    let e = errors("a.yaml", &doc("172.28.0.10"));
    assert!(e.contains("172.28.0.10 on network \"n\" is already \"aa\"'s"), "{e}");
}

#[test]
fn a_compose_address_outside_its_ipam_subnet_is_refused_at_its_line() {
    let text = "services:\n  dns:\n    image: x\n    networks: { lan: { ipv4_address: 10.9.9.9 } }\nnetworks:\n  lan:\n    ipam: { config: [{ subnet: 172.28.0.0/16 }] }\n";
    let e = errors("app/compose.yaml", text);
    assert!(
        e.contains("app/compose.yaml:4:") && e.contains("10.9.9.9 is not in a subnet of network \"app_lan\""),
        "{e}"
    );
}

/// A service refused whole (not even a mapping) is refused once: what depends on it is not
/// refused again for naming it (issue 35, "a refusal cascades").
#[test]
fn a_service_refused_whole_is_refused_once() {
    let e = errors("app/compose.yaml", "services:\n  db: postgres\n  web:\n    image: x\n    depends_on: [db]\n");
    assert!(e.contains("services.db: a service is a mapping of its keys"), "{e}");
    assert!(!e.contains("no document declares"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
}

/// An included compose file is read only through the file that includes it (never as a
/// project of its own), and its errors are at its own lines.
#[test]
fn an_included_file_is_read_through_its_includer_with_its_own_positions() {
    let files = [
        SourceFile {
            path: "app/compose.yaml".into(),
            text: "include: [db/compose.yaml]\nservices:\n  web: { image: web, depends_on: [db] }\n".into(),
        },
        SourceFile {
            path: "app/db/compose.yaml".into(),
            text: "services:\n  db:\n    image: postgres\n    imagee: x\n".into(),
        },
    ];
    let e = match parse(&files).build(None) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("app/db/compose.yaml:4:5: services.db.imagee"), "{e}");
    assert_eq!(e.lines().count(), 1, "read once, not also as a project of its own: {e}");
    let files = [
        files[0].clone(),
        SourceFile { path: "app/db/compose.yaml".into(), text: "services:\n  db: { image: postgres }\n".into() },
    ];
    let state = parse(&files).build(None).unwrap();
    let names: Vec<&str> = state.resources.iter().map(|r| r.name()).collect();
    assert_eq!(names, ["db", "web"]);
}
