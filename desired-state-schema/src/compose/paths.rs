//! Repository paths of a compose project: a file's folder (`parent`), a relative path
//! joined to a folder without leaving the root (`join`), and a relative path written in one
//! folder re-expressed for another (`rebase`, for what an `extends`'d file wrote). Pure
//! string work on `/`-separated, repository-relative paths.

/// The folder of `path` (`""` for a file at the root).
pub(super) fn parent(path: &str) -> String {
    match path.rsplit_once('/') {
        Some((d, _)) => d.to_string(),
        None => String::new(),
    }
}

/// `dir` joined with the relative path `p`, normalized; `None` if it leaves the root.
pub(super) fn join(dir: &str, p: &str) -> Option<String> {
    let mut parts: Vec<&str> = dir.split('/').filter(|s| !s.is_empty() && *s != ".").collect();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    Some(if parts.is_empty() { ".".to_string() } else { parts.join("/") })
}

/// The relative path `p`, written in folder `from`, as a relative path from folder `to`
/// that names the same file (`join(to, rebase(p, from, to)) == join(from, p)`); it starts
/// with `.` so that a volume's source stays a bind. `None` if `p` leaves the root.
pub(super) fn rebase(p: &str, from: &str, to: &str) -> Option<String> {
    let target = join(from, p)?;
    let depth = to.split('/').filter(|s| !s.is_empty() && *s != ".").count();
    let up = if depth == 0 { ".".to_string() } else { vec![".."; depth].join("/") };
    Some(if target == "." { up } else { format!("{up}/{target}") })
}

/// A repository-relative path as shown under `root`.
pub(super) fn shown_path(root: &str, rel: &str) -> String {
    if root.is_empty() {
        rel.to_string()
    } else {
        format!("{}/{rel}", root.trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rebased_path_names_the_same_file() {
        for (p, from, to) in [
            ("./data", "common", "app"),
            ("../x", "a/b", ""),
            (".", "base", "app/web"),
            ("./data", "", "app"),
            ("conf/nginx.conf", "base", "base"),
        ] {
            let r = rebase(p, from, to).unwrap_or_default();
            assert!(r.starts_with('.'), "{r}");
            assert_eq!(join(to, &r), join(from, p), "{p} from {from} to {to}: {r}");
        }
        assert_eq!(rebase("../../x", "a", "b"), None);
    }
}
