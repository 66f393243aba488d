//! The command line's help: the overview, and each command's usage, flags and an example, for
//! `smart-imaging help [COMMAND]` and `smart-imaging COMMAND --help`.
//!
//! Invariant: every command the command line runs has a page here, and every page names its flags.

pub const OVERVIEW: &str = "\
smart-imaging: SMART Imaging Access server (FHIR ImagingStudy + DICOMweb WADO-RS)

USAGE:
  smart-imaging [serve] [--config FILE] [--listen HOST:PORT] [--base-url URL] [--sandbox-listen HOST:PORT]
                [--pid-file FILE]
  smart-imaging reload [--pid-file FILE]
  smart-imaging index DIR [--out FILE] [--update] [--quiet]
  smart-imaging check [--config FILE] [--verbose]
  smart-imaging init DIR
  smart-imaging keygen [--out PREFIX]
  smart-imaging assertion --key FILE --client ID --aud TOKEN_URL
  smart-imaging probe BASE [--token T] [--other-patient-token T2] [--same-patient-token T3] [--patient ID]
                      [--sandbox-launch ISS] [--json]
  smart-imaging help [COMMAND]
  smart-imaging --help | --version

COMMANDS:
  serve      Serve the tenants of the configuration (the default command)
  reload     Have the running server read its configuration and index again (SIGHUP)
  index      Scan a folder of DICOM files and write the static index
  check      Validate the configuration and every file of its index, without serving
  init       Write a folder to serve one's own images from: configuration, dicom/, key, index
  keygen     Write a key pair for registering this server at an EHR
  assertion  Print a signed client assertion, to get a backend token by hand
  probe      Check a SMART Imaging Access server, this one or another, against the rules it must keep
  help       Print this overview, or a command's usage, flags and an example

`smart-imaging help COMMAND` or `smart-imaging COMMAND --help` says more about each.

The configuration is --config FILE, else $SMART_IMAGING_CONFIG, else ./smart-imaging.toml, else
/etc/smart-imaging/smart-imaging.toml.

ENVIRONMENT:
  SMART_IMAGING_CONFIG  The configuration file when --config is not given
  SMART_IMAGING_KEY     Secret for study tokens when server.key_file is not set
  RUST_LOG              Log filter (default: info; the HTTP client's logs stop at info)
  SOURCE_DATE_EPOCH     Fixed time for `index` to record as written
";

const SERVE: &str = "\
smart-imaging serve: serve the tenants of the configuration (the default command)

USAGE:
  smart-imaging [serve] [--config FILE] [--listen HOST:PORT] [--base-url URL] [--sandbox-listen HOST:PORT]
                [--pid-file FILE]

Prints `listening on http://ADDR` once bound, logs one line per request, and stops gracefully on SIGTERM or
SIGINT (in-flight requests get server.shutdown_timeout seconds to finish). With a [sandbox] section it first
starts the built-in sandbox EHR (for teaching and tests) and prints `sandbox listening on http://ADDR …`.

FLAGS:
  --config FILE              Configuration file [default: $SMART_IMAGING_CONFIG, else
                             ./smart-imaging.toml, else /etc/smart-imaging/smart-imaging.toml]
  --listen HOST:PORT         Address to listen on, overriding server.listen; port 0 picks a free port
  --base-url URL             Public URL for Endpoint addresses and links, overriding server.base_url.
                             With --listen and no --base-url, links follow the bound address.
  --sandbox-listen HOST:PORT Where the sandbox EHR listens, overriding sandbox.listen; port 0 picks a
                             free port, and its URL (and tenants' {sandbox}) follows the bound address
  --pid-file FILE            Write the process id to FILE once bound (removed at exit), for
                             `smart-imaging reload --pid-file FILE`
  -h, --help                 Print this help

EXAMPLE:
  smart-imaging serve --listen 0.0.0.0:8000 --base-url http://imaging.example.org:8000
";

const INDEX: &str = "\
smart-imaging index: scan a folder of DICOM files and write the static index

USAGE:
  smart-imaging index DIR [--out FILE] [--update] [--quiet]

Reads every regular file under DIR, only as far as its header. Files that are not DICOM or cannot be read
are reported one line each and skipped. Exits 0 when at least one file was indexed, else 1. A run holds
FILE.lock: a second run on the same index while one runs is refused (exit 2).

FLAGS:
  --out FILE    Where to write the index, in DIR or a folder above it [default: DIR/../index.toml]
  --update      Bring FILE up to date: keep the entries of files whose size and modification time are
                unchanged without reading them, read new and changed files, drop removed ones. A missing
                FILE is an empty index; an empty DIR is no failure. Writes nothing when nothing changed.
  -q, --quiet   Print only the files skipped: no progress, no summary
  -h, --help    Print this help

EXAMPLE:
  SOURCE_DATE_EPOCH=1764288000 smart-imaging index data/dicom
  smart-imaging index lab/dicom --out lab/index.toml --update
";

const CHECK: &str = "\
smart-imaging check: validate the configuration and every file of its index, without serving

USAGE:
  smart-imaging check [--config FILE] [--verbose]

Prints one line per file the index no longer describes (missing, unreadable, or another size or header) and
one summary line. Files whose modification time alone changed (as after a git clone) are counted in one
line and do not fail the check. Exits 0 when the configuration and every file are sound, 1 when a file is
missing or changed, 2 when the configuration or the index does not load.

FLAGS:
  --config FILE   Configuration file [default: $SMART_IMAGING_CONFIG, else ./smart-imaging.toml,
                  else /etc/smart-imaging/smart-imaging.toml]
  -v, --verbose   Also list each file whose modification time alone changed
  -h, --help      Print this help

EXAMPLE:
  smart-imaging check --config smart-imaging.toml
";

const KEYGEN: &str = "\
smart-imaging keygen: write a key pair for registering this server at an EHR

USAGE:
  smart-imaging keygen [--out PREFIX]

Writes a new ES384 key pair for a SMART Backend Services client: PREFIX.private.jwk.json (mode 0600; point
authorization.client.jwk at it) and PREFIX.public.jwk.json (register it at the EHR). Creates the folder of
PREFIX (mode 0700) when it is missing; never overwrites a file.

FLAGS:
  --out PREFIX   Where to write the pair [default: imaging-server]
  -h, --help     Print this help

EXAMPLE:
  smart-imaging keygen --out keys/imaging-server
";

const ASSERTION: &str = "\
smart-imaging assertion: print a signed client assertion, to get a backend token by hand

USAGE:
  smart-imaging assertion --key FILE --client ID --aud TOKEN_URL

Prints the JWT that a SMART Backend Services client sends as client_assertion with grant_type
client_credentials: signed with the private JWK in FILE (as keygen writes it), iss and sub the client ID, aud
the EHR's token endpoint, valid five minutes, a fresh jti (good for one token request).

FLAGS:
  --key FILE        The client's private key (PREFIX.private.jwk.json)
  --client ID       The client id the EHR knows the key by
  --aud TOKEN_URL   The token endpoint, exactly as the EHR's discovery names it
  -h, --help        Print this help

EXAMPLE:
  smart-imaging assertion --key data/sandbox/backend-demo.private.jwk.json --client backend-demo \\
    --aud http://127.0.0.1:8001/auth/token
";

const RELOAD: &str = "\
smart-imaging reload: have the running server read its configuration and index again

USAGE:
  smart-imaging reload [--pid-file FILE]

Sends SIGHUP to the server whose process id FILE holds (written by `serve --pid-file FILE`), after checking
that the process runs and is smart-imaging. The server reads the configuration file it was started with and
the index it names again, serves them together if both are sound and logs what changed; a broken one is
refused in one log line naming the key, and the old ones keep serving. Settings that need a restart (listen
addresses, threads, limits, [sandbox]) are named in the log and keep their running values. Under systemd,
`systemctl reload smart-imaging` does the same. Exits 2 when FILE is missing or stale.

FLAGS:
  --pid-file FILE   The server's pid file [default: ./smart-imaging.pid]
  -h, --help        Print this help

EXAMPLE:
  smart-imaging index lab/dicom --out lab/index.toml --update && smart-imaging reload --pid-file lab/smart-imaging.pid
";

const INIT: &str = "\
smart-imaging init: write a folder to serve one's own images from

USAGE:
  smart-imaging init DIR

Writes DIR/smart-imaging.toml (a mock tenant `lab` that sees every study, and a smart-on-fhir tenant to fill
in, commented; its paths are relative to DIR), DIR/study-token.key (mode 0600), DIR/dicom/ for the images,
and DIR/index.toml, the index of what DIR/dicom holds (nothing yet, or what was there). Makes DIR when it is
missing; never overwrites a file: when one of them exists, nothing is written.

FLAGS:
  -h, --help   Print this help

EXAMPLE:
  smart-imaging init ~/lab && cp -r /media/cd/DICOM ~/lab/dicom/cd-1 &&
  smart-imaging index ~/lab/dicom --out ~/lab/index.toml --update &&
  smart-imaging serve --config ~/lab/smart-imaging.toml
";

const PROBE: &str = "\
smart-imaging probe: check a SMART Imaging Access server, this one or another, against the rules it must keep

USAGE:
  smart-imaging probe BASE [--token T] [--other-patient-token T2] [--same-patient-token T3] [--patient ID]
                      [--sandbox-launch ISS] [--json]

BASE is an imaging FHIR base, such as http://localhost:8000/smart/fhir. The probe runs every check that
applies to what it was given and prints one line per check: PASS, FAIL (what it saw) or SKIP (why), each
with its name and the rule it comes from (SMART Imaging Access, SMART App Launch, FHIR R4, DICOM PS3.18 and
PS3.10, RFC 6750, the Fetch CORS protocol), then `N passed, N failed, N skipped`. It checks discovery and
metadata (no token needed); how tokens are refused; the ImagingStudy search (Bundle, profile, each study's
WADO-RS Endpoint, contained, response-local or included, _include, identifier, another patient refused); and
under each Endpoint address (first 5 studies) retrieval, Accept negotiation, metadata and what must be
refused. A server whose discovery says it takes any bearer token (a mock tenant) gets the token checks as
SKIP. No token is ever printed. Exits 1 when a check failed, 0 otherwise, 2 for a bad command line.

FLAGS:
  --token T                  An access token for the patient (the search and retrieval checks need one)
  --other-patient-token T2   A token of another patient: retrieval with it must be refused (403)
  --same-patient-token T3    Another token of the same patient: the first token's Endpoint addresses must
                             refuse it (401/403); --sandbox-launch gets one by a second launch
  --patient ID               The patient in context of the token [default: the launch's patient]
  --sandbox-launch ISS       Get the token by a SMART standalone launch (authorization code, PKCE S256)
                             at issuer ISS, which must approve without a person, as the sandbox EHR's
                             per-patient issuers {sandbox}/{patientId}/fhir do
  --json                     Print the same as one JSON document (checks with name, outcome, rule,
                             detail; and the summary)
  -h, --help                 Print this help

EXAMPLE:
  smart-imaging probe http://localhost:8000/smart/fhir --sandbox-launch http://localhost:8001/p1/fhir
";

const HELP: &str = "\
smart-imaging help: print the overview, or a command's usage, flags and an example

USAGE:
  smart-imaging help [COMMAND]

EXAMPLE:
  smart-imaging help check
";

/// The help page of `command`, or the overview for none; `None` for a command that does not exist.
pub fn page(command: Option<&str>) -> Option<&'static str> {
    match command {
        None => Some(OVERVIEW),
        Some("serve") => Some(SERVE),
        Some("index") => Some(INDEX),
        Some("check") => Some(CHECK),
        Some("init") => Some(INIT),
        Some("reload") => Some(RELOAD),
        Some("keygen") => Some(KEYGEN),
        Some("assertion") => Some(ASSERTION),
        Some("probe") => Some(PROBE),
        Some("help") => Some(HELP),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_a_page_with_its_usage_and_an_example() {
        for command in ["serve", "reload", "index", "check", "init", "keygen", "assertion", "probe", "help"] {
            let page = page(Some(command)).unwrap();
            assert!(page.starts_with(&format!("smart-imaging {command}:")), "{command}");
            assert!(page.contains("USAGE:") && page.contains("EXAMPLE:"), "{command}");
            assert!(OVERVIEW.contains(&format!("  {command} ")), "the overview lists {command}");
        }
        assert!(page(Some("serve")).unwrap().contains("--listen HOST:PORT"));
        assert!(page(Some("serve")).unwrap().contains("--sandbox-listen HOST:PORT"));
        assert!(page(Some("check")).unwrap().contains("--verbose"));
        for flag in ["--token T", "--other-patient-token T2", "--patient ID", "--sandbox-launch ISS", "--json"] {
            assert!(page(Some("probe")).unwrap().contains(flag), "{flag}");
        }
        assert!(page(Some("frobnicate")).is_none());
    }
}
