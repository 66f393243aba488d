//! The pages a person reads in a browser: `GET /`, which says what the server is and what to try on each
//! tenant, and `GET /docs/`, the README and the pages of `docs/` compiled into the binary and shown as HTML,
//! so that the home page can link to their sections on a machine with no internet.
//!
//! Invariants: everything shown comes from the configuration, the index or the documentation, escaped for
//! HTML (HTML written in the documentation is shown as text); links between the pages are `/docs/` URLs;
//! the pages need no external asset (no script, no stylesheet, no font from elsewhere).

use std::collections::HashMap;

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

use crate::app::{App, Snapshot};
use crate::config::{Authorization, Tenant};
use crate::http::Response;

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}\
code,pre{font-family:ui-monospace,monospace;background:#f4f4f4}pre{padding:.6rem;overflow-x:auto}\
code{padding:0 .2rem}pre code{padding:0}h1,h2,h3{line-height:1.2}li{margin:.3rem 0}.note{color:#555}\
table{border-collapse:collapse}th,td{border:1px solid #ddd;padding:.2rem .5rem;vertical-align:top}img{max-width:100%}";

/// Where the home page sends a person to read on: the walk-through, then the reference. Every link names a
/// heading of the page it goes to (a unit test checks each).
const WALK_THROUGH: &str = "/docs/#walk-through-on-the-demo-tenant";
const READ_MORE: &str = "<h2>Read more</h2>\n<ul>\n\
     <li><a href=\"/docs/api.md\">The HTTP API</a> and <a href=\"/docs/api.md#errors\">its errors</a></li>\n\
     <li><a href=\"/docs/ehr.md#connecting-to-an-ehr\">Connecting to an EHR</a> (a <code>smart-on-fhir</code> \
     tenant) and <a href=\"/docs/ehr.md#the-built-in-sandbox-ehr\">the built-in sandbox EHR</a></li>\n\
     <li><a href=\"/docs/operations.md#configuration\">Configuration</a> and \
     <a href=\"/docs/operations.md#running-it-for-real\">running it for real</a></li>\n\
     <li><a href=\"/docs/\">The README</a>, which links every page of the reference</li>\n</ul>\n";

/// `GET /`.
pub fn page(app: &App, snapshot: &Snapshot) -> Response {
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
    for tenant in snapshot.config.tenants.values() {
        html.push_str(&tenant_item(app, tenant));
    }
    html.push_str("</ul>\n");
    if let Some(first) = first_request(app, snapshot) {
        html.push_str(&format!(
            "<h2>Try it</h2>\n<p>The walk-through's first request: <a href=\"{href}\">{text}</a> answers a FHIR \
             <code>searchset</code> Bundle; each study names an Endpoint entry of the same Bundle, whose address is \
             where to download it from over WADO-RS. Then follow the <a href=\"{WALK_THROUGH}\">walk-through</a> with curl.</p>\n",
            href = escape(&first),
            text = escape(&first),
        ));
    }
    html.push_str(
        "<h2>See the images</h2>\n<p><a href=\"/viewer/\">The viewer</a> signs in like a SMART app, lists the \
         patient's studies and draws their images in this browser.</p>\n",
    );
    html.push_str(READ_MORE);
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
fn first_request(app: &App, snapshot: &Snapshot) -> Option<String> {
    let tenants = snapshot.config.tenants.values();
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

/// `GET /docs/{name}`: a page of the documentation as HTML (`""` is the README; `api.md` or `api` a page of
/// `docs/`), or an image the pages show. `None` when there is no such page.
pub fn docs(name: &str) -> Option<Response> {
    if let Some((_, bytes)) = IMAGES.iter().find(|(path, _)| path.strip_prefix("docs/") == Some(name)) {
        return Some(Response::bytes(200, "image/png", bytes.to_vec()));
    }
    let page = PAGES.iter().find(|p| p.name() == name || p.name().strip_suffix(".md") == Some(name))?;
    let mut html = format!(
        "<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport content=\"width=device-width\">\
         <title>smart-imaging: {}</title><style>{STYLE}</style>\n<p class=note><a href=\"/\">Home</a>",
        escape(page.title())
    );
    for other in &PAGES {
        html.push_str(&format!(" · <a href=\"{}\">{}</a>", other.url(), escape(other.title())));
    }
    html.push_str("</p>\n");
    html.push_str(&render(page.path, page.text));
    Some(Response::bytes(200, "text/html; charset=utf-8", html.into_bytes()))
}

/// A page of `/docs/`: where it lies in the repository, and its text as the binary was built with it.
struct Page {
    path: &'static str,
    text: &'static str,
}

/// Every page, in the order the navigation names them: the README first.
const PAGES: [Page; 10] = [
    Page { path: "README.md", text: include_str!("../README.md") },
    Page { path: "docs/api.md", text: include_str!("../docs/api.md") },
    Page { path: "docs/operations.md", text: include_str!("../docs/operations.md") },
    Page { path: "docs/ehr.md", text: include_str!("../docs/ehr.md") },
    Page { path: "docs/index.md", text: include_str!("../docs/index.md") },
    Page { path: "docs/performance.md", text: include_str!("../docs/performance.md") },
    Page { path: "docs/viewer.md", text: include_str!("../docs/viewer.md") },
    Page { path: "docs/teach.md", text: include_str!("../docs/teach.md") },
    Page { path: "docs/probe.md", text: include_str!("../docs/probe.md") },
    Page { path: "docs/ARCHITECTURE.md", text: include_str!("../docs/ARCHITECTURE.md") },
];

/// The images the pages show (PNG), served beside them.
const IMAGES: [(&str, &[u8]); 2] = [
    ("docs/viewer-ct.png", include_bytes!("../docs/viewer-ct.png")),
    ("docs/viewer-mr.png", include_bytes!("../docs/viewer-mr.png")),
];

impl Page {
    /// The last part of its URL: `""` for the README, `api.md` for `docs/api.md`.
    fn name(&self) -> &'static str {
        self.path.strip_prefix("docs/").unwrap_or("")
    }

    fn url(&self) -> String {
        format!("/docs/{}", self.name())
    }

    /// What the navigation calls it: the README, or the text of a page's first heading.
    fn title(&self) -> &'static str {
        match self.path {
            "README.md" => "README",
            _ => self.text.lines().find_map(|l| l.strip_prefix("# ")).unwrap_or(self.path),
        }
    }
}

/// The page at `path` as HTML, as GitHub shows it: CommonMark with tables, every heading with the anchor
/// GitHub gives it, and links to other pages and images of the repository pointed at their `/docs/` URLs, so
/// that they work offline. HTML in the text is shown as text.
fn render(path: &str, text: &str) -> String {
    let mut events: Vec<Event> = Parser::new_ext(text, Options::ENABLE_TABLES)
        .map(|event| match event {
            Event::Start(Tag::Link { link_type, dest_url, title, id }) => {
                Event::Start(Tag::Link { link_type, dest_url: link_target(path, &dest_url).into(), title, id })
            }
            Event::Start(Tag::Image { link_type, dest_url, title, id }) => {
                Event::Start(Tag::Image { link_type, dest_url: link_target(path, &dest_url).into(), title, id })
            }
            Event::Html(text) | Event::InlineHtml(text) => Event::Text(text),
            other => other,
        })
        .collect();
    let mut taken = HashMap::new();
    for at in 0..events.len() {
        if let Event::Start(Tag::Heading { .. }) = events[at] {
            let text: String = events[at + 1..]
                .iter()
                .take_while(|e| !matches!(e, Event::End(TagEnd::Heading(_))))
                .filter_map(|e| match e {
                    Event::Text(t) | Event::Code(t) => Some(t.as_ref()),
                    _ => None,
                })
                .collect();
            if let Event::Start(Tag::Heading { id, .. }) = &mut events[at] {
                *id = Some(unique(anchor(&text), &mut taken).into());
            }
        }
    }
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events.into_iter());
    html
}

/// GitHub's anchor for a heading: lower case, spaces to `-`, punctuation dropped.
fn anchor(title: &str) -> String {
    title
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The second heading with the same anchor gets `-1`, the third `-2`, as on GitHub.
fn unique(anchor: String, taken: &mut HashMap<String, usize>) -> String {
    let count = taken.entry(anchor.clone()).or_insert(0);
    *count += 1;
    if *count == 1 { anchor } else { format!("{anchor}-{}", *count - 1) }
}

/// Where a link of the page at `from` (a path in the repository) points once served: a relative link to a
/// page or an image becomes its `/docs/` URL, its `#anchor` kept; any other link is left as written.
fn link_target(from: &str, dest: &str) -> String {
    let has_scheme = dest.split(['/', '#', '?']).next().is_some_and(|first| first.contains(':'));
    if dest.is_empty() || has_scheme || dest.starts_with(['/', '#']) {
        return dest.to_string();
    }
    let (path, fragment) = match dest.split_once('#') {
        Some((path, fragment)) => (path, format!("#{fragment}")),
        None => (dest, String::new()),
    };
    let mut parts: Vec<&str> = from.split('/').collect();
    parts.pop();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    let target = parts.join("/");
    if let Some(page) = PAGES.iter().find(|p| p.path == target) {
        format!("{}{fragment}", page.url())
    } else if IMAGES.iter().any(|(path, _)| *path == target) {
        format!("/{target}{fragment}")
    } else {
        dest.to_string()
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `href` and `src` values of an HTML text.
    fn targets(html: &str) -> Vec<&str> {
        ["href=\"", "src=\""]
            .iter()
            .flat_map(|attr| html.split(attr).skip(1).filter_map(|rest| rest.split('"').next()))
            .collect()
    }

    /// Whether the page at `url` (`/docs/…`, with its `#anchor` if any) is served and has that anchor.
    fn resolves(url: &str) -> bool {
        let (path, fragment) = url.split_once('#').unwrap_or((url, ""));
        let Some(name) = path.strip_prefix("/docs/") else { return false };
        let Some(page) = PAGES.iter().find(|p| p.name() == name) else {
            return fragment.is_empty() && IMAGES.iter().any(|(path, _)| path.strip_prefix("docs/") == Some(name));
        };
        fragment.is_empty() || render(page.path, page.text).contains(&format!("id=\"{fragment}\""))
    }

    #[test]
    fn headings_get_githubs_anchors() {
        let html =
            render("README.md", "## Connecting to an EHR\n## Walk-through on the `demo` tenant\n## A\n## A\n#hashtag");
        assert!(html.contains("<h2 id=\"connecting-to-an-ehr\">Connecting to an EHR</h2>"), "{html}");
        assert!(html.contains("id=\"walk-through-on-the-demo-tenant\""), "{html}");
        assert!(html.contains("<h2 id=\"a\">A</h2>\n<h2 id=\"a-1\">A</h2>"), "a second one is -1\n{html}");
        assert!(html.contains("<p>#hashtag</p>"), "{html}");
    }

    #[test]
    fn every_anchor_the_home_page_links_to_is_on_its_page() {
        let links = targets(READ_MORE).into_iter().chain([WALK_THROUGH]).collect::<Vec<_>>();
        assert!(links.len() >= 7, "{links:?}");
        for link in links {
            assert!(resolves(link), "the home page links to {link}, which is not there");
        }
    }

    #[test]
    fn links_between_pages_work_offline() {
        for page in &PAGES {
            let html = render(page.path, page.text);
            for target in targets(&html) {
                let works = if let Some(fragment) = target.strip_prefix('#') {
                    html.contains(&format!("id=\"{fragment}\""))
                } else if target.starts_with("/docs/") {
                    resolves(target)
                } else {
                    target.starts_with("http://") || target.starts_with("https://") || target.starts_with('/')
                };
                assert!(works, "{} links to {target}, which does not work when served", page.path);
            }
            assert!(!html.contains("<script"), "no script in {}", page.path);
        }
    }

    #[test]
    fn every_page_of_docs_is_served() {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        for entry in std::fs::read_dir(folder).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let served = PAGES.iter().any(|p| p.name() == name) || IMAGES.iter().any(|(p, _)| p.ends_with(&name));
            assert!(served, "docs/{name} is not in PAGES or IMAGES");
        }
    }

    #[test]
    fn relative_links_point_at_the_served_pages() {
        assert_eq!(link_target("README.md", "docs/api.md#errors"), "/docs/api.md#errors");
        assert_eq!(
            link_target("docs/api.md", "ehr.md#the-built-in-sandbox-ehr"),
            "/docs/ehr.md#the-built-in-sandbox-ehr"
        );
        assert_eq!(link_target("docs/api.md", "../README.md#two-commands"), "/docs/#two-commands");
        assert_eq!(link_target("docs/api.md", "./operations.md"), "/docs/operations.md");
        assert_eq!(link_target("docs/viewer.md", "viewer-ct.png"), "/docs/viewer-ct.png");
        assert_eq!(link_target("README.md", "docs/viewer-ct.png"), "/docs/viewer-ct.png");
        for kept in ["#errors", "/viewer/", "http://localhost:8000/", "mailto:a@b", "src/home.rs"] {
            assert_eq!(link_target("README.md", kept), kept);
        }
    }

    #[test]
    fn markdown_renders_tables_links_and_autolinks_and_escapes_html() {
        let html =
            render("README.md", "| a | b |\n| --- | --- |\n| `<i>` | [x](#y) |\n\nSee <http://localhost:8000/>.");
        assert!(html.contains("<table>") && html.contains("<td><code>&lt;i&gt;</code></td>"), "{html}");
        assert!(html.contains("<a href=\"#y\">x</a>"), "{html}");
        assert!(html.contains("<a href=\"http://localhost:8000/\">http://localhost:8000/</a>"), "{html}");
        let html = render("README.md", "a <b>bold</b> **c**\n\n<script>alert(1)</script>\n");
        assert!(!html.contains("<script") && !html.contains("<b>"), "HTML in the text is shown as text\n{html}");
        assert!(html.contains("&lt;script&gt;") && html.contains("<strong>c</strong>"), "{html}");
    }

    #[test]
    fn pages_are_found_with_or_without_md() {
        for name in ["", "api.md", "api", "index.md", "ARCHITECTURE", "viewer-ct.png", "viewer-mr.png"] {
            assert_eq!(docs(name).map(|r| r.status), Some(200), "{name:?}");
        }
        for name in ["README.md", "nope", "../README.md", "viewer.png", "viewer-ct.jpg"] {
            assert!(docs(name).is_none(), "{name:?}");
        }
    }
}
