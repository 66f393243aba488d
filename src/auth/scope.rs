//! SMART scopes (App Launch 2.x §Scopes and Launch Context): parsed, never string-matched, and never read
//! more broadly than written: `{context}/{resource}.{permissions}`, v1 (`read`, `write`, `*`) and v2 (a
//! subsequence of `cruds`), the resource a type or `*`.
//!
//! For imaging, `patient/` scopes authorize an app in patient context (`grants`); `system/` scopes count only
//! for the backend clients a tenant lists (`grants_system`, docs/ehr.md, Backend Services); `user/` scopes
//! grant nothing here. A scope restricted by search parameters
//! (`?category=…`) is not enforced anywhere here, so it grants nothing rather than everything. The sandbox
//! EHR asks `allows` for each resource type it serves, in each context.

/// What a request needs from the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Reading known resources: `ImagingStudy/{id}` and DICOM retrieval (`r`).
    Read,
    /// Searching: `ImagingStudy?…` (`s`).
    Search,
}

/// Whose data a scope is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// `patient/`: the patient in context.
    Patient,
    /// `user/`: what the user may see.
    User,
    /// `system/`: a backend client.
    System,
}

impl Context {
    fn prefix(self) -> &'static str {
        match self {
            Context::Patient => "patient/",
            Context::User => "user/",
            Context::System => "system/",
        }
    }
}

/// Does any scope in the space-separated list grant `need` on ImagingStudy in patient context?
pub fn grants(scopes: &str, need: Need) -> bool {
    allows(scopes, Context::Patient, "ImagingStudy", need)
}

/// Does any scope in the space-separated list grant `need` on ImagingStudy in system context? Whether the
/// token's client may use them is the tenant's to say.
pub fn grants_system(scopes: &str, need: Need) -> bool {
    allows(scopes, Context::System, "ImagingStudy", need)
}

/// Does any scope in the space-separated list grant `need` on `resource` in `context`?
pub fn allows(scopes: &str, context: Context, resource: &str, need: Need) -> bool {
    scopes.split_ascii_whitespace().any(|s| scope_grants(s, context, resource, need))
}

fn scope_grants(scope: &str, context: Context, wanted_resource: &str, need: Need) -> bool {
    let Some(rest) = scope.strip_prefix(context.prefix()) else {
        return false;
    };
    let Some((resource, permissions)) = rest.split_once('.') else {
        return false;
    };
    if resource != wanted_resource && resource != "*" {
        return false;
    }
    let wanted = match need {
        Need::Read => 'r',
        Need::Search => 's',
    };
    match permissions {
        // SMART v1: `read` covers read and search; `*` covers everything.
        "read" | "*" => true,
        "write" => false,
        v2 => v2_permissions(v2).is_some_and(|p| p.contains(wanted)),
    }
}

/// SMART v2 permissions: a non-empty subsequence of `cruds`, in that order, without repeats.
fn v2_permissions(p: &str) -> Option<&str> {
    let mut order = "cruds".chars();
    let valid = !p.is_empty() && p.chars().all(|c| order.by_ref().any(|o| o == c));
    valid.then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(scope: &str, read: bool, search: bool) {
        assert_eq!(grants(scope, Need::Read), read, "{scope} for read");
        assert_eq!(grants(scope, Need::Search), search, "{scope} for search");
    }

    #[test]
    fn granted() {
        check("patient/ImagingStudy.rs", true, true);
        check("patient/ImagingStudy.read", true, true);
        check("patient/*.rs", true, true);
        check("patient/*.read", true, true);
        check("patient/*.*", true, true);
        check("patient/ImagingStudy.*", true, true);
        check("patient/ImagingStudy.cruds", true, true);
        check("patient/ImagingStudy.rus", true, true);
        check("patient/ImagingStudy.r", true, false);
        check("patient/ImagingStudy.s", false, true);
        check("launch/patient openid fhirUser patient/ImagingStudy.rs", true, true);
    }

    #[test]
    fn other_resources_and_contexts() {
        let (p, u, sys) = (Context::Patient, Context::User, Context::System);
        assert!(allows("patient/Condition.rs", p, "Condition", Need::Search));
        assert!(allows("patient/Condition.read", p, "Condition", Need::Read), "v1");
        assert!(allows("patient/*.read", p, "AllergyIntolerance", Need::Search), "v1 wildcard");
        assert!(allows("user/*.rs", u, "Observation", Need::Read));
        assert!(allows("system/Patient.rs", sys, "Patient", Need::Read));
        assert!(!allows("patient/Condition.rs", p, "Observation", Need::Read), "another resource");
        assert!(!allows("patient/Condition.rs", u, "Condition", Need::Read), "another context");
        assert!(!allows("patient/Observation.rs?category=vital-signs", p, "Observation", Need::Search));
        assert!(!allows("patient/Condition.r", p, "Condition", Need::Search));
    }

    #[test]
    fn refused_and_never_broadened() {
        for scope in [
            "patient/Observation.rs",
            "user/ImagingStudy.rs",
            "patient/ImagingStudy.c",
            "system/*.rs",
            "system/ImagingStudy.rs",
            "patient/ImagingStudy.rs?category=x",
            "patient/ImagingStudy.sr",
            "patient/ImagingStudy.rrs",
            "patient/ImagingStudy.rsx",
            "patient/ImagingStudy.",
            "patient/ImagingStudy.write",
            "patient/ImagingStudy",
            "patient/imagingstudy.rs",
            "Patient/ImagingStudy.rs",
            "patient/ImagingStudyX.rs",
            "",
            "openid fhirUser",
        ] {
            check(scope, false, false);
        }
    }

    #[test]
    fn system_scopes_are_read_apart() {
        for scope in ["system/ImagingStudy.rs", "system/*.rs", "system/*.read", "system/ImagingStudy.read"] {
            assert!(grants_system(scope, Need::Search) && grants_system(scope, Need::Read), "{scope}");
            assert!(!grants(scope, Need::Search) && !grants(scope, Need::Read), "{scope} in patient context");
        }
        let read_only = "system/ImagingStudy.r";
        assert!(grants_system(read_only, Need::Read) && !grants_system(read_only, Need::Search));
        for scope in
            ["patient/ImagingStudy.rs", "user/ImagingStudy.rs", "system/Patient.rs", "system/ImagingStudy.rs?x=1"]
        {
            assert!(!grants_system(scope, Need::Search), "{scope}");
        }
    }
}
