//! Opus for symphonia: an [`AudioDecoder`] over `ropus`, a Rust port of xiph's libopus
//! (fixed-point, bit-exact against the reference, no C), registered beside symphonia's own
//! decoders so that its Ogg and Matroska/WebM demuxers feed it like any other codec. (ropus
//! decodes ~500× real time natively; `opus-decoder` 0.1.1, tried first, managed 5–25× and
//! links debug traces that write to a log file.)
//!
//! The identification header (`OpusHead`, RFC 7845 §5.1) comes as the track's extra data in
//! both containers: channel count, pre-skip, output gain and the channel mapping. Mapping family
//! 0 is mono/stereo in one stream; families 1 and 255 carry up to 255 channels in coupled and
//! mono streams. One multistream decoder serves all of them. All channels are kept: the sink
//! downmixes them. Output is 48 kHz; the pre-skip is dropped at the start and the demuxer's
//! end trim (Ogg's last granule position) at the end.

use ropus::OpusMSDecoder;
use symphonia::core::audio::{AsGenericAudioBufferRef, AudioBuffer, AudioMut, AudioSpec};
use symphonia::core::audio::{Channels, GenericAudioBufferRef};
use symphonia::core::codecs::audio::well_known::CODEC_ID_OPUS;
use symphonia::core::codecs::audio::FinalizeResult;
use symphonia::core::codecs::audio::{AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
use symphonia::core::codecs::registry::{RegisterableAudioDecoder, SupportedAudioCodec};
use symphonia::core::codecs::CodecInfo;
use symphonia::core::errors::{Error, Result};
use symphonia::core::packet::PacketRef;

/// Opus always decodes at 48 kHz here (the rate pre-skip and granule positions count in).
const RATE: u32 = 48_000;
/// The longest Opus packet: 120 ms at 48 kHz (RFC 6716 §3.2.5).
const MAX_FRAMES: usize = 5_760;

const SUPPORTED: &[SupportedAudioCodec] = &[SupportedAudioCodec {
    id: CODEC_ID_OPUS,
    info: CodecInfo {
        short_name: "opus",
        long_name: "Opus (ropus)",
        profiles: &[],
    },
}];

/// The fields of an `OpusHead` packet we use.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct OpusHead {
    pub channels: usize,
    pub pre_skip: usize,
    /// Linear output gain (from the Q7.8 dB field).
    pub gain: f32,
    /// `None` for mapping family 0; else (streams, coupled streams, channel mapping).
    pub streams: Option<(usize, usize, Vec<u8>)>,
}

impl OpusHead {
    /// Parses RFC 7845 §5.1: "OpusHead", version, channels, pre-skip (LE u16), input rate,
    /// output gain (LE i16, Q7.8 dB), mapping family [, streams, coupled, mapping].
    pub(super) fn parse(b: &[u8]) -> std::result::Result<OpusHead, &'static str> {
        if b.len() < 19 || &b[..8] != b"OpusHead" {
            return Err("opus: no OpusHead identification header");
        }
        if b[8] >> 4 != 0 {
            return Err("opus: unknown OpusHead major version");
        }
        let channels = usize::from(b[9]);
        let pre_skip = usize::from(u16::from_le_bytes([b[10], b[11]]));
        let gain_db = f32::from(i16::from_le_bytes([b[16], b[17]])) / 256.0;
        let family = b[18];
        if channels == 0 {
            return Err("opus: OpusHead declares 0 channels");
        }
        let streams = match family {
            0 if channels <= 2 => None,
            0 => return Err("opus: mapping family 0 with more than 2 channels"),
            _ => {
                let (Some(&streams), Some(&coupled)) = (b.get(19), b.get(20)) else {
                    return Err("opus: OpusHead without its channel mapping table");
                };
                let mapping = b
                    .get(21..21 + channels)
                    .ok_or("opus: OpusHead mapping table cut short")?;
                let (streams, coupled) = (usize::from(streams), usize::from(coupled));
                if streams == 0 || coupled > streams || streams + coupled > 255 {
                    return Err("opus: OpusHead declares an impossible stream count");
                }
                if mapping
                    .iter()
                    .any(|&m| m != 255 && usize::from(m) >= streams + coupled)
                {
                    return Err("opus: OpusHead maps a channel to a stream it does not have");
                }
                Some((streams, coupled, mapping.to_vec()))
            }
        };
        Ok(OpusHead {
            channels,
            pre_skip,
            gain: 10f32.powf(gain_db / 20.0),
            streams,
        })
    }
}

/// symphonia's view of an Opus stream.
pub(super) struct OpusAudioDecoder {
    params: AudioCodecParameters,
    inner: OpusMSDecoder,
    head: OpusHead,
    gapless: bool,
    /// Pre-skip frames not yet dropped.
    skip_left: usize,
    /// Interleaved 16-bit decoder output, `MAX_FRAMES × channels`.
    scratch: Vec<i16>,
    buf: AudioBuffer<f32>,
}

/// A libopus error code as symphonia's error: a bad packet is skipped, like any codec's.
fn opus_error(code: i32) -> Error {
    match code {
        -2 => Error::DecodeError("opus: packet longer than 120 ms"),
        -4 => Error::DecodeError("opus: invalid packet"),
        -1 => Error::Unsupported("opus: stream parameters"),
        _ => Error::DecodeError("opus: the decoder failed on this packet"),
    }
}

impl OpusAudioDecoder {
    fn try_new(params: &AudioCodecParameters, opts: &AudioDecoderOptions) -> Result<Self> {
        let head = match params.extra_data.as_deref() {
            Some(extra) => OpusHead::parse(extra).map_err(Error::DecodeError)?,
            // A Matroska track may omit CodecPrivate: mono or stereo as the track says.
            None => {
                let channels = params.channels.as_ref().map_or(1, Channels::count);
                if !(1..=2).contains(&channels) {
                    return Err(Error::Unsupported(
                        "opus: multichannel track without OpusHead",
                    ));
                }
                OpusHead {
                    channels,
                    pre_skip: 0,
                    gain: 1.0,
                    streams: None,
                }
            }
        };
        // Family 0 as a multistream layout: one stream, coupled when stereo.
        let (streams, coupled, mapping) = match &head.streams {
            None => (1, head.channels - 1, (0..head.channels as u8).collect()),
            Some((streams, coupled, mapping)) => (*streams, *coupled, mapping.clone()),
        };
        let inner = OpusMSDecoder::new(
            RATE as i32,
            head.channels as i32,
            streams as i32,
            coupled as i32,
            &mapping,
        )
        .map_err(opus_error)?;
        let channels = Channels::Discrete(head.channels as u16);
        let mut params = params.clone();
        params
            .with_sample_rate(RATE)
            .with_channels(channels.clone());
        Ok(OpusAudioDecoder {
            params,
            inner,
            gapless: opts.gapless,
            skip_left: if opts.gapless { head.pre_skip } else { 0 },
            scratch: vec![0; MAX_FRAMES * head.channels],
            buf: AudioBuffer::new(AudioSpec::new(RATE, channels), MAX_FRAMES),
            head,
        })
    }

    fn decode_inner(&mut self, packet: &PacketRef<'_>) -> Result<()> {
        // An empty packet would ask for loss concealment: a gap in the data, not audio.
        if packet.data.is_empty() {
            return Err(Error::DecodeError("opus: empty packet"));
        }
        let frames = self
            .inner
            .decode(
                Some(packet.data),
                packet.data.len() as i32,
                &mut self.scratch,
                MAX_FRAMES as i32,
                false,
            )
            .map_err(opus_error)? as usize;
        let ch = self.head.channels;
        let scale = self.head.gain / 32768.0;
        self.buf.render_uninit(Some(frames.min(MAX_FRAMES)));
        for c in 0..ch {
            let plane = self.buf.plane_mut(c).expect("one plane per channel");
            for (i, s) in plane.iter_mut().enumerate() {
                *s = f32::from(self.scratch[i * ch + c]) * scale;
            }
        }
        if self.gapless {
            let skip = self.skip_left.min(frames);
            self.skip_left -= skip;
            let start = skip + packet.trim_start.get() as usize;
            self.buf
                .trim(start.min(frames), packet.trim_end.get() as usize);
        }
        Ok(())
    }
}

impl AudioDecoder for OpusAudioDecoder {
    fn reset(&mut self) {
        self.inner.reset();
    }

    fn codec_info(&self) -> &CodecInfo {
        &SUPPORTED[0].info
    }

    fn codec_params(&self) -> &AudioCodecParameters {
        &self.params
    }

    fn decode_ref(&mut self, packet: &PacketRef<'_>) -> Result<GenericAudioBufferRef<'_>> {
        self.buf.clear();
        if let Err(e) = self.decode_inner(packet) {
            self.buf.clear();
            return Err(e);
        }
        Ok(self.buf.as_generic_audio_buffer_ref())
    }

    fn finalize(&mut self) -> FinalizeResult {
        FinalizeResult::default()
    }

    fn last_decoded(&self) -> GenericAudioBufferRef<'_> {
        self.buf.as_generic_audio_buffer_ref()
    }
}

impl RegisterableAudioDecoder for OpusAudioDecoder {
    fn try_registry_new(
        params: &AudioCodecParameters,
        opts: &AudioDecoderOptions,
    ) -> Result<Box<dyn AudioDecoder>> {
        Ok(Box::new(OpusAudioDecoder::try_new(params, opts)?))
    }

    fn supported_codecs() -> &'static [SupportedAudioCodec] {
        SUPPORTED
    }
}

#[cfg(test)]
mod tests {
    use super::OpusHead;

    fn head(channels: u8, family: u8, rest: &[u8]) -> Vec<u8> {
        let mut b = b"OpusHead\x01".to_vec();
        b.push(channels);
        b.extend_from_slice(&312u16.to_le_bytes());
        b.extend_from_slice(&48_000u32.to_le_bytes());
        b.extend_from_slice(&256i16.to_le_bytes()); // +1 dB
        b.push(family);
        b.extend_from_slice(rest);
        b
    }

    #[test]
    fn opus_head_fields() {
        let h = OpusHead::parse(&head(2, 0, &[])).unwrap();
        assert_eq!((h.channels, h.pre_skip, h.streams), (2, 312, None));
        assert!((h.gain - 1.122).abs() < 1e-3, "{}", h.gain);
        let h = OpusHead::parse(&head(6, 1, &[4, 2, 0, 4, 1, 2, 3, 5])).unwrap();
        assert_eq!(h.streams, Some((4, 2, vec![0, 4, 1, 2, 3, 5])));
    }

    #[test]
    fn bad_opus_heads_are_errors() {
        for (b, needle) in [
            (b"OpusHead".to_vec(), "no OpusHead"),
            (head(0, 0, &[]), "0 channels"),
            (head(3, 0, &[]), "family 0"),
            (head(6, 1, &[4, 2, 0]), "cut short"),
            (head(2, 1, &[0, 0, 0, 0]), "impossible"),
            (head(2, 1, &[1, 0, 0, 7]), "does not have"),
        ] {
            let e = OpusHead::parse(&b).unwrap_err();
            assert!(e.contains(needle), "{e:?} lacks {needle:?}");
        }
    }
}
