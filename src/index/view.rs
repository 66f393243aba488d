//! Studies, series and instances as the handlers see them: small copyable views into the index's tables,
//! each accessor reading one field of its row. Text is UTF-8, trimmed of DICOM padding; an absent
//! attribute is empty.
//!
//! Invariant: a view is made only by the index for a row it holds, so every position in one is in range.

use std::fmt;

use super::store::{Column, InstanceRow, SeriesRow, Store, StudyRow, unzigzag};
use crate::dicom::Uid;

/// One study, with what the index recorded of it.
#[derive(Clone, Copy)]
pub struct Study<'a> {
    store: &'a Store,
    at: u32,
    row: &'a StudyRow,
}

#[derive(Clone, Copy)]
pub struct Series<'a> {
    store: &'a Store,
    row: &'a SeriesRow,
}

#[derive(Clone, Copy)]
pub struct Instance<'a> {
    store: &'a Store,
    at: u32,
    row: &'a InstanceRow,
}

impl<'a> Study<'a> {
    pub(super) fn new(store: &'a Store, at: u32, row: &'a StudyRow) -> Study<'a> {
        Study { store, at, row }
    }

    pub(super) fn of(store: &'a Store, at: u32) -> Option<Study<'a>> {
        store.studies.get(at as usize).map(|row| Study::new(store, at, row))
    }

    /// Where the study stands in the index, for tables kept beside it.
    pub fn position(&self) -> usize {
        self.at as usize
    }

    pub fn uid(&self) -> &'a str {
        self.store.str(self.row.uid)
    }

    pub fn patient_id(&self) -> &'a str {
        self.store.sym(self.row.patient_id)
    }

    pub fn issuer_of_patient_id(&self) -> &'a str {
        self.store.sym(self.row.issuer_of_patient_id)
    }

    pub fn patient_name(&self) -> &'a str {
        self.store.sym(self.row.patient_name)
    }

    pub fn patient_birth_date(&self) -> &'a str {
        self.store.sym(self.row.patient_birth_date)
    }

    pub fn patient_sex(&self) -> &'a str {
        self.store.sym(self.row.patient_sex)
    }

    pub fn date(&self) -> &'a str {
        self.store.sym(self.row.date)
    }

    pub fn time(&self) -> &'a str {
        self.store.sym(self.row.time)
    }

    /// TimezoneOffsetFromUTC as `+hh:mm`, when the files carry a well-formed one.
    pub fn timezone_offset(&self) -> Option<&'a str> {
        self.row.timezone_offset.map(|sym| self.store.sym(sym))
    }

    pub fn accession_number(&self) -> &'a str {
        self.store.sym(self.row.accession_number)
    }

    pub fn description(&self) -> &'a str {
        self.store.sym(self.row.description)
    }

    pub fn referring_physician_name(&self) -> &'a str {
        self.store.sym(self.row.referring_physician_name)
    }

    pub fn modalities(&self) -> impl ExactSizeIterator<Item = &'a str> + use<'a> {
        let store = self.store;
        store.lists.get(self.row.modalities.range()).unwrap_or_default().iter().map(move |&sym| store.sym(sym))
    }

    pub fn series(&self) -> impl ExactSizeIterator<Item = Series<'a>> + use<'a> {
        let store = self.store;
        store.series.get(self.row.series.range()).unwrap_or_default().iter().map(move |row| Series { store, row })
    }

    /// Every instance of the study, series after series.
    pub fn instances(&self) -> impl ExactSizeIterator<Item = Instance<'a>> + use<'a> {
        instances(self.store, self.row.instances.range())
    }

    pub fn instance_count(&self) -> usize {
        self.row.instances.range().len()
    }

    pub fn find_series(&self, uid: Uid) -> Option<Series<'a>> {
        self.series().find(|s| s.uid() == uid.as_str())
    }

    /// The series of this study that holds `inst`; `None` for an instance of another study.
    pub fn series_of(&self, inst: &Instance) -> Option<Series<'a>> {
        self.series().find(|s| s.row.instances.range().contains(&(inst.at as usize)))
    }
}

fn instances(store: &Store, rows: std::ops::Range<usize>) -> impl ExactSizeIterator<Item = Instance<'_>> {
    let start = rows.start as u32;
    let rows = store.instances.get(rows).unwrap_or_default();
    rows.iter().enumerate().map(move |(n, row)| Instance { store, at: start + n as u32, row })
}

impl<'a> Series<'a> {
    pub fn uid(&self) -> &'a str {
        self.store.str(self.row.uid)
    }

    pub fn number(&self) -> Option<i64> {
        self.row.number
    }

    pub fn modality(&self) -> &'a str {
        self.store.sym(self.row.modality)
    }

    pub fn description(&self) -> &'a str {
        self.store.sym(self.row.description)
    }

    pub fn instances(&self) -> impl ExactSizeIterator<Item = Instance<'a>> + use<'a> {
        instances(self.store, self.row.instances.range())
    }

    pub fn instance_count(&self) -> usize {
        self.row.instances.range().len()
    }

    pub fn find_instance(&self, uid: Uid) -> Option<Instance<'a>> {
        self.instances().find(|i| i.uid() == uid.as_str())
    }
}

impl<'a> Instance<'a> {
    pub fn uid(&self) -> &'a str {
        self.store.instance_text(self.at as usize, self.row).0
    }

    /// The file name, after the last `/` of the path.
    fn file_name(&self) -> &'a str {
        self.store.instance_text(self.at as usize, self.row).1
    }

    pub fn sop_class(&self) -> &'a str {
        self.store.sym(self.row.sop_class)
    }

    pub fn transfer_syntax(&self) -> &'a str {
        self.store.sym(self.row.transfer_syntax)
    }

    /// Path relative to the folder of the index file, with `/` separators, checked to stay inside it.
    pub fn path(&self) -> String {
        match self.store.sym(self.row.dir) {
            "" => self.file_name().to_string(),
            dir => format!("{dir}/{}", self.file_name()),
        }
    }

    pub fn number(&self) -> Option<i64> {
        self.number_of(self.row.number, Column::Number).map(unzigzag)
    }

    pub fn frames(&self) -> Option<u32> {
        self.number_of(self.row.frames, Column::Frames).and_then(|n| u32::try_from(n).ok())
    }

    pub fn size(&self) -> u64 {
        self.number_of(self.row.size, Column::Size).unwrap_or_default()
    }

    /// Modification time in whole seconds since the Unix epoch, when the file was indexed; 0 when unknown.
    pub fn mtime(&self) -> u64 {
        self.number_of(self.row.mtime, Column::Mtime).unwrap_or_default()
    }

    pub fn pixel_data_offset(&self) -> Option<u64> {
        self.number_of(self.row.pixel_data_offset, Column::PixelDataOffset)
    }

    fn number_of(&self, code: u32, column: Column) -> Option<u64> {
        self.store.widen(code, self.at as usize, column)
    }
}

impl fmt::Debug for Study<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Study({})", self.uid())
    }
}

impl fmt::Debug for Series<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Series({})", self.uid())
    }
}

impl fmt::Debug for Instance<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Instance({}, {})", self.uid(), self.path())
    }
}
