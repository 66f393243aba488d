//! The repository under test: its paths, its sample index read with the harness's own types, temporary
//! folders and configuration text.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Deserialize;

// ---------------------------------------------------------------------------------------------------
// Paths of the repository under test.

/// The root of the crate under test, wherever it is checked out.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The repository's own configuration, with the tenants `open` and `demo`.
pub fn sample_config() -> PathBuf {
    repo().join("smart-imaging.toml")
}

/// The folder of the sample data; the sample index's instance paths are relative to it.
pub fn data_dir() -> PathBuf {
    repo().join("data")
}

/// The sample index: 3 studies of 2 patients.
pub fn sample_index_path() -> PathBuf {
    data_dir().join("index.toml")
}

/// The section of a page of the documentation (`docs/operations.md`, say) under `heading` (`## Security`),
/// up to the next heading of its level or above (a `#` line in a fenced block is no heading).
pub fn doc_section(page: &str, heading: &str) -> String {
    let text = std::fs::read_to_string(repo().join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
    let level = heading.split(' ').next().unwrap_or_default().len();
    let start = text.lines().position(|l| l == heading).unwrap_or_else(|| panic!("{page} has no {heading:?}"));
    let mut section = vec![heading];
    let mut fenced = false;
    for line in text.lines().skip(start + 1) {
        fenced ^= line.trim_start().starts_with("```");
        let hashes = line.bytes().take_while(|b| *b == b'#').count();
        if !fenced && (1..=level).contains(&hashes) && line[hashes..].starts_with(' ') {
            break;
        }
        section.push(line);
    }
    section.join("\n")
}

// ---------------------------------------------------------------------------------------------------
// The sample index, read with its own small types so that the tests do not trust the server's reading.

#[derive(Debug, Deserialize)]
pub struct IndexFile {
    pub written: String,
    #[serde(default, rename = "study")]
    pub studies: Vec<IndexStudy>,
}

#[derive(Debug, Deserialize)]
pub struct IndexStudy {
    pub uid: String,
    pub patient_id: String,
    #[serde(default)]
    pub patient_name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub referring_physician_name: String,
    #[serde(default)]
    pub modalities: Vec<String>,
    #[serde(default)]
    pub series: Vec<IndexSeries>,
}

#[derive(Debug, Deserialize)]
pub struct IndexSeries {
    pub uid: String,
    pub number: Option<i64>,
    #[serde(default)]
    pub modality: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, rename = "instance")]
    pub instances: Vec<IndexInstance>,
}

#[derive(Debug, Deserialize)]
pub struct IndexInstance {
    pub uid: String,
    pub sop_class: String,
    pub number: Option<i64>,
    pub transfer_syntax: String,
    pub path: String,
    pub size: u64,
}

impl IndexFile {
    pub fn load(path: &Path) -> IndexFile {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        toml::from_str(&text).unwrap_or_else(|e| panic!("{} is not an index: {e}", path.display()))
    }

    pub fn sample() -> IndexFile {
        IndexFile::load(&sample_index_path())
    }

    pub fn study(&self, uid: &str) -> &IndexStudy {
        self.studies.iter().find(|s| s.uid == uid).unwrap_or_else(|| panic!("study {uid} is not in the index"))
    }

    pub fn studies_of(&self, patient_id: &str) -> Vec<&IndexStudy> {
        self.studies.iter().filter(|s| s.patient_id == patient_id).collect()
    }

    pub fn uids(&self) -> Vec<String> {
        sorted(self.studies.iter().map(|s| s.uid.clone()))
    }

    pub fn instance_count(&self) -> usize {
        self.studies.iter().map(IndexStudy::instance_count).sum()
    }
}

impl IndexStudy {
    /// Every instance, in index order (series by series).
    pub fn instances(&self) -> Vec<&IndexInstance> {
        self.series.iter().flat_map(|s| &s.instances).collect()
    }

    pub fn instance_count(&self) -> usize {
        self.series.iter().map(|s| s.instances.len()).sum()
    }
}

impl IndexInstance {
    /// The bytes of the sample file this instance names.
    pub fn file_bytes(&self) -> Vec<u8> {
        let path = data_dir().join(&self.path);
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read sample file {}: {e}", path.display()))
    }
}

pub fn sorted(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = items.into_iter().collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------------------
// Temporary folders, without the tempfile crate.

static TEMP_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh folder under the system temp dir, unique per process and per call; removed on drop unless the
/// test failed, in which case it is kept and named for inspection.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("smart-imaging-it-{}-{n}-{label}", std::process::id()));
        if path.exists() {
            let _ = std::fs::remove_dir_all(&path);
        }
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a file (creating its folders) and returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
        }
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// Writes `smart-imaging.toml` with `[images] index` set to the absolute path of the sample index,
    /// followed by `tables` (the `[server]` and `[tenants.*]` tables of the test).
    pub fn config(&self, tables: &str) -> PathBuf {
        self.write("smart-imaging.toml", config_text(tables))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- kept {} for inspection", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A whole configuration: the sample index, then the given tables.
pub fn config_text(tables: &str) -> String {
    let index = toml_string(&sample_index_path().to_string_lossy());
    format!("[images]\nindex = {index}\n\n{tables}")
}

/// A TOML basic string holding `s`, escaped as TOML wants it.
pub fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}
