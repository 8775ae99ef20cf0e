//! Vorbis setup headers: the codebooks symphonia 0.6.1 panics on, refused before it reads them.
//!
//! symphonia reads a setup header's codebooks twice: the Ogg demuxer skips through them to
//! reach the modes (`symphonia-format-ogg` `mappings/vorbis.rs`), and the decoder builds them
//! (`symphonia-codec-vorbis` `codebook.rs`, for Ogg and Matroska alike). Both trust fields the
//! Vorbis I specification does not bound (found by fuzzing; reproducers in
//! `fuzz/regressions/audio/`):
//! - a length-ordered codeword list counts its lengths up past 32 bits, and the decoder indexes
//!   its 33-entry codeword table with the length (mkv-vorbis-codeword-length-oob.mkv);
//! - a lookup type 1 table's size is `floor(entries^(1/dimensions))` computed in f32, and the
//!   demuxer asserts the result is exact: it is not when f32 rounds up (125^3 − 1 entries in 3
//!   dimensions gives 125), nor with 0 dimensions, nor when `(value + 1)^dimensions` overflows
//!   a u32 (vorbis-lookup1-*-panic.ogg).
//!
//! [`check_setup`] walks the codebooks exactly as both readers do and refuses the first that
//! would panic. Such a header is invalid for any Vorbis decoder: no encoder writes one.

use super::AudioError;

/// Why the walk stopped early.
enum Stop {
    /// The header ends, or is malformed in a way symphonia reports cleanly: nothing to refuse.
    Clean,
    /// A codebook symphonia would panic on.
    Refused(String),
}

/// Refuses a Vorbis setup header (`0x05 "vorbis"` and its codebooks) that symphonia would panic
/// on. Anything else — including a header too short or malformed to read — is left to symphonia.
pub(super) fn check_setup(packet: &[u8]) -> Result<(), AudioError> {
    let Some(body) = packet.strip_prefix(b"\x05vorbis") else {
        return Ok(());
    };
    let mut bits = Bits { data: body, pos: 0 };
    let mut walk = || -> Result<(), Stop> {
        let count = bits.read(8)? + 1;
        (0..count).try_for_each(|_| codebook(&mut bits))
    };
    match walk() {
        Ok(()) | Err(Stop::Clean) => Ok(()),
        Err(Stop::Refused(why)) => Err(AudioError::Corrupt {
            detail: format!("invalid Vorbis setup header: {why}"),
        }),
    }
}

/// The setup header in a Vorbis track's codec data, where symphonia's decoder reads it:
/// Xiph-laced (Matroska's CodecPrivate: `2`, the laced lengths of the identification and
/// comment headers, then the three headers) or the 30-byte identification header followed by
/// the setup header (symphonia's Ogg demuxer).
pub(super) fn setup_in_codec_data(data: &[u8]) -> Option<&[u8]> {
    let Some((&2, mut rest)) = data.split_first() else {
        return data.get(30..);
    };
    let mut lengths = [0usize; 2];
    for length in &mut lengths {
        loop {
            let (&lace, tail) = rest.split_first()?;
            rest = tail;
            *length = length.checked_add(usize::from(lace))?;
            if lace < 255 {
                break;
            }
        }
    }
    rest.get(lengths[0].checked_add(lengths[1])?..)
}

/// One codebook (Vorbis I § 3.2.1), read up to and past its lookup table.
fn codebook(bits: &mut Bits) -> Result<(), Stop> {
    if bits.read(24)? != 0x56_43_42 {
        return Err(Stop::Clean); // bad sync: symphonia reports it
    }
    let dimensions = bits.read(16)?;
    let entries = bits.read(24)?;
    if bits.read(1)? == 0 {
        // Not length-ordered: 5-bit lengths (+ 1), each behind a "used" flag if sparse.
        if bits.read(1)? == 1 {
            for _ in 0..entries {
                if bits.read(1)? == 1 {
                    bits.skip(5)?;
                }
            }
        } else {
            bits.skip(u64::from(entries) * 5)?;
        }
    } else {
        // Length-ordered: runs of entries per length, the length counting up from a 5-bit start.
        let mut length = bits.read(5)? + 1;
        let mut entry = 0u32;
        while entry < entries {
            let run = bits.read(ilog(entries - entry))?;
            // The decoder stores the length as a u8; lengths 33..=255 index past its table.
            if run > 0 && (33..=255).contains(&(length & 0xFF)) {
                return Err(Stop::Refused(format!(
                    "a codeword {} bits long (at most 32)",
                    length & 0xFF
                )));
            }
            length += 1;
            entry += run;
        }
        if entry > entries {
            return Err(Stop::Clean);
        }
    }
    match bits.read(4)? {
        0 => Ok(()),
        lookup @ (1 | 2) => {
            bits.skip(64)?; // minimum and delta
            let value_bits = u64::from(bits.read(4)? + 1);
            bits.skip(1)?; // sequence flag
            let values = if lookup == 1 {
                lookup1_values(entries, dimensions)?
            } else {
                u64::from(entries) * u64::from(dimensions)
            };
            // The demuxer multiplies these in u32; a table that large cannot be in an upload.
            let table_bits = u32::try_from(values * value_bits).map_err(|_| {
                Stop::Refused(format!(
                    "a lookup table of {values} values of {value_bits} bits"
                ))
            })?;
            bits.skip(u64::from(table_bits))
        }
        _ => Err(Stop::Clean), // an invalid lookup type: symphonia reports it
    }
}

/// The size of a lookup type 1 table as symphonia computes it, refused where its assertions
/// (`value^d <= entries < (value + 1)^d`, in u32) would fail.
fn lookup1_values(entries: u32, dimensions: u32) -> Result<u64, Stop> {
    let refuse = || {
        Stop::Refused(format!(
            "a lookup table over {entries} entries in {dimensions} dimensions"
        ))
    };
    if dimensions == 0 {
        return Err(refuse());
    }
    // Exactly as symphonia does it, f32 rounding and all.
    let value = (entries as f32).powf(1.0f32 / dimensions as f32).floor() as u32;
    let pow = |x: u32| {
        u64::from(x)
            .checked_pow(dimensions)
            .filter(|&p| p <= u64::from(u32::MAX))
    };
    match (pow(value), pow(value + 1)) {
        (Some(low), Some(high)) if low <= u64::from(entries) && high > u64::from(entries) => {
            Ok(u64::from(value))
        }
        _ => Err(refuse()),
    }
}

/// The number of bits in `x` (Vorbis I § 9.2.1 `ilog`).
fn ilog(x: u32) -> u32 {
    32 - x.leading_zeros()
}

/// Vorbis's bit packing: least significant bit of each byte first.
struct Bits<'a> {
    data: &'a [u8],
    pos: u64,
}

impl Bits<'_> {
    fn read(&mut self, n: u32) -> Result<u32, Stop> {
        let mut value = 0u32;
        for i in 0..n {
            let byte = *self.data.get((self.pos / 8) as usize).ok_or(Stop::Clean)?;
            value |= u32::from((byte >> (self.pos % 8)) & 1) << i;
            self.pos += 1;
        }
        Ok(value)
    }

    fn skip(&mut self, n: u64) -> Result<(), Stop> {
        let end = self.pos.checked_add(n).ok_or(Stop::Clean)?;
        if end > self.data.len() as u64 * 8 {
            return Err(Stop::Clean);
        }
        self.pos = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packs `(value, bits)` fields LSb first, as a Vorbis setup header after its 7-byte tag.
    fn setup(fields: &[(u32, u32)]) -> Vec<u8> {
        let mut out = b"\x05vorbis".to_vec();
        let mut pos = 0usize;
        for &(value, n) in fields {
            for i in 0..n {
                if pos % 8 == 0 {
                    out.push(0);
                }
                *out.last_mut().unwrap() |= (((value >> i) & 1) as u8) << (pos % 8);
                pos += 1;
            }
        }
        out.extend_from_slice(&[0; 8]);
        out
    }

    const SYNC: (u32, u32) = (0x56_43_42, 24);

    fn refused(packet: &[u8]) -> bool {
        matches!(check_setup(packet), Err(AudioError::Corrupt { .. }))
    }

    /// One length-ordered codebook of 2 entries in 1 dimension: its first length (5 bits, + 1),
    /// then `rest` (the runs and what follows).
    fn ordered(first: u32, rest: &[(u32, u32)]) -> Vec<u8> {
        let head = [(0, 8), SYNC, (1, 16), (2, 24), (1, 1), (first, 5)];
        setup(&[&head[..], rest].concat())
    }

    #[test]
    fn ordered_lengths_past_32_bits_are_refused() {
        // First length 32: one entry of 32 bits, then one of 33; no lookup table.
        assert!(refused(&ordered(31, &[(1, 2), (1, 1), (0, 4)])));
        // Lengths 31 and 32: valid.
        check_setup(&ordered(30, &[(1, 2), (1, 1), (0, 4)])).unwrap();
        // Empty runs at lengths 33 and on add no codeword (the header then runs out).
        check_setup(&ordered(31, &[(1, 2), (0, 1)])).unwrap();
    }

    #[test]
    fn lookup1_tables_symphonia_asserts_on_are_refused() {
        let lookup1 = |dims: u32, entries: u32| {
            setup(&[
                (0, 8),
                SYNC,
                (dims, 16),
                (entries, 24),
                (1, 1),
                (0, 5),
                (entries, ilog(entries)),
                (1, 4),
                (0, 32),
                (0, 32),
                (0, 4),
                (0, 1),
            ])
        };
        assert!(refused(&lookup1(0, 4)));
        assert!(refused(&lookup1(32, 5))); // 2^32 overflows the u32 check
        assert!(refused(&lookup1(3, 1_953_124))); // f32 rounds the root of 125^3 - 1 up to 125
                                                  // 81 = 3^4, and 124 in 3 dimensions: valid tables of 3 and 4 values.
        check_setup(&lookup1(4, 81)).unwrap();
        check_setup(&lookup1(3, 124)).unwrap();
        assert_eq!(lookup1_values(81, 4).ok(), Some(3));
        assert_eq!(lookup1_values(124, 3).ok(), Some(4));
        assert_eq!(lookup1_values(1 << 20, 1).ok(), Some(1 << 20));
    }

    #[test]
    fn setup_found_in_codec_data() {
        let laced = [&[2u8, 3, 2][..], b"id!", b"co", b"\x05vorbis.."].concat();
        assert_eq!(setup_in_codec_data(&laced), Some(&b"\x05vorbis.."[..]));
        let ogg = [&[1u8; 30][..], b"\x05vorbis"].concat();
        assert_eq!(setup_in_codec_data(&ogg), Some(&b"\x05vorbis"[..]));
        assert_eq!(setup_in_codec_data(&[2, 255]), None);
    }

    #[test]
    fn other_packets_and_short_headers_are_left_to_symphonia() {
        check_setup(b"\x01vorbis").unwrap();
        check_setup(b"\x05vorbis").unwrap();
        check_setup(&setup(&[(0, 8), (0x12_34_56, 24)])).unwrap();
    }
}
