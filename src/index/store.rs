//! How the index is held in memory: tables of fixed-size rows over two texts, built one table of the layout
//! at a time by `Builder`, so that reading an index never holds its whole text nor a tree of its strings.
//!
//! A study is a row of its text fields (interned: PatientIDs, names and descriptions repeat across studies)
//! and the ranges of its series and instances; a series likewise. PatientBirthDate and PatientSex are held
//! as symbols too (a handful of distinct values across thousands of studies), for the study-level QIDO-RS
//! answer; the layout's study_id is read and checked like the rest but not held: no answer uses it. An
//! instance is 40 bytes: where its UID and file name start in `files` (the two back to back, the file name
//! ending where the next instance's UID starts), its directory, SOP class and transfer syntax as interned
//! symbols, and five numbers of 32 bits each. A number that does not fit (a file of 4 GiB or more, an
//! InstanceNumber beyond ±2^31) is kept in `wide` instead, so every value stays exact.
//!
//! Invariants: every value is validated and normalised here once (paths checked to stay inside the index's
//! folder, offsets in one form), in the order of the layout, and the first failure is the one reported, as
//! it was when the whole file was converted at once; a span always lies on character boundaries of its
//! text, because whole strings are pushed; rows of a study's series and of a series' instances are
//! contiguous.

use std::collections::{HashMap, HashSet};

use super::file;
use crate::time::normalise_offset;

/// Where a string lies in one of the store's texts.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Span {
    start: u32,
    len: u32,
}

/// An interned string: its position in `Store::syms`.
pub type Sym = u32;

/// Rows from `start` to `end` (exclusive) of the next table down.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rows {
    pub start: u32,
    pub end: u32,
}

impl Rows {
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

#[derive(Debug, Default, PartialEq)]
pub struct StudyRow {
    pub uid: Span,
    pub patient_id: Sym,
    pub issuer_of_patient_id: Sym,
    pub patient_name: Sym,
    pub patient_birth_date: Sym,
    pub patient_sex: Sym,
    pub date: Sym,
    pub time: Sym,
    /// Normalised to `+hh:mm`, when the files carry a well-formed one.
    pub timezone_offset: Option<Sym>,
    pub accession_number: Sym,
    pub description: Sym,
    pub referring_physician_name: Sym,
    /// Rows of `Store::lists`.
    pub modalities: Rows,
    pub series: Rows,
    pub instances: Rows,
}

#[derive(Debug, Default, PartialEq)]
pub struct SeriesRow {
    pub uid: Span,
    pub number: Option<i64>,
    pub modality: Sym,
    pub description: Sym,
    pub instances: Rows,
}

/// One instance in 40 bytes; the numbers are `narrow` codes.
#[derive(Debug, Default, PartialEq)]
pub struct InstanceRow {
    /// Where the UID starts in `Store::files`; the file name follows it.
    pub text: u32,
    pub uid_len: u32,
    /// The path up to its last `/` (empty for a file beside the index).
    pub dir: Sym,
    pub sop_class: Sym,
    pub transfer_syntax: Sym,
    pub size: u32,
    pub mtime: u32,
    pub pixel_data_offset: u32,
    /// Zigzag-coded, so that negative numbers stay small.
    pub number: u32,
    pub frames: u32,
}

/// The instance numbers that `narrow` codes, naming their entries in `Store::wide`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    Size,
    Mtime,
    PixelDataOffset,
    Number,
    Frames,
}

/// The code of a number that is kept in `Store::wide`.
const WIDE: u32 = u32::MAX;

#[derive(Debug, Default, PartialEq)]
pub struct Store {
    /// Study and series UIDs and every interned string, back to back.
    pub text: String,
    /// Each instance's UID then its file name, in instance order.
    pub files: String,
    pub syms: Vec<Span>,
    /// The modalities of every study, one after the other.
    pub lists: Vec<Sym>,
    pub studies: Vec<StudyRow>,
    pub series: Vec<SeriesRow>,
    pub instances: Vec<InstanceRow>,
    /// The instance numbers that do not fit in 32 bits, by row and column.
    pub wide: HashMap<(u32, Column), u64>,
    /// Study positions sorted by StudyInstanceUID, and by PatientID (then position).
    pub by_uid: Vec<u32>,
    pub by_patient: Vec<u32>,
}

impl Store {
    pub fn str(&self, span: Span) -> &str {
        text_at(&self.text, span.start as usize, span.len as usize)
    }

    pub fn sym(&self, sym: Sym) -> &str {
        self.syms.get(sym as usize).map_or("", |&span| self.str(span))
    }

    /// An instance's UID and its file name.
    pub fn instance_text(&self, at: usize, row: &InstanceRow) -> (&str, &str) {
        let end = self.instances.get(at + 1).map_or(self.files.len(), |next| next.text as usize);
        let start = row.text as usize;
        let uid_end = start + row.uid_len as usize;
        (text_at(&self.files, start, row.uid_len as usize), self.files.get(uid_end..end).unwrap_or_default())
    }

    /// The number behind a `narrow` code of instance `at`.
    pub fn widen(&self, code: u32, at: usize, column: Column) -> Option<u64> {
        match code {
            0 => None,
            WIDE => u32::try_from(at).ok().and_then(|at| self.wide.get(&(at, column)).copied()),
            c => Some(u64::from(c - 1)),
        }
    }
}

fn text_at(text: &str, start: usize, len: usize) -> &str {
    text.get(start..start + len).unwrap_or_default()
}

/// A number in 32 bits: 0 for none, the value plus one when it fits, else `WIDE` with the value in `wide`.
fn narrow(value: Option<u64>, key: (u32, Column), wide: &mut HashMap<(u32, Column), u64>) -> u32 {
    match value {
        None => 0,
        Some(v) if v < u64::from(WIDE - 1) => v as u32 + 1,
        Some(v) => {
            wide.insert(key, v);
            WIDE
        }
    }
}

pub fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

pub fn unzigzag(z: u64) -> i64 {
    (z >> 1) as i64 ^ -((z & 1) as i64)
}

/// Builds a `Store` from the tables of the layout, handed over in file order: a study, then each of its
/// series, each followed by its instances. After the first invalid value it only records that value.
#[derive(Debug, Default)]
pub struct Builder {
    store: Store,
    interned: HashMap<Box<str>, Sym>,
    /// The symbol each instance column interned last: neighbouring instances mostly share theirs.
    last: [Option<Sym>; 3],
    study_uids: HashSet<Box<str>>,
    error: Option<String>,
}

impl file::Tables for Builder {
    fn study(&mut self, s: &file::Study) {
        Builder::study(self, s);
    }

    fn series(&mut self, se: &file::Series) {
        Builder::series(self, se);
    }

    fn instance(&mut self, i: &file::Instance) {
        Builder::instance(self, i);
    }
}

impl Builder {
    pub fn study(&mut self, s: &file::Study) {
        if self.error.is_some() {
            return;
        }
        if !self.study_uids.insert(s.uid.as_str().into()) {
            self.error = Some(format!("study {} appears twice", s.uid));
            return;
        }
        let Some(uid) = self.push_text(&s.uid) else { return };
        let start = self.store.lists.len() as u32;
        for m in &s.modalities {
            let sym = self.intern(m);
            self.store.lists.push(sym);
        }
        let modalities = Rows { start, end: self.store.lists.len() as u32 };
        let series = self.store.series.len() as u32;
        let instances = self.store.instances.len() as u32;
        let row = StudyRow {
            uid,
            patient_id: self.intern(&s.patient_id),
            issuer_of_patient_id: self.intern(&s.issuer_of_patient_id),
            patient_name: self.intern(&s.patient_name),
            patient_birth_date: self.intern(&s.patient_birth_date),
            patient_sex: self.intern(&s.patient_sex),
            date: self.intern(&s.date),
            time: self.intern(&s.time),
            timezone_offset: normalise_offset(&s.timezone_offset).map(|tz| self.intern(&tz)),
            accession_number: self.intern(&s.accession_number),
            description: self.intern(&s.description),
            referring_physician_name: self.intern(&s.referring_physician_name),
            modalities,
            series: Rows { start: series, end: series },
            instances: Rows { start: instances, end: instances },
        };
        self.store.studies.push(row);
    }

    /// A series of the study handed over last.
    pub fn series(&mut self, se: &file::Series) {
        if self.error.is_some() || self.store.studies.is_empty() {
            return;
        }
        let Some(uid) = self.push_text(&se.uid) else { return };
        let instances = self.store.instances.len() as u32;
        let row = SeriesRow {
            uid,
            number: se.number,
            modality: self.intern(&se.modality),
            description: self.intern(&se.description),
            instances: Rows { start: instances, end: instances },
        };
        self.store.series.push(row);
        if let Some(study) = self.store.studies.last_mut() {
            study.series.end += 1;
        }
    }

    /// An instance of the series handed over last.
    pub fn instance(&mut self, i: &file::Instance) {
        if self.error.is_some() || self.store.series.is_empty() {
            return;
        }
        if !is_safe_relative(&i.path) {
            self.error = Some(format!("instance {} has an unsafe path {:?}", i.uid, i.path));
            return;
        }
        let (dir, name) = i.path.rsplit_once('/').unwrap_or(("", &i.path));
        let (Ok(at), Ok(text), Ok(uid_len)) = (
            u32::try_from(self.store.instances.len()),
            u32::try_from(self.store.files.len()),
            u32::try_from(i.uid.len()),
        ) else {
            return self.too_large();
        };
        if self.store.files.len() + i.uid.len() + name.len() > u32::MAX as usize {
            return self.too_large();
        }
        self.store.files.push_str(&i.uid);
        self.store.files.push_str(name);
        let wide = &mut self.store.wide;
        let row = InstanceRow {
            text,
            uid_len,
            size: narrow(Some(i.size), (at, Column::Size), wide),
            mtime: narrow(Some(i.mtime), (at, Column::Mtime), wide),
            pixel_data_offset: narrow(i.pixel_data_offset, (at, Column::PixelDataOffset), wide),
            number: narrow(i.number.map(zigzag), (at, Column::Number), wide),
            frames: narrow(i.frames.map(u64::from), (at, Column::Frames), wide),
            dir: self.intern_column(0, dir),
            sop_class: self.intern_column(1, &i.sop_class),
            transfer_syntax: self.intern_column(2, &i.transfer_syntax),
        };
        self.store.instances.push(row);
        if let Some(series) = self.store.series.last_mut() {
            series.instances.end += 1;
        }
        if let Some(study) = self.store.studies.last_mut() {
            study.instances.end += 1;
        }
    }

    /// The store, or the first invalid value met.
    pub fn finish(self) -> Result<Store, String> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let mut store = self.store;
        let mut by_uid: Vec<u32> = (0..store.studies.len() as u32).collect();
        by_uid.sort_unstable_by(|&a, &b| store.study_uid(a).cmp(store.study_uid(b)));
        let mut by_patient: Vec<u32> = (0..store.studies.len() as u32).collect();
        // Stable: a patient's studies stay in index order.
        by_patient.sort_by(|&a, &b| store.patient_id(a).cmp(store.patient_id(b)));
        store.by_uid = by_uid;
        store.by_patient = by_patient;
        for text in [&mut store.text, &mut store.files] {
            text.shrink_to_fit();
        }
        store.syms.shrink_to_fit();
        store.lists.shrink_to_fit();
        store.studies.shrink_to_fit();
        store.series.shrink_to_fit();
        store.instances.shrink_to_fit();
        Ok(store)
    }

    fn too_large(&mut self) {
        self.error = Some("the index is too large: it holds more than 4 GiB of UIDs and file names".into());
    }

    fn push_text(&mut self, s: &str) -> Option<Span> {
        let (Ok(start), Ok(len)) = (u32::try_from(self.store.text.len()), u32::try_from(s.len())) else {
            self.too_large();
            return None;
        };
        if start.checked_add(len).is_none() {
            self.too_large();
            return None;
        }
        self.store.text.push_str(s);
        Some(Span { start, len })
    }

    fn intern(&mut self, s: &str) -> Sym {
        if let Some(&sym) = self.interned.get(s) {
            return sym;
        }
        let sym = self.store.syms.len() as Sym;
        let span = self.push_text(s).unwrap_or_default();
        self.store.syms.push(span);
        self.interned.insert(s.into(), sym);
        sym
    }

    /// `intern`, first trying the symbol the same column took last.
    fn intern_column(&mut self, column: usize, s: &str) -> Sym {
        if let Some(sym) = self.last[column].filter(|&sym| self.store.sym(sym) == s) {
            return sym;
        }
        let sym = self.intern(s);
        self.last[column] = Some(sym);
        sym
    }
}

impl Store {
    fn study_uid(&self, at: u32) -> &str {
        self.studies.get(at as usize).map_or("", |row| self.str(row.uid))
    }

    pub fn patient_id(&self, at: u32) -> &str {
        self.studies.get(at as usize).map_or("", |row| self.sym(row.patient_id))
    }

    /// The position of the study with this UID.
    pub fn find_study(&self, uid: &str) -> Option<u32> {
        let at = self.by_uid.partition_point(|&s| self.study_uid(s) < uid);
        self.by_uid.get(at).copied().filter(|&s| self.study_uid(s) == uid)
    }

    /// The positions of the studies whose PatientID is `id`, in index order.
    pub fn studies_of_patient(&self, id: &str) -> &[u32] {
        let start = self.by_patient.partition_point(|&s| self.patient_id(s) < id);
        let len = self.by_patient[start..].partition_point(|&s| self.patient_id(s) == id);
        &self.by_patient[start..start + len]
    }
}

/// A path the index may name: relative, `/`-separated, without `..` or empty segments, so that an index
/// file cannot point the server outside its own folder.
pub fn is_safe_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\\')
        && !path.contains('\0')
        && path.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_through_their_codes() {
        let mut wide = HashMap::new();
        let values =
            [None, Some(0), Some(1), Some(u64::from(u32::MAX) - 2), Some(u64::from(u32::MAX) - 1), Some(u64::MAX)];
        for (at, v) in values.into_iter().enumerate() {
            let code = narrow(v, (at as u32, Column::Size), &mut wide);
            let store = Store { wide: wide.clone(), ..Store::default() };
            assert_eq!(store.widen(code, at, Column::Size), v, "{v:?} as {code}");
        }
        assert_eq!(wide.len(), 2, "only the values that do not fit are kept aside");
        for n in [0, 1, -1, 7, -7, i64::MAX, i64::MIN, i64::from(i32::MIN)] {
            assert_eq!(unzigzag(zigzag(n)), n);
        }
        assert!(zigzag(-3) < 8, "small negative numbers stay small");
    }

    #[test]
    fn safe_relative_paths() {
        assert!(is_safe_relative("a/b/c.dcm"));
        assert!(is_safe_relative("dicom/1.dcm"));
        assert!(!is_safe_relative("/etc/passwd"));
        assert!(!is_safe_relative("../secret.dcm"));
        assert!(!is_safe_relative("a/../../b"));
        assert!(!is_safe_relative("a//b"));
        assert!(!is_safe_relative("a\\b"));
        assert!(!is_safe_relative(""));
    }
}
