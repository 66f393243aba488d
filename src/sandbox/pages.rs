//! The sandbox's HTML pages: its home page, the patient picker of `{sandbox}/fhir`, and the page for an
//! authorization request that cannot be redirected.
//!
//! Invariants: every page says it is a sandbox for teaching and tests; every value that came from a
//! request or the configuration is escaped for HTML; no page loads anything from elsewhere (the responses
//! also say so in their Content-Security-Policy).

use super::{Issuer, Sandbox};

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;color:#222}\
code{font-family:ui-monospace,monospace;background:#f4f4f4;padding:0 .2rem}\
.banner{background:#fff3cd;border:1px solid #e0c060;padding:.5rem .8rem;border-radius:4px}\
button{font:inherit;margin:.3rem 0;padding:.4rem .8rem;cursor:pointer}li{margin:.3rem 0}.note{color:#555}";

const BANNER: &str = "<p class=banner><b>Sandbox EHR, for teaching and tests only.</b> It has no login and \
approves any app that asks; its patients are made up. Never use it, or its key, for real patients.</p>\n";

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport content=\"width=device-width\">\
         <title>{title}</title><style>{STYLE}</style>\n<h1>{title}</h1>\n{BANNER}{body}</html>\n",
        title = escape(title)
    )
}

/// `GET {sandbox}/`.
pub fn home(sb: &Sandbox) -> String {
    let base = &sb.base;
    let mut body = format!(
        "<p>A SMART on FHIR EHR built into smart-imaging, so that the whole SMART Imaging flow runs from one \
         binary: apps authorize here (authorization code with PKCE S256), the imaging server introspects their \
         tokens here and reads their patient here.</p>\n<h2>Issuers (FHIR base URLs)</h2>\n<ul>\n\
         <li><code>{picker}</code>: asks on a page which patient to approve \
         (<a href=\"{picker}/.well-known/smart-configuration\">smart-configuration</a>, \
         <a href=\"{picker}/metadata\">metadata</a>)</li>\n",
        picker = escape(&format!("{base}/fhir")),
    );
    for p in &sb.settings.patients {
        let iss = format!("{base}/{}/fhir", p.id);
        body.push_str(&format!(
            "<li><code>{iss}</code>: approves {who} at once \
             (<a href=\"{iss}/.well-known/smart-configuration\">smart-configuration</a>; \
             <a href=\"{page}\">the patient's page</a>, to launch an app)</li>\n",
            iss = escape(&iss),
            page = escape(&format!("{base}/{}/", p.id)),
            who = describe(p),
        ));
    }
    body.push_str(&format!(
        "</ul>\n<h2>Endpoints</h2>\n<ul>\n<li>token: <code>{token}</code> (<code>authorization_code</code> for any \
         public app, <code>client_credentials</code> with a <code>private_key_jwt</code> assertion for the backend \
         clients below)</li>\n<li>introspection: <code>{intro}</code> (RFC 7662, with a backend client's bearer \
         token)</li>\n</ul>\n<h2>Backend clients</h2>\n<ul>\n",
        token = escape(&sb.token_url()),
        intro = escape(&sb.introspection_url()),
    ));
    for c in &sb.settings.clients {
        let keys = if c.keys.len() == 1 { "1 public key".to_string() } else { format!("{} public keys", c.keys.len()) };
        body.push_str(&format!("<li><code>{}</code> ({keys}, <code>private_key_jwt</code>)</li>\n", escape(&c.id)));
    }
    if sb.settings.clients.is_empty() {
        body.push_str("<li class=note>none configured (<code>sandbox.clients</code>)</li>\n");
    }
    body.push_str("</ul>\n<h2>Imaging servers that use it</h2>\n<ul>\n");
    for associated in &sb.imaging {
        body.push_str(&format!("<li><code>{}</code></li>\n", escape(&associated.url)));
    }
    body.push_str("</ul>\n");
    page("smart-imaging sandbox EHR", &body)
}

fn describe(p: &crate::config::SandboxPatient) -> String {
    let mut out = format!("<b>{}</b>", escape(p.name.as_deref().unwrap_or(&p.id)));
    let mut facts = vec![format!("id <code>{}</code>", escape(&p.id))];
    facts.extend(p.identifiers.iter().map(|i| {
        let kind = i.type_code.as_deref().map(|t| format!("{} ", escape(t))).unwrap_or_default();
        format!("{kind}{}", escape(&i.value))
    }));
    if let Some(d) = &p.birth_date {
        facts.push(format!("born {}", escape(d)));
    }
    out.push_str(&format!(" <span class=note>({})</span>", facts.join(", ")));
    out
}

/// `GET {sandbox}/{id}/`: the patient's page in the EHR, with its chart and a "Launch app" button for each
/// configured app (EHR launch).
pub fn patient(sb: &Sandbox, p: &crate::config::SandboxPatient) -> String {
    let mut body = format!("<p>{}</p>\n<h2>Apps</h2>\n", describe(p));
    if sb.settings.apps.is_empty() {
        body.push_str("<p class=note>No app is configured (<code>[[sandbox.app]]</code>).</p>\n");
    }
    for (n, app) in sb.settings.apps.iter().enumerate() {
        body.push_str(&format!(
            "<form method=post action=\"{action}\"><input type=hidden name=app value=\"{n}\">\
             <input type=hidden name=patient value=\"{id}\"><button type=submit>Launch app: {name}</button> \
             <span class=note>(client <code>{client}</code>, opens <code>{url}?iss=…&amp;launch=…</code>)</span></form>\n",
            action = escape(&format!("{}/launch", sb.base)),
            id = escape(&p.id),
            name = escape(&app.name),
            client = escape(&app.client_id),
            url = escape(&app.launch_url),
        ));
    }
    body.push_str(
        "<p class=note>A button opens the app with <code>iss</code> (this EHR's FHIR base) and <code>launch</code> \
         (an opaque value, good once, for a few minutes, bound to this patient and the app's client id). The app \
         asks for the <code>launch</code> scope with that value, and its token answer names the patient.</p>\n\
         <h2>Chart</h2>\n<ul>\n",
    );
    for r in &p.chart {
        let text = r["code"]["text"].as_str().or_else(|| r["medicationCodeableConcept"]["text"].as_str());
        body.push_str(&format!(
            "<li>{kind}: {text} <span class=note>({id})</span></li>\n",
            kind = escape(r["resourceType"].as_str().unwrap_or_default()),
            text = escape(text.unwrap_or_default()),
            id = escape(r["id"].as_str().unwrap_or_default()),
        ));
    }
    if p.chart.is_empty() {
        body.push_str("<li class=note>empty (<code>chart</code> in its <code>[[sandbox.patient]]</code>)</li>\n");
    }
    body.push_str("</ul>\n");
    page(&format!("Patient {}", p.name.as_deref().unwrap_or(&p.id)), &body)
}

/// The patient picker: one button per patient, each sending the same authorization request with
/// `patient=ID` added, and a button that denies.
pub fn picker(sb: &Sandbox, issuer: &Issuer, client_id: &str, scopes: &str, params: &[(String, String)]) -> String {
    let hidden: String = params
        .iter()
        .filter(|(n, _)| n != "patient" && n != "deny")
        .map(|(n, v)| format!("<input type=hidden name=\"{}\" value=\"{}\">\n", escape(n), escape(v)))
        .collect();
    let mut body = format!(
        "<p>The app <code>{client}</code> asks for <code>{scopes}</code>. Which patient should it see? The \
         answer goes back to <code>{redirect}</code>.</p>\n<form method=get action=\"{action}\">\n{hidden}<ul>\n",
        client = escape(client_id),
        scopes = escape(scopes),
        redirect = escape(params.iter().find(|(n, _)| n == "redirect_uri").map_or("", |(_, v)| v.as_str())),
        action = escape(&issuer.authorize_url(&sb.base)),
    );
    for p in &sb.settings.patients {
        body.push_str(&format!(
            "<li><button type=submit name=patient value=\"{id}\">Approve for {who}</button></li>\n",
            id = escape(&p.id),
            who = describe(p),
        ));
    }
    body.push_str(
        "</ul>\n<p><button type=submit name=deny value=1>Deny</button></p>\n</form>\n<p class=note>Choosing a \
         patient sends this same authorization request with <code>patient=ID</code> added; the app then gets a \
         code at its <code>redirect_uri</code>.</p>\n",
    );
    page("Choose a patient", &body)
}

/// An authorization request that cannot be sent back to the app (no valid `client_id` or `redirect_uri`).
pub fn error(why: &str) -> String {
    page(
        "Authorization request refused",
        &format!(
            "<p>{}.</p>\n<p class=note>Without a valid <code>client_id</code> and <code>redirect_uri</code> the \
             sandbox cannot send the error back to the app, so it shows it here (RFC 6749 §4.1.2.1).</p>\n",
            escape(why)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }
}
