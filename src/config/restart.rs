//! What a reload may change and what only a restart may: the listeners, the workers, the connection limits,
//! the budgets and the sandbox EHR were made from the configuration at start and stay as they are; a reload
//! names each of those settings the file changed, and keeps the value the server runs with.
//!
//! Invariant: a configuration that a reload serves carries, for every setting listed in `keep`, the running
//! server's value, so nothing reads a value that does not serve.

use std::fmt::Debug;

use super::sandbox::SANDBOX_PLACEHOLDER;
use super::{Authorization, Config, ehr_share};

/// Puts the running server's value of each setting that needs a restart into `new` (the file read again),
/// and says, one line each, which of them the file changed since `at_start` (the file as read at start).
/// Fails when a tenant names `{sandbox}` but the running server has no sandbox EHR to fill it with.
pub fn keep(new: &mut Config, at_start: &Config, running: &Config) -> Result<Vec<String>, String> {
    let mut changed = Vec::new();
    let c = &mut changed;
    one(c, "server.listen", &mut new.listen, &at_start.listen, &running.listen);
    one(c, "server.base_url", &mut new.base_url, &at_start.base_url, &running.base_url);
    one(c, "server.threads", &mut new.threads, &at_start.threads, &running.threads);
    one(c, "server.read_timeout", &mut new.read_timeout, &at_start.read_timeout, &running.read_timeout);
    one(c, "server.write_timeout", &mut new.write_timeout, &at_start.write_timeout, &running.write_timeout);
    one(c, "server.max_connections", &mut new.max_connections, &at_start.max_connections, &running.max_connections);
    one(c, "server.min_send_rate", &mut new.min_send_rate, &at_start.min_send_rate, &running.min_send_rate);
    one(c, "server.input_budget", &mut new.input_budget, &at_start.input_budget, &running.input_budget);
    one(c, "server.inflate_budget", &mut new.inflate_budget, &at_start.inflate_budget, &running.inflate_budget);
    if new.sandbox_table != at_start.sandbox_table {
        let keeping = if running.sandbox_url.is_some() { "the sandbox EHR as started" } else { "no sandbox EHR" };
        changed.push(format!(
            "[sandbox] changed and needs a restart (the sandbox EHR is not reloaded); keeping {keeping}"
        ));
    }
    // The sandbox was taken by the server at start; its bound address is what `{sandbox}` means.
    new.sandbox = None;
    new.sandbox_issuers = running.sandbox_issuers.clone();
    if let Some(url) = &running.sandbox_url {
        new.use_sandbox_url(url);
    }
    for tenant in new.tenants.values_mut() {
        if let Authorization::SmartOnFhir(settings) = &mut tenant.auth {
            settings.max_in_flight = ehr_share(running.threads);
            let urls = [
                Some(&settings.fhir_base_url),
                settings.token_endpoint.as_ref(),
                settings.introspection_endpoint.as_ref(),
            ];
            if urls.into_iter().flatten().any(|u| u.starts_with(SANDBOX_PLACEHOLDER)) {
                return Err(format!(
                    "tenants.{}.authorization: {SANDBOX_PLACEHOLDER} names the sandbox EHR, which this server was \
                     started without; restart to serve it",
                    tenant.name
                ));
            }
        }
    }
    Ok(changed)
}

/// The settings a reload changes that are not tenants (those are told apart by `Snapshot::tenant_changes`),
/// each named by its key, when `new` differs from `old` in it.
pub fn reloaded(old: &Config, new: &Config) -> Vec<&'static str> {
    let differ = [
        ("images.index", old.index_path != new.index_path),
        ("images.timezone", old.timezone != new.timezone),
        ("server.key_file", old.key_file != new.key_file),
        ("server.study_token_ttl", old.study_token_ttl != new.study_token_ttl),
        ("server.shutdown_timeout", old.shutdown_timeout != new.shutdown_timeout),
        ("server.metrics", old.metrics != new.metrics),
        ("audit.file", old.audit_file != new.audit_file),
        ("viewer.ohif", old.ohif_url != new.ohif_url),
    ];
    differ.into_iter().filter(|(_, d)| *d).map(|(key, _)| key).collect()
}

/// One setting that needs a restart: named in `changed` when the file's value moved since start, and set to
/// the running value.
fn one<T: Clone + Debug>(changed: &mut Vec<String>, key: &str, new: &mut T, at_start: &T, running: &T) {
    let (was, now) = (shown(at_start), shown(new));
    if was != now {
        changed.push(format!("{key} changed ({was} → {now}) and needs a restart; keeping {}", shown(running)));
    }
    *new = running.clone();
}

/// A setting's value as the log shows it: `Some(x)` as `x`, `None` as `unset`.
fn shown(value: &impl Debug) -> String {
    let text = format!("{value:?}");
    match text.strip_prefix("Some(").and_then(|r| r.strip_suffix(')')) {
        Some(inner) => inner.to_string(),
        None if text == "None" => "unset".to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Config {
        Config::parse(text, Path::new("/etc/si/smart-imaging.toml")).unwrap()
    }

    const TENANT: &str = "[images]\nindex = \"i.toml\"\n[tenants.open]\n\
                          authorization = { type = \"mock\", ignorePatient = true }\n\
                          images = { lookup = \"all-studies\" }\n";

    #[test]
    fn settings_that_need_a_restart_are_named_and_keep_their_running_value() {
        let at_start = parse(&format!("[server]\nthreads = 32\nlisten = \"127.0.0.1:8000\"\n{TENANT}"));
        let mut running = at_start.clone();
        running.listen = "127.0.0.1:0".into();
        running.max_connections = Some(1000);
        let mut new =
            parse(&format!("[server]\nthreads = 8\nlisten = \"127.0.0.1:8000\"\nstudy_token_ttl = 60\n{TENANT}"));
        let changed = keep(&mut new, &at_start, &running).unwrap();
        assert_eq!(changed, ["server.threads changed (32 → 8) and needs a restart; keeping 32"]);
        assert_eq!((new.threads, new.listen.as_str(), new.max_connections), (32, "127.0.0.1:0", Some(1000)));
        assert_eq!(new.study_token_ttl, 60, "a setting a reload changes is taken");
        assert_eq!(reloaded(&running, &new), ["server.study_token_ttl"]);
    }

    #[test]
    fn a_changed_sandbox_is_named_and_not_taken() {
        let at_start = parse(TENANT);
        let mut new = parse(&format!("{TENANT}[[sandbox.patient]]\nid = \"p1\"\n"));
        let changed = keep(&mut new, &at_start, &at_start).unwrap();
        assert_eq!(
            changed,
            ["[sandbox] changed and needs a restart (the sandbox EHR is not reloaded); keeping no sandbox EHR"]
        );
        assert!(new.sandbox.is_none());
    }

    #[test]
    fn values_are_shown_without_their_option() {
        assert_eq!(shown(&Some(3)), "3");
        assert_eq!(shown(&None::<u64>), "unset");
        assert_eq!(shown(&"a".to_string()), "\"a\"");
    }
}
