//! Signature extraction from annotated tags (`verify::split_signed`, byte-wise as git's
//! `parse_signed_buffer`) and from commits (libgit2's `extract_signature`), through
//! `verify_tag` and `verify_commit` with an empty trust (so no process is spawned): any
//! bytes — invalid UTF-8 before the signature, markers mid-line, truncated armor — are an
//! answer, never a panic, and the split always cuts at a line start that begins a block.
#![no_main]
use driftless_agent::source::verify::{split_signed, verify_commit, verify_tag, Trust};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((payload, sig)) = split_signed(data) {
        assert_eq!(payload.len() + sig.len(), data.len());
        assert!(sig.starts_with(b"-----BEGIN SSH SIGNATURE-----") || sig.starts_with(b"-----BEGIN PGP SIGNATURE-----"));
        assert!(payload.is_empty() || payload.ends_with(b"\n"));
    }
    // The same bytes as a tag object and as a commit object, in a repository in memory.
    let Ok(odb) = git2::Odb::new() else { return };
    let Ok(_pack) = odb.add_new_mempack_backend(1) else { return };
    let (Ok(tag), Ok(commit)) = (odb.write(git2::ObjectType::Tag, data), odb.write(git2::ObjectType::Commit, data))
    else {
        return;
    };
    let Ok(repo) = git2::Repository::from_odb(odb) else { return };
    let trust = Trust::default();
    let _ = verify_tag(&repo, tag, &trust);
    let _ = verify_commit(&repo, commit, &trust);
});
