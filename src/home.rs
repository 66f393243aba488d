//! The pages a person reads in a browser: `GET /`, which says what the server is and what to try on each
//! tenant, and `GET /readme`, the README compiled into the binary and shown as HTML, so that the home page
//! can link to its sections on a machine with no internet.
//!
//! Invariants: everything shown comes from the configuration, the index or the README, escaped for HTML;
//! the pages need no external asset (no script, no stylesheet, no font from elsewhere).

use crate::app::App;
use crate::config::{Authorization, Tenant};
use crate::http::Response;

/// The README, as the binary was built with it.
const README: &str = include_str!("../README.md");

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}\
code,pre{font-family:ui-monospace,monospace;background:#f4f4f4}pre{padding:.6rem;overflow-x:auto}\
code{padding:0 .2rem}h1,h2,h3{line-height:1.2}li{margin:.3rem 0}.note{color:#555}";

/// `GET /`.
pub fn page(app: &App) -> Response {
    let snapshot = app.current();
    let mut html = format!(
        "<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport content=\"width=device-width\">\
         <title>smart-imaging</title><style>{STYLE}</style>\n<h1>smart-imaging</h1>\n\
         <p>SMART Imaging Access lets an app that holds a patient's SMART on FHIR access token find that \
         patient's imaging studies as FHIR ImagingStudy resources and download the DICOM images through DICOMweb, \
         with the same token. This server checks the token, resolves the patient in context, and serves only that \
         patient's studies from its index ({} studies, {} instances).</p>\n<h2>Tenants</h2>\n<ul>\n",
        snapshot.index.studies().len(),
        snapshot.index.instance_count()
    );
    for tenant in app.config.tenants.values() {
        html.push_str(&tenant_item(app, tenant));
    }
    html.push_str("</ul>\n");
    if let Some(first) = first_request(app) {
        html.push_str(&format!(
            "<h2>Try it</h2>\n<p>The walk-through's first request: <a href=\"{href}\">{text}</a> answers a FHIR \
             <code>searchset</code> Bundle; each study's contained Endpoint has the WADO-RS address to download it \
             from. Then follow the <a href=\"/readme#walk-through-on-the-demo-tenant\">walk-through</a> with curl.\
             </p>\n",
            href = escape(&first),
            text = escape(&first),
        ));
    }
    html.push_str(
        "<h2>See the images</h2>\n<p><a href=\"/viewer/\">The viewer</a> signs in like a SMART app, lists the \
         patient's studies and draws their images in this browser.</p>\n",
    );
    html.push_str(
        "<h2>Read more</h2>\n<ul>\n\
         <li><a href=\"/readme#http-api\">The HTTP API</a> and <a href=\"/readme#errors\">its errors</a></li>\n\
         <li><a href=\"/readme#connecting-to-an-ehr\">Connecting to an EHR</a> (a <code>smart-on-fhir</code> \
         tenant)</li>\n\
         <li><a href=\"/readme#configuration\">Configuration</a> and <a href=\"/readme#running-it-for-real\">\
         running it for real</a></li>\n\
         <li><a href=\"/readme\">The whole README</a></li>\n</ul>\n",
    );
    Response::bytes(200, "text/html; charset=utf-8", html.into_bytes())
}

/// One tenant: how its tokens are checked, what it shows, and its example links.
fn tenant_item(app: &App, tenant: &Tenant) -> String {
    let base = app.fhir_base(tenant);
    let (kind, what, search) = match &tenant.auth {
        Authorization::Mock { patient: Some(p) } => {
            let who = p.display.as_deref().map(|d| format!(" ({})", escape(d))).unwrap_or_default();
            let shows = if tenant.visibility.by_context() {
                "only the studies of that patient"
            } else {
                "every study in the index"
            };
            (
                "mock",
                format!(
                    "no EHR: every token (or none) speaks for patient <code>{}</code>{who}; it shows {shows}",
                    escape(&p.id)
                ),
                format!("{base}/ImagingStudy?patient={}", p.id),
            )
        }
        Authorization::Mock { patient: None } => (
            "mock",
            "no EHR and no patient: no token needed, every study in the index".to_string(),
            format!("{base}/ImagingStudy"),
        ),
        Authorization::SmartOnFhir(settings) => (
            "smart-on-fhir",
            format!(
                "tokens from the EHR at <code>{}</code>, checked by introspection; it shows the studies of the \
                 token's patient",
                escape(&settings.fhir_base_url)
            ),
            format!("{base}/ImagingStudy?patient=…"),
        ),
    };
    let search_link = if matches!(tenant.auth, Authorization::SmartOnFhir(_)) {
        format!("<code>{}</code> (with the app's bearer token)", escape(&search))
    } else {
        format!("<a href=\"{0}\">{0}</a>", escape(&search))
    };
    format!(
        "<li><b>{name}</b> <span class=note>({kind})</span>: {what}.<br>Search: {search_link} · \
         <a href=\"{base}/metadata\">metadata</a> · \
         <a href=\"{base}/.well-known/smart-configuration\">smart-configuration</a></li>\n",
        name = escape(&tenant.name),
        base = escape(&base),
    )
}

/// The walk-through's first request: a search on the first mock tenant with a patient (`demo` in the
/// default configuration), else on any mock tenant.
fn first_request(app: &App) -> Option<String> {
    let tenants = app.config.tenants.values();
    let with_patient = tenants.clone().find_map(|t| match &t.auth {
        Authorization::Mock { patient: Some(p) } => Some(format!("{}/ImagingStudy?patient={}", app.fhir_base(t), p.id)),
        _ => None,
    });
    with_patient.or_else(|| {
        tenants.clone().find_map(|t| match &t.auth {
            Authorization::Mock { patient: None } => Some(format!("{}/ImagingStudy", app.fhir_base(t))),
            _ => None,
        })
    })
}

/// `GET /readme`: the README as HTML, every heading with the anchor GitHub would give it.
pub fn readme() -> Response {
    let mut html = format!(
        "<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport content=\"width=device-width\">\
         <title>smart-imaging README</title><style>{STYLE}</style>\n<p><a href=\"/\">← smart-imaging</a></p>\n"
    );
    html.push_str(&markdown(README));
    Response::bytes(200, "text/html; charset=utf-8", html.into_bytes())
}

/// Enough of Markdown for the README: headings, fenced code, tables and other blocks kept as text, lists,
/// paragraphs, and `code` spans.
fn markdown(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    let mut paragraph: Vec<&str> = Vec::new();
    let flush = |paragraph: &mut Vec<&str>, out: &mut String| {
        if !paragraph.is_empty() {
            out.push_str(&format!("<p>{}</p>\n", inline(&paragraph.join(" "))));
            paragraph.clear();
        }
    };
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            flush(&mut paragraph, &mut out);
            let mut code = String::new();
            for inner in lines.by_ref() {
                if inner.trim_start().starts_with("```") {
                    break;
                }
                code.push_str(&escape(inner));
                code.push('\n');
            }
            out.push_str(&format!("<pre><code>{code}</code></pre>\n"));
        } else if let Some(heading) = heading(line) {
            flush(&mut paragraph, &mut out);
            out.push_str(&heading);
        } else if trimmed.starts_with('|') {
            flush(&mut paragraph, &mut out);
            let mut table = format!("{}\n", escape(line));
            while let Some(next) = lines.peek().filter(|l| l.trim_start().starts_with('|')) {
                table.push_str(&escape(next));
                table.push('\n');
                lines.next();
            }
            out.push_str(&format!("<pre>{table}</pre>\n"));
        } else if let Some(item) = trimmed.strip_prefix("- ").or_else(|| numbered(trimmed)) {
            flush(&mut paragraph, &mut out);
            let mut text = item.to_string();
            while let Some(next) = lines.peek().filter(|l| l.starts_with("  ") && !l.trim().is_empty()) {
                if next.trim_start().starts_with("```") || next.trim_start().starts_with('|') {
                    break;
                }
                text.push(' ');
                text.push_str(next.trim());
                lines.next();
            }
            out.push_str(&format!("<ul><li>{}</li></ul>\n", inline(&text)));
        } else if trimmed.is_empty() {
            flush(&mut paragraph, &mut out);
        } else {
            paragraph.push(trimmed);
        }
    }
    flush(&mut paragraph, &mut out);
    out
}

fn numbered(line: &str) -> Option<&str> {
    let (n, rest) = line.split_once(". ")?;
    (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(rest)
}

/// `## Title` as `<h2 id=title>`, with GitHub's anchor rule: lower case, spaces to `-`, punctuation dropped.
fn heading(line: &str) -> Option<String> {
    let level = line.bytes().take_while(|b| *b == b'#').count();
    let title = line.get(level..)?.strip_prefix(' ')?;
    if !(1..=6).contains(&level) {
        return None;
    }
    let anchor: String = title
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect();
    Some(format!("<h{level} id=\"{}\">{}</h{level}>\n", escape(&anchor), inline(title)))
}

/// `code` spans and **bold**, the rest escaped.
fn inline(text: &str) -> String {
    let mut out = String::new();
    for (n, piece) in text.split('`').enumerate() {
        if n % 2 == 1 {
            out.push_str(&format!("<code>{}</code>", escape(piece)));
        } else {
            let mut bold = false;
            for (m, part) in escape(piece).split("**").enumerate() {
                if m > 0 {
                    out.push_str(if bold { "</b>" } else { "<b>" });
                    bold = !bold;
                }
                out.push_str(part);
            }
            if bold {
                out.push_str("</b>");
            }
        }
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_get_githubs_anchors() {
        assert_eq!(
            heading("## Connecting to an EHR").unwrap(),
            "<h2 id=\"connecting-to-an-ehr\">Connecting to an EHR</h2>\n"
        );
        assert!(
            heading("## Walk-through on the `demo` tenant").unwrap().contains("id=\"walk-through-on-the-demo-tenant\"")
        );
        assert_eq!(heading("#hashtag"), None);
    }

    #[test]
    fn the_readme_renders_with_every_anchor_the_home_page_links_to() {
        let html = markdown(README);
        for anchor in [
            "walk-through-on-the-demo-tenant",
            "http-api",
            "errors",
            "connecting-to-an-ehr",
            "configuration",
            "running-it-for-real",
        ] {
            assert!(html.contains(&format!("id=\"{anchor}\"")), "the README has no section #{anchor}");
        }
        assert!(!html.contains("<script"), "no script from the README");
    }

    #[test]
    fn markdown_is_escaped() {
        assert_eq!(markdown("a <b> `<i>` **c**"), "<p>a &lt;b&gt; <code>&lt;i&gt;</code> <b>c</b></p>\n");
        assert_eq!(markdown("```\n<x>\n```"), "<pre><code>&lt;x&gt;\n</code></pre>\n");
    }
}
