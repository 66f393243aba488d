//! A lab's own images (docs/operations.md, Your own images): `smart-imaging init`, where the binary finds its
//! configuration, and a study sent by a DICOM modality (dcmtk's `storescu`) to a receiver (`storescp`) that
//! indexes it and reloads the server, searchable at once.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::harness::*;

fn init(dir: &Path, cwd: &Path) -> Run {
    run_cli(&[OsString::from("init"), dir.into()], cwd)
}

/// `smart-imaging index LAB/dicom --out LAB/index.toml --update`.
fn update(lab: &Path, cwd: &Path) -> Run {
    let args: [OsString; 5] =
        ["index".into(), lab.join("dicom").into(), "--out".into(), lab.join("index.toml").into(), "--update".into()];
    run_cli(&args, cwd)
}

/// The sample's first CT series written under `lab/dicom/cd-1/`, as copied from a CD.
fn copy_series(lab: &Path) -> usize {
    let sample = IndexFile::sample();
    let series = &sample.studies[0].series[0];
    for (i, inst) in series.instances.iter().enumerate() {
        let path = lab.join(format!("dicom/cd-1/{i:03}.dcm"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, inst.file_bytes()).unwrap();
    }
    series.instances.len()
}

#[test]
fn init_writes_a_folder_that_serves_its_own_images_and_never_overwrites() {
    let tmp = TempDir::new("init");
    let lab = tmp.path().join("lab");
    let run = init(&lab, tmp.path());
    assert_eq!(run.code(), Some(0), "{run}");
    for line in ["wrote", "smart-imaging.toml", "study-token.key", "dicom/", "index.toml: 0 studies", "--update"] {
        assert!(run.stdout.contains(line), "{line}\n{run}");
    }
    let key = std::fs::read_to_string(lab.join("study-token.key")).unwrap();
    assert_eq!(key.trim().len(), 64, "32 random bytes in hex");
    let mode = std::fs::metadata(lab.join("study-token.key")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the key is the owner's alone");
    let config = std::fs::read_to_string(lab.join("smart-imaging.toml")).unwrap();
    assert!(config.contains("[tenants.lab]") && config.contains("# [tenants.ehr]"), "{config}");
    assert!(config.contains("authorization.type = \"smart-on-fhir\""), "the commented smart-on-fhir tenant");

    // The empty index serves; the images copied in and indexed are served after a restart.
    let server = Launch::new(lab.join("smart-imaging.toml")).start();
    assert_eq!(server.get("/lab/fhir/ImagingStudy").json()["total"], 0);
    drop(server);
    let n = copy_series(&lab);
    let run = update(&lab, tmp.path());
    assert_eq!(run.code(), Some(0), "{run}");
    let server = Launch::new(lab.join("smart-imaging.toml")).start();
    let bundle = server.get("/lab/fhir/ImagingStudy").json();
    assert_eq!(bundle["total"], 1, "{bundle}");
    assert_eq!(bundle["entry"][0]["resource"]["numberOfInstances"], n, "{bundle}");
    assert!(!server.log().contains("random key"), "the key file is used\n{}", server.log());
    drop(server);

    // Again: refused, and nothing touched.
    let run = init(&lab, tmp.path());
    assert_eq!(run.code(), Some(2), "{run}");
    assert!(run.stderr.contains("smart-imaging.toml exists; init never overwrites a file, and wrote nothing"), "{run}");
    assert_eq!(std::fs::read_to_string(lab.join("study-token.key")).unwrap(), key, "the key is kept");
    // Only the index there: refused before anything is written.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("index.toml"), "kept").unwrap();
    let run = init(&other, tmp.path());
    assert_eq!(run.code(), Some(2), "{run}");
    assert!(run.stderr.contains("index.toml exists"), "{run}");
    assert!(!other.join("smart-imaging.toml").exists() && !other.join("study-token.key").exists(), "{run}");
    assert_eq!(std::fs::read_to_string(other.join("index.toml")).unwrap(), "kept");
}

#[test]
fn without_a_configuration_the_message_names_the_four_places_and_init() {
    let tmp = TempDir::new("no-config");
    let run = run_cli(&["check"], tmp.path());
    assert_eq!(run.code(), Some(2), "{run}");
    for place in
        ["--config FILE", "$SMART_IMAGING_CONFIG", "./smart-imaging.toml", "/etc/smart-imaging/smart-imaging.toml"]
    {
        assert!(run.stderr.contains(place), "{place}\n{run}");
    }
    assert!(run.stderr.contains("`smart-imaging init DIR`"), "{run}");
    let run = run_cli(&["serve", "--listen", "127.0.0.1:0"], tmp.path());
    assert_eq!(run.code(), Some(2), "serve says the same\n{run}");
    assert!(run.stderr.contains("no configuration found"), "{run}");

    let lab = tmp.path().join("lab");
    assert_eq!(init(&lab, tmp.path()).code(), Some(0));
    let config = lab.join("smart-imaging.toml");
    let by_var = run_cli_env(&["check"], tmp.path(), &[(CONFIG_VAR, config.as_os_str())]);
    assert_eq!(by_var.code(), Some(0), "$SMART_IMAGING_CONFIG\n{by_var}");
    assert!(by_var.stdout.contains(&format!("{}: 1 tenants", config.display())), "{by_var}");
    let missing = tmp.path().join("missing.toml");
    let run = run_cli_env(&["check"], tmp.path(), &[(CONFIG_VAR, missing.as_os_str())]);
    assert_eq!(run.code(), Some(2), "{run}");
    assert!(
        run.stderr.contains(&format!("$SMART_IMAGING_CONFIG names {}, which does not exist", missing.display())),
        "{run}"
    );
    let in_cwd = run_cli(&["check"], &lab);
    assert_eq!(in_cwd.code(), Some(0), "./smart-imaging.toml\n{in_cwd}");
    assert!(in_cwd.stdout.contains("smart-imaging.toml: 1 tenants"), "{in_cwd}");
    // --config comes first, the variable second.
    let elsewhere = run_cli_env(
        &["check", "--config", "lab/smart-imaging.toml"],
        tmp.path(),
        &[(CONFIG_VAR, OsStr::new("/nowhere.toml"))],
    );
    assert_eq!(elsewhere.code(), Some(0), "{elsewhere}");
}
