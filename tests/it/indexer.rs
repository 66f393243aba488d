//! Tests of `smart-imaging index` and `smart-imaging check` (docs/operations.md, Command line; docs/index.md) on
//! folders that mix good files with truncated, duplicate, empty, non-DICOM, deflated and bare files, as real
//! archives do. They run the real binary and read what it printed and the index it wrote.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::harness::*;

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
const DEFLATED: &str = "1.2.840.10008.1.2.1.99";

/// An index's instances with the fields these tests look at, read as plain TOML so that the tests do not
/// trust the server's own types.
#[derive(Debug)]
struct Indexed {
    study: String,
    series: String,
    uid: String,
    transfer_syntax: String,
    path: String,
    size: i64,
    pixel_data_offset: Option<i64>,
}

fn load_index(path: &Path) -> (toml::Table, Vec<Indexed>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let table: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut instances = Vec::new();
    let list = |v: &toml::Value, key: &str| v.get(key).and_then(toml::Value::as_array).cloned().unwrap_or_default();
    let text = |v: &toml::Value, key: &str| v.get(key).and_then(toml::Value::as_str).unwrap_or_default().to_string();
    for study in list(&toml::Value::Table(table.clone()), "study") {
        for series in list(&study, "series") {
            for inst in list(&series, "instance") {
                instances.push(Indexed {
                    study: text(&study, "uid"),
                    series: text(&series, "uid"),
                    uid: text(&inst, "uid"),
                    transfer_syntax: text(&inst, "transfer_syntax"),
                    path: text(&inst, "path"),
                    size: inst.get("size").and_then(toml::Value::as_integer).unwrap_or(-1),
                    pixel_data_offset: inst.get("pixel_data_offset").and_then(toml::Value::as_integer),
                });
            }
        }
    }
    (table, instances)
}

/// One sample instance as the sample index records it.
#[derive(Debug, Clone)]
struct Sample {
    study: String,
    series: String,
    uid: String,
    transfer_syntax: String,
    path: String,
    size: u64,
}

impl Sample {
    fn bytes(&self) -> Vec<u8> {
        let path = data_dir().join(&self.path);
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read sample file {}: {e}", path.display()))
    }
}

/// The sample instances of the series whose first file is at `first_path`, in index order.
fn sample_series(index: &IndexFile, first_path: &str) -> Vec<Sample> {
    for study in &index.studies {
        for series in &study.series {
            if series.instances.first().is_some_and(|i| i.path == first_path) {
                let sample = |i: &IndexInstance| Sample {
                    study: study.uid.clone(),
                    series: series.uid.clone(),
                    uid: i.uid.clone(),
                    transfer_syntax: i.transfer_syntax.clone(),
                    path: i.path.clone(),
                    size: i.size,
                };
                return series.instances.iter().map(sample).collect();
            }
        }
    }
    panic!("no sample series starts with {first_path}");
}

/// One File Meta Information element: element number (its group is 0002), VR, value.
type MetaElement = (u16, [u8; 2], Vec<u8>);

/// The File Meta Information elements of a Part 10 file, and where its data set starts. The meta group is
/// explicit VR little endian (PS3.10 §7.1).
fn split_part10(file: &[u8]) -> (Vec<MetaElement>, usize) {
    assert_eq!(&file[128..132], b"DICM", "a Part 10 file");
    let mut pos = 132;
    let mut meta = Vec::new();
    while file[pos..pos + 2] == [0x02, 0x00] {
        let element = u16::from_le_bytes([file[pos + 2], file[pos + 3]]);
        let vr = [file[pos + 4], file[pos + 5]];
        let (length, header) = if [*b"OB", *b"OW", *b"SQ", *b"UN", *b"UT"].contains(&vr) {
            (u32::from_le_bytes(file[pos + 8..pos + 12].try_into().unwrap()) as usize, 12)
        } else {
            (u16::from_le_bytes([file[pos + 6], file[pos + 7]]) as usize, 8)
        };
        meta.push((element, vr, file[pos + header..pos + header + length].to_vec()));
        pos += header + length;
    }
    (meta, pos)
}

/// A Part 10 file whose data set is `sample`'s, deflated (PS3.5 §A.5: raw deflate, no zlib header),
/// and whose meta group names the Deflated Explicit VR Little Endian transfer syntax, with (0002,0000)
/// File Meta Information Group Length recomputed for the longer UID.
fn deflated_copy(sample: &[u8]) -> Vec<u8> {
    let (meta, data_set_start) = split_part10(sample);
    let mut group = Vec::new();
    for (element, vr, mut value) in meta {
        match element {
            0x0000 => continue,
            0x0010 => value = b"1.2.840.10008.1.2.1.99\0".to_vec(), // 22 characters and a NUL pad
            _ => {}
        }
        group.extend_from_slice(&[0x02, 0x00]);
        group.extend_from_slice(&element.to_le_bytes());
        group.extend_from_slice(&vr);
        if vr == *b"OB" {
            group.extend_from_slice(&[0, 0]);
            group.extend_from_slice(&(value.len() as u32).to_le_bytes());
        } else {
            group.extend_from_slice(&(value.len() as u16).to_le_bytes());
        }
        group.extend_from_slice(&value);
    }
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&sample[data_set_start..]).unwrap();
    let deflated = encoder.finish().unwrap();
    let mut file = vec![0; 128];
    file.extend_from_slice(b"DICM");
    file.extend_from_slice(&[0x02, 0x00, 0x00, 0x00, b'U', b'L', 4, 0]); // (0002,0000) UL len 4
    file.extend_from_slice(&(group.len() as u32).to_le_bytes());
    file.extend_from_slice(&group);
    file.extend_from_slice(&deflated);
    file
}

/// What the mixed folder holds, to check the run against.
struct Mixed {
    dir: TempDir,
    /// Every file that must be indexed as it is, and the sample it copies.
    good: Vec<(PathBuf, Sample)>,
    /// Every file that must be skipped, and what its report line must say.
    bad: Vec<(PathBuf, String)>,
    /// The duplicate and the file it duplicates.
    duplicate: (PathBuf, PathBuf),
    deflated: (PathBuf, Sample),
    /// The bare data set, its sample, and how many bytes were cut from the sample's start.
    bare: (PathBuf, Sample, u64),
}

fn canonical(path: PathBuf) -> PathBuf {
    path.canonicalize().unwrap_or(path)
}

fn mixed_folder(label: &str) -> Mixed {
    let dir = TempDir::new(label);
    let index = IndexFile::sample();
    let mut good = Vec::new();
    let mut copy = |name: String, sample: &Sample| {
        let path = canonical(dir.write(&name, sample.bytes()));
        good.push((path, sample.clone()));
    };
    let ct1 = sample_series(&index, "dicom/mrn-1001/ct-chest/series-1/001.dcm");
    let ct2 = sample_series(&index, "dicom/mrn-1001/ct-chest/series-2/001.dcm");
    let mr_implicit = sample_series(&index, "dicom/mrn-1001/mr-brain/series-1/001.dcm");
    let mr_explicit = sample_series(&index, "dicom/mrn-1001/mr-brain/series-2/001.dcm");
    let big_endian = sample_series(&index, "dicom/mrn-2002/ct-abdomen/series-1/001.dcm");
    let multi_frame = sample_series(&index, "dicom/mrn-2002/ct-abdomen/series-2/001.dcm");
    for (i, sample) in ct1.iter().enumerate() {
        copy(format!("dicom/ct/series-1/{i:03}.dcm"), sample);
    }
    for (i, sample) in ct2.iter().take(3).enumerate() {
        copy(format!("dicom/ct/series-2/{i:03}.dcm"), sample);
    }
    for (i, sample) in big_endian.iter().enumerate() {
        copy(format!("dicom/big-endian/{i:03}"), sample); // no extension: found all the same
    }
    copy("dicom/sc/multi-frame.dcm".into(), &multi_frame[0]);
    for (i, sample) in mr_implicit.iter().skip(1).enumerate() {
        copy(format!("dicom/mr/implicit-{i}.dcm"), sample);
    }

    // A bare implicit VR data set: the first implicit MR file without preamble and meta group.
    let bytes = mr_implicit[0].bytes();
    let (_, data_set_start) = split_part10(&bytes);
    let bare_path = canonical(dir.write("dicom/mr/bare-data-set.raw", &bytes[data_set_start..]));
    let bare = (bare_path, mr_implicit[0].clone(), data_set_start as u64);

    // A deflated copy of the first explicit VR MR file.
    let deflated_path = canonical(dir.write("dicom/mr/deflated.dcm", deflated_copy(&mr_explicit[0].bytes())));
    let deflated = (deflated_path, mr_explicit[0].clone());

    // A second copy of the first CT file, later in path order than the first.
    let duplicate = canonical(dir.write("dicom/zz-copies/copy-of-ct.dcm", ct1[0].bytes()));
    let original = good[0].0.clone();

    let ct_truncated_in_header = ct2[3].bytes();
    let ct_truncated_in_pixels = ct2[4].bytes();
    let bad = vec![
        (dir.write("dicom/bad/header-cut.dcm", &ct_truncated_in_header[..700]), "truncated in element".into()),
        (
            dir.write("dicom/bad/pixels-cut.dcm", &ct_truncated_in_pixels[..ct_truncated_in_pixels.len() - 100]),
            "truncated in element (7FE0,0010)".into(),
        ),
        (dir.write("dicom/notes.txt", "Scanned on the new CT; see the PACS for priors.\n"), "not DICOM".into()),
        (dir.write("dicom/empty.dcm", ""), "not DICOM: the file is empty".into()),
    ];
    let bad = bad.into_iter().map(|(path, why)| (canonical(path), why)).collect();
    Mixed { dir, good, bad, duplicate: (duplicate, original), deflated, bare }
}

/// The lines of `stderr` that report a file under `dir`.
fn file_lines<'a>(stderr: &'a str, dir: &Path) -> Vec<&'a str> {
    let prefix = canonical(dir.to_path_buf()).display().to_string();
    stderr.lines().filter(|l| l.starts_with(&prefix)).collect()
}

#[test]
fn index_reports_each_bad_file_once_and_indexes_the_rest() {
    let mixed = mixed_folder("index-mixed");
    let run = run_cli(&[OsString::from("index"), mixed.dir.path().join("dicom").into()], mixed.dir.path());
    assert_eq!(run.code(), Some(0), "exit status with files indexed\n{run}");

    // One line per bad file, naming it and what is wrong, and one for the duplicate: nothing else.
    let lines = file_lines(&run.stderr, mixed.dir.path());
    for (path, why) in &mixed.bad {
        let mine: Vec<_> = lines.iter().filter(|l| l.starts_with(&format!("{}: ", path.display()))).collect();
        assert_eq!(mine.len(), 1, "{} must be reported once\n{run}", path.display());
        assert!(mine[0].contains(why.as_str()), "{} must be reported as {why:?}\n{run}", path.display());
    }
    let (duplicate, original) = &mixed.duplicate;
    let line = format!("{}: duplicate of {} (SOP Instance UID ", duplicate.display(), original.display());
    assert!(lines.iter().any(|l| l.starts_with(&line)), "the duplicate is not reported as {line:?}\n{run}");
    assert_eq!(lines.len(), mixed.bad.len() + 1, "lines naming files\n{run}");
    assert!(!run.stderr.contains('\r'), "a progress line was drawn without a terminal\n{run}");

    // The summary counts every kind of file.
    let indexed = mixed.good.len() + 2;
    let files = indexed + mixed.bad.len() + 1;
    let summary =
        format!("indexed {indexed} files in 3 studies; skipped 4 unreadable, 1 duplicates; read {files} files (");
    assert!(run.stderr.lines().any(|l| l.starts_with(&summary)), "no summary {summary:?}\n{run}");
    assert!(run.stderr.contains(" files/s, ") && run.stderr.contains(" MB/s"), "the summary has no rates\n{run}");

    // The index: every good file with its sample UIDs, size and syntax; the duplicate's original only.
    let (_, instances) = load_index(&mixed.dir.path().join("index.toml"));
    assert_eq!(instances.len(), indexed, "instances in the index: {instances:#?}");
    let by_path = |path: &Path| {
        let rel = path.strip_prefix(canonical(mixed.dir.path().to_path_buf())).unwrap().to_string_lossy().to_string();
        instances.iter().find(|i| i.path == rel).unwrap_or_else(|| panic!("{rel} is not indexed: {instances:#?}"))
    };
    for (path, sample) in &mixed.good {
        let inst = by_path(path);
        assert_eq!(
            (&inst.uid, &inst.study, &inst.series),
            (&sample.uid, &sample.study, &sample.series),
            "{}",
            inst.path
        );
        assert_eq!((inst.size as u64, &inst.transfer_syntax), (sample.size, &sample.transfer_syntax), "{}", inst.path);
    }
    let mut syntaxes = sorted(instances.iter().map(|i| i.transfer_syntax.clone()));
    syntaxes.dedup();
    assert_eq!(syntaxes, sorted([IMPLICIT_LE, EXPLICIT_LE, DEFLATED, EXPLICIT_BE].map(String::from)));

    let (path, sample) = &mixed.deflated;
    let inst = by_path(path);
    assert_eq!((&inst.uid, &inst.study, &inst.series), (&sample.uid, &sample.study, &sample.series), "deflated");
    assert_eq!(inst.transfer_syntax, DEFLATED);
    assert_eq!(inst.size as u64, std::fs::metadata(path).unwrap().len());
    assert_eq!(inst.pixel_data_offset, None, "an offset in inflated bytes means nothing in the file");

    let (path, sample, cut) = &mixed.bare;
    let inst = by_path(path);
    assert_eq!((&inst.uid, &inst.study, &inst.series), (&sample.uid, &sample.study, &sample.series), "bare");
    assert_eq!(inst.transfer_syntax, IMPLICIT_LE);
    let sample_offset = load_index(&sample_index_path()).1.into_iter().find(|i| i.uid == sample.uid).unwrap();
    assert_eq!(inst.pixel_data_offset, sample_offset.pixel_data_offset.map(|o| o - *cut as i64));

    // Quiet: the same lines naming files, and nothing else; the same index.
    let run =
        run_cli(&[OsString::from("index"), mixed.dir.path().join("dicom").into(), "--quiet".into()], mixed.dir.path());
    assert_eq!(run.code(), Some(0), "exit status of the quiet run\n{run}");
    assert_eq!(run.stderr.lines().count(), mixed.bad.len() + 1, "a quiet run prints only the problems\n{run}");
    assert_eq!(file_lines(&run.stderr, mixed.dir.path()).len(), mixed.bad.len() + 1, "{run}");
    let (_, again) = load_index(&mixed.dir.path().join("index.toml"));
    assert_eq!(format!("{again:?}"), format!("{instances:?}"), "indexing the same files twice");
}

#[test]
fn index_of_only_bad_files_exits_1_with_the_summary() {
    let dir = TempDir::new("index-only-bad");
    let sample = IndexFile::sample().studies[0].series[0].instances[0].file_bytes();
    dir.write("dicom/cut.dcm", &sample[..300]);
    dir.write("dicom/empty.dcm", "");
    let run = run_cli(&[OsString::from("index"), dir.path().join("dicom").into()], dir.path());
    assert_eq!(run.code(), Some(1), "exit status with nothing indexed\n{run}");
    assert_eq!(file_lines(&run.stderr, dir.path()).len(), 2, "one line per file\n{run}");
    assert!(run.stderr.contains("indexed 0 files in 0 studies; skipped 2 unreadable, 0 duplicates"), "{run}");
    assert!(!dir.path().join("index.toml").exists(), "an index was written for no DICOM");
}

/// A folder of five sample CT files, indexed, with a configuration whose index is `index.toml` beside it.
fn indexed_folder(label: &str) -> (TempDir, Vec<PathBuf>, PathBuf) {
    let dir = TempDir::new(label);
    let index = IndexFile::sample();
    let files: Vec<PathBuf> = index.studies[0].series[0].instances[..5]
        .iter()
        .enumerate()
        .map(|(i, inst)| canonical(dir.write(&format!("dicom/{}.dcm", (b'a' + i as u8) as char), inst.file_bytes())))
        .collect();
    let run = run_cli(&[OsString::from("index"), dir.path().join("dicom").into()], dir.path());
    assert_eq!(run.code(), Some(0), "index\n{run}");
    let config = dir.write(
        "smart-imaging.toml",
        "[images]\nindex = \"index.toml\"\n\n[tenants.open]\n\
         authorization = { type = \"mock\", ignorePatient = true }\nimages = { lookup = \"all-studies\" }\n",
    );
    (dir, files, config)
}

fn check(config: &Path, dir: &Path) -> Run {
    run_cli(&[OsString::from("check"), "--config".into(), config.into()], dir)
}

fn check_verbose(config: &Path, dir: &Path) -> Run {
    run_cli(&[OsString::from("check"), "--config".into(), config.into(), "--verbose".into()], dir)
}

/// Moves a file's modification time `by` into the past, as a copy made earlier would have it.
pub fn set_mtime(path: &Path, by: Duration) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    let was = file.metadata().unwrap().modified().unwrap();
    file.set_modified(was.checked_sub(by).unwrap_or(SystemTime::UNIX_EPOCH)).unwrap();
}

/// The lines of `check`'s output that start with `kind` and name `path`.
fn named<'a>(run: &'a Run, kind: &str, path: &Path) -> Vec<&'a str> {
    let start = format!("{kind}: {}", path.display());
    run.stdout.lines().filter(|l| l.starts_with(&start)).collect()
}

#[test]
fn check_names_a_touched_file_without_failing() {
    let (dir, files, config) = indexed_folder("check-touched");
    let run = check(&config, dir.path());
    assert_eq!(run.code(), Some(0), "check of a fresh index\n{run}");
    assert!(run.stdout.contains("5 instances, 0 problems, 0 touched"), "{run}");

    // A fresh clone or copy gives every file a new modification time and nothing else.
    set_mtime(&files[2], Duration::from_secs(3600));
    let run = check(&config, dir.path());
    assert_eq!(run.code(), Some(0), "a touched file is still served as indexed\n{run}");
    assert!(named(&run, "touched", &files[2]).is_empty(), "without --verbose, no line per touched file\n{run}");
    let summary: Vec<&str> = run.stdout.lines().filter(|l| l.starts_with("touched:")).collect();
    assert_eq!(summary.len(), 1, "one line for the touched files\n{run}");
    assert!(summary[0].starts_with("touched: 1 file has a new modification time"), "{run}");
    assert!(run.stdout.contains("0 problems, 1 touched"), "{run}");
    let run = check_verbose(&config, dir.path());
    assert_eq!(run.code(), Some(0), "{run}");
    let lines = named(&run, "touched", &files[2]);
    assert_eq!(lines.len(), 1, "with --verbose the touched file is named once\n{run}");
    assert!(lines[0].contains("; size and header match the index"), "{run}");
}

#[test]
fn check_fails_naming_changed_and_missing_files() {
    let (dir, files, config) = indexed_folder("check-changed");
    let [grown, gone, touched, renumbered, _] = &files[..] else { unreachable!() };

    // Bytes appended: another size.
    std::fs::OpenOptions::new().append(true).open(grown).unwrap().write_all(&[0; 10]).unwrap();
    // Deleted.
    std::fs::remove_file(gone).unwrap();
    // Only the modification time.
    set_mtime(touched, Duration::from_secs(86_400));
    // The same size, another SOP Instance UID: its last digit changed wherever it is written.
    let index = IndexFile::load(&dir.path().join("index.toml"));
    let uid = index.studies[0].instances().into_iter().find(|i| renumbered.ends_with(&i.path)).unwrap().uid.clone();
    let other = format!("{}{}", &uid[..uid.len() - 1], if uid.ends_with('9') { '8' } else { '9' });
    let bytes = std::fs::read(renumbered).unwrap();
    let mut rewritten = bytes.clone();
    let mut at = 0;
    while let Some(found) = find(&rewritten, uid.as_bytes(), at) {
        rewritten[found..found + uid.len()].copy_from_slice(other.as_bytes());
        at = found + uid.len();
    }
    assert_ne!(rewritten, bytes, "the UID is in the file");
    std::fs::write(renumbered, &rewritten).unwrap();

    let run = check(&config, dir.path());
    assert_eq!(run.code(), Some(1), "check with changed and missing files\n{run}");
    let grown_lines = named(&run, "changed", grown);
    assert_eq!(grown_lines.len(), 1, "the grown file\n{run}");
    let size = index.studies[0].instances().into_iter().find(|i| grown.ends_with(&i.path)).unwrap().size;
    assert!(grown_lines[0].contains(&format!(": {} bytes, indexed {size}", size + 10)), "{run}");
    assert_eq!(named(&run, "missing", gone), [format!("missing: {}", gone.display())], "{run}");
    let renumbered_lines = named(&run, "changed", renumbered);
    assert_eq!(renumbered_lines.len(), 1, "the renumbered file\n{run}");
    assert!(renumbered_lines[0].contains(&format!("SOP Instance UID {other}, indexed {uid}")), "{run}");
    assert!(named(&run, "touched", touched).is_empty(), "a touched file is only counted\n{run}");
    assert!(run.stdout.contains("5 instances, 3 problems, 1 touched"), "{run}");
    let verbose = check_verbose(&config, dir.path());
    assert_eq!(named(&verbose, "touched", touched).len(), 1, "--verbose names the touched file\n{verbose}");
}
