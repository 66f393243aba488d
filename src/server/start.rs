//! Starting to serve: the configuration and index loaded, signals and the allocator set up, the listener
//! bound, the public URL decided, and the start-up log lines written.
//!
//! Invariant: `listening on http://ADDR` is printed only once the listener is bound, with the real address,
//! so that `--listen 127.0.0.1:0` works for tests.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::app::{App, Snapshot};
use crate::config::{Authorization, Config};
use crate::index::Index;
use crate::sys;

/// What the command line says about serving.
pub struct Options {
    pub config: PathBuf,
    pub listen: Option<String>,
    pub base_url: Option<String>,
    /// `--sandbox-listen`: where the built-in sandbox EHR listens, overriding `sandbox.listen`.
    pub sandbox_listen: Option<String>,
    /// `--pid-file`: where to write the process id once bound, for `smart-imaging reload`.
    pub pid_file: Option<PathBuf>,
}

/// `smart-imaging serve`: loads the configuration and index with `load`, binds, and serves until told to
/// stop; a SIGHUP reads the configuration and its index again with the same `load`.
pub fn serve(opts: Options, load: super::reload::Load) -> Result<ExitCode, String> {
    let (mut config, index) = load(&opts.config)?;
    // The file as read, before the command line and the sandbox change it: what a reload compares with.
    let at_start = config.clone();
    if let Some(url) = &opts.base_url {
        crate::config::check_base_url(url).map_err(|m| format!("--base-url: {m}"))?;
    }
    let listen_flag = opts.listen.is_some();
    if let Some(listen) = opts.listen {
        config.listen = listen;
    }
    check_listen(&config.listen).map_err(|m| {
        let source =
            if listen_flag { "--listen".to_string() } else { format!("{}: server.listen", opts.config.display()) };
        format!("{source} {:?}: {m}", config.listen)
    })?;
    let sealer = crate::token::configured(&config)?;
    sys::malloc::limit_malloc_arenas();
    sys::malloc::return_large_blocks();
    sys::map::install_sigbus_guard().map_err(|e| format!("cannot install the SIGBUS guard: {e}"))?;
    sys::signals::install_shutdown_handlers().map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let limits = sys::limits::raise_open_files().map_err(|e| format!("cannot read the open-file limit: {e}"))?;
    let cap = config.connection_cap(limits.soft);
    config.max_connections = Some(cap);
    log::info!(
        "open files: soft limit {} raised to {} (hard {}); at most {cap} client connections, {} workers",
        limits.soft_before,
        limits.soft,
        limits.hard,
        config.threads
    );
    // The sandbox EHR is bound first, so that tenants naming `{sandbox}` know its address before any request.
    let sandbox_patients: Vec<(String, String)> = config
        .sandbox
        .iter()
        .flat_map(|s| &s.patients)
        .map(|p| (p.name.clone().unwrap_or_else(|| p.id.clone()), p.id.clone()))
        .collect();
    let sandbox = match config.sandbox.take() {
        Some(settings) => Some(crate::sandbox::bind(settings, opts.sandbox_listen, &opts.config)?),
        None if opts.sandbox_listen.is_some() => {
            return Err("--sandbox-listen: the configuration has no [sandbox]".into());
        }
        None => None,
    };
    if let Some(sandbox) = &sandbox {
        config.use_sandbox_url(sandbox.base_url());
        let base = sandbox.base_url().trim_end_matches('/').to_string();
        config.sandbox_issuers = std::iter::once(("the sandbox's patient picker".to_string(), format!("{base}/fhir")))
            .chain(
                sandbox_patients
                    .iter()
                    .map(|(name, id)| (format!("sandbox patient {name}"), format!("{base}/{id}/fhir"))),
            )
            .collect();
    }
    let source = if listen_flag { "--listen".to_string() } else { format!("{}: server.listen", opts.config.display()) };
    let refused = |e: String| {
        format!(
            "the imaging server cannot listen on {} ({source}): {e}; move it with --listen HOST:PORT",
            config.listen
        )
    };
    let socket = super::bind(&config.listen).map_err(refused)?;
    let bound = socket.local_addr().map_err(|e| refused(e.to_string()))?;
    let base_url = match (opts.base_url, &config.base_url) {
        (Some(url), _) => url,
        (None, Some(url)) if !listen_flag => url.clone(),
        _ => format!("http://{bound}"),
    }
    .trim_end_matches('/')
    .to_string();
    if let Some(warning) = unreachable_links(bound, &base_url) {
        log::warn!("{warning}");
    }
    log::info!("{}", startup_line(&config, &index, bound, &base_url));
    for warning in crate::matching::warnings(&config, &index) {
        log::warn!("{warning}");
    }
    let smart_on_fhir = config.tenants.values().any(|t| matches!(t.auth, Authorization::SmartOnFhir(_)));
    if smart_on_fhir && !bound.ip().is_loopback() {
        log::warn!(
            "!!! smart-on-fhir tenants are served over plain HTTP on {bound}, which is not loopback: access tokens \
             travel in clear. Put a TLS proxy in front and listen on 127.0.0.1 (see docs/operations.md, TLS) !!!"
        );
    }
    let sandbox = match sandbox {
        Some(sandbox) => {
            let ready = sandbox.ready(&config, &base_url);
            let public = ready.sandbox.base.clone();
            let socket = super::with_options(ready.socket).map_err(|e| format!("the sandbox cannot serve: {e}"))?;
            let plan = super::Plan::of(&config, crate::sandbox::THREADS, limits.soft);
            let serving = super::start(super::Site::Sandbox(Arc::new(ready.sandbox)), socket, &plan)?;
            println!(
                "sandbox listening on http://{} (public URL {public}; a sandbox EHR for teaching and tests)",
                ready.addr
            );
            Some(serving)
        }
        None => None,
    };
    let audit = config.audit_file.as_deref().map(crate::audit::Audit::start).transpose()?.map(Arc::new);
    let app = Arc::new(App::new(Snapshot::new(config, index, Arc::new(sealer), audit, None), base_url));
    let _pid_file = opts.pid_file.as_deref().map(crate::pidfile::PidFile::write).transpose()?;
    println!("listening on http://{bound}");
    let _ = std::io::stdout().flush();
    let reloader = super::reload::Reloader::new(load, at_start);
    match super::run(app, socket, limits.soft, sandbox, reloader) {
        super::Ended::Stopped => Ok(ExitCode::SUCCESS),
        // Not a start-up error: the supervisor should restart the server, so the status is not 0.
        super::Ended::ListenerLost(why) => {
            log::error!("{why}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The start-up line: the version, the index, each tenant with its authorization type, the listener.
fn startup_line(config: &Config, index: &Index, bound: std::net::SocketAddr, base_url: &str) -> String {
    let tenants: Vec<String> = config
        .tenants
        .values()
        .map(|t| {
            let kind = match &t.auth {
                Authorization::SmartOnFhir(_) => "smart-on-fhir",
                Authorization::Mock { .. } => "mock",
            };
            format!("{} ({kind})", t.name)
        })
        .collect();
    format!(
        "smart-imaging {} serving {} studies ({} instances) from {} written {}; tenants {}; listener \
         http://{bound}; public URL {base_url}",
        env!("CARGO_PKG_VERSION"),
        index.studies().len(),
        index.instance_count(),
        config.index_path.display(),
        index.written(),
        tenants.join(", "),
    )
}

/// A listen address must be `HOST:PORT`; a bare port or a name without one is the usual slip.
fn check_listen(listen: &str) -> Result<(), String> {
    use std::net::ToSocketAddrs;
    let well_formed =
        listen.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !well_formed || listen.to_socket_addrs().is_err() {
        return Err("expected HOST:PORT, e.g. 127.0.0.1:8000".into());
    }
    Ok(())
}

/// Links that other machines cannot follow: a listener they can reach, with a base URL naming loopback or
/// the unspecified address. The warning names the `--base-url` to start with.
fn unreachable_links(bound: std::net::SocketAddr, base_url: &str) -> Option<String> {
    if bound.ip().is_loopback() {
        return None;
    }
    let rest = base_url.split_once("://").map_or(base_url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    let local = host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified());
    if !local {
        return None;
    }
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "HOST".into());
    Some(format!(
        "listening on {bound}, which other machines can reach, but every Endpoint address and link names {base_url}, \
         which they cannot follow: start with --base-url http://{name}:{} (or the name clients use), or set \
         server.base_url",
        bound.port()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_are_host_and_port() {
        assert!(check_listen("127.0.0.1:8000").is_ok());
        assert!(check_listen("0.0.0.0:0").is_ok());
        assert!(check_listen("[::1]:8000").is_ok());
        assert!(check_listen("localhost:8000").is_ok());
        for bad in ["8001", ":8001", "127.0.0.1", "127.0.0.1:http", "127.0.0.1:99999"] {
            assert_eq!(check_listen(bad).unwrap_err(), "expected HOST:PORT, e.g. 127.0.0.1:8000", "{bad}");
        }
    }

    #[test]
    fn links_other_machines_cannot_follow_are_warned_about() {
        let any: std::net::SocketAddr = "0.0.0.0:8000".parse().unwrap();
        let lo: std::net::SocketAddr = "127.0.0.1:8000".parse().unwrap();
        for local in ["http://0.0.0.0:8000", "http://localhost:8000", "http://127.0.0.1:8000", "http://[::1]:8000/x"] {
            let warning = unreachable_links(any, local).unwrap_or_else(|| panic!("{local}"));
            assert!(warning.contains("--base-url http://") && warning.contains(":8000"), "{warning}");
        }
        assert_eq!(unreachable_links(any, "https://imaging.example.org"), None);
        assert_eq!(unreachable_links(lo, "http://localhost:8000"), None, "loopback serves only this machine");
    }
}
