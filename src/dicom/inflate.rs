//! A bounded inflater for deflated data sets (PS3.5 §A.5): it inflates a raw deflate stream (RFC 1951),
//! or one in a zlib wrapper, into memory a little at a time, as far as a caller asks. Invariants: a
//! fill stops once the output holds what was asked or the stream ends, every turn of its loop consumes
//! input, produces output or ends the stream, and a corrupt stream is an error, never a panic. It uses `flate2` and imports nothing from
//! its siblings; the header reader decides how far to inflate, never past [`MAX_INFLATED`] bytes.

use flate2::{Decompress, FlushDecompress, Status};

/// The most bytes of a deflated data set inflated to reach the end of the recorded attributes: far more
/// than they take in real files, little enough that a deflate bomb cannot exhaust memory.
pub(crate) const MAX_INFLATED: usize = 64 << 20;
/// How much of a deflated data set is inflated first; each further try doubles it.
pub(crate) const FIRST_INFLATE: usize = 64 << 10;

/// How a deflate stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamEnd {
    /// Its last block was inflated.
    Complete,
    /// The file ended before it did.
    InputUsedUp,
}

/// Inflates a deflate stream (RFC 1951) on demand into memory.
pub(crate) struct Inflater<'a> {
    input: &'a [u8],
    engine: Decompress,
    pub(crate) out: Vec<u8>,
    /// `None` while more may be inflated.
    pub(crate) end: Option<StreamEnd>,
}

impl<'a> Inflater<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Inflater<'a> {
        Inflater { input, engine: Decompress::new(has_zlib_header(input)), out: Vec::new(), end: None }
    }

    /// Inflates until `want` bytes are out or the stream ends. Every turn of the loop consumes input,
    /// produces output or ends the stream, so it cannot spin.
    pub(crate) fn fill(&mut self, want: usize) -> Result<(), String> {
        while self.out.len() < want && self.end.is_none() {
            let consumed = usize::try_from(self.engine.total_in()).unwrap_or(usize::MAX);
            let rest = self.input.get(consumed..).unwrap_or_default();
            self.out.reserve_exact(want - self.out.len());
            let before = (self.engine.total_in(), self.engine.total_out());
            let status = self
                .engine
                .decompress_vec(rest, &mut self.out, FlushDecompress::None)
                .map_err(|e| format!("the compressed stream is corrupt ({e})"))?;
            if status == Status::StreamEnd {
                self.end = Some(StreamEnd::Complete);
            } else if (self.engine.total_in(), self.engine.total_out()) == before {
                self.end = Some(StreamEnd::InputUsedUp);
            }
        }
        Ok(())
    }
}

/// Inflates a whole deflate stream a piece at a time, for a data set sent inflated: memory stays that of
/// the engine and the caller's buffer, however large the data set.
pub(crate) struct Stream {
    engine: Decompress,
    ended: bool,
}

impl Stream {
    pub(crate) fn new(input: &[u8]) -> Stream {
        Stream { engine: Decompress::new(has_zlib_header(input)), ended: false }
    }

    /// Appends at most `max` more inflated bytes of `input` (the same stream each call) to `out`; 0 at the
    /// end of the stream. Every turn of its loop consumes input or produces output, or fails.
    pub(crate) fn read(&mut self, input: &[u8], out: &mut Vec<u8>, max: usize) -> Result<usize, String> {
        let start = out.len();
        out.resize(start + max, 0);
        let result = self.read_into(input, &mut out[start..]);
        out.truncate(start + *result.as_ref().unwrap_or(&0));
        result
    }

    fn read_into(&mut self, input: &[u8], out: &mut [u8]) -> Result<usize, String> {
        let mut produced = 0;
        while produced < out.len() && !self.ended {
            let consumed = usize::try_from(self.engine.total_in()).unwrap_or(usize::MAX);
            let rest = input.get(consumed..).unwrap_or_default();
            let before = (self.engine.total_in(), self.engine.total_out());
            let status = self
                .engine
                .decompress(rest, &mut out[produced..], FlushDecompress::None)
                .map_err(|e| format!("the compressed stream is corrupt ({e})"))?;
            produced += usize::try_from(self.engine.total_out() - before.1).unwrap_or(0);
            if status == Status::StreamEnd {
                self.ended = true;
            } else if (self.engine.total_in(), self.engine.total_out()) == before {
                return Err(format!("truncated: the compressed stream ends after {} inflated bytes", before.1));
            }
        }
        Ok(produced)
    }
}

/// How many bytes a whole deflate stream inflates to, inflating it through a buffer of 64 KiB; once that is
/// past `limit`, some number past it, without inflating the rest (a deflate bomb takes no longer to refuse
/// than a stream of `limit` bytes).
pub(crate) fn inflated_len(input: &[u8], limit: u64) -> Result<u64, String> {
    let mut stream = Stream::new(input);
    let mut buffer = Vec::with_capacity(FIRST_INFLATE);
    let mut total = 0u64;
    while total <= limit {
        buffer.clear();
        match stream.read(input, &mut buffer, FIRST_INFLATE)? {
            0 => return Ok(total),
            n => total += n as u64,
        }
    }
    Ok(total)
}

/// Whether a deflated data set carries a zlib wrapper (RFC 1950), which PS3.5 §A.5 does not allow but
/// some writers add. A zlib header is two bytes whose big endian value is a multiple of 31 with
/// compression method 8. Raw deflate data that starts the same way begins with a stored block,
/// whose length is followed by its ones' complement; such a block is taken as raw.
fn has_zlib_header(input: &[u8]) -> bool {
    let [cmf, flg, ..] = *input else {
        return false;
    };
    let header = cmf & 0x0F == 8 && cmf >> 4 <= 7 && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0;
    let stored_block = matches!(input.get(1..5), Some(&[a, b, c, d]) if a == !c && b == !d);
    header && !stored_block
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::deflate;
    use super::*;

    #[test]
    fn inflates_as_far_as_asked_and_tells_how_the_stream_ended() {
        let data: Vec<u8> = (0..=255u8).cycle().take(200_000).collect();
        let stream = deflate(&data);
        let mut inflater = Inflater::new(&stream);
        inflater.fill(1000).unwrap();
        assert!(inflater.out.len() >= 1000 && inflater.out.len() < data.len(), "{}", inflater.out.len());
        assert_eq!(inflater.end, None);
        inflater.fill(2 * data.len()).unwrap();
        assert_eq!((inflater.out.as_slice() == data, inflater.end), (true, Some(StreamEnd::Complete)));

        let mut cut = Inflater::new(&stream[..stream.len() / 2]);
        cut.fill(data.len()).unwrap();
        assert_eq!(cut.end, Some(StreamEnd::InputUsedUp));
        assert!(Inflater::new(&[0x07, 0, 0, 0]).fill(10).unwrap_err().starts_with("the compressed stream is corrupt"));
    }

    #[test]
    fn streams_a_whole_stream_in_pieces_and_measures_it() {
        let data: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
        let stream = deflate(&data);
        assert_eq!(inflated_len(&stream, u64::MAX), Ok(data.len() as u64));
        let past = inflated_len(&stream, 100_000).unwrap();
        assert!(past > 100_000 && past < data.len() as u64, "stops once past the limit: {past}");
        let mut reader = Stream::new(&stream);
        let mut out = Vec::new();
        while reader.read(&stream, &mut out, 7000).unwrap() > 0 {}
        assert!(out == data);
        assert!(inflated_len(&stream[..stream.len() / 2], u64::MAX).unwrap_err().starts_with("truncated"));
    }

    #[test]
    fn tells_zlib_headers_from_raw_stored_blocks() {
        assert!(has_zlib_header(&[0x78, 0x9C, 1, 2, 3, 4]));
        assert!(has_zlib_header(&[0x78, 0x01, 1, 2, 3, 4]));
        // 0x78 0x9C as a raw stored block: LEN 0x029C, NLEN its complement 0xFD63.
        assert!(!has_zlib_header(&[0x78, 0x9C, 0x02, 0x63, 0xFD]));
        assert!(!has_zlib_header(&[0x78, 0x9D, 1, 2, 3, 4])); // not a multiple of 31
        assert!(!has_zlib_header(&[0x78]));
    }
}
