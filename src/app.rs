//! The shared state of a running server: the configuration, the index, the study-token sealer and the
//! tenants, each owning how its tokens are checked. Built once at start and read by every worker.
//!
//! Invariants: nothing here changes after start (the audit trail is set once, before serving); a `smart-on-fhir` tenant owns its EHR client (there is no
//! lookup that could miss it); this module knows no handler, so the handlers and the route table can
//! import it without a circle.

use std::collections::BTreeMap;

use crate::audit::Audit;
use crate::auth::Access;
use crate::auth::ehr::Ehr;
use crate::config::{self, Authorization, Config};
use crate::dicomweb::retrieve::TranscodedLengths;
use crate::fhir::resource::{Render, Studies};
use crate::index::Index;
use crate::token::Sealer;

/// Everything a request may read.
#[derive(Debug)]
pub struct App {
    pub config: Config,
    pub index: Index,
    pub sealer: Sealer,
    /// The public URL of this server, without a trailing slash.
    pub base_url: String,
    pub tenants: BTreeMap<String, Tenant>,
    /// Debug builds only, with `SMART_IMAGING_TEST_HOOKS=1`: routes that let the tests provoke faults.
    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    pub test_hooks: bool,
    /// The serialized ImagingStudy of each indexed study, made on first use.
    pub studies: Studies,
    /// The length of each instance transcoded to Explicit VR Little Endian, measured on first use.
    pub transcoded_lengths: TranscodedLengths,
    /// The audit trail, when `audit.file` names one.
    pub audit: Option<Audit>,
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
        let studies = Studies::new(index.studies().len());
        let transcoded_lengths = TranscodedLengths::default();
        App { config, index, sealer, base_url, tenants, test_hooks, studies, transcoded_lengths, audit: None }
    }

    /// What the FHIR handlers need to render one tenant's resources.
    pub fn render<'a>(&'a self, tenant: &'a Tenant) -> Render<'a> {
        Render {
            index: &self.index,
            sealer: &self.sealer,
            studies: &self.studies,
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
