//! Magic-byte sniffing: name the container we see, and reject what we know we cannot decode
//! before any parser runs.

/// A container we read (through symphonia's demuxers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Container {
    Wav,
    Aiff,
    Caf,
    Flac,
    Ogg,
    WebM,
    Matroska,
    Mp4,
    /// MPEG audio (layers I–III) after ID3v2 tags.
    Id3Mpeg,
    /// MPEG audio (layers I–III) frames.
    Mpeg,
    /// AAC in ADTS frames.
    Adts,
}

impl Container {
    /// The name used in error messages.
    pub(super) fn name(self) -> &'static str {
        match self {
            Container::Wav => "WAV",
            Container::Aiff => "AIFF",
            Container::Caf => "CAF",
            Container::Flac => "FLAC",
            Container::Ogg => "Ogg",
            Container::WebM => "WebM",
            Container::Matroska => "Matroska",
            Container::Mp4 => "MP4/M4A",
            Container::Id3Mpeg => "ID3-tagged MPEG audio",
            Container::Mpeg => "MPEG audio",
            Container::Adts => "ADTS AAC",
        }
    }

    /// Bare elementary streams, where the codec is the format.
    pub(super) fn is_elementary(self) -> bool {
        matches!(self, Container::Id3Mpeg | Container::Mpeg | Container::Adts)
    }

    /// The name with its article: "an Ogg", "a WAV", "an MP4/M4A", "a WebM", "a Matroska".
    pub(super) fn with_article(self) -> String {
        let name = self.name();
        // Acronyms are spelled out: "an MP4", "an MPEG".
        let vowel_sound = name.starts_with(|c: char| "AEIOU".contains(c)) || name.starts_with("MP");
        format!("{} {name}", if vowel_sound { "an" } else { "a" })
    }
}

/// What the first bytes of the upload look like.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Sniff {
    /// A container we read.
    Audio(Container),
    /// Audio we recognise but cannot decode; the full description.
    UnsupportedAudio(String),
    /// Recognised non-audio data.
    NotAudio(&'static str),
    /// Nothing recognised (headerless or unknown data); symphonia's probe still gets a try.
    Unknown,
}

impl Sniff {
    pub(super) fn container(&self) -> Option<Container> {
        match self {
            Sniff::Audio(c) => Some(*c),
            _ => None,
        }
    }
}

pub(super) fn sniff(b: &[u8]) -> Sniff {
    let at = |off: usize, magic: &[u8]| b.get(off..off + magic.len()) == Some(magic);
    let head = &b[..b.len().min(4096)];
    let contains = |needle: &[u8]| head.windows(needle.len()).any(|w| w == needle);
    let unsupported = |s: &str| Sniff::UnsupportedAudio(s.to_string());

    // Containers we read (codec-level problems are named after probing).
    if at(0, b"RIFF") && at(8, b"WAVE") {
        return Sniff::Audio(Container::Wav);
    }
    if at(0, b"FORM") && (at(8, b"AIFF") || at(8, b"AIFC")) {
        return Sniff::Audio(Container::Aiff);
    }
    if at(0, b"caff") {
        return Sniff::Audio(Container::Caf);
    }
    if at(0, b"fLaC") {
        return Sniff::Audio(Container::Flac);
    }
    if at(0, b"OggS") {
        return if contains(b"Speex   ") {
            unsupported("Speex audio in an Ogg container")
        } else if contains(b"\x80theora") && !contains(b"OpusHead") && !contains(b"\x01vorbis") {
            unsupported("Ogg Theora video")
        } else {
            Sniff::Audio(Container::Ogg)
        };
    }
    if at(0, &[0x1A, 0x45, 0xDF, 0xA3]) {
        // The EBML header's DocType comes within its first few dozen bytes.
        let ebml_head = &b[..b.len().min(64)];
        let webm = ebml_head.windows(4).any(|w| w == b"webm");
        return Sniff::Audio(if webm {
            Container::WebM
        } else {
            Container::Matroska
        });
    }
    if at(4, b"ftyp") {
        let brand = b.get(8..12).unwrap_or(b"");
        return match brand {
            b"heic" | b"heix" | b"mif1" | b"msf1" | b"avif" | b"avis" => {
                Sniff::NotAudio("a HEIF/AVIF image")
            }
            _ => Sniff::Audio(Container::Mp4),
        };
    }
    if at(0, b"ID3") {
        return Sniff::Audio(Container::Id3Mpeg);
    }
    if b.len() >= 2 && b[0] == 0xFF && b[1] & 0xE0 == 0xE0 {
        // MPEG audio frame sync; layer bits 00 = ADTS (AAC).
        return Sniff::Audio(if b[1] & 0x06 == 0 {
            Container::Adts
        } else {
            Container::Mpeg
        });
    }

    // Audio formats without a decoder here.
    if at(0, b"#!AMR-WB") {
        return unsupported("AMR-WB (wideband Adaptive Multi-Rate speech)");
    }
    if at(0, b"#!AMR") {
        return unsupported("AMR (Adaptive Multi-Rate speech)");
    }
    if at(0, b"MThd") {
        return unsupported("MIDI (note data, not recorded audio)");
    }
    if at(0, b"RF64") || at(0, b"BW64") {
        return unsupported("RF64/BW64 (64-bit WAV)");
    }
    if at(0, b"RIFF") && at(8, b"AVI ") {
        return unsupported("AVI video");
    }
    if at(0, b"RIFF") && at(8, b"WEBP") {
        return Sniff::NotAudio("a WebP image");
    }
    let other_audio: &[(&[u8], &str)] = &[
        (
            &[0x30, 0x26, 0xB2, 0x75, 0x8E, 0x66, 0xCF, 0x11],
            "WMA/ASF (Windows Media)",
        ),
        (b".snd", "Sun/NeXT AU"),
        (b"MAC ", "Monkey's Audio (APE)"),
        (b"wvpk", "WavPack"),
        (b"TTA1", "TTA"),
        (b"MPCK", "Musepack"),
        (b"MP+", "Musepack"),
        (b"DSD ", "DSF (DSD audio)"),
        (b"FRM8", "DSDIFF (DSD audio)"),
        (b".RMF", "RealMedia"),
        (b".ra\xFD", "RealAudio"),
        (b"FLV\x01", "Flash Video (FLV)"),
        (&[0x0B, 0x77], "AC-3 (Dolby Digital)"),
        (&[0x00, 0x00, 0x01, 0xBA], "MPEG program stream (video)"),
    ];
    for (magic, name) in other_audio {
        if at(0, magic) {
            return unsupported(name);
        }
    }
    if b.len() > 188 && b[0] == 0x47 && b[188] == 0x47 {
        return unsupported("MPEG transport stream");
    }

    // Things that are not audio at all.
    let not_audio: &[(&[u8], &str)] = &[
        (b"%PDF", "a PDF document"),
        (b"\x89PNG\r\n\x1a\n", "a PNG image"),
        (&[0xFF, 0xD8, 0xFF], "a JPEG image"),
        (b"GIF87a", "a GIF image"),
        (b"GIF89a", "a GIF image"),
        (b"II*\0", "a TIFF image"),
        (b"MM\0*", "a TIFF image"),
        (b"PK\x03\x04", "a ZIP archive or Office document"),
        (&[0x1F, 0x8B], "a gzip archive"),
        (b"7z\xBC\xAF\x27\x1C", "a 7-Zip archive"),
        (b"Rar!", "a RAR archive"),
        (b"\x7FELF", "an ELF executable"),
        (b"\0asm", "a WebAssembly module"),
        (b"{\\rtf", "an RTF document"),
    ];
    for (magic, what) in not_audio {
        if at(0, magic) {
            return Sniff::NotAudio(what);
        }
    }
    if let Some(kind) = sniff_text(head) {
        return Sniff::NotAudio(kind);
    }
    Sniff::Unknown
}

/// Recognises text uploads (HTML, XML, JSON, plain text) from their first bytes.
fn sniff_text(head: &[u8]) -> Option<&'static str> {
    let body = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head); // UTF-8 BOM
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        // The 4 KiB cut may split a multi-byte character.
        Err(e) if e.error_len().is_none() && e.valid_up_to() > 0 => {
            std::str::from_utf8(&body[..e.valid_up_to()]).ok()?
        }
        Err(_) => return None,
    };
    if text.is_empty()
        || text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\x0C'))
    {
        return None;
    }
    let start: String = text
        .trim_start()
        .chars()
        .take(64)
        .collect::<String>()
        .to_ascii_lowercase();
    Some(
        if start.starts_with("<!doctype html")
            || start.starts_with("<html")
            || start.starts_with("<head")
            || start.starts_with("<body")
        {
            "HTML"
        } else if start.starts_with("<svg") || (start.starts_with("<?xml") && text.contains("<svg"))
        {
            "an SVG image"
        } else if start.starts_with("<?xml") || start.starts_with('<') {
            "XML"
        } else if start.starts_with('{') || start.starts_with('[') {
            "JSON"
        } else {
            "text"
        },
    )
}
