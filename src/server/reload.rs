//! SIGHUP: the configuration file the server was started with and the index it names, read again on a thread
//! of their own while the old ones serve, checked whole as at start (the file, its tenants, the study-token
//! key, the audit file, the index), and swapped in together; the audit file is reopened first, for rotation.
//!
//! Invariants: nothing is replaced unless all of the new configuration and its index were accepted; a
//! refused reload is one log line naming the file and the key, and the old configuration and index serve on;
//! the settings that need a restart keep their running values (`config::restart`), each change of them named
//! in the log; one reload runs at a time, and a SIGHUP during one makes one more after it.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::app::{App, Snapshot};
use crate::audit::Audit;
use crate::config::{self, Config};
use crate::index::Index;

/// How the configuration and its index are read: the same function as at start.
pub type Load = fn(&Path) -> Result<(Config, Index), String>;

/// What a reload needs besides the snapshot serving: how to read the file, and the file as read at start
/// (the settings that need a restart are compared with it).
pub struct Reloader {
    load: Load,
    at_start: Config,
    running: AtomicBool,
    asked: AtomicBool,
}

impl Reloader {
    pub fn new(load: Load, at_start: Config) -> Reloader {
        Reloader { load, at_start, running: AtomicBool::new(false), asked: AtomicBool::new(false) }
    }
}

/// SIGHUP: reopens the audit file, and reloads on a thread of its own while the old snapshot serves. A
/// SIGHUP that comes while a reload runs asks for one more after it, so the files as they are after the last
/// SIGHUP are always read (any number of them during one reload make one more).
pub fn hang_up(app: &Arc<App>, reloader: &Arc<Reloader>) {
    if let Some(audit) = &app.current().audit {
        audit.reopen();
    }
    reloader.asked.store(true, Ordering::SeqCst);
    if reloader.running.swap(true, Ordering::SeqCst) {
        log::info!("SIGHUP during a reload: the configuration and index are read once more when it is done");
        return;
    }
    let (app, mine) = (Arc::clone(app), Arc::clone(reloader));
    let spawned = std::thread::Builder::new().name("reload".into()).spawn(move || {
        loop {
            while mine.asked.swap(false, Ordering::SeqCst) {
                reload(&app, &mine);
            }
            mine.running.store(false, Ordering::SeqCst);
            // A SIGHUP between the last look and now found the reload running and left the work to it.
            if !mine.asked.load(Ordering::SeqCst) || mine.running.swap(true, Ordering::SeqCst) {
                return;
            }
        }
    });
    if let Err(e) = spawned {
        reloader.running.store(false, Ordering::SeqCst);
        log::error!("SIGHUP: cannot start the reload ({e}); the old configuration and index keep serving");
    }
}

/// Reads the configuration and index again and serves them if they are sound; else the old ones serve on.
fn reload(app: &App, reloader: &Reloader) {
    let old = app.current();
    let path = &old.config.path;
    log::info!("SIGHUP: reading the configuration {} and its index again", path.display());
    let (new, restart) = match read(&old, reloader) {
        Ok(read) => read,
        Err(e) => {
            crate::metrics::reload("refused");
            log::error!("reload refused, the old configuration and index keep serving: {e}");
            return;
        }
    };
    for line in restart {
        log::warn!("reload: {line}");
    }
    for warning in crate::matching::warnings(&new.config, &new.index) {
        log::warn!("{warning}");
    }
    let tenants = new.tenant_changes(&old);
    let settings = config::restart::reloaded(&old.config, &new.config);
    let settings = if settings.is_empty() { String::new() } else { format!("; changed {}", settings.join(", ")) };
    let index = format!(
        "index {} studies ({} instances) from {}, written {}",
        new.index.studies().len(),
        new.index.instance_count(),
        new.config.index_path.display(),
        new.index.written()
    );
    app.swap(new);
    crate::metrics::reload("ok");
    log::info!("reload: configuration and index read from {}: tenants {tenants}{settings}; {index}", path.display());
}

/// The new snapshot and the settings it keeps from the running server, or why the files were refused.
fn read(old: &Snapshot, reloader: &Reloader) -> Result<(Snapshot, Vec<String>), String> {
    let path = &old.config.path;
    let (mut config, index) = (reloader.load)(path)?;
    let restart = config::restart::keep(&mut config, &reloader.at_start, &old.config)
        .map_err(|m| format!("{}: {m}", path.display()))?;
    // With no key file, the key is `SMART_IMAGING_KEY` or a random one: the same as before either way.
    let sealer = match (&config.key_file, &old.config.key_file) {
        (None, None) => Arc::clone(&old.sealer),
        _ => Arc::new(crate::token::configured(&config)?),
    };
    let audit = match (&config.audit_file, &old.audit) {
        (Some(file), Some(audit)) if old.config.audit_file.as_ref() == Some(file) => Some(Arc::clone(audit)),
        (Some(file), _) => Some(Arc::new(Audit::start(file).map_err(|e| format!("{}: {e}", path.display()))?)),
        (None, _) => None,
    };
    Ok((Snapshot::new(config, index, sealer, audit, Some(old)), restart))
}
