//! Debian's `docker-registry` on 127.0.0.1 for end-to-end tests: with htpasswd auth, or open.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::git::free_port;

/// A registry process, killed when dropped.
pub struct Registry {
    child: std::process::Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A registry that asks for `user` and `password`.
pub fn registry(user: &str, password: &str) -> Registry {
    start(free_port(), Some((user, password)), None)
}

/// An open registry on `port`, its data in `data` (kept across restarts of the registry).
pub fn open_registry_on(port: u16, data: &std::path::Path) -> Registry {
    start(port, None, Some(data))
}

fn start(port: u16, auth: Option<(&str, &str)>, data: Option<&std::path::Path>) -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let auth_yaml = match auth {
        Some((user, password)) => {
            let htpasswd = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("htpasswd (apache2-utils) runs");
            assert!(htpasswd.status.success());
            std::fs::write(dir.path().join("htpasswd"), &htpasswd.stdout).unwrap();
            format!("auth:\n  htpasswd: {{ realm: driftless-e2e, path: {} }}\n", dir.path().join("htpasswd").display())
        }
        None => String::new(),
    };
    let data = data.map(|d| d.to_path_buf()).unwrap_or_else(|| dir.path().join("data"));
    let config = format!(
        "version: 0.1\nlog: {{ level: error }}\nstorage:\n  filesystem: {{ rootdirectory: {} }}\nhttp:\n  addr: 127.0.0.1:{port}\n{auth_yaml}",
        data.display(),
    );
    std::fs::write(dir.path().join("config.yml"), config).unwrap();
    let child = Command::new("docker-registry")
        .args(["serve"])
        .arg(dir.path().join("config.yml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry (Debian's docker-registry) runs");
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(20), "docker-registry did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    Registry { child, port, _dir: dir }
}
