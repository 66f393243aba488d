//! What the probe found: one `Check` per rule, and the two ways of showing them: lines for a person (each
//! `PASS`, `FAIL` or `SKIP` with the check's name, what was seen and the rule), and one JSON document for CI;
//! both end with the counts.
//!
//! Invariant: nothing here prints a token. Details that hold a URL which may carry a capability (an
//! Endpoint address) pass through `shorten` where they are made.

use serde_json::{Value, json};

use super::rules::{Check, Outcome};

/// Everything a run found, in the order it was checked.
#[derive(Debug, Default)]
pub struct Report {
    /// The FHIR base probed.
    pub base: String,
    /// What the probe was given, said in words (never a token).
    pub given: Vec<String>,
    pub checks: Vec<Check>,
}

impl Report {
    /// (passed, failed, skipped).
    pub fn counts(&self) -> (usize, usize, usize) {
        let count = |o: Outcome| self.checks.iter().filter(|c| c.outcome == o).count();
        (count(Outcome::Pass), count(Outcome::Fail), count(Outcome::Skip))
    }

    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.outcome == Outcome::Fail)
    }

    /// The summary line.
    pub fn summary(&self) -> String {
        let (passed, failed, skipped) = self.counts();
        format!("{passed} passed, {failed} failed, {skipped} skipped")
    }

    /// One line per check, `OUTCOME name: detail [rule]`, and the summary line.
    pub fn text(&self) -> String {
        let mut out = format!("probe {}\n", self.base);
        for line in &self.given {
            out.push_str(&format!("  {line}\n"));
        }
        let width = self.checks.iter().map(|c| c.rule.name.len()).max().unwrap_or(0);
        for c in &self.checks {
            out.push_str(&format!(
                "{} {:width$}  {} [{}]\n",
                c.outcome.word(),
                c.rule.name,
                one_line(&c.detail),
                c.rule.source
            ));
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    /// The same as one JSON document.
    pub fn json(&self) -> Value {
        let (passed, failed, skipped) = self.counts();
        let checks: Vec<Value> = self
            .checks
            .iter()
            .map(|c| {
                json!({
                    "name": c.rule.name,
                    "outcome": c.outcome.word().to_ascii_lowercase(),
                    "rule": c.rule.source,
                    "detail": c.detail,
                })
            })
            .collect();
        json!({
            "base": self.base,
            "given": self.given,
            "checks": checks,
            "summary": {"passed": passed, "failed": failed, "skipped": skipped},
        })
    }
}

/// A detail on one line: what a server answered may hold line breaks.
fn one_line(detail: &str) -> String {
    detail.split(['\r', '\n']).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

/// A URL with each long path segment cut to its first four characters: an Endpoint address may carry a
/// capability (a study token), which a report that is pasted into a ticket must not give away.
pub fn shorten(url: &str) -> String {
    let (path, query) = url.split_once('?').map_or((url, None), |(p, q)| (p, Some(q)));
    let segments: Vec<String> = path
        .split('/')
        .map(|s| if s.chars().count() > 24 { format!("{}…", s.chars().take(4).collect::<String>()) } else { s.into() })
        .collect();
    let path = segments.join("/");
    match query {
        Some(q) => format!("{path}?{q}"),
        None => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::rules::{DISCOVERY_PKCE, WADO_RETRIEVE};

    #[test]
    fn lines_and_summary() {
        let report = Report {
            base: "http://h/fhir".into(),
            given: vec!["patient p1".into()],
            checks: vec![DISCOVERY_PKCE.pass("S256 listed, plain not"), WADO_RETRIEVE.fail("answered\n500")],
        };
        let text = report.text();
        assert!(text.contains("PASS discovery.pkce  S256 listed, plain not [SMART App Launch"), "{text}");
        assert!(text.contains("FAIL wado.retrieve   answered 500 ["), "{text}");
        assert!(text.ends_with("1 passed, 1 failed, 0 skipped\n"), "{text}");
        assert!(report.failed());
        let doc = report.json();
        assert_eq!(doc["checks"][1]["name"], "wado.retrieve");
        assert_eq!(doc["checks"][1]["outcome"], "fail");
        assert_eq!(doc["summary"], json!({"passed": 1, "failed": 1, "skipped": 0}));
    }

    #[test]
    fn long_segments_are_cut() {
        let address = format!("http://h:8000/demo/wado/{}", "x".repeat(100));
        assert_eq!(shorten(&address), "http://h:8000/demo/wado/xxxx…");
        assert_eq!(shorten("http://h/fhir/ImagingStudy?patient=p1"), "http://h/fhir/ImagingStudy?patient=p1");
    }
}
