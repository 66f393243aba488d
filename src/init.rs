//! `smart-imaging init DIR`: a folder to start serving one's own images from: a configuration with a mock
//! tenant (and a `smart-on-fhir` one to fill in, commented), a `dicom/` folder for the images, a study-token
//! key and the index of what `dicom/` holds, so that `serve` works at once.
//!
//! Invariant: nothing that exists is overwritten: every file is checked first, and when one is there nothing
//! is written at all; each file is then created only if it is still absent (`create_new`).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The configuration's file name, in the folder and in the places the command line looks.
pub const CONFIG_FILE: &str = "smart-imaging.toml";
const KEY_FILE: &str = "study-token.key";
const INDEX_FILE: &str = "index.toml";

/// Writes the folder `dir` and says what it wrote on `out`.
pub fn init(dir: &Path, out: &mut dyn Write) -> Result<(), String> {
    let [config, key, index] = [CONFIG_FILE, KEY_FILE, INDEX_FILE].map(|name| dir.join(name));
    for path in [&config, &key, &index] {
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(format!("{} exists; init never overwrites a file, and wrote nothing", path.display()));
        }
    }
    let dicom = dir.join("dicom");
    std::fs::create_dir_all(&dicom).map_err(|e| format!("cannot make {}: {e}", dicom.display()))?;
    let secret = crate::random::hex_id(32)?;
    create(&key, &format!("{secret}\n"), 0o600)?;
    create(&config, CONFIG, 0o644)?;
    let mut report = Vec::new();
    let summary = crate::index::update::update_dir(&dicom, &index, &mut report, false)?;
    let say = |out: &mut dyn Write, line: String| writeln!(out, "{line}").map_err(|e| e.to_string());
    say(out, format!("wrote {} (a mock tenant `lab`; a smart-on-fhir tenant to fill in)", config.display()))?;
    say(out, format!("wrote {} (the key of study tokens; keep it secret)", key.display()))?;
    say(out, format!("made {}/ (your DICOM files go here)", dicom.display()))?;
    say(out, format!("wrote {}: {} studies, {} instances", index.display(), summary.studies, summary.indexed))?;
    out.write_all(&report).map_err(|e| e.to_string())?;
    let shown = |p: &PathBuf| shell_word(&p.display().to_string());
    say(out, "next: copy DICOM files into the dicom folder, index them and serve:".into())?;
    say(out, format!("  smart-imaging index {} --out {} --update", shown(&dicom), shown(&index)))?;
    say(out, format!("  smart-imaging serve --config {}", shown(&config)))
}

fn create(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            format!("{} exists; init never overwrites a file", path.display())
        } else {
            format!("cannot write {}: {e}", path.display())
        }
    })?;
    file.write_all(text.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// A path as a shell word: quoted when it holds anything but the usual characters.
fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+:@".contains(&b)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The configuration `init` writes. Its paths are relative to its own folder.
const CONFIG: &str = r#"# smart-imaging configuration, written by `smart-imaging init`. Relative paths are relative to this
# file's folder. docs/operations.md (Configuration) describes every key; unknown keys are refused.

[server]
listen = "127.0.0.1:8000"
# The public URL in Endpoint addresses and links, when clients reach the server by another name.
# base_url = "http://imaging.example.org:8000"
# The key that seals study tokens (written by init, mode 0600): tokens outlive a restart.
key_file = "study-token.key"

[images]
# Written by `smart-imaging index dicom --out index.toml --update` (run in this folder).
index = "index.toml"
# UTC offset for study times whose DICOM files carry no TimezoneOffsetFromUTC.
# timezone = "+00:00"

# To try the server on this machine: no token needed, no patient check, every study in the index.
# Served at /lab/fhir and /lab/wado. Remove it before anyone else can reach the server.
[tenants.lab]
authorization = { type = "mock", ignorePatient = true }
images = { lookup = "all-studies" }

# A tenant whose access tokens are introspected at the hospital's EHR (docs/ehr.md, Connecting to an EHR).
# [tenants.ehr]
# authorization.type = "smart-on-fhir"
# authorization.fhirBaseUrl = "https://ehr.example.org/fhir"
# # Written by `smart-imaging keygen --out keys/imaging-server`; register the public key at the EHR.
# authorization.client = { id = "imaging-server", jwk = "keys/imaging-server.private.jwk.json" }
# images.lookup = "studies-by-context"
# # Which Patient.identifier values are DICOM PatientIDs (default: those typed MR).
# images.patientId = { system = "http://hospital.example.org" }
# # The identifier system each DICOM IssuerOfPatientID in the images stands for (`smart-imaging check`
# # lists the issuers that are not mapped): a study whose issuer is not mapped matches no patient.
# images.issuers = { "HOSPITAL-A" = "http://hospital.example.org" }
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_reads_and_its_commented_tenant_reads_too() {
        let path = Path::new("/srv/lab/smart-imaging.toml");
        let config = crate::config::Config::parse(CONFIG, path).unwrap();
        assert_eq!(config.index_path, Path::new("/srv/lab/index.toml"));
        assert_eq!(config.key_file.as_deref(), Some(Path::new("/srv/lab/study-token.key")));
        assert_eq!(config.tenants.keys().collect::<Vec<_>>(), ["lab"]);
        // Uncommented, the smart-on-fhir tenant is valid but for its key file, which keygen writes.
        let start = CONFIG.find("# [tenants.ehr]").unwrap();
        let uncommented: String = CONFIG[start..]
            .lines()
            .filter(|l| !l.starts_with("# # "))
            .map(|l| format!("{}\n", l.trim_start_matches("# ")))
            .collect();
        let text = format!("{}{uncommented}", &CONFIG[..start]);
        let e = crate::config::Config::parse(&text, path).unwrap_err().to_string();
        assert!(e.contains("tenants.ehr.authorization.client.jwk: cannot read"), "{e}");
    }

    #[test]
    fn shell_words() {
        assert_eq!(shell_word("/srv/lab/dicom"), "/srv/lab/dicom");
        assert_eq!(shell_word("my lab/it's"), r"'my lab/it'\''s'");
    }
}
