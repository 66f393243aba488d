//! `GET /`: the page a person sees first, naming the tenants with example links.
//!
//! Invariants: everything it shows comes from the configuration and the index, escaped for HTML; it needs
//! no external asset.

use crate::app::App;
use crate::config::Authorization;
use crate::http::Response;

/// `GET /`: a small page naming the tenants and example links.
pub fn page(app: &App) -> Response {
    let mut html = String::from(
        "<!doctype html><meta charset=utf-8><title>smart-imaging</title>\n<h1>smart-imaging</h1>\n\
         <p>SMART Imaging Access: FHIR ImagingStudy search and DICOMweb WADO-RS retrieval.</p>\n<ul>\n",
    );
    for tenant in app.config.tenants.values() {
        let base = app.fhir_base(tenant);
        let search = match tenant.auth {
            Authorization::Mock { patient: Some(ref p) } => {
                format!("{base}/ImagingStudy?patient={}", p.id)
            }
            _ => format!("{base}/ImagingStudy"),
        };
        html.push_str(&format!(
            "<li><b>{name}</b>: <a href=\"{base}/metadata\">metadata</a> · \
             <a href=\"{base}/.well-known/smart-configuration\">smart-configuration</a> · \
             <a href=\"{search}\">ImagingStudy search</a></li>\n",
            name = escape_html(&tenant.name),
            base = escape_html(&base),
            search = escape_html(&search),
        ));
    }
    html.push_str(&format!(
        "</ul>\n<p>{} studies, {} instances indexed.</p>\n",
        app.index.studies().len(),
        app.index.instance_count()
    ));
    Response::bytes(200, "text/html; charset=utf-8", html.into_bytes())
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
