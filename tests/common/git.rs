//! Real Git remotes for tests, all on 127.0.0.1 and all started by the test itself: a working
//! repository driven by the `git` CLI and pushed to a bare "server" repository, served by
//! `git daemon`, by `git http-backend` (smart HTTP, optional token), or by `sshd`.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Run git in `dir`; panics with git's output on failure (test setup only).
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A bare "server" repository and a working clone that pushes to it.
pub struct Upstream {
    pub tmp: tempfile::TempDir,
    /// The bare repository (what remotes serve).
    pub bare: PathBuf,
    /// The working repository.
    pub work: PathBuf,
}

impl Upstream {
    pub fn new() -> Upstream {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("srv");
        std::fs::create_dir_all(&root).unwrap();
        let bare = root.join("state.git");
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        git(tmp.path(), &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()]);
        git(&work, &["init", "-q", "-b", "main"]);
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        Upstream { tmp, bare, work }
    }

    /// Write files, commit, push `main`; returns the commit id.
    pub fn commit(&self, files: &[(&str, &str)], msg: &str) -> String {
        for (p, text) in files {
            let path = self.work.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "--allow-empty", "-m", msg]);
        git(&self.work, &["push", "-q", "origin", "main"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// Make an annotated tag at HEAD (moving it if it exists) and push it.
    pub fn tag(&self, name: &str) {
        git(&self.work, &["tag", "-f", "-a", "-m", name, name]);
        git(&self.work, &["push", "-q", "-f", "origin", &format!("refs/tags/{name}")]);
    }

    pub fn file_url(&self) -> String {
        format!("file://{}", self.bare.display())
    }
}

/// A TCP port free on this machine for a test to listen on.
///
/// The port is drawn at random from 20000–32767, below Linux's ephemeral range
/// (32768–60999): a port the kernel handed out for `bind(0)` is soon handed out again as the
/// local end of some other test's outgoing connection, and a test that binds it a moment
/// later fails with "address already in use" (seen in CI). Outside that range only another
/// test's own choice can collide, and each choice is checked free on 127.0.0.1 and 0.0.0.0
/// (where the engine publishes).
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    for _ in 0..1000 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
        let port = 20000 + (h.finish() % 12768) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() && TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000-32767 after 1000 tries")
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("{what} exited ({status}) before listening: {err}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on 127.0.0.1:{port} within 20s");
}

/// A server process, killed when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `git daemon` serving the upstream's folder.
pub fn git_daemon(up: &Upstream) -> Server {
    git_daemon_on(up, free_port())
}

/// `git daemon` on a given port (to bring a remote back where it was).
pub fn git_daemon_on(up: &Upstream, port: u16) -> Server {
    let base = up.bare.parent().unwrap();
    // Run git-daemon itself: `git daemon` runs it as a child, which a kill would leave behind.
    let exec_path = git(base, &["--exec-path"]);
    let mut child = Command::new(Path::new(&exec_path).join("git-daemon"))
        .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1"])
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", base.display()))
        .arg(base)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("git daemon starts");
    wait_for_port(port, &mut child, "git daemon");
    Server { child, port }
}

/// Smart HTTP (`git http-backend`), with an optional token.
pub fn git_http(up: &Upstream, token: Option<&str>) -> Server {
    git_http_tls(up, token, None)
}

/// A self-signed certificate for 127.0.0.1: (cert, key) paths.
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    (cert, key)
}

/// Smart HTTP, over TLS when `tls` gives (cert, key).
pub fn git_http_tls(up: &Upstream, token: Option<&str>, tls: Option<(&Path, &Path)>) -> Server {
    let base = up.bare.parent().unwrap();
    let portfile = up.tmp.path().join(format!("http-port-{}", free_port()));
    let script = super::root().join("tests/fixtures/git_http.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).arg(base).arg(&portfile);
    cmd.arg(token.unwrap_or("-"));
    if let Some((cert, key)) = tls {
        cmd.arg(cert).arg(key);
    }
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("python3 runs");
    let start = Instant::now();
    let port = loop {
        if let Ok(p) = std::fs::read_to_string(&portfile) {
            break p.trim().parse::<u16>().unwrap();
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("git_http.py exited early: {status}");
        }
        assert!(start.elapsed() < Duration::from_secs(20), "git_http.py did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    wait_for_port(port, &mut child, "git_http.py");
    Server { child, port }
}

/// `(requests, response bytes)` the HTTP server has answered so far.
pub fn http_stats(up: &Upstream) -> (u64, u64) {
    let text = std::fs::read_to_string(up.tmp.path().join("http-stats")).unwrap_or_default();
    let mut it = text.split_whitespace().map(|n| n.parse::<u64>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// sshd on 127.0.0.1 with its own host key, admitting one client key for the current user.
pub struct Sshd {
    pub server: Server,
    pub dir: tempfile::TempDir,
    /// The client's private key.
    pub client_key: PathBuf,
    /// A known_hosts file with the server's key.
    pub known_hosts: PathBuf,
    /// The server's public host key line (`ssh-ed25519 AAAA…`).
    pub host_pub: String,
}

pub fn keygen(path: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "driftless-test", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen runs");
    assert!(out.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::read_to_string(path.with_extension("pub")).unwrap().trim().to_string()
}

/// An Ed25519 key pair at `dir/name` (no passphrase): its path, and its public key as an
/// `allowed_signers` line wants it (`ssh-ed25519 AAAA…`).
pub fn keypair(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let public = keygen(&path);
    (path, public.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
}

pub fn sshd() -> Sshd {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let host_key = d.join("host_ed25519");
    let host_pub = keygen(&host_key);
    let client_key = d.join("client_ed25519");
    let client_pub = keygen(&client_key);
    std::fs::write(d.join("authorized_keys"), format!("{client_pub}\n")).unwrap();
    let port = free_port();
    let config = d.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\nPidFile {pid}\n\
             StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\nPubkeyAuthentication yes\nLogLevel ERROR\n",
            hk = host_key.display(),
            ak = d.join("authorized_keys").display(),
            pid = d.join("sshd.pid").display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let mut child = spawn_sshd(&config);
    wait_for_port(port, &mut child, "sshd");
    let known_hosts = d.join("known_hosts");
    std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {host_pub}\n")).unwrap();
    Sshd { server: Server { child, port }, dir, client_key, known_hosts, host_pub }
}

fn spawn_sshd(config: &Path) -> Child {
    let sshd = ["/usr/sbin/sshd", "/sbin/sshd"].into_iter().find(|p| Path::new(p).exists()).expect("sshd installed");
    Command::new(sshd)
        .args(["-D", "-e", "-f"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sshd starts")
}

impl Sshd {
    /// Stop the server (a remote gone away).
    pub fn stop(&mut self) {
        let _ = self.server.child.kill();
        let _ = self.server.child.wait();
    }

    /// Start it again on the same port with the same keys.
    pub fn start_again(&mut self) {
        self.server.child = spawn_sshd(&self.dir.path().join("sshd_config"));
        wait_for_port(self.server.port, &mut self.server.child, "sshd");
    }
}

/// The current user's name, for ssh URLs.
pub fn user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
