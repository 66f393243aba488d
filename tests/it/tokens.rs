//! Study tokens across processes (docs/api.md, Choices: study tokens): servers that share a key accept each other's
//! tokens, a server with another key refuses them, and a token is refused when the index no longer gives its study
//! to the patient it was minted for.

use crate::harness::*;

const KEY: &str = "shared-replica-key-0123456789abcdef";

fn demo_tables() -> String {
    let text = std::fs::read_to_string(sample_config()).expect("the sample configuration");
    // The sample's tenants, without its [server] and [images] tables (the harness writes [images]).
    let start = text.find("[tenants.open]").expect("the sample has an open tenant");
    text[start..].to_string()
}

/// A copy of the sample index in its own folder, with `edit` applied to its text; the DICOM files are reached
/// through a symbolic link, so the index's relative paths still resolve.
fn edited_index(dir: &TempDir, edit: impl Fn(&str) -> String) -> std::path::PathBuf {
    let text = std::fs::read_to_string(sample_index_path()).expect("the sample index");
    std::os::unix::fs::symlink(repo().join("data").join("dicom"), dir.path().join("dicom")).expect("symlink");
    dir.write("index.toml", edit(&text))
}

#[test]
fn replicas_sharing_a_key_accept_each_others_tokens() {
    let dir = TempDir::new("replicas");
    let config = dir.config(&demo_tables());
    let a = Launch::new(&config).env(KEY_VAR, KEY).start();
    let b = Launch::new(&config).env(KEY_VAR, KEY).start();
    let other = Launch::new(&config).env(KEY_VAR, "another-key-0123456789abcdef").start();
    for (uid, address) in addresses(&a, "/demo/fhir/ImagingStudy?patient=p1") {
        let token = study_token(&address);
        let on_b = b.get(&format!("/demo/wado/{token}/studies/{uid}"));
        assert_eq!(on_b.status, 200, "server B refused server A's token: {}\n{}", on_b.text(), b.dump());
        let on_other = other.get(&format!("/demo/wado/{token}/studies/{uid}"));
        assert_eq!(on_other.status, 403, "a server with another key accepted the token");
        assert!(!on_other.body_contains(b"DICM"), "no DICOM bytes in a refusal");
    }
}

#[test]
fn a_token_is_refused_when_the_study_no_longer_belongs_to_its_patient() {
    let dir = TempDir::new("moved");
    let config = dir.config(&demo_tables());
    let a = Launch::new(&config).env(KEY_VAR, KEY).start();
    let minted = addresses(&a, "/demo/fhir/ImagingStudy?patient=p1");

    // The same studies, re-indexed with another PatientID: as if the archive corrected a misfiled study.
    let moved = TempDir::new("moved-index");
    let index = edited_index(&moved, |t| t.replace("patient_id = \"MRN-1001\"", "patient_id = \"MRN-9999\""));
    let tables = demo_tables().replace("lookup = \"studies-by-context\"", "lookup = \"all-studies\"");
    let config_b = moved.write(
        "smart-imaging.toml",
        format!("[images]\nindex = {}\n\n{tables}", toml_string(&index.to_string_lossy())),
    );
    let b = Launch::new(&config_b).env(KEY_VAR, KEY).start();
    for (uid, address) in minted {
        let token = study_token(&address);
        let reply = b.get(&format!("/demo/wado/{token}/studies/{uid}"));
        assert_eq!(reply.status, 403, "the study's PatientID is no longer bound: {}\n{}", reply.text(), b.dump());
        assert!(!reply.body_contains(b"DICM"), "no DICOM bytes in a refusal");
    }
}
