//! The command line (docs/operations.md, Command line): parses arguments, runs one command, and turns any start-up
//! error into one message and exit status 2; the log, with the HTTP client's crates capped at `info`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::Config;
use crate::index::Index;
use crate::{auth, help, index, probe, server, token};

/// Runs the command the process was started with.
pub fn main() -> ExitCode {
    init_log();
    match run() {
        Ok(code) => code,
        Err(message) => {
            eprintln!("smart-imaging: {message}");
            ExitCode::from(2)
        }
    }
}

/// The log on stderr, filtered by `RUST_LOG` (default `info`), with the HTTP client's crates capped at
/// `info` whatever `RUST_LOG` says: at debug and trace they print requests with their headers, the backend
/// token among them (docs/operations.md, Security).
fn init_log() {
    let inner = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).build();
    let max = inner.filter();
    if log::set_boxed_logger(Box::new(CappedLog(inner))).is_ok() {
        log::set_max_level(max);
    }
}

/// The crates whose records above `info` are dropped: ureq and the crates it speaks HTTP and TLS with.
const CAPPED_AT_INFO: [&str; 3] = ["ureq", "ureq_proto", "rustls"];

struct CappedLog(env_logger::Logger);

impl CappedLog {
    fn capped(metadata: &log::Metadata) -> bool {
        let target = metadata.target();
        metadata.level() > log::Level::Info
            && CAPPED_AT_INFO
                .iter()
                .any(|c| target.strip_prefix(c).is_some_and(|r| r.is_empty() || r.starts_with("::")))
    }
}

impl log::Log for CappedLog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        !CappedLog::capped(metadata) && self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            self.0.log(record);
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}

fn run() -> Result<ExitCode, String> {
    let mut args = pico_args::Arguments::from_env();
    let wants_help = args.contains(["-h", "--help"]);
    if args.contains(["-V", "--version"]) {
        println!("smart-imaging {}", env!("CARGO_PKG_VERSION"));
        return Ok(ExitCode::SUCCESS);
    }
    let command = args.subcommand().map_err(|e| e.to_string())?;
    if wants_help || command.as_deref() == Some("help") {
        let topic = match command.as_deref() {
            Some("help") => args.opt_free_from_str::<String>().map_err(|e| e.to_string())?,
            other => other.map(str::to_string),
        };
        let page = help::page(topic.as_deref())
            .ok_or_else(|| format!("no command {:?}; `smart-imaging help` lists them", topic.unwrap_or_default()))?;
        print!("{page}");
        return Ok(ExitCode::SUCCESS);
    }
    match command.as_deref() {
        None | Some("serve") => {
            let config = config_flag(&mut args)?;
            let opts = server::start::Options {
                config: PathBuf::new(),
                listen: opt_string(&mut args, "--listen")?,
                base_url: opt_string(&mut args, "--base-url")?,
                sandbox_listen: opt_string(&mut args, "--sandbox-listen")?,
                pid_file: args.opt_value_from_os_str("--pid-file", to_path).map_err(|e| e.to_string())?,
            };
            finish(args)?;
            let opts = server::start::Options {
                config: locate_config(config, std::env::var_os(CONFIG_VAR), |p| p.exists())?,
                ..opts
            };
            server::start::serve(opts, load)
        }
        Some("index") => {
            let out: Option<PathBuf> = args.opt_value_from_os_str("--out", to_path).map_err(|e| e.to_string())?;
            let quiet = args.contains(["-q", "--quiet"]);
            let update = args.contains("--update");
            let dir: PathBuf =
                args.free_from_os_str(to_path).map_err(|_| "index needs a folder: smart-imaging index DIR")?;
            finish(args)?;
            index(&dir, out, quiet, update)
        }
        Some("check") => {
            let config = config_flag(&mut args)?;
            let verbose = args.contains(["-v", "--verbose"]);
            finish(args)?;
            check(&locate_config(config, std::env::var_os(CONFIG_VAR), |p| p.exists())?, verbose)
        }
        Some("reload") => {
            let path: Option<PathBuf> = args.opt_value_from_os_str("--pid-file", to_path).map_err(|e| e.to_string())?;
            finish(args)?;
            println!("{}", crate::pidfile::reload(&path.unwrap_or_else(|| PathBuf::from(crate::pidfile::DEFAULT)))?);
            Ok(ExitCode::SUCCESS)
        }
        Some("init") => {
            let dir: PathBuf =
                args.free_from_os_str(to_path).map_err(|_| "init needs a folder: smart-imaging init DIR")?;
            finish(args)?;
            crate::init::init(&dir, &mut std::io::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
        Some("keygen") => {
            let prefix: Option<String> = opt_string(&mut args, "--out")?;
            finish(args)?;
            auth::jwk::keygen(prefix.as_deref().unwrap_or("imaging-server"))?;
            Ok(ExitCode::SUCCESS)
        }
        Some("assertion") => {
            let key: PathBuf = args.value_from_os_str("--key", to_path).map_err(|_| "assertion needs --key FILE")?;
            let client: String = args.value_from_str("--client").map_err(|_| "assertion needs --client ID")?;
            let audience: String = args.value_from_str("--aud").map_err(|_| "assertion needs --aud TOKEN_URL")?;
            finish(args)?;
            let text = std::fs::read_to_string(&key).map_err(|e| format!("{}: cannot read: {e}", key.display()))?;
            let key = auth::jwk::SigningKey::from_jwk(&text).map_err(|e| format!("{}: {e}", key.display()))?;
            println!("{}", key.client_assertion(&client, &audience, crate::time::now_secs())?);
            Ok(ExitCode::SUCCESS)
        }
        Some("probe") => {
            let options = probe::Options {
                token: opt_string(&mut args, "--token")?,
                other_patient_token: opt_string(&mut args, "--other-patient-token")?,
                same_patient_token: opt_string(&mut args, "--same-patient-token")?,
                patient: opt_string(&mut args, "--patient")?,
                sandbox_launch: opt_string(&mut args, "--sandbox-launch")?,
                json: args.contains("--json"),
                base: args
                    .free_from_str()
                    .map_err(|_| "probe needs an imaging FHIR base: smart-imaging probe BASE (see --help)")?,
            };
            finish(args)?;
            for (flag, url) in [("BASE", Some(&options.base)), ("--sandbox-launch", options.sandbox_launch.as_ref())] {
                if let Some(url) = url.filter(|u| !u.starts_with("http://") && !u.starts_with("https://")) {
                    return Err(format!("probe: {flag} {url:?} is not an http(s) URL"));
                }
            }
            Ok(probe::main(&options))
        }
        Some(other) => Err(format!("unknown command {other:?}; `smart-imaging help` lists the commands")),
    }
}

fn to_path(s: &std::ffi::OsStr) -> Result<PathBuf, &'static str> {
    Ok(PathBuf::from(s))
}

/// `--config FILE`, when given; `locate_config` looks further once every other argument was accepted, so that
/// a stray flag is named before a missing configuration.
fn config_flag(args: &mut pico_args::Arguments) -> Result<Option<PathBuf>, String> {
    args.opt_value_from_os_str("--config", to_path).map_err(|e| e.to_string())
}

/// The environment variable naming the configuration when `--config` does not.
const CONFIG_VAR: &str = "SMART_IMAGING_CONFIG";

/// Where the configuration is looked for last, in order: the working folder, then the system's.
const CONFIG_PLACES: [&str; 2] = [crate::init::CONFIG_FILE, "/etc/smart-imaging/smart-imaging.toml"];

/// The configuration to run on: `--config`, else `$SMART_IMAGING_CONFIG`, else the first of `CONFIG_PLACES`
/// that `exists`; when there is none, the message names the four places and `init`.
fn locate_config(
    flag: Option<PathBuf>,
    var: Option<std::ffi::OsString>,
    exists: impl Fn(&Path) -> bool,
) -> Result<PathBuf, String> {
    // A `--config` that names no file is reported when it is read, naming it.
    if let Some(path) = flag {
        return Ok(path);
    }
    if let Some(var) = var.filter(|v| !v.is_empty()) {
        let path = PathBuf::from(var);
        if !exists(&path) {
            return Err(format!("${CONFIG_VAR} names {}, which does not exist", path.display()));
        }
        return Ok(path);
    }
    if let Some(place) = CONFIG_PLACES.iter().find(|p| exists(Path::new(p))) {
        return Ok(PathBuf::from(place));
    }
    Err(format!(
        "no configuration found: no --config FILE, no ${CONFIG_VAR}, no ./{} and no {}; \
         `smart-imaging init DIR` writes one to start from (then --config DIR/{})",
        CONFIG_PLACES[0],
        CONFIG_PLACES[1],
        crate::init::CONFIG_FILE
    ))
}

fn opt_string(args: &mut pico_args::Arguments, flag: &'static str) -> Result<Option<String>, String> {
    args.opt_value_from_str(flag).map_err(|e| e.to_string())
}

/// Refuses anything left over: an unknown flag or a stray argument.
fn finish(args: pico_args::Arguments) -> Result<(), String> {
    let rest = args.finish();
    match rest.first() {
        None => Ok(()),
        Some(arg) => Err(format!("unexpected argument {:?}; see --help", arg.to_string_lossy())),
    }
}

/// Reads the configuration at `path` and the index it names.
fn load(path: &Path) -> Result<(Config, Index), String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    let index = Index::load(&config.index_path).map_err(|e| format!("{}: images.index: {e}", path.display()))?;
    Ok((config, index))
}

/// `--quiet` leaves only what needs attention: the files skipped, and the failure when none was indexed.
/// `--update` reads only the files that are new or changed since the index was written; an index with no
/// study is then no failure (the folder of a receiver may be empty still).
fn index(dir: &Path, out: Option<PathBuf>, quiet: bool, update: bool) -> Result<ExitCode, String> {
    use std::io::IsTerminal;
    let out = out.unwrap_or_else(|| match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.join("index.toml"),
        _ => dir.join("..").join("index.toml"),
    });
    let mut stderr = std::io::stderr();
    let progress = !quiet && stderr.is_terminal();
    let summary = if update {
        index::update::update_dir(dir, &out, &mut stderr, progress)?
    } else {
        index::indexer::index_dir(dir, &out, &mut stderr, progress)?
    };
    if !quiet {
        eprintln!("{summary}");
    }
    if summary.indexed == 0 && !update {
        eprintln!("smart-imaging: no DICOM file found under {}; no index written", dir.display());
        return Ok(ExitCode::from(1));
    }
    if !quiet {
        match summary.update {
            Some(u) if !u.written => eprintln!("{} is up to date: not written", out.display()),
            _ => eprintln!("wrote {}", out.display()),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `check`: one line per problem, one line for the files merely touched (each of them with `verbose`), one
/// line per warning (why studies would match nobody; they do not fail the check), and a summary.
fn check(path: &Path, verbose: bool) -> Result<ExitCode, String> {
    let (config, index) = load(path)?;
    // A configured study-token key must be readable and long enough; that none is configured concerns
    // serving, not checking.
    if config.key_file.is_some() || std::env::var_os("SMART_IMAGING_KEY").is_some() {
        token::configured(&config)?;
    }
    let report = index::check::check_index(&index);
    for line in &report.problems {
        println!("{line}");
    }
    let warnings = crate::matching::warnings(&config, &index);
    for line in &warnings {
        println!("warning: {line}");
    }
    if verbose {
        for line in &report.touched {
            println!("{line}");
        }
    } else if !report.touched.is_empty() {
        let n = report.touched.len();
        let (files, have) = if n == 1 { ("file", "has") } else { ("files", "have") };
        println!(
            "touched: {n} {files} {have} a new modification time but the indexed size and header (as after a git \
             clone or a copy); re-index to record the times, or --verbose to list them"
        );
    }
    println!(
        "{}: {} tenants, {} studies, {} instances, {} problems, {} touched, {} warnings",
        path.display(),
        config.tenants.len(),
        index.studies().len(),
        index.instance_count(),
        report.problems.len(),
        report.touched.len(),
        warnings.len()
    );
    Ok(if report.problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_is_looked_for_in_four_places_in_order() {
        let etc = Path::new(CONFIG_PLACES[1]);
        let here = Path::new("smart-imaging.toml");
        let env = || Some(std::ffi::OsString::from("/srv/lab/smart-imaging.toml"));
        let everywhere = |_: &Path| true;
        let flag = Some(PathBuf::from("given.toml"));
        assert_eq!(locate_config(flag.clone(), env(), everywhere).unwrap(), Path::new("given.toml"));
        assert_eq!(locate_config(flag, None, |_| false).unwrap(), Path::new("given.toml"), "read, and reported then");
        assert_eq!(locate_config(None, env(), everywhere).unwrap(), Path::new("/srv/lab/smart-imaging.toml"));
        let e = locate_config(None, env(), |p| p != Path::new("/srv/lab/smart-imaging.toml")).unwrap_err();
        assert!(e.contains("$SMART_IMAGING_CONFIG names /srv/lab/smart-imaging.toml"), "{e}");
        assert_eq!(locate_config(None, Some("".into()), everywhere).unwrap(), here, "an empty variable is unset");
        assert_eq!(locate_config(None, None, everywhere).unwrap(), here);
        assert_eq!(locate_config(None, None, |p| p == etc).unwrap(), etc);
        let e = locate_config(None, None, |_| false).unwrap_err();
        for place in ["--config FILE", "$SMART_IMAGING_CONFIG", "./smart-imaging.toml", CONFIG_PLACES[1], "init DIR"] {
            assert!(e.contains(place), "{place}: {e}");
        }
    }
}
