//! The checks under each study's Endpoint address (WADO-RS): refused without the token, the study as
//! `multipart/related` DICOM files of that study, `Accept` negotiation, metadata, and what must be refused:
//! a tampered address, another patient's token, another study's UID.
//!
//! A check runs on every study the search found (up to `MAX_STUDIES`) and fails when any study fails it.

use super::Context;
use super::client::{Answer, media_param};
use super::fhir::Study;
use super::multipart::{dicom_file, parts};
use super::rules::*;

/// How many studies are retrieved.
pub const MAX_STUDIES: usize = 5;

const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
/// Transfer syntaxes no server is expected to produce from other data (MPEG2 video), for the 406 check;
/// the first one the study is not stored in is asked for.
const UNLIKELY: [&str; 2] = ["1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.101"];

fn accept_dicom(transfer_syntax: &str) -> String {
    format!("multipart/related; type=\"application/dicom\"; transfer-syntax={transfer_syntax}")
}

/// What each check found over the studies: the problems, the studies it could not run on and why.
#[derive(Default)]
struct Tally {
    problems: Vec<String>,
    skipped: Vec<(String, String)>,
    passed: usize,
}

impl Tally {
    fn add(&mut self, study: &Study, outcome: Result<Option<String>, String>) {
        match outcome {
            Ok(None) => self.passed += 1,
            Ok(Some(why)) => self.skipped.push((study.uid.clone(), why)),
            Err(problem) => self.problems.push(format!("study {}: {problem}", study.uid)),
        }
    }

    fn check(self, rule: Rule, ok: &str) -> Check {
        let not_run = self.not_run();
        if !self.problems.is_empty() {
            rule.fail(self.problems.join("; "))
        } else if self.passed == 0 {
            rule.skip(not_run)
        } else if self.skipped.is_empty() {
            rule.pass(format!("{ok} ({} studies)", self.passed))
        } else {
            rule.pass(format!("{ok} ({} studies; not run on {not_run})", self.passed))
        }
    }

    /// The studies it did not run on and why; the reason once when it is the same for all.
    fn not_run(&self) -> String {
        let whys: Vec<&str> = self.skipped.iter().map(|(_, why)| why.as_str()).collect();
        if whys.windows(2).all(|w| w[0] == w[1]) {
            return whys.first().copied().unwrap_or_default().to_string();
        }
        let each: Vec<String> = self.skipped.iter().map(|(uid, why)| format!("{uid}: {why}")).collect();
        each.join("; ")
    }
}

pub fn checks(ctx: &Context, studies: Result<&[Study], &str>) -> Vec<Check> {
    let all = [
        WADO_NO_TOKEN,
        WADO_RETRIEVE,
        WADO_PARTS_DICOM,
        WADO_STUDY_UID,
        WADO_ACCEPT_EXPLICIT_LE,
        WADO_ACCEPT_UNSUPPORTED,
        WADO_METADATA,
        WADO_TAMPERED_ADDRESS,
        WADO_OTHER_PATIENT_TOKEN,
        WADO_TOKEN_BINDING,
        WADO_OTHER_STUDY,
    ];
    let studies = match studies {
        Ok(s) => &s[..s.len().min(MAX_STUDIES)],
        Err(why) => return all.iter().map(|r| r.skip(format!("no study to retrieve: {why}"))).collect(),
    };
    let mut tallies: Vec<Tally> = all.iter().map(|_| Tally::default()).collect();
    for study in studies {
        let outcomes = one_study(ctx, study, studies);
        for (tally, outcome) in tallies.iter_mut().zip(outcomes) {
            tally.add(study, outcome);
        }
    }
    let ok = [
        "401 without the token, no DICOM bytes",
        "200 multipart/related; type=\"application/dicom\" with a boundary",
        "every part a DICOM file",
        "every part of the study asked for",
        "every part Explicit VR Little Endian",
        "406, no DICOM bytes",
        "an application/dicom+json array, every object of the study",
        "refused, no DICOM bytes",
        "403, no DICOM bytes",
        "refused, no DICOM bytes",
        "refused, no DICOM bytes",
    ];
    tallies.into_iter().zip(all).zip(ok).map(|((t, rule), ok)| t.check(rule, ok)).collect()
}

/// One outcome per check of `checks`, in its order: `Ok(None)` passed, `Ok(Some(why))` not run, `Err` failed.
type Outcome = Result<Option<String>, String>;

fn one_study(ctx: &Context, study: &Study, all: &[Study]) -> [Outcome; 11] {
    let address = study.wado.address.as_str();
    let url = format!("{address}/studies/{}", study.uid);
    // An Endpoint that says it takes no token (an older draft's bearer capability URL) is sent none.
    let bearer_url = study.wado.requires_token == Some(false);
    let token = if bearer_url { None } else { ctx.token };
    let get = |url: &str, token: Option<&str>, accept: &str| ctx.client.get(url, token, &[("Accept", accept)]);

    let no_token = if let Some(why) = ctx.tokens_moot() {
        Ok(Some(why))
    } else if bearer_url {
        Ok(Some("its Endpoint says requires-access-token false".into()))
    } else {
        get(&url, None, &accept_dicom("*")).and_then(|a| refused(&a, &[401]))
    };

    let retrieved = get(&url, token, &accept_dicom("*"));
    let (retrieve, parts_dicom, study_uid, stored) = match &retrieved {
        Err(e) => (Err(e.clone()), not_run(), not_run(), Vec::new()),
        Ok(a) => look_at_study(a, &study.uid),
    };

    let explicit = match get(&url, token, &accept_dicom(EXPLICIT_VR_LE)) {
        Err(e) => Err(e),
        Ok(a) if a.status == 406 => {
            Ok(Some("406: not served as Explicit VR Little Endian (allowed for compressed data)".into()))
        }
        Ok(a) => all_in_syntax(&a, EXPLICIT_VR_LE),
    };

    let unlikely = UNLIKELY.iter().find(|ts| !stored.iter().any(|s| s == *ts)).copied().unwrap_or(UNLIKELY[0]);
    let unsupported = get(&url, token, &accept_dicom(unlikely)).and_then(|a| refused(&a, &[406]));

    let metadata =
        get(&format!("{url}/metadata"), token, "application/dicom+json").and_then(|a| metadata(&a, &study.uid));

    let tampered = match tamper(address) {
        None => Ok(Some("its address has no path segment to change".into())),
        Some(changed) => get(&format!("{changed}/studies/{}", study.uid), token, &accept_dicom("*"))
            .and_then(|a| refused(&a, &[401, 403, 404])),
    };

    let other_token = match (ctx.tokens_moot(), ctx.other_token) {
        (Some(why), _) => Ok(Some(why)),
        (None, None) => Ok(Some("no --other-patient-token".into())),
        (None, Some(other)) => get(&url, Some(other), &accept_dicom("*")).and_then(|a| refused(&a, &[403])),
    };

    let same_patient = match (ctx.tokens_moot(), ctx.same_token) {
        (Some(why), _) => Ok(Some(why)),
        (None, None) => Ok(Some("no second token of the patient (--same-patient-token, or --sandbox-launch)".into())),
        (None, Some(_)) if bearer_url => Ok(Some("its Endpoint says requires-access-token false".into())),
        (None, Some(same)) => get(&url, Some(same), &accept_dicom("*")).and_then(|a| refused(&a, &[401, 403])),
    };

    let other_uid = match all.iter().find(|s| s.uid != study.uid) {
        Some(other) => Ok(other.uid.clone()),
        None => crate::random::hex_id(8).map(|h| format!("2.25.{}", u64::from_str_radix(&h, 16).unwrap_or(7))),
    };
    let other_study = other_uid.and_then(|uid| {
        get(&format!("{address}/studies/{uid}"), token, &accept_dicom("*")).and_then(|a| refused(&a, &[403, 404]))
    });

    [
        no_token,
        retrieve,
        parts_dicom,
        study_uid,
        explicit,
        unsupported,
        metadata,
        tampered,
        other_token,
        same_patient,
        other_study,
    ]
}

fn not_run() -> Outcome {
    Ok(Some("the study was not retrieved".into()))
}

/// A refusal with one of `statuses` and no DICOM bytes.
fn refused(answer: &Answer, statuses: &[u16]) -> Outcome {
    if !statuses.contains(&answer.status) {
        let wanted: Vec<String> = statuses.iter().map(u16::to_string).collect();
        return Err(format!("answered {} ({} bytes), not {}", answer.said(), answer.body.len(), wanted.join("/")));
    }
    if answer.has_dicom_bytes() {
        return Err(format!("answered {}, but with DICOM bytes", answer.status));
    }
    Ok(None)
}

/// `wado.retrieve`, `wado.parts-dicom`, `wado.study-uid`, and the transfer syntaxes the study is stored in.
fn look_at_study(answer: &Answer, uid: &str) -> (Outcome, Outcome, Outcome, Vec<String>) {
    if answer.status != 200 {
        let e = Err(format!("answered {}", answer.said()));
        return (e, not_run(), not_run(), Vec::new());
    }
    let content_type = answer.header("content-type").unwrap_or_default();
    let found = match parts(content_type, &answer.body) {
        Ok(p) => p,
        Err(e) => return (Err(e), not_run(), not_run(), Vec::new()),
    };
    let kind = media_param(content_type, "type").unwrap_or_default();
    let mut retrieve = if kind.eq_ignore_ascii_case("application/dicom") {
        Ok(None)
    } else {
        Err(format!("Content-Type {content_type:?} has no type=\"application/dicom\""))
    };
    let (mut not_dicom, mut wrong_study, mut stored) = (Vec::new(), Vec::new(), Vec::new());
    for (n, part) in found.iter().enumerate() {
        if retrieve.is_ok() && super::client::media_type(part.content_type()) != "application/dicom" {
            retrieve = Err(format!("part {} has Content-Type {:?}", n + 1, part.content_type()));
        }
        match dicom_file(part.body) {
            Err(e) => not_dicom.push(format!("part {}: {e}", n + 1)),
            Ok(header) => {
                if header.study_instance_uid != uid {
                    wrong_study.push(format!("part {} is of study {}", n + 1, header.study_instance_uid));
                }
                stored.push(header.transfer_syntax);
            }
        }
    }
    let judge = |problems: Vec<String>| if problems.is_empty() { Ok(None) } else { Err(problems.join(", ")) };
    let study_uid = if stored.is_empty() { Ok(Some("no part read as DICOM".into())) } else { judge(wrong_study) };
    (retrieve, judge(not_dicom), study_uid, stored)
}

/// Every part of a 200 answer in transfer syntax `ts`, by its File Meta Information.
fn all_in_syntax(answer: &Answer, ts: &str) -> Outcome {
    if answer.status != 200 {
        return Err(format!("answered {}", answer.said()));
    }
    let found = parts(answer.header("content-type").unwrap_or_default(), &answer.body)?;
    let mut problems = Vec::new();
    for (n, part) in found.iter().enumerate() {
        match dicom_file(part.body) {
            Err(e) => problems.push(format!("part {}: {e}", n + 1)),
            Ok(h) if h.transfer_syntax != ts => problems.push(format!("part {} is in {}", n + 1, h.transfer_syntax)),
            Ok(_) => {}
        }
    }
    if problems.is_empty() { Ok(None) } else { Err(problems.join(", ")) }
}

fn metadata(answer: &Answer, uid: &str) -> Outcome {
    if answer.status != 200 {
        return Err(format!("metadata answered {}", answer.said()));
    }
    if answer.media_type() != "application/dicom+json" {
        return Err(format!("metadata came as {:?}, not application/dicom+json", answer.media_type()));
    }
    let doc = answer.json().ok_or("metadata is not JSON")?;
    let items = doc.as_array().filter(|a| !a.is_empty()).ok_or("metadata is not a non-empty JSON array")?;
    for (n, item) in items.iter().enumerate() {
        let study = item.get("0020000D").and_then(|e| e.get("Value")).and_then(|v| v.get(0)).and_then(|v| v.as_str());
        if study != Some(uid) {
            return Err(format!("metadata object {} has StudyInstanceUID {study:?}", n + 1));
        }
    }
    Ok(None)
}

/// The address with one character of its last path segment changed, as an attacker guessing a
/// neighbour's capability would; `None` when there is no segment.
fn tamper(address: &str) -> Option<String> {
    let cut = address.trim_end_matches('/');
    let at = cut.rfind('/')?;
    let segment = &cut[at + 1..];
    if segment.is_empty() || cut[..at].ends_with('/') {
        return None;
    }
    let chars: Vec<char> = segment.chars().collect();
    let middle = chars.len() / 2;
    let changed = match chars[middle] {
        'z' => 'a',
        'Z' => 'A',
        '9' => '0',
        c if c.is_ascii_alphanumeric() => (c as u8 + 1) as char,
        _ => 'A',
    };
    let segment: String = chars.iter().enumerate().map(|(i, c)| if i == middle { changed } else { *c }).collect();
    Some(format!("{}/{segment}", &cut[..at]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tampering_changes_one_character_of_the_last_segment() {
        assert_eq!(tamper("https://h/t/wado/abcde").as_deref(), Some("https://h/t/wado/abdde"));
        assert_eq!(tamper("https://h/t/wado/zz").as_deref(), Some("https://h/t/wado/za"));
        assert_eq!(tamper("https://h/t/wado/a-b").as_deref(), Some("https://h/t/wado/aAb"));
        assert_eq!(tamper("https://h"), None);
    }
}
