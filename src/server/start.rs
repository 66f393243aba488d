//! Starting to serve: the configuration and index loaded, signals and the allocator set up, the listener
//! bound, the public URL decided, and the start-up log lines written.
//!
//! Invariant: `listening on http://ADDR` is printed only once the listener is bound, with the real address,
//! so that `--listen 127.0.0.1:0` works for tests.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use crate::app::App;
use crate::config::{Authorization, Config};
use crate::index::Index;
use crate::sys;

/// What the command line says about serving.
pub struct Options {
    pub config: PathBuf,
    pub listen: Option<String>,
    pub base_url: Option<String>,
}

/// `smart-imaging serve`: loads the configuration and index with `load`, binds, and serves until told to
/// stop.
pub fn serve(opts: Options, load: fn(&Path) -> Result<(Config, Index), String>) -> Result<ExitCode, String> {
    let (mut config, index) = load(&opts.config)?;
    if let Some(url) = &opts.base_url {
        crate::config::check_base_url(url).map_err(|m| format!("--base-url: {m}"))?;
    }
    let listen_flag = opts.listen.is_some();
    if let Some(listen) = opts.listen {
        config.listen = listen;
    }
    let sealer = crate::token::configured(&config)?;
    sys::malloc::limit_malloc_arenas();
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
    let socket = super::bind(&config.listen)?;
    let bound = socket.local_addr().map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let base_url = match (opts.base_url, &config.base_url) {
        (Some(url), _) => url,
        (None, Some(url)) if !listen_flag => url.clone(),
        _ => format!("http://{bound}"),
    }
    .trim_end_matches('/')
    .to_string();
    log::info!(
        "serving {} studies ({} instances) from {} for tenants {}; public URL {base_url}",
        index.studies().len(),
        index.instance_count(),
        config.index_path.display(),
        config.tenants.keys().cloned().collect::<Vec<_>>().join(", "),
    );
    let smart_on_fhir = config.tenants.values().any(|t| matches!(t.auth, Authorization::SmartOnFhir(_)));
    if smart_on_fhir && !bound.ip().is_loopback() {
        log::warn!(
            "!!! smart-on-fhir tenants are served over plain HTTP on {bound}, which is not loopback: access tokens \
             travel in clear. Put a TLS proxy in front and listen on 127.0.0.1 (see the README) !!!"
        );
    }
    let app = Arc::new(App::new(config, index, sealer, base_url));
    println!("listening on http://{bound}");
    let _ = std::io::stdout().flush();
    match super::run(app, socket, limits.soft) {
        super::Ended::Stopped => Ok(ExitCode::SUCCESS),
        // Not a start-up error: the supervisor should restart the server, so the status is not 0.
        super::Ended::ListenerLost(why) => {
            log::error!("{why}");
            Ok(ExitCode::FAILURE)
        }
    }
}
