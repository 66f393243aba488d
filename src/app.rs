//! The shared state of a running server: what stays for the life of the process (the public URL, the inflate
//! budget) and the `Snapshot` now serving: the configuration, its tenants (each owning how its tokens are
//! checked), the study-token sealer, the audit trail and the index, with what is derived from them.
//!
//! Invariants: a reload (SIGHUP) replaces the snapshot whole, never a part of it; a request takes the snapshot
//! it works on once (`App::current`), so a reload never changes its configuration or index under it, and its
//! maps stay valid until it is done; a tenant whose settings did not change keeps its `Tenant` (and so its EHR
//! client, with its caches and backend token) across a reload; a `smart-on-fhir` tenant owns its EHR client
//! (there is no lookup that could miss it); this module knows no handler, so the handlers and the route table
//! can import it without a circle.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::audit::Audit;
use crate::auth::Access;
use crate::auth::ehr::Ehr;
use crate::budget::{self, Budget};
use crate::config::{self, Authorization, Config};
use crate::fhir::resource::{Render, Studies};
use crate::index::Index;
use crate::index::learnt::{Lengths, Verdicts};
use crate::token::Sealer;

/// Everything a request may read.
#[derive(Debug)]
pub struct App {
    /// The configuration and index now serving, replaced whole by `swap`.
    current: RwLock<Arc<Snapshot>>,
    /// The public URL of this server, without a trailing slash.
    pub base_url: String,
    /// Debug builds only, with `SMART_IMAGING_TEST_HOOKS=1`: routes that let the tests provoke faults.
    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    pub test_hooks: bool,
    /// What every response holding an inflated data set reserves its bytes from (`server.inflate_budget`).
    pub inflate_budget: Budget,
}

/// One configuration and the index it names, and what is derived from them: what a request works on from
/// its start to its end.
#[derive(Debug)]
pub struct Snapshot {
    /// The configuration as it serves: the file as read, with the settings that need a restart as they
    /// were at start.
    pub config: Config,
    /// The tenants by name, each with how its tokens are checked.
    pub tenants: BTreeMap<String, Arc<Tenant>>,
    pub sealer: Arc<Sealer>,
    /// The audit trail, when `audit.file` names one.
    pub audit: Option<Arc<Audit>>,
    pub index: Index,
    /// The serialized ImagingStudy of each indexed study, made on first use (positional: per index).
    pub studies: Studies,
    /// The lengths of its instances transcoded to Explicit VR Little Endian and inflated, each measured on
    /// first use (per index: a reload may bring other files under the same paths).
    pub lengths: Lengths,
    /// Whether its files modified since indexing still hold their instances, as found so far.
    pub verdicts: Verdicts,
    /// When this index was loaded (Unix seconds).
    pub loaded: u64,
}

impl Snapshot {
    /// The snapshot of `config` and `index`. The tenants of `previous` whose settings are unchanged are
    /// taken over as they are; the others are made afresh.
    pub fn new(
        config: Config,
        index: Index,
        sealer: Arc<Sealer>,
        audit: Option<Arc<Audit>>,
        previous: Option<&Snapshot>,
    ) -> Snapshot {
        let tenants = config
            .tenants
            .values()
            .map(|t| {
                let kept = previous.and_then(|p| p.tenants.get(&t.name)).filter(|old| old.config.source == t.source);
                (t.name.clone(), kept.map_or_else(|| Arc::new(Tenant::new(t)), Arc::clone))
            })
            .collect();
        let studies = Studies::new(index.studies().len());
        Snapshot {
            config,
            tenants,
            sealer,
            audit,
            index,
            studies,
            lengths: Lengths::default(),
            verdicts: Verdicts::default(),
            loaded: crate::time::now_secs(),
        }
    }

    /// A tenant by name.
    pub fn tenant(&self, name: &str) -> Option<&Tenant> {
        self.tenants.get(name).map(|t| &**t)
    }

    /// How the tenants of `self` differ from those of `before`: `+added -removed ~changed`, or `unchanged`.
    pub fn tenant_changes(&self, before: &Snapshot) -> String {
        let added = self.tenants.keys().filter(|n| !before.tenants.contains_key(*n)).map(|n| format!("+{n}"));
        let removed = before.tenants.keys().filter(|n| !self.tenants.contains_key(*n)).map(|n| format!("-{n}"));
        let changed = self
            .tenants
            .iter()
            .filter(|(n, t)| before.tenants.get(*n).is_some_and(|old| !Arc::ptr_eq(old, t)))
            .map(|(n, _)| format!("~{n}"));
        let all: Vec<String> = added.chain(removed).chain(changed).collect();
        if all.is_empty() { "unchanged".to_string() } else { all.join(" ") }
    }
}

/// One tenant: its validated configuration and how its tokens are checked.
#[derive(Debug)]
pub struct Tenant {
    pub config: config::Tenant,
    pub access: Access,
}

impl Tenant {
    fn new(t: &config::Tenant) -> Tenant {
        let access = match &t.auth {
            Authorization::SmartOnFhir(settings) => Access::Ehr(Ehr::new(settings.clone(), t.id_selector.clone())),
            Authorization::Mock { patient } => Access::Mock { patient: patient.clone() },
        };
        Tenant { config: t.clone(), access }
    }
}

impl App {
    /// The server of `snapshot`; `inflate_budget` comes from its configuration and stays for the process.
    pub fn new(snapshot: Snapshot, base_url: String) -> App {
        let test_hooks = cfg!(debug_assertions) && std::env::var("SMART_IMAGING_TEST_HOOKS").as_deref() == Ok("1");
        let inflate_budget = Budget::new(snapshot.config.inflate_budget, budget::WAIT);
        App { current: RwLock::new(Arc::new(snapshot)), base_url, test_hooks, inflate_budget }
    }

    /// The configuration and index a request works on, taken once at its start.
    pub fn current(&self) -> Arc<Snapshot> {
        // A poisoned lock only means a panic elsewhere while holding it: the `Arc` in it is whole.
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Serves `snapshot` from now on; requests that took the old one finish on it.
    pub fn swap(&self, snapshot: Snapshot) {
        let snapshot = Arc::new(snapshot);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = snapshot;
    }

    /// What the FHIR handlers need to render one tenant's resources from `snapshot`.
    pub fn render<'a>(&'a self, snapshot: &'a Snapshot, tenant: &'a Tenant) -> Render<'a> {
        Render {
            index: &snapshot.index,
            sealer: &snapshot.sealer,
            studies: &snapshot.studies,
            base_url: &self.base_url,
            tenant: &tenant.config,
            study_token_ttl: snapshot.config.study_token_ttl,
            timezone: &snapshot.config.timezone,
        }
    }

    pub fn fhir_base(&self, tenant: &config::Tenant) -> String {
        format!("{}/{}/fhir", self.base_url, tenant.name)
    }
}
