//! A lab's own images (docs/operations.md, Your own images): `smart-imaging init`, where the binary finds its
//! configuration, and a study sent by a DICOM modality (dcmtk's `storescu`) to a receiver (`storescp`) that
//! indexes it and reloads the server, searchable at once.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

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
    assert_eq!(resources(&bundle)[0]["numberOfInstances"], n, "{bundle}");
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

/// `smart-imaging reload --pid-file FILE`.
fn reload(pid_file: &Path, cwd: &Path) -> Run {
    run_cli(&[OsString::from("reload"), "--pid-file".into(), pid_file.into()], cwd)
}

#[test]
fn reload_by_pid_file_serves_a_new_index() {
    let tmp = TempDir::new("reload-pid");
    let lab = tmp.path().join("lab");
    assert_eq!(init(&lab, tmp.path()).code(), Some(0));
    let pid_file = lab.join("smart-imaging.pid");
    let server = Launch::new(lab.join("smart-imaging.toml")).arg("--pid-file").arg(pid_file.to_str().unwrap()).start();
    let written = std::fs::read_to_string(&pid_file).expect("the pid file is written once bound");
    assert_eq!(written.trim(), server.pid().to_string());
    assert_eq!(server.get("/lab/fhir/ImagingStudy").json()["total"], 0);

    let n = copy_series(&lab);
    assert_eq!(update(&lab, tmp.path()).code(), Some(0));
    let run = reload(&pid_file, tmp.path());
    assert_eq!(run.code(), Some(0), "{run}");
    assert!(run.stdout.contains(&format!("sent SIGHUP to smart-imaging (process {},", server.pid())), "{run}");
    server.wait_for_log("the reload", |l| l.contains("reload: configuration and index read"));
    let bundle = server.get("/lab/fhir/ImagingStudy").json();
    assert_eq!(bundle["total"], 1, "{bundle}");
    assert_eq!(resources(&bundle)[0]["numberOfInstances"], n);

    // A pid file that is missing, holds no number, names a process that is not running, or names another
    // program (this test's own process) is refused, naming the file, and nothing is signalled.
    let missing = reload(&tmp.path().join("none.pid"), tmp.path());
    assert_eq!(missing.code(), Some(2), "{missing}");
    assert!(missing.stderr.contains("none.pid: no such pid file; is the server running with --pid-file"), "{missing}");
    let garbage = tmp.path().join("garbage.pid");
    std::fs::write(&garbage, "twelve\n").unwrap();
    let run = reload(&garbage, tmp.path());
    assert!(run.code() == Some(2) && run.stderr.contains("not a process id"), "{run}");
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let stale = tmp.path().join("stale.pid");
    std::fs::write(&stale, format!("{}\n", gone.id())).unwrap();
    let run = reload(&stale, tmp.path());
    assert_eq!(run.code(), Some(2), "{run}");
    assert!(
        run.stderr.contains(&format!("names process {}, which is not running: a stale pid file", gone.id())),
        "{run}"
    );
    let other = tmp.path().join("other.pid");
    std::fs::write(&other, format!("{}\n", std::process::id())).unwrap();
    let run = reload(&other, tmp.path());
    assert_eq!(run.code(), Some(2), "{run}");
    assert!(run.stderr.contains("which is not smart-imaging"), "{run}");

    // Stopped, the server removes its pid file.
    let mut server = server;
    // SAFETY: `kill` with a plain process id and signal number.
    unsafe { libc::kill(server.pid() as libc::pid_t, libc::SIGTERM) };
    assert!(server.wait_exit(std::time::Duration::from_secs(30)).is_some_and(|s| s.success()), "{}", server.dump());
    assert!(!pid_file.exists(), "the pid file is removed at exit");
}

/// Whether `program` runs (dcmtk's tools print their version and exit 0).
fn have(program: &str) -> bool {
    std::process::Command::new(program)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A child process killed when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_study_sent_with_storescu_is_searchable_once_received() {
    if !have("storescp") || !have("storescu") {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "dcmtk's storescp and storescu are missing, and in CI this test must run: .ci/run installs dcmtk"
        );
        eprintln!(
            "\n!!!!! SKIPPED a_study_sent_with_storescu_is_searchable_once_received: dcmtk's storescp/storescu are \
             not installed (apt-get install dcmtk); in CI (CI=true) this fails instead !!!!!\n"
        );
        return;
    }
    let tmp = TempDir::new("storescp");
    let lab = tmp.path().join("lab");
    assert_eq!(init(&lab, tmp.path()).code(), Some(0));
    std::fs::create_dir_all(lab.join("dicom/incoming")).unwrap();
    let pid_file = lab.join("smart-imaging.pid");
    let server = Launch::new(lab.join("smart-imaging.toml")).arg("--pid-file").arg(pid_file.to_str().unwrap()).start();
    assert_eq!(server.get("/lab/fhir/ImagingStudy").json()["total"], 0);

    // A free port for the receiver: taken from the system, then let go (storescp binds it itself).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // The receiver of docs/index.md (From a modality), with the binary under test first on its PATH.
    let bin = Path::new(env!("CARGO_BIN_EXE_smart-imaging")).parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let on_study = format!(
        "smart-imaging index '{lab}/dicom' --out '{lab}/index.toml' --update --quiet && \
         smart-imaging reload --pid-file '{lab}/smart-imaging.pid'",
        lab = lab.display()
    );
    let log = std::fs::File::create(tmp.path().join("storescp.log")).unwrap();
    let storescp = std::process::Command::new("storescp")
        .args(["--aetitle", "SMART-IMAGING", "--output-directory"])
        .arg(lab.join("dicom/incoming"))
        .args(["--sort-on-study-uid", "study", "--eostudy-timeout", "1", "--exec-on-eostudy", &on_study, "+xa"])
        .arg(port.to_string())
        .env("PATH", &path)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("storescp starts");
    let _storescp = Killed(storescp);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "storescp never listened on {port}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    // The modality: the sample's first CT series, sent in one association.
    let sample = IndexFile::sample();
    let series = &sample.studies[0].series[0];
    let files: Vec<PathBuf> = series.instances.iter().map(|i| data_dir().join(&i.path)).collect();
    let sent = std::process::Command::new("storescu")
        .args(["--aetitle", "MODALITY", "--call", "SMART-IMAGING", "127.0.0.1"])
        .arg(port.to_string())
        .args(&files)
        .output()
        .expect("storescu runs");
    let ended = std::time::Instant::now();
    assert!(sent.status.success(), "storescu: {}", String::from_utf8_lossy(&sent.stderr));

    // Searchable once received: indexed and reloaded when storescp sees the study end (1 s without more).
    let deadline = ended + std::time::Duration::from_secs(5);
    loop {
        let bundle = server.get("/lab/fhir/ImagingStudy").json();
        if bundle["total"] == 1 {
            assert_eq!(resources(&bundle)[0]["numberOfInstances"], series.instances.len(), "{bundle}");
            assert_eq!(resources(&bundle)[0]["identifier"][0]["value"], format!("urn:oid:{}", sample.studies[0].uid));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the study was not searchable 5 s after the association ended\n--- storescp:\n{}\n{}",
            std::fs::read_to_string(tmp.path().join("storescp.log")).unwrap_or_default(),
            server.dump()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The retrieve works too, from the received files.
    let bundle = server.get("/lab/fhir/ImagingStudy").json();
    let address = wado_address(&bundle, resources(&bundle)[0]);
    let study = format!("{address}/studies/{}", sample.studies[0].uid);
    let reply = get(&study, &[("Accept", "multipart/related; type=\"application/dicom\"")]);
    assert_eq!(reply.status, 200, "{}", server.dump());
}

#[test]
fn check_and_the_start_up_log_warn_when_a_tenant_can_see_no_study() {
    let tmp = TempDir::new("warnings");
    let lab = tmp.path().join("lab");
    assert_eq!(init(&lab, tmp.path()).code(), Some(0));
    copy_series(&lab);
    assert_eq!(update(&lab, tmp.path()).code(), Some(0));
    let config = lab.join("other.toml");
    std::fs::write(
        &config,
        "[images]\nindex = \"index.toml\"\n[tenants.ward]\nauthorization.type = \"mock\"\n\
         authorization.patient = { id = \"p9\", identifier = [{ value = \"MRN-9999\", type = \"MR\" }] }\n\
         images.lookup = \"studies-by-context\"\n",
    )
    .unwrap();
    let run = run_cli(&[OsString::from("check"), "--config".into(), config.clone().into()], tmp.path());
    assert_eq!(run.code(), Some(0), "warnings do not fail check\n{run}");
    let warning = "tenant ward: can see no study: its mock patient p9 owns none (DICOM PatientIDs [\"MRN-9999\"]";
    assert!(run.stdout.contains(&format!("warning: {warning}")), "{run}");
    assert!(run.stdout.contains("0 problems, 0 touched, 1 warnings"), "{run}");
    let sound =
        run_cli(&[OsString::from("check"), "--config".into(), lab.join("smart-imaging.toml").into()], tmp.path());
    assert!(sound.stdout.contains("0 problems, 0 touched, 0 warnings"), "{sound}");

    let server = Launch::new(&config).start();
    // The log (stderr) may lag behind the `listening on` line (stdout) the harness waited for.
    let log = server.wait_for_log("the start-up warning", |log| log.contains(warning));
    assert_eq!(log.matches(warning).count(), 1, "once in the start-up log\n{log}");
    assert!(log.contains(" WARN "), "{log}");
}
