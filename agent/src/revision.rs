//! `Revision`: a full commit id the agent deploys, and its twelve-character short form for
//! people. The lowest layer of the agent: everything may use it, it uses nothing of ours.

use serde::{Deserialize, Serialize};

/// A full commit id (40 hex digits for SHA-1 repositories).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Revision(String);

impl Revision {
    pub fn new(id: impl Into<String>) -> Revision {
        Revision(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `0123456789ab`: twelve characters, as in messages and `agentctl history`.
    pub fn short(&self) -> &str {
        short(&self.0)
    }

    /// The commit id as git2 wants it (`None` for a malformed id).
    pub fn oid(&self) -> Option<git2::Oid> {
        git2::Oid::from_str(&self.0).ok()
    }
}

impl std::fmt::Display for Revision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<git2::Oid> for Revision {
    fn from(o: git2::Oid) -> Revision {
        Revision(o.to_string())
    }
}

impl PartialEq<str> for Revision {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

/// `0123456789ab`: twelve characters of a commit id (all of it when shorter).
pub fn short(rev: &str) -> &str {
    rev.get(..12).unwrap_or(rev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_forms() {
        let r = Revision::new("0123456789abcdef0123456789abcdef01234567");
        assert_eq!(r.short(), "0123456789ab");
        assert_eq!(short("abc"), "abc");
        assert!(r.oid().is_some());
        assert!(Revision::new("zz").oid().is_none());
        assert_eq!(serde_json::to_string(&r).unwrap(), "\"0123456789abcdef0123456789abcdef01234567\"");
    }
}
