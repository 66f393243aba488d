//! What a newcomer meets first, against the real binary: help for each command, `keygen` into a folder that
//! does not exist yet, a listen address that is not `HOST:PORT`, links other machines cannot follow, and the
//! home page and the documentation a browser shows.

use std::os::unix::fs::PermissionsExt;

use crate::harness::*;

#[test]
fn each_command_has_its_own_help() {
    let dir = TempDir::new("help");
    let overview = run_cli(&["help"], dir.path());
    assert_eq!(overview.code(), Some(0), "{overview}");
    for command in ["serve", "index", "check", "keygen"] {
        assert!(overview.stdout.contains(&format!("  {command} ")), "the overview lists {command}\n{overview}");
        let by_help = run_cli(&["help", command], dir.path());
        let by_flag = run_cli(&[command, "--help"], dir.path());
        assert_eq!(by_help.code(), Some(0), "{by_help}");
        assert_eq!(by_flag.code(), Some(0), "{by_flag}");
        assert_eq!(by_help.stdout, by_flag.stdout, "`help {command}` and `{command} --help` agree");
        assert!(by_help.stdout.starts_with(&format!("smart-imaging {command}:")), "{by_help}");
        assert!(by_help.stdout.contains("EXAMPLE:"), "{by_help}");
        assert_ne!(by_help.stdout, overview.stdout, "{command} has a page of its own");
    }
    let unknown = run_cli(&["help", "frobnicate"], dir.path());
    assert_eq!(unknown.code(), Some(2), "{unknown}");
    assert!(unknown.stderr.contains("smart-imaging help"), "says where the list is\n{unknown}");
}

/// Broke: `keygen --out keys/imaging-server` failed "No such file or directory (keygen never overwrites a key)".
#[test]
fn keygen_makes_its_folder_and_says_exists_only_when_a_file_does() {
    let dir = TempDir::new("keygen");
    let first = run_cli(&["keygen", "--out", "keys/deeper/imaging-server"], dir.path());
    assert_eq!(first.code(), Some(0), "{first}");
    let private = dir.path().join("keys/deeper/imaging-server.private.jwk.json");
    assert_eq!(std::fs::metadata(&private).unwrap().permissions().mode() & 0o777, 0o600);
    let folder = std::fs::metadata(dir.path().join("keys/deeper")).unwrap().permissions().mode() & 0o777;
    assert_eq!(folder, 0o700, "the folder for a private key is private");
    let again = run_cli(&["keygen", "--out", "keys/deeper/imaging-server"], dir.path());
    assert_eq!(again.code(), Some(2), "{again}");
    assert!(again.stderr.contains("exists; keygen never overwrites a key"), "{again}");
    std::fs::write(dir.path().join("plain-file"), "x").unwrap();
    let blocked = run_cli(&["keygen", "--out", "plain-file/key"], dir.path());
    assert_eq!(blocked.code(), Some(2), "{blocked}");
    assert!(!blocked.stderr.contains("overwrite"), "no overwrite story when nothing was to be overwritten\n{blocked}");
    assert!(
        blocked.stderr.contains("cannot make the folder plain-file: a file of that name is in the way"),
        "{blocked}"
    );
}

/// Broke: `--listen 8001` said only "invalid socket address".
#[test]
fn a_listen_address_without_a_host_says_host_and_port() {
    let dir = TempDir::new("listen");
    let config = dir.config(OPEN_TENANT);
    for bad in ["8001", "localhost"] {
        let run = run_cli(&["serve", "--config", &config.to_string_lossy(), "--listen", bad], dir.path());
        assert_eq!(run.code(), Some(2), "{run}");
        assert!(run.stderr.contains("expected HOST:PORT, e.g. 127.0.0.1:8000"), "{run}");
        assert!(run.stderr.contains("--listen"), "names the flag\n{run}");
    }
}

/// Broke: a second `cargo run --release` said only `sandbox.listen "127.0.0.1:8001": cannot listen: Address
/// already in use`, and a busy imaging port named neither the listener nor the flag that moves it.
#[test]
fn a_busy_port_names_its_listener_its_address_and_the_flag_that_moves_it() {
    let dir = TempDir::new("busy-port");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = busy.local_addr().unwrap().to_string();
    let config = dir.config(OPEN_TENANT);
    let run = run_cli(&["serve", "--config", &config.to_string_lossy(), "--listen", &taken], dir.path());
    assert_eq!(run.code(), Some(2), "{run}");
    for said in ["the imaging server cannot listen on", taken.as_str(), "move it with --listen"] {
        assert!(run.stderr.contains(said), "{said:?}\n{run}");
    }
    let sample = sample_config();
    let args = ["serve", "--config", &sample.to_string_lossy(), "--listen", "127.0.0.1:0", "--sandbox-listen", &taken];
    let run = run_cli(&args, dir.path());
    assert_eq!(run.code(), Some(2), "{run}");
    for said in ["the sandbox EHR cannot listen on", taken.as_str(), "move it with --sandbox-listen"] {
        assert!(run.stderr.contains(said), "{said:?}\n{run}");
    }
}

/// Broke: `--listen 0.0.0.0:8000` silently put `http://0.0.0.0:8000/…` into every link.
#[test]
fn links_other_machines_cannot_follow_are_warned_about_with_the_base_url_to_use() {
    let dir = TempDir::new("links");
    let config = dir.config(OPEN_TENANT);
    let server = Launch::new(&config).listen("0.0.0.0:0").start();
    let log = server.wait_for_log("the warning", |l| l.contains("which they cannot follow"));
    assert!(log.contains(&format!("start with --base-url http://")), "{log}");
    assert!(log.contains(&format!(":{}", server.addr().port())), "with the port bound\n{log}");
    let quiet = Launch::new(&config).start();
    assert!(!quiet.log().contains("cannot follow"), "loopback draws no warning\n{}", quiet.log());
}

const OPEN_TENANT: &str = "[tenants.open]\nauthorization = { type = \"mock\", ignorePatient = true }\n\
                           images = { lookup = \"all-studies\" }\n";

#[test]
fn the_home_page_says_what_to_try_and_links_to_the_docs_it_serves() {
    let server = Launch::new(sample_config()).start();
    let home = server.get("/");
    assert_eq!(home.status, 200);
    assert_eq!(home.media_type(), "text/html");
    let page = home.text();
    assert!(page.contains("SMART Imaging Access lets an app"), "what it is\n{page}");
    for (tenant, kind) in [("open", "mock"), ("demo", "mock")] {
        assert!(page.contains(&format!("<b>{tenant}</b> <span class=note>({kind})</span>")), "{tenant}\n{page}");
    }
    let first = "/demo/fhir/ImagingStudy?patient=p1";
    assert!(page.contains(&format!("href=\"{}{first}\"", server.base())), "the first request, clickable\n{page}");
    assert!(page.contains("only the studies of that patient"), "what demo shows\n{page}");
    assert!(!page.contains("src=") && !page.contains("<script"), "no external asset, no script");
    // Every page the home page links to is served, with the heading its anchor names.
    let docs: Vec<&str> = page
        .split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|l| l.starts_with("/docs/"))
        .collect();
    for anchor in ["#walk-through-on-the-demo-tenant", "#connecting-to-an-ehr"] {
        assert!(docs.iter().any(|l| l.ends_with(anchor)), "the home page links to no {anchor}\n{page}");
    }
    for link in docs {
        let (path, anchor) = link.split_once('#').unwrap_or((link, ""));
        let reply = server.get(path);
        assert_eq!((reply.status, reply.media_type().as_str()), (200, "text/html"), "{link}");
        assert!(anchor.is_empty() || reply.text().contains(&format!("id=\"{anchor}\"")), "{path} has no #{anchor}");
    }
    assert_eq!(server.get(first).status, 200, "the link works");
    // The README's old address still leads to it.
    let moved = raw_request(server.addr(), "GET", "/readme", &[]);
    assert_eq!((moved.status, moved.header_or_empty("location")), (301, "/docs/"));
}
