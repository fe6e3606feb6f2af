//! `Revision`: a full commit id the agent deploys, its twelve-character short form for
//! people, and — once the reconciler hands it to a driver — its files (`Files`: read from
//! Git objects, or exported to disk), so that no driver reaches back into the source. The
//! lowest layer of the agent: everything may use it, it uses nothing of ours.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A full commit id (40 hex digits for SHA-1 repositories), and its files when handed over.
/// Two revisions are equal when their ids are: the files go with the id, not beside it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Revision {
    /// The commit id.
    id: String,
    /// The revision's files, once the reconciler attached them (`with_files`).
    #[serde(skip)]
    files: Option<Arc<dyn Files>>,
}

/// What a driver may read of a revision: a file, what a path is, a folder's tree id, a
/// folder exported to disk (keyed by its tree id), the tags that name the commit. Blocking
/// (Git objects, the disk): drivers call it in `spawn_blocking`.
pub trait Files: Send + Sync {
    /// A file's content.
    fn read(&self, path: &str) -> Result<Vec<u8>, FilesError>;
    /// What `path` is: `Some((is a folder, its object id))`, or `None` when the revision
    /// has nothing there.
    fn entry(&self, path: &str) -> Result<Option<(bool, String)>, FilesError>;
    /// The tree id of folder `path` (`""`: the root).
    fn tree_id(&self, path: &str) -> Result<String, FilesError>;
    /// Folder `path` exported to disk, where it stays while its tree id is used.
    fn export(&self, path: &str) -> Result<PathBuf, FilesError>;
    /// The tags that point at the commit.
    fn tags(&self) -> Result<Vec<String>, FilesError>;
}

/// Reading a revision's files failed: `fault` when the mirror or the disk is to blame, a
/// verdict on the revision when it lacks what was asked.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{detail}")]
pub struct FilesError {
    /// What went wrong, for the operator.
    pub detail: String,
    /// The host's fault (retried), not the revision's.
    pub fault: bool,
}

impl Revision {
    pub fn new(id: impl Into<String>) -> Revision {
        Revision { id: id.into(), files: None }
    }

    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// `0123456789ab`: twelve characters, as in messages and `agentctl history`.
    pub fn short(&self) -> &str {
        short(&self.id)
    }

    /// The commit id as git2 wants it (`None` for a malformed id).
    pub fn oid(&self) -> Option<git2::Oid> {
        git2::Oid::from_str(&self.id).ok()
    }

    /// The revision with its files, as the reconciler hands it to drivers.
    pub fn with_files(&self, files: Arc<dyn Files>) -> Revision {
        Revision { id: self.id.clone(), files: Some(files) }
    }

    /// `f` over the revision's files, on a blocking thread (they read Git objects and the
    /// disk): the one way drivers read them. A task that does not finish is a fault.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Files) -> Result<T, FilesError> + Send + 'static,
    ) -> Result<T, FilesError> {
        let files = self.files()?;
        tokio::task::spawn_blocking(move || f(files.as_ref()))
            .await
            .map_err(|e| FilesError { detail: format!("reading revision files: {e}"), fault: true })?
    }

    /// The revision's files; a fault when they were not handed over (a driver called with a
    /// bare id: the agent's mistake, never the revision's).
    pub fn files(&self) -> Result<Arc<dyn Files>, FilesError> {
        self.files.clone().ok_or_else(|| FilesError {
            detail: format!("the files of revision {} were not handed to the driver", self.short()),
            fault: true,
        })
    }
}

impl std::fmt::Debug for Revision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Revision").field(&self.id).finish()
    }
}

impl PartialEq for Revision {
    fn eq(&self, other: &Revision) -> bool {
        self.id == other.id
    }
}

impl Eq for Revision {}

impl std::hash::Hash for Revision {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl PartialOrd for Revision {
    fn partial_cmp(&self, other: &Revision) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Revision {
    fn cmp(&self, other: &Revision) -> std::cmp::Ordering {
        self.id.cmp(&other.id)
    }
}

impl std::fmt::Display for Revision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.id)
    }
}

impl From<git2::Oid> for Revision {
    fn from(o: git2::Oid) -> Revision {
        Revision::new(o.to_string())
    }
}

impl PartialEq<str> for Revision {
    fn eq(&self, other: &str) -> bool {
        self.id == other
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
