//! The shared state of a running server: the configuration, the index, the study-token sealer and the
//! tenants, each owning how its tokens are checked. Built once at start and read by every worker.
//!
//! Invariants: nothing here changes after start but the index, which a reload (SIGHUP) replaces whole with
//! its per-study cache; a request takes the index it works on once (`App::current`), so a reload never
//! changes it under the request and its maps stay valid until it is done; a `smart-on-fhir` tenant owns its
//! EHR client (there is no lookup that could miss it); this module knows no handler, so the handlers and
//! the route table can import it without a circle.

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
    pub config: Config,
    /// The index now serving, replaced whole by `swap`.
    current: RwLock<Arc<Snapshot>>,
    pub sealer: Sealer,
    /// The public URL of this server, without a trailing slash.
    pub base_url: String,
    pub tenants: BTreeMap<String, Tenant>,
    /// Debug builds only, with `SMART_IMAGING_TEST_HOOKS=1`: routes that let the tests provoke faults.
    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    pub test_hooks: bool,
    /// The audit trail, when `audit.file` names one.
    pub audit: Option<Audit>,
    /// What every response holding an inflated data set reserves its bytes from (`server.inflate_budget`).
    pub inflate_budget: Budget,
}

/// One loaded index and what is derived from it.
#[derive(Debug)]
pub struct Snapshot {
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
    pub fn new(index: Index) -> Snapshot {
        let studies = Studies::new(index.studies().len());
        Snapshot {
            index,
            studies,
            lengths: Lengths::default(),
            verdicts: Verdicts::default(),
            loaded: crate::time::now_secs(),
        }
    }
}

/// One tenant: its validated configuration and how its tokens are checked.
#[derive(Debug)]
pub struct Tenant {
    pub config: config::Tenant,
    pub access: Access,
}

impl App {
    pub fn new(config: Config, index: Index, sealer: Sealer, base_url: String) -> App {
        let tenants = config
            .tenants
            .values()
            .map(|t| {
                let access = match &t.auth {
                    Authorization::SmartOnFhir(settings) => {
                        Access::Ehr(Ehr::new(settings.clone(), t.id_selector.clone()))
                    }
                    Authorization::Mock { patient } => Access::Mock { patient: patient.clone() },
                };
                (t.name.clone(), Tenant { config: t.clone(), access })
            })
            .collect();
        let test_hooks = cfg!(debug_assertions) && std::env::var("SMART_IMAGING_TEST_HOOKS").as_deref() == Ok("1");
        let current = RwLock::new(Arc::new(Snapshot::new(index)));
        let inflate_budget = Budget::new(config.inflate_budget, budget::WAIT);
        App { config, current, sealer, base_url, tenants, test_hooks, audit: None, inflate_budget }
    }

    /// The index a request works on, taken once at its start.
    pub fn current(&self) -> Arc<Snapshot> {
        // A poisoned lock only means a panic elsewhere while holding it: the `Arc` in it is whole.
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Serves `index` from now on; requests that took the old one finish on it.
    pub fn swap(&self, index: Index) {
        let loaded = Arc::new(Snapshot::new(index));
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = loaded;
    }

    /// What the FHIR handlers need to render one tenant's resources from `snapshot`.
    pub fn render<'a>(&'a self, snapshot: &'a Snapshot, tenant: &'a Tenant) -> Render<'a> {
        Render {
            index: &snapshot.index,
            sealer: &self.sealer,
            studies: &snapshot.studies,
            base_url: &self.base_url,
            tenant: &tenant.config,
            study_token_ttl: self.config.study_token_ttl,
            timezone: &self.config.timezone,
        }
    }

    pub fn fhir_base(&self, tenant: &config::Tenant) -> String {
        format!("{}/{}/fhir", self.base_url, tenant.name)
    }
}
