//! The viewer page, `/viewer/`: a small SMART Imaging app compiled into the binary (one HTML file, one CSS
//! file and a few JavaScript modules, written here, no build step, no CDN), and `/viewer/config.json`, which
//! tells it the tenants this server has and where each one's tokens come from.
//!
//! Invariants: every asset is served from the binary, with its media type and a policy that lets the page
//! load nothing from elsewhere but the FHIR and DICOMweb calls it makes; the configuration it is given holds
//! no secret (no key, no token, no client secret).

use serde_json::{Value, json};

use crate::app::{App, Snapshot};
use crate::config::Authorization;
use crate::http::{ApiError, Request, Response, parse_query};

/// The viewer's files: name, media type, contents.
const ASSETS: &[(&str, &str, &str)] = &[
    ("index.html", "text/html; charset=utf-8", include_str!("index.html")),
    ("viewer.css", "text/css; charset=utf-8", include_str!("viewer.css")),
    ("app.js", "text/javascript; charset=utf-8", include_str!("app.js")),
    ("smart.js", "text/javascript; charset=utf-8", include_str!("smart.js")),
    ("dicomweb.js", "text/javascript; charset=utf-8", include_str!("dicomweb.js")),
    ("pixels.js", "text/javascript; charset=utf-8", include_str!("pixels.js")),
];

/// Scripts and styles only from this server; data from anywhere (the EHR and the imaging server may be
/// other origins); images from blobs the page makes itself.
const POLICY: &str = "default-src 'self'; connect-src *; img-src 'self' blob: data:; style-src 'self'; \
                      script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// `GET /viewer/{name}`; `None` for a file the viewer does not have.
pub fn asset(name: &str) -> Option<Response> {
    let name = if name.is_empty() { "index.html" } else { name };
    let (_, media, body) = ASSETS.iter().find(|(n, _, _)| *n == name)?;
    Some(
        Response::bytes(200, media, body.as_bytes().to_vec())
            .with_header("Content-Security-Policy", POLICY)
            .with_header("X-Content-Type-Options", "nosniff"),
    )
}

/// `GET /viewer/config.json`: each tenant, how a person gets a token for it, and its imaging FHIR base.
pub fn config(app: &App, snapshot: &Snapshot) -> Response {
    let tenants: Vec<Value> = snapshot
        .config
        .tenants
        .values()
        .map(|t| {
            let imaging = app.fhir_base(t);
            match &t.auth {
                Authorization::Mock { patient } => json!({
                    "name": t.name,
                    "kind": "mock",
                    "imagingBase": imaging,
                    "patient": patient.as_ref().map(|p| p.id.clone()),
                    "patientName": patient.as_ref().and_then(|p| p.display.clone()),
                }),
                Authorization::SmartOnFhir(settings) => json!({
                    "name": t.name,
                    "kind": "smart-on-fhir",
                    "imagingBase": imaging,
                    "issuer": settings.fhir_base_url,
                }),
            }
        })
        .collect();
    let issuers: Vec<Value> =
        snapshot.config.sandbox_issuers.iter().map(|(label, url)| json!({ "label": label, "url": url })).collect();
    let ohif = snapshot.config.ohif_url.as_deref();
    Response::json(200, "application/json", &json!({ "tenants": tenants, "issuers": issuers, "ohif": ohif }))
}

/// `GET /viewer/ohif.json?address={Endpoint address}`: the DICOMweb configuration OHIF's `dicomwebproxy` data
/// source reads, whose roots are that address. It holds nothing the asker did not send, and only an Endpoint
/// address of this server is taken (400 otherwise); the bearer token never comes here, OHIF sends it with
/// each DICOMweb request instead.
pub fn ohif_source(app: &App, snapshot: &Snapshot, req: &Request) -> Result<Response, ApiError> {
    let refuse = || ApiError::BadRequest("address must be an Endpoint address of this server".into());
    let address = parse_query(&req.query)?.into_iter().find(|(n, _)| n == "address").map(|(_, v)| v);
    let address = address.ok_or_else(refuse)?;
    let rest = address.strip_prefix(&app.base_url).and_then(|r| r.strip_prefix('/')).ok_or_else(refuse)?;
    let segments: Vec<&str> = rest.split('/').collect();
    let ours = matches!(segments.as_slice(), [tenant, "wado", token]
        if snapshot.tenants.contains_key(*tenant) && !token.is_empty());
    if !ours {
        return Err(refuse());
    }
    let server = json!({
        "name": "smart-imaging",
        "wadoRoot": address,
        "qidoRoot": address,
        "wadoUriRoot": address,
        "qidoSupportsIncludeField": true,
        "imageRendering": "wadors",
        "thumbnailRendering": "thumbnail",
        "enableStudyLazyLoad": true,
        "supportsFuzzyMatching": false,
        "supportsWildcard": false,
        "staticWado": false,
        "omitQuotationForMultipartRequest": true,
        "bulkDataURI": { "enabled": true },
    });
    Ok(Response::json(200, "application/json", &json!({ "servers": { "dicomWeb": [server] } }))
        .with_header("Cache-Control", "no-store"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_served_with_its_type_and_the_policy() {
        for (name, media, _) in ASSETS {
            let resp = asset(name).unwrap();
            assert_eq!(resp.status, 200);
            assert!(resp.headers.iter().any(|(n, v)| n == "Content-Type" && v == media), "{name}");
            assert!(resp.headers.iter().any(|(n, _)| n == "Content-Security-Policy"), "{name}");
        }
        assert!(asset("").is_some(), "the folder is the page");
        assert!(asset("../main.rs").is_none() && asset("missing.js").is_none());
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        let (_, _, html) = ASSETS[0];
        for tag in html.split('<').filter(|t| t.starts_with("script") || t.starts_with("link")) {
            assert!(!tag.contains("http") && !tag.contains("//"), "the page loads {tag:?} from elsewhere");
        }
        for (name, _, body) in ASSETS {
            assert!(!body.contains("@import") && !body.contains(" url("), "{name} pulls in a resource");
            let imports = body.lines().filter(|l| l.starts_with("import "));
            assert!(imports.clone().all(|l| l.contains("from \"./")), "{name} imports only its siblings");
        }
    }
}
