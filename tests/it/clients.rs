//! What the resilience and attack tests share: a large DICOM file whose every byte is known, clients that
//! read at their own pace, and looks at the server process (its threads, its memory, whether it serves).

use std::io::{BufWriter, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::harness::*;

/// The longest any single wait in this module may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------------
// A large DICOM file, built here so its every byte is known.

pub const BIG_STUDY: &str = "2.25.6001";
pub const BIG_SERIES: &str = "2.25.6001.1";
pub const BIG_SOP: &str = "2.25.6001.1.1";
/// Secondary Capture Image Storage (PS3.4 §B.5).
pub const SECONDARY_CAPTURE: &str = "1.2.840.10008.5.1.4.1.1.7";
pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
/// 4096 rows × 6144 columns × 2 bytes: 48 MiB of Pixel Data, far more than any socket buffers.
pub const ROWS: u16 = 4096;
pub const COLUMNS: u16 = 6144;
pub const PIXEL_BYTES: u32 = ROWS as u32 * COLUMNS as u32 * 2;

/// A value padded to even length (PS3.5 §7.1.1): UIDs with NUL, text with a space.
pub fn padded(value: &str, pad: u8) -> Vec<u8> {
    let mut v = value.as_bytes().to_vec();
    if v.len() % 2 == 1 {
        v.push(pad);
    }
    v
}

/// One explicit VR little endian element (PS3.5 §7.1.2): tag, VR, then a 2-byte length, or for OB and OW two
/// reserved bytes and a 4-byte length.
pub fn element(group: u16, elem: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + value.len());
    out.extend(group.to_le_bytes());
    out.extend(elem.to_le_bytes());
    out.extend(vr);
    if matches!(vr, b"OB" | b"OW") {
        out.extend([0, 0]);
        out.extend((value.len() as u32).to_le_bytes());
    } else {
        out.extend((value.len() as u16).to_le_bytes());
    }
    out.extend(value);
    out
}

/// Everything of the file before the Pixel Data value: preamble, prefix, File Meta Information (PS3.10 §7.1)
/// and the data set up to the Pixel Data element header.
pub fn big_dicom_header() -> Vec<u8> {
    let meta: Vec<u8> = [
        element(0x0002, 0x0001, b"OB", &[0x00, 0x01]), // (0002,0001) OB len 2: File Meta Information Version
        element(0x0002, 0x0002, b"UI", &padded(SECONDARY_CAPTURE, 0)), // (0002,0002) UI: Media Storage SOP Class
        element(0x0002, 0x0003, b"UI", &padded(BIG_SOP, 0)), // (0002,0003) UI: Media Storage SOP Instance
        element(0x0002, 0x0010, b"UI", &padded(EXPLICIT_VR_LE, 0)), // (0002,0010) UI: Transfer Syntax
        element(0x0002, 0x0012, b"UI", &padded("2.25.6000", 0)), // (0002,0012) UI: Implementation Class UID
    ]
    .concat();
    let data_set: Vec<u8> = [
        element(0x0008, 0x0016, b"UI", &padded(SECONDARY_CAPTURE, 0)), // (0008,0016) UI: SOP Class UID
        element(0x0008, 0x0018, b"UI", &padded(BIG_SOP, 0)),           // (0008,0018) UI: SOP Instance UID
        element(0x0008, 0x0060, b"CS", &padded("OT", b' ')),           // (0008,0060) CS len 2: Modality
        element(0x0010, 0x0020, b"LO", &padded("BIG-1", b' ')),        // (0010,0020) LO len 6: Patient ID
        element(0x0020, 0x000D, b"UI", &padded(BIG_STUDY, 0)),         // (0020,000D) UI: Study Instance UID
        element(0x0020, 0x000E, b"UI", &padded(BIG_SERIES, 0)),        // (0020,000E) UI: Series Instance UID
        element(0x0028, 0x0002, b"US", &1u16.to_le_bytes()),           // (0028,0002) US len 2: Samples per Pixel 1
        element(0x0028, 0x0004, b"CS", &padded("MONOCHROME2", b' ')),  // (0028,0004) CS len 12: Photometric
        element(0x0028, 0x0010, b"US", &ROWS.to_le_bytes()),           // (0028,0010) US len 2: Rows 4096
        element(0x0028, 0x0011, b"US", &COLUMNS.to_le_bytes()),        // (0028,0011) US len 2: Columns 6144
        element(0x0028, 0x0100, b"US", &16u16.to_le_bytes()),          // (0028,0100) US len 2: Bits Allocated 16
        element(0x0028, 0x0101, b"US", &16u16.to_le_bytes()),          // (0028,0101) US len 2: Bits Stored 16
        element(0x0028, 0x0102, b"US", &15u16.to_le_bytes()),          // (0028,0102) US len 2: High Bit 15
        element(0x0028, 0x0103, b"US", &0u16.to_le_bytes()),           // (0028,0103) US len 2: unsigned pixels
    ]
    .concat();
    let mut pixel_header = element(0x7FE0, 0x0010, b"OW", &[]); // (7FE0,0010) OW: Pixel Data, 48 MiB follow
    pixel_header.truncate(8);
    pixel_header.extend(PIXEL_BYTES.to_le_bytes());
    [
        vec![0u8; 128],                                                     // preamble
        b"DICM".to_vec(),                                                   // prefix
        element(0x0002, 0x0000, b"UL", &(meta.len() as u32).to_le_bytes()), // (0002,0000) UL len 4: group length
        meta,
        data_set,
        pixel_header,
    ]
    .concat()
}

/// A one-instance study of 48 MiB in its own folder, indexed, with a configuration serving it on the `open`
/// tenant (mock, `ignorePatient`, `all-studies`) after the given `[server]` keys.
pub struct BigStudy {
    pub _dir: TempDir,
    pub config: PathBuf,
    pub file: PathBuf,
}

impl BigStudy {
    pub fn new(label: &str, server_keys: &str) -> BigStudy {
        let dir = TempDir::new(label);
        let file = dir.path().join("dicom").join("big.dcm");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        let mut out = BufWriter::new(std::fs::File::create(&file).unwrap());
        out.write_all(&big_dicom_header()).unwrap();
        // A pattern with a period (251) prime to the page size, so that no two pages are alike and a page of
        // zeros in a reply cannot pass for the file's.
        let block: Vec<u8> = (0..251 * 4096).map(|i| (i % 251) as u8 + 1).collect();
        let mut left = PIXEL_BYTES as usize;
        while left > 0 {
            let n = left.min(block.len());
            out.write_all(&block[..n]).unwrap();
            left -= n;
        }
        out.flush().unwrap();
        drop(out);
        let run = run_cli(&["index", "dicom"], dir.path());
        assert_eq!(run.code(), Some(0), "indexing the big file failed:\n{run}");
        let config = write_config(&dir, &dir.path().join("index.toml"), &format!("[server]\n{server_keys}\n{OPEN}"));
        BigStudy { _dir: dir, config, file }
    }

    /// The request target of the big instance on `server`, with a study token minted by a search.
    pub fn instance_target(&self, server: &Server) -> String {
        let found = addresses(server, "/open/fhir/ImagingStudy");
        let (_, address) = found.iter().find(|(id, _)| id == BIG_STUDY).expect("the big study is found");
        let path = address.strip_prefix(server.base()).expect("the address is on the server");
        format!("{path}/studies/{BIG_STUDY}/series/{BIG_SERIES}/instances/{BIG_SOP}")
    }
}

pub const OPEN: &str = "[tenants.open]\nauthorization = { type = \"mock\", ignorePatient = true }\n\
                    images = { lookup = \"all-studies\" }\n";

/// A configuration file in `dir` naming `index`, followed by `tables`.
pub fn write_config(dir: &TempDir, index: &Path, tables: &str) -> PathBuf {
    dir.write("smart-imaging.toml", format!("[images]\nindex = {}\n\n{tables}", toml_string(&index.to_string_lossy())))
}

// ---------------------------------------------------------------------------------------------------
// Talking to a server at the test's own pace.

/// A GET over a raw connection whose body the test reads when and as fast as it likes.
pub struct Download {
    pub stream: TcpStream,
    pub status: u16,
    /// The response head, from the status line to the last header line.
    pub head: String,
    pub content_length: Option<usize>,
    /// The body bytes read so far.
    pub body: Vec<u8>,
}

impl Download {
    pub fn start(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Download {
        Download::on(TcpStream::connect(addr).expect("connect"), target, headers)
    }

    /// The same GET on a connection already open (see `answered_connection`).
    pub fn on(mut stream: TcpStream, target: &str, headers: &[(&str, &str)]) -> Download {
        let addr = stream.peer_addr().expect("a connected stream");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut head = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).expect("send the request");
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        let end = loop {
            if let Some(end) = find(&raw, b"\r\n\r\n", 0) {
                break end;
            }
            let n = stream.read(&mut buf).expect("read the response head");
            assert!(n > 0, "the connection closed before a response head: {:?}", String::from_utf8_lossy(&raw));
            raw.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("status line: {head}"));
        let content_length = head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok())?
        });
        Download { stream, status, head, content_length, body: raw[end + 4..].to_vec() }
    }

    /// The value of a header of the response, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// Reads until at least `total` body bytes have arrived (or the body ended).
    pub fn read_until(&mut self, total: usize) {
        let mut buf = vec![0u8; 64 * 1024];
        while self.body.len() < total {
            match self.stream.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => self.body.extend_from_slice(&buf[..n]),
                Err(e) => panic!("reading the body after {} bytes: {e}", self.body.len()),
            }
        }
    }

    /// Reads to the end of the body. `Err` if the connection failed (reset) rather than ended, or stayed
    /// silent for `PATIENCE`.
    pub fn read_to_end(&mut self) -> Result<(), std::io::Error> {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => self.body.extend_from_slice(&buf[..n]),
                Err(e) => return Err(e),
            }
        }
    }
}

/// A kept-alive connection on which the server has answered a `/healthz`. Connections opened this way, one
/// after the other, are each read by the server before the next is opened: tiny_http may leave one of two
/// connections opened at the same moment unread until another closes.
pub fn answered_connection(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").expect("send /healthz");
    let mut raw = Vec::new();
    let mut buf = [0u8; 1024];
    // The answer is a head and the two bytes `ok`.
    while find(&raw, b"\r\n\r\n", 0).is_none_or(|end| raw.len() < end + 6) {
        let n = stream.read(&mut buf).expect("read the /healthz answer");
        assert!(n > 0, "the connection closed before /healthz was answered");
        raw.extend_from_slice(&buf[..n]);
    }
    assert!(raw.starts_with(b"HTTP/1.1 200"), "/healthz: {:?}", String::from_utf8_lossy(&raw));
    stream
}

/// Waits until the peer closes `stream` (EOF, reset, or any response it sends before closing) and returns
/// how long that took and the bytes it sent; `None` if it stayed open for `within`.
pub fn wait_closed(stream: &mut TcpStream, within: Duration) -> Option<(Duration, Vec<u8>)> {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let left = within.saturating_sub(start.elapsed());
        if left.is_zero() {
            return None;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return Some((start.elapsed(), got)),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return None,
            Err(_) => return Some((start.elapsed(), got)),
        }
    }
}

/// A number from `/proc/<pid>/status`, such as `Threads` or `VmRSS` (in kB).
/// A number of the server's `/metrics`, by the whole name of its line (labels included).
pub fn metric(server: &Server, line: &str) -> u64 {
    let text = server.get("/metrics").text();
    text.lines()
        .find_map(|l| l.strip_prefix(line)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {line} in /metrics:\n{text}"))
}

pub fn proc_status(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    assert!(
        text.lines().any(|l| l.starts_with("State:") && !l.contains("zombie")),
        "the server process {pid} has exited"
    );
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Fails unless the server process still runs, accepts connections and answers `/healthz`; `after` says
/// what just happened, for the message.
pub fn assert_serving(server: &Server, after: &str) {
    let pid = server.pid();
    let state = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let running = state.lines().any(|l| l.starts_with("State:") && !l.contains("zombie"));
    assert!(running, "the server process exited {after}");
    if let Err(e) = TcpStream::connect(server.addr()) {
        panic!("the server no longer accepts connections {after}: {e}");
    }
    assert_eq!(server.get("/healthz").status, 200, "/healthz {after}");
}

/// The names of the server's threads (`/proc/<pid>/task/*/comm`).
pub fn thread_names(pid: u32) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect()
}

pub fn workers(pid: u32) -> usize {
    thread_names(pid).iter().filter(|n| n.starts_with("worker-")).count()
}

/// Sends a signal to the server process.
pub fn signal(server: &Server, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(server.pid()).expect("a pid");
    // SAFETY: kill(2) takes two integers and touches no memory of this process.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}) failed: {}", std::io::Error::last_os_error());
}

/// How many times `needle` occurs in `hay`.
pub fn occurrences(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}
