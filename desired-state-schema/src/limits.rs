//! Limits on desired-state input, checked before any parser sees it (PRODUCT.md: sizes,
//! nesting depth, document counts), and the one cheap scan that enforces the nesting one.
//! Used by the loader and by the compose reader alike; uses nothing of either.

/// A desired-state file larger than this is refused before it is parsed (PRODUCT.md).
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;
/// A revision with more desired state than this, in all, is refused before it is parsed.
pub const MAX_REVISION_BYTES: usize = 32 * 1024 * 1024;

/// Flow collections (`[…]`, `{…}`) nested deeper than this are refused before parsing:
/// libyaml's scanner costs O(depth) per token there, so a file of nothing but `[[[[…` took
/// time quadratic in its size (15 s for 200 KB; found by the adversarial tests).
pub const MAX_FLOW_DEPTH: usize = 64;
/// A revision with more YAML documents than this, in all, is refused before they are parsed
/// (a host runs tens of resources; 4 MiB of `---` lines is a million empty documents).
pub const MAX_DOCUMENTS: usize = 20_000;

/// What a cheap scan of a file's text says before any parser sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prescan {
    /// Documents (`---` lines, at least 1).
    pub documents: usize,
}

/// Scan `text` once, without parsing: flow nesting past `MAX_FLOW_DEPTH` is refused with
/// its (line, column). Quotes and comments are skipped as YAML does; a quote counts only
/// at the start of a scalar (`it's` is not one).
pub fn prescan(text: &str) -> Result<Prescan, (usize, usize, String)> {
    let (mut line, mut col) = (1usize, 0usize);
    let mut depth = 0usize;
    let mut documents = 1usize;
    let mut prev = b'\n';
    let mut quote: Option<u8> = None;
    let mut comment = false;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        col += 1;
        if b == b'\n' {
            line += 1;
            col = 0;
            comment = false;
            if bytes[i + 1..].starts_with(b"---") && bytes.get(i + 4).is_none_or(|c| c.is_ascii_whitespace()) {
                documents += 1;
            }
            prev = b;
            i += 1;
            continue;
        }
        if comment {
            i += 1;
            continue;
        }
        match quote {
            Some(b'"') => match b {
                b'\\' => {
                    i += 2;
                    col += 1;
                    continue;
                }
                b'"' => quote = None,
                _ => {}
            },
            Some(_) => {
                if b == b'\'' {
                    if bytes.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        col += 1;
                        continue;
                    }
                    quote = None;
                }
            }
            None => {
                let at_start = matches!(prev, b' ' | b'\t' | b'\n' | b'[' | b'{' | b',' | b':' | b'-' | b'?');
                match b {
                    b'#' if matches!(prev, b' ' | b'\t' | b'\n') => comment = true,
                    b'\'' | b'"' if at_start => quote = Some(b),
                    b'[' | b'{' => {
                        depth += 1;
                        if depth > MAX_FLOW_DEPTH {
                            return Err((
                                line,
                                col,
                                format!(
                                    "flow collections ([…], {{…}}) nested deeper than {MAX_FLOW_DEPTH} levels are refused"
                                ),
                            ));
                        }
                    }
                    b']' | b'}' => depth = depth.saturating_sub(1),
                    _ => {}
                }
            }
        }
        prev = b;
        i += 1;
    }
    Ok(Prescan { documents })
}
