//! Downmix + cap + container edit: decoded packets → mono source-rate samples → the
//! resampler ([`RateStage`]) → 16 kHz output.

use symphonia::core::audio::conv::IntoSample;
use symphonia::core::audio::sample::Sample;
use symphonia::core::audio::{Audio, AudioBuffer, GenericAudioBufferRef};

use super::resample::RateStage;
use super::{AudioError, TARGET_RATE};

/// An edit of the decoded audio: drop `skip_s` seconds at the start, keep at most `keep_s`, and
/// drop `drop_end_s` seconds at the end (known only once the stream has ended).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct Trim {
    pub skip_s: f64,
    pub keep_s: Option<f64>,
    pub drop_end_s: f64,
}

/// Finished output of [`Sink`].
pub(super) struct Decoded {
    pub samples: Vec<f32>,
    pub source_rate: u32,
    pub source_channels: usize,
    pub duration_s: f64,
}

/// Accumulates decoded packets: downmix → resample → 16 kHz output, enforcing the cap.
pub(super) struct Sink {
    max_seconds: f64,
    out: Vec<f32>,
    /// The resampler for the current source rate (`None` before the first packet).
    stage: Option<RateStage>,
    /// Rate and channel count of the first packet.
    first_rate: Option<u32>,
    max_channels: usize,
    /// Seconds of input in finished rate segments (before a mid-stream rate change).
    done_seconds: f64,
    /// Source frames in the current rate segment.
    segment_frames: u64,
    /// Source frames over all segments.
    pub(super) total_frames: u64,
    /// Container edit to apply to the decoded frames (MP4 edit list), if any.
    trim: Option<Trim>,
    /// Frames still to drop at the start / still allowed, once the rate is known.
    skip_left: u64,
    keep_left: Option<u64>,
}

impl Sink {
    pub(super) fn new(max_seconds: f32, trim: Option<Trim>) -> Self {
        Sink {
            trim,
            skip_left: 0,
            keep_left: None,
            max_seconds: if max_seconds.is_nan() {
                f64::INFINITY
            } else {
                max_seconds as f64
            },
            out: Vec::new(),
            stage: None,
            first_rate: None,
            max_channels: 0,
            done_seconds: 0.0,
            segment_frames: 0,
            total_frames: 0,
        }
    }

    /// Reserves the whole output up front when the container declares a length within the cap,
    /// so the output vector is not grown by doubling (peak 2× its size in a wasm heap).
    /// See [`initial_reserve`] for how far a header is believed.
    pub(super) fn reserve_for(
        &mut self,
        n_frames: Option<u64>,
        rate: Option<u32>,
        input_len: usize,
    ) {
        self.out
            .reserve(initial_reserve(n_frames, rate, self.max_seconds, input_len));
    }

    pub(super) fn push(&mut self, decoded: GenericAudioBufferRef<'_>) -> Result<(), AudioError> {
        let frames = decoded.frames();
        if frames == 0 {
            return Ok(());
        }
        let spec = decoded.spec();
        let (rate, channels) = (spec.rate(), spec.channels().count());
        if rate == 0 {
            return Err(AudioError::Corrupt {
                detail: "stream declares a sample rate of 0 Hz".into(),
            });
        }
        let rate_changed = self.stage.as_ref().is_some_and(|s| s.in_rate != rate);
        if rate_changed {
            let stage = self.stage.take().expect("checked");
            self.done_seconds += self.segment_frames as f64 / stage.in_rate as f64;
            self.segment_frames = 0;
            stage.finish(&mut self.out);
        }
        if self.stage.is_none() {
            self.stage = Some(RateStage::new(rate)?);
            if self.first_rate.is_none() {
                self.first_rate = Some(rate);
                if let Some(trim) = self.trim {
                    let rate = f64::from(rate);
                    self.skip_left = (trim.skip_s * rate).round() as u64;
                    self.keep_left = trim.keep_s.map(|k| (k * rate).round() as u64);
                }
            }
        }
        self.max_channels = self.max_channels.max(channels);

        // The container's edit: drop leading frames (encoder priming), cap the length.
        let skip = self.skip_left.min(frames as u64) as usize;
        self.skip_left -= skip as u64;
        let mut take = frames - skip;
        if let Some(keep) = self.keep_left.as_mut() {
            take = take.min(*keep as usize);
            *keep -= take as u64;
        }
        if take == 0 {
            return Ok(());
        }
        let range = skip..skip + take;
        let frames = take;

        // Cap on the input duration, checked before doing any work on this packet.
        let seconds =
            self.done_seconds + (self.segment_frames + frames as u64) as f64 / rate as f64;
        if seconds > self.max_seconds {
            return Err(AudioError::TooLong {
                max_seconds: self.max_seconds as f32,
            });
        }
        self.segment_frames += frames as u64;
        self.total_frames += frames as u64;

        let stage = self.stage.as_mut().expect("set above");
        match &decoded {
            GenericAudioBufferRef::U8(b) => downmix_into(b, range.clone(), &mut stage.pending),
            GenericAudioBufferRef::U16(b) => downmix_into(b, range.clone(), &mut stage.pending),
            GenericAudioBufferRef::U24(b) => downmix_into(b, range.clone(), &mut stage.pending),
            GenericAudioBufferRef::U32(b) => downmix_into(b, range.clone(), &mut stage.pending),
            GenericAudioBufferRef::S8(b) => downmix_into(b, range.clone(), &mut stage.pending),
            GenericAudioBufferRef::S16(b) => downmix_into(b, range.clone(), &mut stage.pending),
            GenericAudioBufferRef::S24(b) => downmix_into(b, range.clone(), &mut stage.pending),
            GenericAudioBufferRef::S32(b) => downmix_into(b, range.clone(), &mut stage.pending),
            GenericAudioBufferRef::F32(b) => downmix_into(b, range.clone(), &mut stage.pending),
            GenericAudioBufferRef::F64(b) => downmix_into(b, range.clone(), &mut stage.pending),
        }
        stage.n_in += frames as u64;
        stage.drain(&mut self.out);
        Ok(())
    }

    pub(super) fn finish(mut self) -> Option<Decoded> {
        let stage = self.stage.take()?;
        let mut duration_s = self.done_seconds + self.segment_frames as f64 / stage.in_rate as f64;
        stage.finish(&mut self.out);
        if let Some(drop_s) = self.trim.map(|t| t.drop_end_s).filter(|&s| s > 0.0) {
            let drop = ((drop_s * f64::from(TARGET_RATE)).round() as usize).min(self.out.len());
            self.out.truncate(self.out.len() - drop);
            duration_s = (duration_s - drop_s).max(0.0);
        }
        Some(Decoded {
            samples: self.out,
            source_rate: self.first_rate.unwrap_or(TARGET_RATE),
            source_channels: self.max_channels,
            duration_s,
        })
    }
}

/// 16 kHz output samples one input byte can plausibly decode to, for the up-front reservation:
/// 8-bit 8 kHz PCM gives 2, 4-bit ADPCM at 8 kHz 4, an 8 kbit/s MP3 16. Only streams that
/// compress better (e.g. FLAC of silence) can exceed it; their output then grows by doubling.
const RESERVE_SAMPLES_PER_BYTE: usize = 16;

/// Output samples to reserve for a track that declares `n_frames` at `rate` Hz: its length
/// (+ 1 s for the resampler's tail flush, trimmed at the end) if within `max_seconds`, but no
/// more than `input_len` bytes can hold. The header is the uploader's claim: a 44-byte WAV
/// declaring 3 h must not make us reserve 3 h of output (690 MB of a wasm heap).
pub(in crate::audio) fn initial_reserve(
    n_frames: Option<u64>,
    rate: Option<u32>,
    max_seconds: f64,
    input_len: usize,
) -> usize {
    let (Some(n), Some(rate)) = (n_frames, rate) else {
        return 0;
    };
    let seconds = n as f64 / f64::from(rate.max(1));
    if seconds > max_seconds {
        return 0;
    }
    let declared = ((seconds + 1.0) * f64::from(TARGET_RATE)) as usize;
    declared.min(input_len.saturating_mul(RESERVE_SAMPLES_PER_BYTE))
}

/// Appends the per-frame average of all channels of `buf`, frames `range`, to `dst`.
fn downmix_into<S>(buf: &AudioBuffer<S>, range: std::ops::Range<usize>, dst: &mut Vec<f32>)
where
    S: Sample + IntoSample<f32>,
{
    let planes = buf.num_planes();
    let Some(first) = buf.plane(0) else {
        return;
    };
    let start = dst.len();
    dst.extend(
        first[range.clone()]
            .iter()
            .map(|&s| full_scale(s.into_sample())),
    );
    let mixed = &mut dst[start..];
    for plane in (1..planes).filter_map(|i| buf.plane(i)) {
        for (d, &s) in mixed.iter_mut().zip(&plane[range.clone()]) {
            *d += full_scale(s.into_sample());
        }
    }
    if planes > 1 {
        let scale = 1.0 / planes as f32;
        mixed.iter_mut().for_each(|d| *d *= scale);
    }
}

/// A decoded sample clipped to full scale [-1, 1], NaN as 0. Integer formats are in range
/// already; float WAV (and f64 → f32 overflow) can hold anything, and a sample of 1e30 or ±inf
/// used to make the log-mel power overflow to inf/NaN for the whole file, which the encoder
/// turns into garbage. Clipping is also what openai-whisper and faster-whisper do to such
/// input: both convert to 16-bit PCM (ffmpeg / PyAV `s16`) before the log-mel.
#[inline]
pub(in crate::audio) fn full_scale(x: f32) -> f32 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(-1.0, 1.0)
    }
}
