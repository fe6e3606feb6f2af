//! Secrets in Git: repository files ending in `.age` (age-encryption.org/v1, binary or
//! armored) are decrypted in memory with `secrets.identities` — age X25519 identity files,
//! or SSH private keys (`ssh-ed25519`, `ssh-rsa`), such as the host's own
//! `/etc/ssh/ssh_host_ed25519_key`, so nothing has to be distributed. The maintained `age`
//! crate does the cryptography. Plaintext is held in `Zeroizing` buffers and handed only to
//! what needs it (a container's environment or secret mount, a Passenger release file);
//! it is never logged, never part of an error, never written under `state_dir`.

use std::io::{BufReader, Read};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// Why a secret could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secrets.identities: {path}: {detail}")]
    Identity { path: PathBuf, detail: String },
    #[error("{file} cannot be decrypted with secrets.identities ({identities}): it was encrypted to {recipients}; re-encrypt it to this host (age -r <age1…> or -R /etc/ssh/ssh_host_ed25519_key.pub)")]
    NoIdentity { file: String, identities: String, recipients: String },
    #[error("{file} is named .age but is not an age file ({detail}); encrypt it with age, or drop the .age suffix")]
    Malformed { file: String, detail: String },
}

/// The identities this host decrypts with.
#[derive(Default)]
pub struct Secrets {
    identities: Vec<Box<dyn age::Identity + Send + Sync>>,
    /// The files they came from, for messages.
    files: Vec<PathBuf>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} identities from {:?})", self.identities.len(), self.files)
    }
}

/// Whether a repository path names an encrypted file.
pub fn is_encrypted(path: &str) -> bool {
    path.ends_with(".age")
}

impl Secrets {
    /// Read every identity file: age identity files (`AGE-SECRET-KEY-1…` lines) or
    /// unencrypted OpenSSH private keys.
    pub fn load(paths: &[PathBuf]) -> Result<Secrets, SecretError> {
        let mut out = Secrets::default();
        for path in paths {
            let text = Zeroizing::new(
                std::fs::read_to_string(path)
                    .map_err(|e| SecretError::Identity { path: path.clone(), detail: e.to_string() })?,
            );
            out.add(path, &text)?;
        }
        Ok(out)
    }

    /// Add the identities of one identity file (`path` names it in messages).
    pub fn add(&mut self, path: &Path, text: &str) -> Result<(), SecretError> {
        let err = |detail: String| SecretError::Identity { path: path.to_path_buf(), detail };
        // The age crate's parsers can panic on malformed input (0.12.1 indexes past the end of
        // an all-zero SSH mpint; found by fuzzing): a bad key file is an error, not a crash.
        let guarded = |what: &str| {
            err(format!("{what} is malformed (the parser failed on it): regenerate it, or name another identity"))
        };
        if text.contains("AGE-SECRET-KEY-") {
            let file = std::panic::catch_unwind(AssertUnwindSafe(|| {
                age::IdentityFile::from_buffer(BufReader::new(text.as_bytes()))
            }))
            .map_err(|_| guarded("the age identity file"))?
            .map_err(|e| err(format!("not an age identity file: {e}")))?;
            let ids = file.into_identities().map_err(|e| err(format!("not an age identity file: {e}")))?;
            self.identities.extend(ids);
        } else {
            let id = std::panic::catch_unwind(AssertUnwindSafe(|| {
                age::ssh::Identity::from_buffer(BufReader::new(text.as_bytes()), Some(path.display().to_string()))
            }))
            .map_err(|_| guarded("the SSH private key"))?
            .map_err(|e| err(format!("neither an age identity file nor an SSH private key: {e}")))?;
            match id {
                age::ssh::Identity::Unencrypted(_) => self.identities.push(Box::new(id)),
                age::ssh::Identity::Encrypted(_) => {
                    return Err(err("the SSH key is passphrase-protected; the agent cannot ask for a passphrase: use an unencrypted key (such as the host key) or an age identity".into()))
                }
                age::ssh::Identity::Unsupported(_) => {
                    return Err(err("this SSH key type is not supported by age; use ssh-ed25519 or ssh-rsa, or an age identity".into()))
                }
            }
        }
        self.files.push(path.to_path_buf());
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
    }

    /// Decrypt `ciphertext` (the repository file `file`, binary or armored).
    pub fn decrypt(&self, file: &str, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        // A repository file must not crash the agent, whatever the age crate makes of it.
        std::panic::catch_unwind(AssertUnwindSafe(|| self.decrypt_unguarded(file, ciphertext))).unwrap_or_else(|_| {
            Err(SecretError::Malformed { file: file.to_string(), detail: "the age parser failed on it".into() })
        })
    }

    fn decrypt_unguarded(&self, file: &str, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        let malformed = |detail: String| SecretError::Malformed { file: file.to_string(), detail };
        let reader = age::armor::ArmoredReader::new(ciphertext);
        let decryptor = age::Decryptor::new_buffered(BufReader::new(reader)).map_err(|e| malformed(e.to_string()))?;
        if decryptor.is_scrypt() {
            return Err(SecretError::NoIdentity {
                file: file.to_string(),
                identities: self.describe(),
                recipients: "a passphrase (age -p), which a host cannot type".into(),
            });
        }
        let mut plain = Zeroizing::new(Vec::new());
        let decrypted = decryptor.decrypt(self.identities.iter().map(|i| i.as_ref() as &dyn age::Identity));
        match decrypted {
            Ok(mut r) => {
                r.read_to_end(&mut plain).map_err(|e| malformed(e.to_string()))?;
                Ok(plain)
            }
            Err(age::DecryptError::NoMatchingKeys) => Err(SecretError::NoIdentity {
                file: file.to_string(),
                identities: self.describe(),
                recipients: recipients(ciphertext),
            }),
            Err(e) => Err(malformed(e.to_string())),
        }
    }

    fn describe(&self) -> String {
        if self.files.is_empty() {
            "none configured".into()
        } else {
            self.files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        }
    }
}

/// The stanza types of an age header (`X25519`, `ssh-ed25519 <tag>`, …): whom a file was
/// encrypted to, for the message when no identity fits. Reads the header only.
pub fn recipients(ciphertext: &[u8]) -> String {
    let mut text = Vec::new();
    let mut reader = age::armor::ArmoredReader::new(ciphertext);
    let _ = reader.by_ref().take(64 * 1024).read_to_end(&mut text);
    let header = String::from_utf8_lossy(&text);
    let mut kinds: Vec<String> = Vec::new();
    for line in header.lines() {
        if line.starts_with("---") {
            break;
        }
        if let Some(stanza) = line.strip_prefix("-> ") {
            let mut parts = stanza.split(' ');
            let kind = parts.next().unwrap_or("");
            let shown = match kind {
                "ssh-ed25519" | "ssh-rsa" => format!("{kind} (key tag {})", parts.next().unwrap_or("?")),
                "X25519" => "an age X25519 key".to_string(),
                other => other.to_string(),
            };
            if !kinds.contains(&shown) {
                kinds.push(shown);
            }
        }
    }
    if kinds.is_empty() {
        "unknown recipients".into()
    } else {
        kinds.join(", ")
    }
}
